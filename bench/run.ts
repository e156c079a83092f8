// `npm run bench`: every benchmark, each through tsmpirun as a user would run it.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI as cli, has, lastJson, launchTime, REFERENCE_ENV, ROOT as root } from "./lib.js";

function tsmpirun(args: string[], env: NodeJS.ProcessEnv = process.env): void {
  execFileSync(process.execPath, [cli, ...args], { cwd: root, stdio: "inherit", env });
}

/** Median wall time of 7 launches of `tsmpirun -n 16 examples/hello.ts`. */
const startup = (env: NodeJS.ProcessEnv) => launchTime(["-n", "16", "examples/hello.ts"], env);

console.log("== point-to-point: bench/pingpong.ts (tsmpi over shm and zmq, Open MPI, mpi4py)");
execFileSync(process.execPath, ["--import", "tsx", "bench/pingpong.ts"], { cwd: root, stdio: "inherit" });

console.log("\n== shared-memory floor (rings + doorbells, no protocol): tsmpirun -n 2 bench/shm-floor.ts");
tsmpirun(["-n", "2", "bench/shm-floor.ts"]);

// The same measurements in C + Open MPI (bench/reference/collectives.c), for its ratios beside ours.
const collectivesC = has("mpicc") && has("mpirun") ? join(mkdtempSync(join(tmpdir(), "tsmpi-collectives-")), "collectives") : undefined;
if (collectivesC) execFileSync("mpicc", ["-O3", "-o", collectivesC, join(root, "bench/reference/collectives.c")], { env: REFERENCE_ENV });
for (const n of [2, 4, 8]) {
  console.log(`\n== collectives: tsmpirun -n ${n} bench/collectives.ts`);
  tsmpirun(["-n", String(n), "bench/collectives.ts"]);
  if (!collectivesC) {
    console.log("(C + Open MPI reference skipped: install openmpi-bin libopenmpi-dev)");
    continue;
  }
  const c = lastJson("mpirun", ["--oversubscribe", "-n", String(n), collectivesC]);
  const f = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(2)} µs`);
  console.log(
    `${n} ranks, C + Open MPI: ping-pong 8 B ${f(c.pingpong8!)}, allreduce 8 B ${f(c.allreduce8!)} (${(c.allreduce8! / c.pingpong8!).toFixed(2)}×); ` +
      `one 8 MiB transfer ${f(c.transferInto8MiB!)}, allreduce 8 MiB ${f(c.allreduce8MiB!)} (${(c.allreduce8MiB! / c.transferInto8MiB!).toFixed(2)}×), reduce 8 MiB ${f(c.reduce8MiB!)}, bcast 8 MiB ${f(c.bcast8MiB!)}, allgather 8 MiB in all ${f(c.allgather8MiB!)}`,
  );
}

console.log("\n== heat solver: bench/heat.ts");
execFileSync(process.execPath, ["--import", "tsx", "bench/heat.ts"], { cwd: root, stdio: "inherit" });

console.log("\n== cost of --report and --trace: bench/trace.ts");
execFileSync(process.execPath, ["--import", "tsx", "bench/trace.ts"], { cwd: root, stdio: "inherit" });

console.log("\n== task pool: bench/pool.ts");
execFileSync(process.execPath, ["--import", "tsx", "bench/pool.ts"], { cwd: root, stdio: "inherit" });

console.log("\n== start-up across hosts: bench/hosts.ts");
execFileSync(process.execPath, ["--import", "tsx", "bench/hosts.ts"], { cwd: root, stdio: "inherit" });

console.log("\n== start-up: tsmpirun -n 16 examples/hello.ts (median of 7, wall time)");
const withCerts = startup(process.env);
const { NODE_EXTRA_CA_CERTS: _certs, ...plainEnv } = process.env;
const without = startup(plainEnv);
console.log(`with NODE_EXTRA_CA_CERTS${process.env.NODE_EXTRA_CA_CERTS ? "" : " (not set here)"}: ${withCerts.toFixed(2)} s`);
console.log(`without NODE_EXTRA_CA_CERTS: ${without.toFixed(2)} s (target ≤ 0.8 s) ${without <= 0.8 ? "PASS" : "MISS"}`);
