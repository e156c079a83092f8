// What --trace and --report cost: per message, the 8-byte and 4 KiB ping-pong between 2 ranks
// without them, with --report and with --trace (medians of 3 runs); per job, heat's cell updates
// per second (medians of 5). Runs are interleaved so that the machine's drift hits all alike.
// Heat on 4 and 16 ranks swings by ±5 % between batches of 5: TRACE_BENCH_RUNS=15 for a figure
// to compare builds by.
//   npx tsx bench/trace.ts          (npm run bench runs it)
import { spawnSync } from "node:child_process";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI as cli, lastJson, median, ROOT } from "./lib.js";

const RUNS = Number(process.env.TRACE_BENCH_RUNS ?? 5);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`TRACE_BENCH_RUNS=${process.env.TRACE_BENCH_RUNS}: give a whole number of runs, 1 or more`);
const dir = mkdtempSync(join(tmpdir(), "tsmpi-trace-bench-"));
const configs: [ranks: number, n: number, steps: number][] = [
  [2, 2048, 200],
  [4, 512, 1000],
  [16, 512, 1000],
];
const modes = (file: string): Record<string, string[]> => ({ plain: [], report: ["--report", "json"], trace: ["--trace", file] });

// The ping-pong sends ~10⁶ messages: a small ring keeps the trace's export out of the figures.
const PINGPONG_SIZES = [8, 4096];
const pp: Record<string, number[][]> = { plain: [], report: [], trace: [] };
for (let i = 0; i < 3; i++) {
  for (const [mode, flags] of Object.entries(modes(join(dir, "pingpong.json")))) {
    const r = spawnSync(process.execPath, [cli, "-n", "2", ...flags, "bench/pingpong-ranks.ts"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, TSMPI_TRACE_EVENTS: "1000" } });
    if (r.status !== 0) throw new Error(`pingpong ${flags.join(" ")} failed: ${r.stderr}`);
    const lines = r.stdout.trim().split("\n").filter((l) => l.includes('"pingpong-tsmpi"'));
    const rows = (JSON.parse(lines[lines.length - 1]!) as { rows: { bytes: number; into: number }[] }).rows;
    pp[mode]!.push(PINGPONG_SIZES.map((b) => rows.find((row) => row.bytes === b)!.into));
  }
}
console.log("ping-pong between 2 ranks (recvInto), one-way µs (median of 3); cost per message against no flag");
console.log(`${"bytes".padEnd(22)} ${"plain".padStart(8)} ${"--report".padStart(16)} ${"--trace".padStart(16)}`);
PINGPONG_SIZES.forEach((bytes, k) => {
  const m = Object.fromEntries(Object.entries(pp).map(([mode, runs]) => [mode, median(runs.map((r) => r[k]!))])) as Record<string, number>;
  const cell = (mode: string) => `${m[mode]!.toFixed(2).padStart(5)} µs (${(m[mode]! - m.plain! >= 0 ? "+" : "") + (m[mode]! - m.plain!).toFixed(2)})`.padStart(16);
  console.log(`${String(bytes).padEnd(22)} ${m.plain!.toFixed(2).padStart(5)} µs ${cell("report")} ${cell("trace")}`);
});

console.log(`\nheat, cell-updates/s (median of ${RUNS}); overhead against no flag`);
console.log(`${"ranks, grid, steps".padEnd(22)} ${"plain".padStart(8)} ${"--report".padStart(16)} ${"--trace".padStart(16)}  trace file`);
for (const [ranks, n, steps] of configs) {
  const file = join(dir, `heat-${ranks}.json`);
  const got: Record<string, number[]> = { plain: [], report: [], trace: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const [mode, flags] of Object.entries(modes(file))) {
      got[mode]!.push(lastJson(process.execPath, [cli, "-n", String(ranks), ...flags, "examples/heat.ts", "--n", String(n), "--steps", String(steps), "--json"], (l) => l.includes('"cellUpdatesPerSecond"')).cellUpdatesPerSecond!);
    }
  }
  const m = Object.fromEntries(Object.entries(got).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  const cell = (mode: string) => `${(m[mode]! / 1e6).toFixed(0).padStart(5)} M (${(100 * (1 - m[mode]! / m.plain!)).toFixed(1).padStart(5)} %)`;
  console.log(`${`${ranks}, ${n}², ${steps}`.padEnd(22)} ${(m.plain! / 1e6).toFixed(0).padStart(6)} M ${cell("report")} ${cell("trace")}  ${(statSync(file).size / 2 ** 20).toFixed(1)} MiB`);
}
