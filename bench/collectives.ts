// Collective latency and large-allreduce time against point-to-point measured in the same run.
// `npx tsmpirun -n 4 bench/collectives.ts` (npm run bench runs 2, 4 and 8 ranks).
import { finalize, init, wtime } from "tsmpi";
import { median } from "./lib.js";
import { RawMesh } from "./zmq-floor.js";

const world = await init();
const { rank, size } = world;

/**
 * Median over 9 batches of the time per call of `op` (µs), after a warm-up of `warm` calls (V8
 * optimizes the message path only after thousands of calls); every rank runs it.
 */
async function time(iters: number, op: () => Promise<unknown>, warm = Math.max(2, iters / 10)): Promise<number> {
  for (let i = 0; i < warm; i++) await op();
  const samples: number[] = [];
  for (let b = 0; b < 9; b++) {
    await world.barrier();
    const t0 = wtime();
    for (let i = 0; i < iters; i++) await op();
    // The slowest rank decides when a collective is done.
    samples.push(await world.allreduce(((wtime() - t0) * 1e6) / iters, "max"));
  }
  return median(samples);
}

interface Link<D> {
  send(dest: number, data: D): Promise<unknown>;
  recv(source: number): Promise<unknown>;
}
const tsmpiLink: Link<unknown> = { send: (dest, data) => world.send(data, dest), recv: (source) => world.recv(source) };
/** Receiving into a posted array, as MPI_Recv does (over shared memory the bytes land there). */
const intoLink = (buffer: Float64Array): Link<unknown> => ({ send: tsmpiLink.send, recv: (source) => world.recvInto(buffer, source) });

/** One-way time of a ping-pong between ranks 0 and 1 over `link` (the others wait), µs. */
function pingpong<D>(data: D, iters: number, link: Link<D> = tsmpiLink as Link<D>, warm?: number): Promise<number> {
  const peer = 1 - rank;
  return time(
    iters,
    async () => {
      if (rank === 0) await link.send(peer, data);
      if (rank <= 1) await link.recv(peer);
      if (rank === 1) await link.send(peer, data);
    },
    warm,
  ).then((t) => t / 2);
}

// The same algorithms on raw zeromq.js, for the floor of the transport (recursive doubling
// needs a power-of-two size).
const raw = new RawMesh(rank, size, process.env.TSMPI_JOB_DIR!);
await raw.bind();
await world.barrier();
raw.connect();
const withRaw = (size & (size - 1)) === 0;

const eight = new Float64Array(1);
const big = new Float64Array((8 * 1024 * 1024) / 8).fill(rank);
const bigOut = new Float64Array(big.length);
/** Each rank's part of an allgather of 8 MiB in all. */
const share = big.subarray(0, Math.floor(big.length / size));
// Warm every small-message path up before the first measurement. tsmpirun has V8 optimize a
// function only after 15× its usual budget of bytecode (launcher/rank-hooks.ts), and a
// collective runs each of its functions once per call: an 8-byte allreduce on 4 ranks reaches
// its steady time after ~40,000 calls (~10,000 with V8's budget). With 2,000 calls of warm-up,
// as before, the larger budget looked like a slower allreduce.
const WARM = 40000;
await time(1, () => world.allreduce(eight), WARM);
await time(1, () => world.allreduce(1), WARM / 2);
await time(1, () => world.bcast(eight), WARM / 2);
await time(1, () => world.barrier(), WARM / 2);
await pingpong(eight, 1, tsmpiLink, WARM / 2);
/**
 * Each figure is the best of three rounds that interleave all the measurements of its group, so
 * a slow moment of this small machine (a GC, a scheduler hiccup, the first calls after another
 * phase) cannot land on one side of a ratio only.
 */
async function bestOf<K extends string>(measure: Record<K, () => Promise<number>>, rounds = 3): Promise<Record<K, number>> {
  const out = {} as Record<K, number>;
  for (let i = 0; i < rounds; i++) {
    for (const k of Object.keys(measure) as K[]) out[k] = Math.min(out[k] ?? Infinity, await measure[k]());
  }
  return out;
}
// Small messages first: the 8 MiB runs leave garbage whose collection would land in them.
const small = await bestOf({
  pingpong8: () => pingpong(eight, 300),
  allreduce8: () => time(300, () => world.allreduce(eight)),
  rawPingpong8: () => pingpong(Buffer.from(eight.buffer), 300, raw),
  rawAllreduce8: () => (withRaw ? time(300, () => raw.allreduce8(eight)) : Promise.resolve(NaN)),
  allreduceNumber: () => time(300, () => world.allreduce(1)),
  // Back to back: the root's sends do not wait for the leaves, so this is a pipeline's rate.
  bcast8: () => time(300, () => world.bcast(eight)),
  barrier: () => time(300, () => world.barrier()),
});
const r = {
  ranks: size,
  ...small,
  ...(await bestOf({
    transfer8MiB: () => pingpong(big, 5),
    transferInto8MiB: () => pingpong(big, 5, intoLink(new Float64Array(big.length))),
    allreduce8MiB: () => time(3, () => world.allreduce(big)),
    allreduceInto8MiB: () => time(3, () => world.allreduceInto(big, bigOut)),
    reduce8MiB: () => time(3, () => world.reduce(big, "sum", 1 % size)),
    bcast8MiB: () => time(3, () => world.bcast(rank === 0 ? big : null)),
    allgather8MiB: () => time(3, () => world.allgather(share)),
    rawTransfer8MiB: () => pingpong(Buffer.from(big.buffer), 5, raw),
    rawAllreduce8MiB: () => time(3, () => raw.allreduceRing(big)),
  })),
};
// The raw ring is unchecked code: make sure it computed the sum of the ranks.
const check = await raw.allreduceRing(big);
if (check[0] !== (size * (size - 1)) / 2 || check[check.length - 1] !== check[0]) throw new Error(`raw ring allreduce gave ${check[0]}`);
raw.close();
if (rank === 0) {
  const f = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`);
  console.log(
    `${size} ranks: ping-pong 8 B ${f(r.pingpong8)} one-way | allreduce 8 B ${f(r.allreduce8)} (${(r.allreduce8 / r.pingpong8).toFixed(2)}× ping-pong)` +
      ` | allreduce number ${f(r.allreduceNumber)} | bcast 8 B ${f(r.bcast8)} | barrier ${f(r.barrier)}`,
  );
  console.log(
    `${size} ranks: one 8 MiB transfer ${f(r.transferInto8MiB)} into a posted array (recvInto), ${f(r.transfer8MiB)} into a new one (recv) | ` +
      `allreduce 8 MiB ${f(r.allreduce8MiB)} (${(r.allreduce8MiB / r.transferInto8MiB).toFixed(2)}× the recvInto transfer, ${(r.allreduce8MiB / r.transfer8MiB).toFixed(2)}× the recv one), ` +
      `allreduceInto ${f(r.allreduceInto8MiB)} (${(r.allreduceInto8MiB / r.transferInto8MiB).toFixed(2)}× the recvInto transfer) | reduce 8 MiB to rank 1 ${f(r.reduce8MiB)} | bcast 8 MiB ${f(r.bcast8MiB)} | allgather 8 MiB in all ${f(r.allgather8MiB)}`,
  );
  const rawSmall = withRaw ? `ping-pong 8 B ${f(r.rawPingpong8)}, allreduce 8 B ${f(r.rawAllreduce8)} (${(r.rawAllreduce8 / r.rawPingpong8).toFixed(2)}×); ` : "";
  console.log(
    `${size} ranks, raw zeromq.js, same algorithms: ${rawSmall}one 8 MiB transfer ${f(r.rawTransfer8MiB)}, ring allreduce 8 MiB ${f(r.rawAllreduce8MiB)} (${(r.rawAllreduce8MiB / r.rawTransfer8MiB).toFixed(2)}×)`,
  );
  if (size === 4) {
    const a = r.allreduce8 / r.pingpong8, b = r.allreduceInto8MiB / r.transferInto8MiB;
    console.log(`targets (4 ranks): allreduce 8 B ≤ 3× ping-pong: ${a.toFixed(2)} ${a <= 3 ? "PASS" : "MISS"}; allreduceInto 8 MiB ≤ 4× the recvInto transfer: ${b.toFixed(2)} ${b <= 4 ? "PASS" : "MISS"}`);
  }
  console.log(JSON.stringify({ bench: "collectives", ...r }));
}
await finalize();
