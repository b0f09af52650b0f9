/** A hand-written SVG line chart of per-second series (no charting dependency needed). */

export interface Series {
  readonly label: string;
  readonly color: string;
  readonly values: readonly number[];
  readonly dashed?: boolean;
}

export interface Panel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Horizontal reference lines (the allowed rate, the 95 % budget). */
  readonly guides?: readonly { readonly value: number; readonly label: string }[];
}

const WIDTH = 900;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 64, right: 210, top: 40, bottom: 44 };

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A round step for axis ticks: 1, 2 or 5 times a power of ten. */
function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  const factor = raw / power;
  return (factor <= 1 ? 1 : factor <= 2 ? 2 : factor <= 5 ? 5 : 10) * power;
}

function panel(p: Panel, top: number): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x0 = MARGIN.left;
  const y0 = top + MARGIN.top;
  const seconds = Math.max(1, ...p.series.map((s) => s.values.length));
  const peak = Math.max(
    1,
    ...p.series.flatMap((s) => s.values),
    ...(p.guides ?? []).map((g) => g.value),
  );
  const yStep = niceStep(peak, 5);
  const yMax = Math.ceil((peak * 1.05) / yStep) * yStep;
  const xStep = niceStep(seconds, 10);
  const x = (t: number) => x0 + (t / seconds) * plotW;
  const y = (v: number) => y0 + plotH - (v / yMax) * plotH;
  const out: string[] = [];

  out.push(
    `<text x="${x0}" y="${top + 24}" font-size="15" font-weight="bold">${escape(p.title)}</text>`,
  );
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    out.push(
      `<line x1="${x0}" x2="${x0 + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`,
      `<text x="${x0 - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v}</text>`,
    );
  }
  for (let t = 0; t <= seconds; t += xStep) {
    out.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${y0 + plotH}" y2="${y0 + plotH + 4}" stroke="#666"/>`,
      `<text x="${x(t)}" y="${y0 + plotH + 17}" font-size="11" text-anchor="middle">${t}</text>`,
    );
  }
  out.push(
    `<rect x="${x0}" y="${y0}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text x="${x0 + plotW / 2}" y="${y0 + plotH + 36}" font-size="12" text-anchor="middle">seconds since the run started</text>`,
    `<text transform="translate(${x0 - 46} ${y0 + plotH / 2}) rotate(-90)" font-size="12" text-anchor="middle">${escape(p.yLabel)}</text>`,
  );
  (p.guides ?? []).forEach((guide, i) => {
    // Labels alternate above and below their line, so two close guides stay readable.
    const labelY = i % 2 === 0 ? y(guide.value) - 4 : y(guide.value) + 13;
    out.push(
      `<line x1="${x0}" x2="${x0 + plotW}" y1="${y(guide.value)}" y2="${y(guide.value)}" stroke="#c00" stroke-dasharray="6 4"/>`,
      `<text x="${x0 + plotW - 4}" y="${labelY}" font-size="11" fill="#c00" text-anchor="end">${escape(guide.label)}</text>`,
    );
  });
  p.series.forEach((s, i) => {
    // Each second's count is drawn at the middle of its second.
    const points = s.values.map((v, t) => `${x(t + 0.5).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    if (points !== "")
      out.push(
        `<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="4 3"' : ""}/>`,
      );
    const ly = y0 + 10 + i * 20;
    out.push(
      `<line x1="${x0 + plotW + 12}" x2="${x0 + plotW + 36}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3"${s.dashed === true ? ' stroke-dasharray="4 3"' : ""}/>`,
      `<text x="${x0 + plotW + 42}" y="${ly + 4}" font-size="11">${escape(s.label)}</text>`,
    );
  });
  return out.join("\n");
}

/** Splits a footnote into lines of at most `max` characters, at spaces. */
function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + word.length + 1 > max) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

export function lineChart(title: string, panels: readonly Panel[], footnote: string): string {
  const notes = wrap(footnote, 130);
  const height = 36 + panels.length * PANEL_HEIGHT + 10 + notes.length * 15;
  const body = panels.map((p, i) => panel(p, 36 + i * PANEL_HEIGHT)).join("\n");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Segoe UI, Helvetica, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="24" font-size="17" font-weight="bold">${escape(title)}</text>`,
    body,
    ...notes.map(
      (line, i) =>
        `<text x="${MARGIN.left}" y="${36 + panels.length * PANEL_HEIGHT + 12 + i * 15}" font-size="11" fill="#555">${escape(line)}</text>`,
    ),
    `</svg>`,
    "",
  ].join("\n");
}
