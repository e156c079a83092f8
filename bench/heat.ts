// Heat solver throughput at n = 2048 (200 steps) with 1 and 2 ranks, beside the same solver in
// C + Open MPI and in mpi4py + NumPy (bench/reference/) when those are installed, in one run;
// then 512² with 16 ranks, with deep halos (--halo) and without, beside C + Open MPI.
//   npx tsx bench/heat.ts          (npm run bench runs it)
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { best as bestOf, CLI as cli, has, pythonWith, REFERENCE_ENV as env, ROOT as root } from "./lib.js";

const N = 2048, STEPS = 200, RUNS = 3;
/** Best cell-updates/s of RUNS runs. */
const best = (cmd: string, args: string[]) => bestOf(cmd, args, "cellUpdatesPerSecond", { runs: RUNS });
const M = (x: number) => `${(x / 1e6).toFixed(0).padStart(6)} M`;

const rows: Record<string, Record<number, number>> = { tsmpi: {}, "tsmpi (js kernel)": {} };
for (const n of [1, 2]) {
  rows.tsmpi![n] = best(process.execPath, [cli, "-n", String(n), "examples/heat.ts", "--n", String(N), "--steps", String(STEPS), "--json"]);
  rows["tsmpi (js kernel)"]![n] = best(process.execPath, [cli, "-n", String(n), "examples/heat.ts", "--n", String(N), "--steps", String(STEPS), "--kernel", "js", "--json"]);
}
if (has("mpicc") && has("mpirun")) {
  const exe = join(mkdtempSync(join(tmpdir(), "tsmpi-heat-")), "heat");
  execFileSync("mpicc", ["-O3", "-march=native", "-o", exe, join(root, "bench/reference/heat.c"), "-lm"], { env });
  rows["C + Open MPI"] = {};
  for (const n of [1, 2]) rows["C + Open MPI"][n] = best("mpirun", ["--oversubscribe", "-n", String(n), exe, String(N), String(STEPS)]);
} else console.log("(C + Open MPI reference skipped: install openmpi-bin libopenmpi-dev)");
const python = pythonWith("mpi4py, numpy");
if (python && has("mpirun")) {
  rows["mpi4py + NumPy"] = {};
  for (const n of [1, 2]) rows["mpi4py + NumPy"][n] = best("mpirun", ["--oversubscribe", "-n", String(n), python, join(root, "bench/reference/heat_mpi4py.py"), String(N), String(STEPS)]);
} else console.log("(mpi4py reference skipped: install python3-mpi4py python3-numpy openmpi-bin)");

console.log(`heat ${N}², ${STEPS} steps, cell-updates/s (best of ${RUNS}):`);
console.log(`${"".padEnd(20)} ${"1 rank".padStart(8)} ${"2 ranks".padStart(8)}`);
for (const [name, r] of Object.entries(rows)) console.log(`${name.padEnd(20)} ${M(r[1]!)} ${M(r[2]!)}`);
const t2 = rows.tsmpi![2]!;
const c2 = rows["C + Open MPI"]?.[2], p2 = rows["mpi4py + NumPy"]?.[2];
if (c2) console.log(`2 ranks: tsmpi / C + Open MPI = ${(t2 / c2).toFixed(2)} (target ≥ 0.8) ${t2 / c2 >= 0.8 ? "PASS" : "MISS"}`);
if (p2) console.log(`2 ranks: tsmpi / mpi4py = ${(t2 / p2).toFixed(2)} (target ≥ 3) ${t2 / p2 >= 3 ? "PASS" : "MISS"}`);

// 16 ranks on this machine's cores: messages and wake-ups dominate, which deep halos cut.
const N16 = 512, STEPS16 = 1000;
const many: Record<string, number> = {};
for (const halo of [1, 8, 32]) {
  many[`tsmpi --halo ${halo}`] = best(process.execPath, [cli, "-n", "16", "examples/heat.ts", "--n", String(N16), "--steps", String(STEPS16), "--halo", String(halo), "--json"]);
}
if (has("mpicc") && has("mpirun")) {
  const exe = join(mkdtempSync(join(tmpdir(), "tsmpi-heat-")), "heat");
  execFileSync("mpicc", ["-O3", "-march=native", "-o", exe, join(root, "bench/reference/heat.c"), "-lm"], { env });
  many["C + Open MPI"] = best("mpirun", ["--oversubscribe", "-n", "16", exe, String(N16), String(STEPS16)]);
}
console.log(`heat ${N16}², ${STEPS16} steps, 16 ranks, cell-updates/s (best of ${RUNS}):`);
for (const [name, v] of Object.entries(many)) console.log(`${name.padEnd(20)} ${M(v)}`);
const c16 = many["C + Open MPI"];
if (c16) {
  const ratio = Math.max(...[1, 8, 32].map((h) => many[`tsmpi --halo ${h}`]!)) / c16;
  console.log(`16 ranks: best tsmpi / C + Open MPI = ${ratio.toFixed(2)} (target ≥ 0.5) ${ratio >= 0.5 ? "PASS" : "MISS"}`);
}
console.log(JSON.stringify({ bench: "heat", n: N, steps: STEPS, rows, sixteen: { n: N16, steps: STEPS16, rows: many } }));

