// What --trace and --report cost: heat's cell updates per second without them, with --report and
// with --trace (medians of 5 runs each, interleaved so that the machine's drift hits all alike),
// and the size of the trace file.
//   npx tsx bench/trace.ts          (npm run bench runs it)
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI as cli, lastJson, median } from "./lib.js";

const RUNS = 5;
const dir = mkdtempSync(join(tmpdir(), "tsmpi-trace-bench-"));
const configs: [ranks: number, n: number, steps: number][] = [
  [2, 2048, 200],
  [4, 512, 1000],
  [16, 512, 1000],
];
console.log(`heat, cell-updates/s (median of ${RUNS}); overhead against no flag`);
console.log(`${"ranks, grid, steps".padEnd(22)} ${"plain".padStart(8)} ${"--report".padStart(16)} ${"--trace".padStart(16)}  trace file`);
for (const [ranks, n, steps] of configs) {
  const file = join(dir, `heat-${ranks}.json`);
  const modes: Record<string, string[]> = { plain: [], report: ["--report", "json"], trace: ["--trace", file] };
  const got: Record<string, number[]> = { plain: [], report: [], trace: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const [mode, flags] of Object.entries(modes)) {
      got[mode]!.push(lastJson(process.execPath, [cli, "-n", String(ranks), ...flags, "examples/heat.ts", "--n", String(n), "--steps", String(steps), "--json"], (l) => l.includes('"cellUpdatesPerSecond"')).cellUpdatesPerSecond!);
    }
  }
  const m = Object.fromEntries(Object.entries(got).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  const cell = (mode: string) => `${(m[mode]! / 1e6).toFixed(0).padStart(5)} M (${(100 * (1 - m[mode]! / m.plain!)).toFixed(1).padStart(5)} %)`;
  console.log(`${`${ranks}, ${n}², ${steps}`.padEnd(22)} ${(m.plain! / 1e6).toFixed(0).padStart(6)} M ${cell("report")} ${cell("trace")}  ${(statSync(file).size / 2 ** 20).toFixed(1)} MiB`);
}
