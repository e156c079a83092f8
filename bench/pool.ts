// Task-pool overhead (empty tasks, 1 and 3 workers, chunksize 1) beside mpi4py.futures in the
// same invocation, and the sweep example's speed-up from 1 to 3 ranks.
//   npx tsx bench/pool.ts          (npm run bench runs it)
import { join } from "node:path";
import { best, CLI as cli, has, pythonWith, ROOT as root } from "./lib.js";

const TASKS = 20000;
const python = pythonWith("mpi4py.futures");
const hasMpirun = has("mpirun");
console.log(`empty tasks, ${TASKS} per run, chunksize 1, tasks/s (best of 3):`);
const rate: Record<string, Record<number, number>> = { tsmpi: {}, "mpi4py.futures": {} };
for (const n of [2, 4]) {
  rate.tsmpi![n - 1] = best(process.execPath, [cli, "-n", String(n), "bench/pool-empty.ts", String(TASKS), "1"], "tasksPerSecond");
  if (python && hasMpirun) {
    rate["mpi4py.futures"]![n - 1] = best("mpirun", ["--oversubscribe", "-n", String(n), python, "-m", "mpi4py.futures", join(root, "bench/reference/futures_empty.py"), String(TASKS), "1"], "tasksPerSecond");
  }
}
if (!python || !hasMpirun) console.log("(mpi4py.futures skipped: install python3-mpi4py openmpi-bin)");
for (const [name, r] of Object.entries(rate)) if (r[1]) console.log(`${name.padEnd(16)} 1 worker ${r[1].toFixed(0).padStart(7)}   3 workers ${r[3]!.toFixed(0).padStart(7)}`);
if (rate["mpi4py.futures"]![1]) {
  for (const w of [1, 3]) {
    const x = rate.tsmpi![w]! / rate["mpi4py.futures"]![w]!;
    console.log(`${w} worker${w > 1 ? "s" : ""}: tsmpi / mpi4py.futures = ${x.toFixed(2)} (target ≥ 1) ${x >= 1 ? "PASS" : "MISS"}`);
  }
}

const sweepArgs = ["examples/sweep.ts", "--json"];
const s1 = best(process.execPath, [cli, "-n", "1", ...sweepArgs], "seconds", { higher: false });
const s3 = best(process.execPath, [cli, "-n", "3", ...sweepArgs], "seconds", { higher: false });
console.log(`sweep (defaults: L 32, 21 temperatures): 1 rank ${s1.toFixed(2)} s, 3 ranks (2 workers) ${s3.toFixed(2)} s, speed-up ${(s1 / s3).toFixed(2)} (target ≥ 1.6) ${s1 / s3 >= 1.6 ? "PASS" : "MISS"}`);
console.log(JSON.stringify({ bench: "pool", rate, sweep: { oneRank: s1, threeRanks: s3 } }));
