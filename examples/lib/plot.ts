/** A small line chart as a PNG: axes with numbered ticks, curves with markers, a legend. */
import { Canvas } from "./png.js";

type RGB = [number, number, number];

// 5×7 glyphs for the characters the charts use ('#' = ink).
// Each glyph is 7 rows of 5 pixels, row after row.
const GLYPHS: Record<string, string> = {
  "0": ".###.#...##..###.#.###..##...#.###.",
  "1": "..#...##....#....#....#....#...###.",
  "2": ".###.#...#....#...#...#...#...#####",
  "3": "#####...#...#.....#.....##...#.###.",
  "4": "...#...##..#.#.#..#.#####...#....#.",
  "5": "######....####.....#....##...#.###.",
  "6": "..##..#...#....####.#...##...#.###.",
  "7": "#####....#...#...#...#....#....#...",
  "8": ".###.#...##...#.###.#...##...#.###.",
  "9": ".###.#...##...#.####....#...#..##..",
  ".": "..........................##...##..",
  "-": "................###................",
  "|": "..#....#....#....#....#....#....#..",
  "(": "...#...#...#....#....#.....#.....#.",
  ")": ".#.....#.....#....#....#...#...#...",
  "=": "..........#####.....#####..........",
  " ": "...................................",
  "T": "#####..#....#....#....#....#....#..",
  "E": "######....#....####.#....#....#####",
  "L": "#....#....#....#....#....#....#####",
  "O": ".###.#...##...##...##...##...#.###.",
  "a": "...........###.....#.#####...#.####",
  "c": "...........###.#....#....#...#.###.",
  "e": "...........###.#...#######.....###.",
  "g": "......#####...##...#.####....#.###.",
  "i": "..#........##....#....#....#...###.",
  "l": ".##....#....#....#....#....#...###.",
  "m": "..........##.#.#.#.##.#.##...##...#",
  "n": "..........#.##.##..##...##...##...#",
  "o": "...........###.#...##...##...#.###.",
  "p": "..........####.#...#####.#....#....",
  "r": "..........#.##.##..##....#....#....",
  "s": "...........#####.....###.....#####.",
  "t": "..#....#...###...#....#....#.#...#.",
  "x": "..........#...#.#.#...#...#.#.#...#",
};

function text(c: Canvas, s: string, x: number, y: number, colour: RGB = [0, 0, 0], scale = 2): void {
  for (const ch of s) {
    const g = GLYPHS[ch] ?? GLYPHS[" "]!;
    for (let k = 0; k < g.length; k++) {
      if (g[k] !== "#") continue;
      for (let dy = 0; dy < scale; dy++) for (let dx = 0; dx < scale; dx++) c.set(x + (k % 5) * scale + dx, y + Math.floor(k / 5) * scale + dy, colour);
    }
    x += 6 * scale;
  }
}

function line(c: Canvas, x0: number, y0: number, x1: number, y1: number, colour: RGB, dash = 0, width = 1): void {
  const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0)));
  for (let i = 0; i <= n; i++) {
    if (dash && Math.floor(i / dash) % 2 === 1) continue;
    const x = x0 + ((x1 - x0) * i) / n, y = y0 + ((y1 - y0) * i) / n;
    for (let w = 0; w < width; w++) (c.set(x, y + w, colour), c.set(x + w, y, colour));
  }
}

export interface Series {
  label: string;
  colour: RGB;
  points: [number, number][];
  /** "line": a plain curve; "markers": points joined by a thin line. */
  style: "line" | "markers";
  dash?: number;
}

export interface Chart {
  xRange: [number, number];
  yRange: [number, number];
  xTicks: number[];
  yTicks: number[];
  xLabel: string;
  series: Series[];
  /** Vertical marker lines: [x, label]. */
  marks?: [number, string][];
}

export function plot(file: string, chart: Chart, width = 900, height = 560): void {
  const c = new Canvas(width, height);
  const left = 80, right = width - 30, top = 30, bottom = height - 70;
  const X = (x: number) => left + ((x - chart.xRange[0]) / (chart.xRange[1] - chart.xRange[0])) * (right - left);
  const Y = (y: number) => bottom - ((y - chart.yRange[0]) / (chart.yRange[1] - chart.yRange[0])) * (bottom - top);
  const grey: RGB = [225, 225, 225], black: RGB = [0, 0, 0];
  for (const t of chart.xTicks) (line(c, X(t), top, X(t), bottom, grey), text(c, String(t), X(t) - 3 * 2 * String(t).length, bottom + 10));
  for (const t of chart.yTicks) {
    line(c, left, Y(t), right, Y(t), t === 0 ? [150, 150, 150] : grey);
    text(c, String(t), left - 12 * String(t).length - 8, Y(t) - 7);
  }
  line(c, left, bottom, right, bottom, black);
  line(c, left, top, left, bottom, black);
  text(c, chart.xLabel, (left + right) / 2 - 6, bottom + 38);
  for (const [x, label] of chart.marks ?? []) (line(c, X(x), top, X(x), bottom, [120, 120, 120], 6), text(c, label, X(x) + 6, top + 4, [90, 90, 90]));
  for (const s of chart.series) {
    const pts = s.points.map(([x, y]) => [X(x), Y(y)] as const);
    for (let i = 1; i < pts.length; i++) line(c, pts[i - 1]![0], pts[i - 1]![1], pts[i]![0], pts[i]![1], s.colour, s.dash ?? 0, s.style === "line" ? 2 : 1);
    if (s.style === "markers") for (const [x, y] of pts) for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) c.set(x + dx, y + dy, s.colour);
  }
  chart.series.forEach((s, i) => {
    const y = top + 12 + i * 22, x = right - 260;
    line(c, x, y + 6, x + 30, y + 6, s.colour, s.dash ?? 0, 2);
    if (s.style === "markers") for (let dy = -3; dy <= 3; dy++) for (let dx = -3; dx <= 3; dx++) c.set(x + 15 + dx, y + 6 + dy, s.colour);
    text(c, s.label, x + 40, y);
  });
  c.save(file);
}
