// The examples' pictures (examples/lib/plot.ts, Vega-Lite): what each shows, read back from the
// SVG, and that a PNG is a picture of the expected shape.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { ROOT, run } from "./helpers.js";

const out = (name: string) => join(mkdtempSync(join(tmpdir(), "tsmpi-plot-")), name);
/** The texts of an SVG (titles, axis titles, legend entries, tick labels). */
const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!.replace(/&amp;/g, "&"));

describe("pictures of the examples", () => {
  it("heat --png FILE.png: the field with a colour bar beside it", async () => {
    const file = out("heat.png");
    const r = await run(["-n", "2", "examples/heat.ts", "--n", "40", "--steps", "10", "--png", file]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`picture: ${file}`);
    const png = PNG.sync.read(readFileSync(file));
    expect(png.width).toBeGreaterThan(png.height); // the colour bar is at the right
    expect(png.height).toBeGreaterThan(400);
  });

  it("heat --png FILE.svg: title, axis titles in cells, the field as an image, and a colour bar titled u", async () => {
    const file = out("heat.svg");
    expect((await run(["-n", "2", "examples/heat.ts", "--n", "40", "--steps", "10", "--png", file])).exitCode).toBe(0);
    const svg = readFileSync(file, "utf8");
    expect(texts(svg)).toEqual(expect.arrayContaining(["heat: u on 40×40 cells after 10 steps", "column (40 cells)", "row (40 cells)", "u"]));
    expect(svg).toMatch(/<image [^>]*href="data:image\/png;base64,/);
    expect(svg).toContain("<linearGradient");
  });

  it("ising --png FILE.svg: spins with a legend naming +1 and −1", async () => {
    const file = out("ising.svg");
    expect((await run(["-n", "2", "examples/ising.ts", "--L", "32", "--sweeps", "5", "--therm", "0", "--png", file])).exitCode).toBe(0);
    expect(texts(readFileSync(file, "utf8"))).toEqual(expect.arrayContaining(["spin", "+1", "−1", "column (32 cells)"]));
  });

  it("sweep --png FILE.svg: |m| and e against T with a legend, the exact curve and a Tc rule", async () => {
    const file = out("sweep.svg");
    expect((await run(["-n", "3", "examples/sweep.ts", "--points", "5", "--L", "8", "--sweeps", "20", "--therm", "0", "--png", file])).exitCode).toBe(0);
    expect(texts(readFileSync(file, "utf8"))).toEqual(expect.arrayContaining(["temperature T", "per site", "Tc", "exact |m| (Onsager, L = ∞)", "|m| (L = 8)", "e per site"]));
  });

  it("examples/timeline.ts draws a window of a --trace file: a row per rank, calls in the legend, a line per message", async () => {
    const trace = out("heat.json");
    expect((await run(["-n", "4", "--trace", trace, "examples/heat.ts", "--n", "64", "--steps", "100"])).exitCode).toBe(0);
    const file = out("timeline.svg");
    // A window that starts just before the first halo message (a window picked at random may fall in a stall).
    const events = (JSON.parse(readFileSync(trace, "utf8")) as { traceEvents: { ph: string; name: string; ts: number }[] }).traceEvents;
    const from = Math.min(...events.filter((e) => e.ph === "X" && e.name === "exchange").map((e) => e.ts)) / 1000 - 0.1;
    const r = await execa(process.execPath, ["--import", "tsx", "examples/timeline.ts", trace, "--png", file, "--from", String(from), "--ms", "5"], { cwd: ROOT, reject: false });
    expect(r.exitCode).toBe(0);
    const [, calls, messages] = /(\d+) calls and (\d+) messages/.exec(r.stdout)!.map(Number);
    expect(calls).toBeGreaterThan(4);
    expect(messages).toBeGreaterThan(0);
    const t = texts(readFileSync(file, "utf8"));
    expect(t).toEqual(expect.arrayContaining(["rank 0", "rank 3", "tsmpi call", "exchange", "recvInto", "send", "time since the job started (ms)"]));
    const bad = await execa(process.execPath, ["--import", "tsx", "examples/timeline.ts", join(ROOT, "package.json"), "--png", file], { cwd: ROOT, reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/package\.json: not a trace file|package\.json has no spans/);
  });
});
