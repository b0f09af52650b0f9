import { deflateSync } from "node:zlib";

/**
 * The Teams app icons, drawn in code so they can be regenerated without an image editor:
 * a 192x192 full-colour icon and a 32x32 white-on-transparent outline icon, as Teams asks.
 * The mark is an "H" with a notification dot.
 */

export interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel, row by row. */
  rgba: Uint8Array;
}

type Rgba = readonly [number, number, number, number];
/** A shape: its colour where (x, y) is inside, undefined outside. Coordinates in 0..1. */
type Shape = (x: number, y: number) => Rgba | undefined;

export const ACCENT_COLOR = "#3B5BDB";
const INDIGO: Rgba = [0x3b, 0x5b, 0xdb, 255];
const WHITE: Rgba = [255, 255, 255, 255];
const AMBER: Rgba = [0xff, 0xc5, 0x3d, 255];

function roundedSquare(inset: number, radius: number, colour: Rgba): Shape {
  return (x, y) => {
    const lo = inset + radius;
    const hi = 1 - inset - radius;
    const dx = Math.max(lo - x, 0, x - hi);
    const dy = Math.max(lo - y, 0, y - hi);
    return dx * dx + dy * dy <= radius * radius && x >= inset && x <= 1 - inset
      ? colour
      : undefined;
  };
}

function rect(x0: number, y0: number, x1: number, y1: number, colour: Rgba): Shape {
  return (x, y) => (x >= x0 && x <= x1 && y >= y0 && y <= y1 ? colour : undefined);
}

function circle(cx: number, cy: number, r: number, colour: Rgba): Shape {
  return (x, y) => ((x - cx) ** 2 + (y - cy) ** 2 <= r * r ? colour : undefined);
}

/** The "H": two stems and a bar, inside the box (x0, y0)-(x1, y1). */
function letterH(
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  stroke: number,
  colour: Rgba,
): Shape[] {
  const mid = (y0 + y1) / 2;
  return [
    rect(x0, y0, x0 + stroke, y1, colour),
    rect(x1 - stroke, y0, x1, y1, colour),
    rect(x0, mid - stroke / 2, x1, mid + stroke / 2, colour),
  ];
}

/** Later shapes paint over earlier ones; 4x4 samples a pixel smooth the edges. */
function render(size: number, shapes: Shape[]): Image {
  const samples = 4;
  const rgba = new Uint8Array(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const sum = [0, 0, 0, 0];
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const x = (px + (sx + 0.5) / samples) / size;
          const y = (py + (sy + 0.5) / samples) / size;
          let colour: Rgba | undefined;
          for (const shape of shapes) colour = shape(x, y) ?? colour;
          if (colour === undefined) continue;
          const alpha = colour[3] / 255;
          sum[0]! += colour[0] * alpha;
          sum[1]! += colour[1] * alpha;
          sum[2]! += colour[2] * alpha;
          sum[3]! += colour[3];
        }
      }
      const n = samples * samples;
      const alpha = sum[3]! / n;
      const offset = (py * size + px) * 4;
      // Straight (not premultiplied) alpha, as PNG stores it.
      for (let c = 0; c < 3; c++) {
        rgba[offset + c] = alpha === 0 ? 0 : Math.round((sum[c]! / n) * (255 / alpha));
      }
      rgba[offset + 3] = Math.round(alpha);
    }
  }
  return { width: size, height: size, rgba };
}

export function colorIcon(): Image {
  return render(192, [
    roundedSquare(0, 0.19, INDIGO),
    ...letterH(0.27, 0.3, 0.67, 0.76, 0.12, WHITE),
    circle(0.72, 0.28, 0.13, INDIGO),
    circle(0.72, 0.28, 0.095, AMBER),
  ]);
}

export function outlineIcon(): Image {
  const clear: Rgba = [0, 0, 0, 0];
  return render(32, [
    ...letterH(0.12, 0.22, 0.68, 0.88, 0.17, WHITE),
    circle(0.78, 0.2, 0.2, clear),
    circle(0.78, 0.2, 0.14, WHITE),
  ]);
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A minimal PNG encoder: 8-bit RGBA, no interlace, filter 0 on every row. */
export function encodePng(image: Image): Buffer {
  const { width, height, rgba } = image;
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // colour type: RGBA
  header[10] = 0; // compression
  header[11] = 0; // filter method
  header[12] = 0; // no interlace
  const stride = width * 4;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    Buffer.from(rgba.buffer, rgba.byteOffset + y * stride, stride).copy(raw, y * (stride + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
