import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

export const PROJECT_ROOT = resolve(__dirname, "../..");

/** A fenced code block of a Markdown file, as a reader of the rendered page sees it. */
export interface FencedBlock {
  /** The file, relative to the project root (`docs/lob-quickstart.md`). */
  readonly file: string;
  /** The fence's language (`sh`, `ts`, …; "" when it names none). */
  readonly language: string;
  /** 1-based line of the first line of code (the line after the opening fence). */
  readonly line: number;
  /** The code, its indentation (a block inside a list item) taken off. */
  readonly code: string;
  /** The heading the block sits under (`Run it locally`; "" before the first heading). */
  readonly section: string;
}

/**
 * The fenced blocks of a CommonMark file: backtick or tilde fences, indented in list items or
 * not, with the heading they are under. Enough for README.md and docs/, which is all it reads.
 */
export function fencedBlocks(file: string, text = readFileSync(join(PROJECT_ROOT, file), "utf8")) {
  const blocks: FencedBlock[] = [];
  const lines = text.split("\n");
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const open = /^( *)(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i] ?? "");
    if (open === null) {
      const heading = /^#{1,6}\s+(.*?)\s*#*$/.exec(lines[i] ?? "");
      if (heading !== null) section = heading[1] ?? "";
      continue;
    }
    const indent = open[1]?.length ?? 0;
    const fence = open[2] ?? "```";
    const code: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j] ?? "";
      if (line.trimStart().startsWith(fence) && line.trim().replaceAll(fence[0]!, "") === "") break;
      code.push(line.slice(Math.min(indent, line.length - line.trimStart().length)));
    }
    blocks.push({ file, language: open[3] ?? "", line: i + 2, code: code.join("\n"), section });
    i = j;
  }
  return blocks;
}
