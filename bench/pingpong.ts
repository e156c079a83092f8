// Ping-pong latency and bandwidth between 2 ranks on this host: tsmpi over shared memory and over
// ZeroMQ, beside an osu_latency-style C + Open MPI ping-pong and mpi4py (bench/reference/) when
// they are installed, in one run. Each figure is the median one-way time of 10 batches; each
// implementation runs RUNS times and keeps its best.
//   npx tsx bench/pingpong.ts          (npm run bench runs it)
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI as cli, has, lastJson, pythonWith, REFERENCE_ENV as env, ROOT as root } from "./lib.js";

const RUNS = 3;
type Row = Record<string, number> & { bytes: number };

/** Per run of tsmpi over shared memory: one-way µs of its first messages, per block (see pingpong-ranks.ts). */
const firsts: number[][] = [];

/** Per size and key, the lowest time over RUNS runs of a command printing `{rows: Row[]}`. */
function bestRows(cmd: string, args: string[]): Row[] {
  const runs = Array.from({ length: RUNS }, () => {
    const out = lastJson(cmd, args) as unknown as { rows: Row[]; first?: number[]; transport?: string };
    if (out.first && out.transport === "shm") firsts.push(out.first);
    return out.rows;
  });
  return runs[0]!.map((row, i) => {
    const best: Row = { bytes: row.bytes };
    for (const k of Object.keys(row)) if (k !== "bytes") best[k] = Math.min(...runs.map((r) => r[i]![k]!));
    return best;
  });
}

const columns: { name: string; rows: Row[]; key: string }[] = [];
const shm = bestRows(process.execPath, [cli, "-n", "2", "--transport", "shm", "bench/pingpong-ranks.ts"]);
columns.push({ name: "tsmpi recvInto", rows: shm, key: "into" }, { name: "tsmpi recv", rows: shm, key: "recv" });
const zmq = bestRows(process.execPath, [cli, "-n", "2", "--transport", "zmq", "bench/pingpong-ranks.ts"]);
columns.push({ name: "tsmpi zmq", rows: zmq, key: "into" });
if (has("mpicc") && has("mpirun")) {
  const exe = join(mkdtempSync(join(tmpdir(), "tsmpi-pingpong-")), "pingpong");
  execFileSync("mpicc", ["-O3", "-o", exe, join(root, "bench/reference/pingpong.c")], { env });
  columns.push({ name: "Open MPI (C)", rows: bestRows("mpirun", ["-n", "2", exe]), key: "micros" });
} else console.log("(C + Open MPI reference skipped: install openmpi-bin libopenmpi-dev)");
const python = pythonWith("mpi4py, numpy");
if (python && has("mpirun")) {
  const py = bestRows("mpirun", ["-n", "2", python, join(root, "bench/reference/pingpong_mpi4py.py")]);
  columns.push({ name: "mpi4py buffers", rows: py, key: "buffers" }, { name: "mpi4py objects", rows: py, key: "objects" });
} else console.log("(mpi4py reference skipped: install python3-mpi4py python3-numpy openmpi-bin)");

const at = (c: (typeof columns)[number], bytes: number) => c.rows.find((r) => r.bytes === bytes)![c.key]!;
const fmt = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(1)).padStart(15);
console.log(`ping-pong, 2 ranks on one host: one-way µs (median of 10 batches, best of ${RUNS} runs)`);
console.log(`${"bytes".padStart(8)} ${columns.map((c) => c.name.padStart(15)).join(" ")}`);
for (const { bytes } of shm) console.log(`${String(bytes).padStart(8)} ${columns.map((c) => fmt(at(c, bytes))).join(" ")}`);

const t8 = at(columns[0]!, 8);
const big = 4194304;
const gbps = big / at(columns[0]!, big) / 1000;
const ratio = (name: string, bytes: number, inverse = false) => {
  const c = columns.find((x) => x.name === name);
  if (!c) return "";
  const r = inverse ? at(c, bytes) / at(columns[0]!, bytes) : at(columns[0]!, bytes) / at(c, bytes);
  return `; ${name}: ${r.toFixed(2)}×`;
};
console.log(`8 B one-way: ${t8.toFixed(2)} µs (target ≤ 1.5) ${t8 <= 1.5 ? "PASS" : "MISS"}${ratio("Open MPI (C)", 8)}${ratio("mpi4py buffers", 8)} (tsmpi time / theirs)`);
console.log(`4 MiB: ${gbps.toFixed(1)} GB/s (target ≥ 8) ${gbps >= 8 ? "PASS" : "MISS"}${ratio("Open MPI (C)", big, true)}${ratio("mpi4py buffers", big, true)} (tsmpi bandwidth / theirs)`);
if (firsts.length > 0) {
  const block = (k: number) => Math.min(...firsts.map((f) => f[k]!));
  const blocks = firsts[0]!.map((_, k) => block(k).toFixed(1)).join(", ");
  console.log(`a job's first round trips, 2 KiB, shared memory (V8 has not optimized the message path yet): ${blocks} µs one-way per 1000 (best of ${firsts.length}); once warm: ${at(columns[0]!, 4096).toFixed(2)} µs at 4 KiB`);
}
// The other way to move a large message: one copy straight out of the sender's memory with
// process_vm_readv (what Open MPI's smsc/cma does), measured in C beside a plain memcpy.
let cma: Record<string, number | string> | undefined;
if (has("cc")) {
  const exe = join(mkdtempSync(join(tmpdir(), "tsmpi-cma-")), "cma");
  execFileSync("cc", ["-O2", "-o", exe, join(root, "bench/reference/cma.c")], { env });
  cma = lastJson(exe, []);
  console.log(
    cma.error
      ? `4 MiB by process_vm_readv: not allowed here (${cma.error})`
      : `4 MiB by process_vm_readv (one copy, C): ${cma.processVmReadvGBps} GB/s; memcpy within a process: ${cma.memcpyGBps} GB/s; tsmpi's ring (two pipelined copies): ${gbps.toFixed(1)} GB/s`,
  );
} else console.log("(process_vm_readv measurement skipped: no C compiler)");
console.log(JSON.stringify({ bench: "pingpong", cma, first: firsts, columns: columns.map((c) => ({ name: c.name, micros: c.rows.map((r) => [r.bytes, r[c.key]]) })) }));
