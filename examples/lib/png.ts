/** PNG pictures for the examples: a field through a perceptual colour map, and plain RGB images. */
import { writeFileSync } from "node:fs";
import { PNG } from "pngjs";

/** Matplotlib's "inferno" at 9 stops (black → purple → orange → pale yellow). */
const INFERNO: [number, number, number][] = [
  [0, 0, 4], [31, 12, 72], [85, 15, 109], [136, 34, 106], [186, 54, 85],
  [227, 89, 51], [249, 140, 10], [249, 201, 50], [252, 255, 164],
];

/** Colour of `t` in [0, 1] on the inferno map. */
export function inferno(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (INFERNO.length - 1);
  const i = Math.min(INFERNO.length - 2, Math.floor(x));
  const f = x - i;
  const a = INFERNO[i]!, b = INFERNO[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + f * (b[c]! - a[c]!))) as [number, number, number];
}

/** An RGB canvas that becomes a PNG file. */
export class Canvas {
  readonly png: PNG;
  constructor(readonly width: number, readonly height: number, background: [number, number, number] = [255, 255, 255]) {
    this.png = new PNG({ width, height });
    for (let i = 0; i < width * height; i++) this.png.data.set([...background, 255], 4 * i);
  }
  set(x: number, y: number, [r, g, b]: readonly number[]): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.png.data.set([r!, g!, b!, 255], 4 * (Math.round(y) * this.width + Math.round(x)));
  }
  save(file: string): void {
    writeFileSync(file, PNG.sync.write(this.png));
  }
}

/**
 * Writes a row-major `rows` × `cols` field as a PNG, scaled so the longer side is about `size`
 * pixels, coloured by `colour(value)` (default: inferno between the field's min and max).
 */
export function writeField(file: string, data: ArrayLike<number>, rows: number, cols: number, colour?: (v: number) => [number, number, number], size = 512): void {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < data.length; i++) (lo = Math.min(lo, data[i]!), (hi = Math.max(hi, data[i]!)));
  const map = colour ?? ((v: number) => inferno(hi > lo ? (v - lo) / (hi - lo) : 0));
  const scale = Math.max(1, Math.round(size / Math.max(rows, cols)));
  const step = Math.max(1, Math.ceil(Math.max(rows, cols) / size));
  const w = Math.ceil(cols / step) * scale, h = Math.ceil(rows / step) * scale;
  const c = new Canvas(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = Math.min(rows - 1, Math.floor(y / scale) * step), j = Math.min(cols - 1, Math.floor(x / scale) * step);
      c.set(x, y, map(data[i * cols + j]!));
    }
  }
  c.save(file);
}
