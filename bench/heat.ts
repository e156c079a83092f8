// Heat solver throughput, beside the same solver in C + Open MPI and in mpi4py + NumPy
// (bench/reference/) when those are installed, in one run, medians of 5:
//  - 2048², 200 steps, 1 and 2 ranks: one ghost layer (--halo 1), and 8 layers with the 8 steps
//    between exchanges in one pass over the block (cache blocking over time);
//  - 512², 1000 steps, 16 ranks on this machine's cores: --halo 1, 8 and 32.
// Each configuration also shows the messages a rank sends per step and the memory traffic per
// cell update (a model: 24 B = read the old value, write the new one and its write-allocate,
// divided by the steps per pass; "cache" when both arrays fit in 1 MiB).
//   npx tsx bench/heat.ts          (npm run bench runs it)
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dimsCreate } from "../src/topology.js";
import { CLI as cli, has, lastJson, median, pythonWith, REFERENCE_ENV as env, ROOT as root } from "./lib.js";

const RUNS = 5;
/** Median cell-updates/s of RUNS runs. */
const rate = (cmd: string, args: string[]) => median(Array.from({ length: RUNS }, () => lastJson(cmd, args).cellUpdatesPerSecond!));
const M = (x: number | undefined) => (x === undefined ? "".padStart(8) : `${(x / 1e6).toFixed(0).padStart(6)} M`);
const tsmpi = (ranks: number, n: number, steps: number, extra: string[]) => rate(process.execPath, [cli, "-n", String(ranks), "examples/heat.ts", "--n", String(n), "--steps", String(steps), "--json", ...extra]);
const cExe = has("mpicc") && has("mpirun") ? join(mkdtempSync(join(tmpdir(), "tsmpi-heat-")), "heat") : undefined;
if (cExe) execFileSync("mpicc", ["-O3", "-march=native", "-o", cExe, join(root, "bench/reference/heat.c"), "-lm"], { env });
else console.log("(C + Open MPI reference skipped: install openmpi-bin libopenmpi-dev)");
const c = (ranks: number, n: number, steps: number) => (cExe ? rate("mpirun", ["--oversubscribe", "-n", String(ranks), cExe, String(n), String(steps)]) : undefined);

/** Messages per rank per step and the memory-traffic model for tsmpi's heat at `halo`, or C's row strips. */
function model(ranks: number, n: number, halo: number | "C"): string {
  const dims = halo === "C" ? [ranks, 1] : dimsCreate(ranks, 2);
  const K = halo === "C" ? 1 : halo;
  const links = dims[0]! * (dims[1]! - 1) + dims[1]! * (dims[0]! - 1);
  const messages = (2 * links) / ranks / K;
  const [by, bx] = [Math.ceil(n / dims[0]!), Math.ceil(n / dims[1]!)];
  const arrays = 2 * (by + 2 * K) * (bx + 2 * K) * 8;
  const bytes = arrays <= 1 << 20 ? "cache" : `${(24 / K).toFixed(1)} B`;
  return `${messages.toFixed(2).padStart(6)} msg/rank/step ${bytes.padStart(7)}/update`;
}

const N = 2048, STEPS = 200;
const rows: Record<string, { rate: Record<number, number | undefined>; model: (ranks: number) => string }> = {
  "tsmpi --halo 1": { rate: {}, model: (p) => model(p, N, 1) },
  "tsmpi --halo 8": { rate: {}, model: (p) => model(p, N, 8) },
  "tsmpi --kernel js": { rate: {}, model: (p) => model(p, N, 1) },
  "C + Open MPI": { rate: {}, model: (p) => model(p, N, "C") },
};
for (const p of [1, 2]) {
  rows["tsmpi --halo 1"]!.rate[p] = tsmpi(p, N, STEPS, []);
  rows["tsmpi --halo 8"]!.rate[p] = tsmpi(p, N, STEPS, ["--halo", "8"]);
  rows["tsmpi --kernel js"]!.rate[p] = tsmpi(p, N, STEPS, ["--kernel", "js"]);
  rows["C + Open MPI"]!.rate[p] = c(p, N, STEPS);
}
const python = pythonWith("mpi4py, numpy");
if (python && has("mpirun")) {
  rows["mpi4py + NumPy"] = { rate: {}, model: (p) => model(p, N, "C") };
  for (const p of [1, 2]) rows["mpi4py + NumPy"].rate[p] = rate("mpirun", ["--oversubscribe", "-n", String(p), python, join(root, "bench/reference/heat_mpi4py.py"), String(N), String(STEPS)]);
} else console.log("(mpi4py reference skipped: install python3-mpi4py python3-numpy openmpi-bin)");

console.log(`heat ${N}², ${STEPS} steps, cell-updates/s (median of ${RUNS}):`);
console.log(`${"".padEnd(20)} ${"1 rank".padStart(8)} ${"2 ranks".padStart(8)}   2 ranks: messages, memory traffic`);
for (const [name, r] of Object.entries(rows)) console.log(`${name.padEnd(20)} ${M(r.rate[1])} ${M(r.rate[2])}   ${r.model(2)}`);
const verdict = (what: string, ratio: number, target: number) => console.log(`${what} = ${ratio.toFixed(2)} (target ≥ ${target}) ${ratio >= target ? "PASS" : "MISS"}`);
const C = rows["C + Open MPI"]!.rate;
if (C[1] && C[2]) {
  verdict("2 ranks: tsmpi --halo 1 / C + Open MPI", rows["tsmpi --halo 1"]!.rate[2]! / C[2], 0.8);
  verdict("2 ranks: tsmpi --halo 8 / C + Open MPI", rows["tsmpi --halo 8"]!.rate[2]! / C[2], 1.0);
  verdict("1 rank:  tsmpi --halo 8 / C + Open MPI", rows["tsmpi --halo 8"]!.rate[1]! / C[1], 1.0);
}
const py2 = rows["mpi4py + NumPy"]?.rate[2];
if (py2) verdict("2 ranks: tsmpi --halo 1 / mpi4py", rows["tsmpi --halo 1"]!.rate[2]! / py2, 3);

// 16 ranks on this machine's cores: messages and wake-ups dominate, which deep halos cut.
const N16 = 512, STEPS16 = 1000;
const many: Record<string, { rate: number | undefined; model: string }> = {};
for (const halo of [1, 8, 32]) many[`tsmpi --halo ${halo}`] = { rate: tsmpi(16, N16, STEPS16, ["--halo", String(halo)]), model: model(16, N16, halo) };
many["C + Open MPI"] = { rate: c(16, N16, STEPS16), model: model(16, N16, "C") };
console.log(`heat ${N16}², ${STEPS16} steps, 16 ranks, cell-updates/s (median of ${RUNS}):`);
for (const [name, v] of Object.entries(many)) console.log(`${name.padEnd(20)} ${M(v.rate)}   ${v.model}`);
verdict("16 ranks: tsmpi --halo 8 / --halo 1", many["tsmpi --halo 8"]!.rate! / many["tsmpi --halo 1"]!.rate!, 2);
const c16 = many["C + Open MPI"]!.rate;
if (c16) verdict("16 ranks: best tsmpi / C + Open MPI", Math.max(...[1, 8, 32].map((h) => many[`tsmpi --halo ${h}`]!.rate!)) / c16, 0.5);
console.log(JSON.stringify({ bench: "heat", runs: RUNS, n: N, steps: STEPS, rows: Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, v.rate])), sixteen: { n: N16, steps: STEPS16, rows: Object.fromEntries(Object.entries(many).map(([k, v]) => [k, v.rate])) } }));
