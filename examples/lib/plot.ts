/**
 * The examples' pictures, drawn by Vega-Lite (https://vega.github.io/vega-lite/): a spec in, an
 * SVG out, and a PNG from the SVG through resvg, chosen by the file's extension. To change a
 * picture, change its spec here: axis titles, legends and colour bars are Vega-Lite's own.
 */
import { writeFileSync } from "node:fs";
import { PNG } from "pngjs";
import type { TopLevelSpec } from "vega-lite";

/**
 * Renders `spec` to `file`: SVG when the name ends in .svg, else PNG (at twice the size, for
 * sharp text). The libraries load here, not with this module: they take half a second, which
 * a run without a picture should not pay.
 */
export async function render(spec: TopLevelSpec, file: string): Promise<void> {
  const [vega, { compile }, { Resvg }] = await Promise.all([import("vega"), import("vega-lite"), import("@resvg/resvg-js")]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  if (file.toLowerCase().endsWith(".svg")) return writeFileSync(file, svg);
  const png = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: 2 },
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
  }).render();
  writeFileSync(file, png.asPng());
}

const FONT = { font: "DejaVu Sans, Helvetica, Arial, sans-serif" };

export interface Curve {
  label: string;
  points: [x: number, y: number][];
  /** "line": a smooth curve (an exact solution, say); "points": measurements joined by a thin line. */
  style: "line" | "points";
}

export interface LineChart {
  title: string;
  xTitle: string;
  yTitle: string;
  curves: Curve[];
  /** Vertical rules with a label (a critical temperature, say). */
  rules?: { x: number; label: string }[];
}

/** Curves against one x axis, with a legend naming each. */
export function lineChart(chart: LineChart): TopLevelSpec {
  const values = chart.curves.flatMap((c) => c.points.map(([x, y]) => ({ x, y, curve: c.label, style: c.style })));
  const labels = chart.curves.map((c) => c.label);
  const x = { field: "x", type: "quantitative" as const, title: chart.xTitle, scale: { zero: false } };
  const y = { field: "y", type: "quantitative" as const, title: chart.yTitle };
  const color = { field: "curve", type: "nominal" as const, title: null, scale: { domain: labels } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: chart.title,
    width: 640,
    height: 400,
    config: { ...FONT, title: { fontSize: 15 }, axis: { titleFontSize: 13, labelFontSize: 11 }, legend: { labelFontSize: 12, labelLimit: 320 } },
    data: { values },
    layer: [
      { transform: [{ filter: "datum.style === 'line'" }], mark: { type: "line", strokeWidth: 2 }, encoding: { x, y, color } },
      { transform: [{ filter: "datum.style === 'points'" }], mark: { type: "line", strokeWidth: 1, point: { size: 40 } }, encoding: { x, y, color } },
      ...(chart.rules?.length
        ? [
            {
              data: { values: chart.rules },
              layer: [
                { mark: { type: "rule" as const, strokeDash: [6, 4], color: "#777" }, encoding: { x: { field: "x", type: "quantitative" as const } } },
                { mark: { type: "text" as const, align: "left" as const, dx: 4, y: 8, color: "#555" }, encoding: { x: { field: "x", type: "quantitative" as const }, text: { field: "label" } } },
              ],
            },
          ]
        : []),
    ],
  } as TopLevelSpec;
}

/** How a field's values become colours: a continuous scheme with a colour bar, or named values. */
export type FieldColours =
  | { kind: "scheme"; scheme: string; title: string }
  | { kind: "categories"; title: string; categories: { value: number; label: string; colour: string }[] };

export interface FieldImage {
  title: string;
  data: ArrayLike<number>;
  rows: number;
  cols: number;
  colours: FieldColours;
}

/** Matplotlib's (and Vega's) "inferno" at 9 stops, for the raster; the colour bar uses Vega's own. */
const INFERNO = ["#000004", "#1f0c48", "#550f6d", "#88226a", "#ba3655", "#e35933", "#f98c0a", "#f9c932", "#fcffa4"].map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));

function inferno(t: number): number[] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (INFERNO.length - 1);
  const i = Math.min(INFERNO.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(INFERNO[i]![c]! + f * (INFERNO[i + 1]![c]! - INFERNO[i]![c]!)));
}

/**
 * A row-major field as a picture: the cells as an image (row 0 at the top), axes in cells, and a
 * colour bar (or a legend of the named values). The cells are drawn as a raster, not one mark
 * each: a 2048² field is 4 million cells.
 */
export function fieldImage(f: FieldImage): TopLevelSpec {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < f.data.length; i++) (lo = Math.min(lo, f.data[i]!), (hi = Math.max(hi, f.data[i]!)));
  if (!(hi > lo)) hi = lo + 1;
  const byValue = f.colours.kind === "categories" ? new Map(f.colours.categories.map((c) => [c.value, [1, 3, 5].map((i) => parseInt(c.colour.slice(i, i + 2), 16))])) : null;
  const colour = (v: number) => byValue?.get(v) ?? inferno((v - lo) / (hi - lo));
  // At most 512 pixels a side; small fields are scaled up by whole pixels so cells stay sharp.
  const side = 480;
  const step = Math.max(1, Math.ceil(Math.max(f.rows, f.cols) / side));
  const scale = Math.max(1, Math.round(side / Math.ceil(Math.max(f.rows, f.cols) / step)));
  const w = Math.ceil(f.cols / step) * scale, h = Math.ceil(f.rows / step) * scale;
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = Math.min(f.rows - 1, Math.floor(y / scale) * step), j = Math.min(f.cols - 1, Math.floor(x / scale) * step);
      png.data.set([...colour(f.data[i * f.cols + j]!), 255], 4 * (y * w + x));
    }
  }
  const url = `data:image/png;base64,${PNG.sync.write(png).toString("base64")}`;
  const legend =
    f.colours.kind === "scheme"
      ? { data: { values: [{ v: lo }, { v: hi }] }, mark: { type: "point" as const, opacity: 0 }, encoding: { color: { field: "v", type: "quantitative" as const, title: f.colours.title, scale: { scheme: f.colours.scheme, domain: [lo, hi] }, legend: { gradientLength: h - 40, format: ".3~g" } } } }
      : { data: { values: f.colours.categories }, mark: { type: "point" as const, opacity: 0 }, encoding: { color: { field: "label", type: "nominal" as const, title: f.colours.title, scale: { domain: f.colours.categories.map((c) => c.label), range: f.colours.categories.map((c) => c.colour) }, legend: { symbolType: "square", symbolOpacity: 1, symbolSize: 200 } } } };
  const x = { type: "quantitative" as const, title: `column (${f.cols} cells)`, scale: { domain: [0, f.cols], nice: false } };
  const y = { type: "quantitative" as const, title: `row (${f.rows} cells)`, scale: { domain: [f.rows, 0], nice: false } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: f.title,
    width: w,
    height: h,
    config: { ...FONT, title: { fontSize: 15 }, axis: { titleFontSize: 13, labelFontSize: 11, grid: false }, legend: { titleFontSize: 12, labelFontSize: 11 }, view: { stroke: null } },
    layer: [
      { data: { values: [{ x: 0, y: 0, x2: f.cols, y2: f.rows, url }] }, mark: { type: "image", aspect: false }, encoding: { x: { field: "x", ...x }, y: { field: "y", ...y }, x2: { field: "x2" }, y2: { field: "y2" }, url: { field: "url", type: "nominal" } } },
      { ...legend, encoding: { ...legend.encoding, x: { datum: 0, ...x }, y: { datum: 0, ...y } } },
    ],
  } as TopLevelSpec;
}

/** A span of a timeline: one call on one rank's lane, in ms. */
export interface TimelineSpan {
  rank: number;
  lane: number;
  call: string;
  start: number;
  end: number;
}

/** A message of a timeline: from a rank's lane at a time to another's. */
export interface TimelineArrow {
  from: { rank: number; lane: number; t: number };
  to: { rank: number; lane: number; t: number };
}

/** Point-to-point calls: they hold no other call. */
const LEAVES = /^(send|recv|recvInto|recvMessage|probe)$|\(internal\)$/;

/** Calls as bars, a row per rank and lane, coloured by call, and messages as lines between them. */
export function timeline(title: string, spans: TimelineSpan[], arrows: TimelineArrow[]): TopLevelSpec {
  const row = (rank: number, lane: number) => `rank ${rank}${lane > 0 ? ` ·${lane + 1}` : ""}`;
  const rows = [...new Set(spans.map((s) => `${s.rank}/${s.lane}`))]
    .map((k) => k.split("/").map(Number) as [number, number])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map(([r, l]) => row(r, l));
  const calls = [...new Set(spans.map((s) => s.call))].sort();
  const y = { field: "row", type: "nominal" as const, title: null, sort: rows, scale: { domain: rows, paddingInner: 0.25 } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 900,
    height: Math.max(160, rows.length * 18),
    config: { ...FONT, title: { fontSize: 15 }, axis: { titleFontSize: 13, labelFontSize: 11 }, legend: { labelFontSize: 11 } },
    layer: [
      // Calls that hold others (exchange, collectives) as full-height bars, the point-to-point
      // calls inside them as narrower bars on top: nesting shows as in a flame graph's row.
      ...[false, true].map((leaf) => ({
        data: { values: spans.filter((s) => LEAVES.test(s.call) === leaf).map((s) => ({ ...s, row: row(s.rank, s.lane) })) },
        mark: { type: "bar" as const, cornerRadius: 1, height: { band: leaf ? 0.55 : 1 }, opacity: leaf ? 1 : 0.55 },
        encoding: {
          x: { field: "start", type: "quantitative" as const, title: "time since the job started (ms)", scale: { zero: false, nice: false } },
          x2: { field: "end" },
          y,
          color: { field: "call", type: "nominal" as const, title: "tsmpi call", scale: { scheme: "tableau10", domain: calls } },
        },
      })),
      {
        data: { values: arrows.map((a) => ({ t0: a.from.t, t1: a.to.t, row: row(a.from.rank, a.from.lane), row2: row(a.to.rank, a.to.lane) })) },
        mark: { type: "rule", color: "#222", strokeWidth: 0.8, opacity: 0.7 },
        encoding: { x: { field: "t0", type: "quantitative" }, x2: { field: "t1" }, y: { ...y, field: "row" }, y2: { field: "row2" } },
      },
    ],
  } as TopLevelSpec;
}
