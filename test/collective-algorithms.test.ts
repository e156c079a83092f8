// The collective algorithms of src/collectives.ts on their own, for every p from 1 to 64: all
// ranks of a job run in this process over an in-memory channel (a FIFO per pair of ranks, values
// copied as a transport would), so the results, the order operands are combined in, the number
// of messages and "nothing left behind" are checked without a launch.
import { describe, expect, it } from "vitest";
import * as coll from "../src/collectives.js";
import type { Op } from "../src/op.js";
import type { TypedArray } from "../src/wire.js";

const SIZES = Array.from({ length: 64 }, (_, i) => i + 1);

/** p ranks' channels over FIFOs; counts messages, and says what no receive took. */
class Network {
  private readonly queues = new Map<string, unknown[]>();
  private readonly waiting = new Map<string, ((v: unknown) => void)[]>();
  messages = 0;

  constructor(readonly size: number) {}

  channel(rank: number): coll.Channel {
    return {
      rank,
      size: this.size,
      send: async (dest, value) => {
        expect(dest, `rank ${rank} sent to ${dest}`).toBeGreaterThanOrEqual(0);
        expect(dest).toBeLessThan(this.size);
        expect(dest, `rank ${rank} sent to itself`).not.toBe(rank);
        this.messages++;
        const k = `${rank}>${dest}`;
        const copy = structuredClone(value);
        const w = this.waiting.get(k)?.shift();
        if (w) w(copy);
        else (this.queues.get(k) ?? this.queues.set(k, []).get(k)!).push(copy);
      },
      recv: (source) => this.take(`${source}>${rank}`),
      recvInto: async (source, into) => {
        const got = (await this.take(`${source}>${rank}`)) as TypedArray;
        expect(got.length, `recvInto on rank ${rank} from ${source}`).toBe(into.length);
        into.set(got as never);
      },
    };
  }

  private take(k: string): Promise<unknown> {
    const q = this.queues.get(k);
    if (q && q.length > 0) return Promise.resolve(q.shift());
    return new Promise((resolve) => (this.waiting.get(k) ?? this.waiting.set(k, []).get(k)!).push(resolve));
  }

  /** Messages sent and never received, by "src>dst". */
  leftovers(): string[] {
    return [...this.queues].filter(([, q]) => q.length > 0).map(([k, q]) => `${k} ×${q.length}`);
  }
}

/**
 * Runs `body` on every rank of a p-rank network; fails if the ranks do not all finish once
 * nothing more can happen (every message is delivered at once, so progress is made in
 * microtasks: a macrotask later, a rank still waiting is waiting forever), or if a message was
 * left unreceived.
 */
async function onRanks<T>(p: number, body: (ch: coll.Channel) => Promise<T>): Promise<{ results: T[]; messages: number }> {
  const net = new Network(p);
  let done = false;
  const all = Promise.all(Array.from({ length: p }, (_, r) => body(net.channel(r)))).finally(() => (done = true));
  await new Promise((r) => setImmediate(r));
  expect(done, `the collective did not complete on ${p} ranks (a rank waits for a message never sent)`).toBe(true);
  const results = await all;
  expect(net.leftovers(), `messages nobody received on ${p} ranks`).toEqual([]);
  return { results, messages: net.messages };
}

const roots = (p: number) => [...new Set([0, p - 1, p >> 1])];
const log2ceil = (p: number) => Math.ceil(Math.log2(p));
/** A non-commutative op: the result shows the order the operands were combined in. */
const concat = ((a: string, b: string) => `${a},${b}`) as Op;
const ranksUpTo = (r: number, from = 0) => Array.from({ length: r - from + 1 }, (_, i) => String(from + i)).join(",");

describe("collective algorithms on an in-memory channel, p = 1 … 64", () => {
  it("barrier: every rank passes, with p·⌈log2 p⌉ messages (dissemination)", async () => {
    for (const p of SIZES) expect((await onRanks(p, (ch) => coll.barrier(ch))).messages).toBe(p * log2ceil(p));
  });

  it("bcast: the root's value on every rank, from any root, with p − 1 messages (binomial tree)", async () => {
    for (const p of SIZES) {
      for (const root of roots(p)) {
        const { results, messages } = await onRanks(p, (ch) => coll.bcast(ch, ch.rank === root ? { from: root, data: [1, 2, 3] } : null, root));
        expect(results).toEqual(Array.from({ length: p }, () => ({ from: root, data: [1, 2, 3] })));
        expect(messages).toBe(p - 1);
      }
    }
  });

  it("reduce: operands combined in rank order on the root, undefined elsewhere", async () => {
    for (const p of SIZES) {
      for (const root of roots(p)) {
        const { results } = await onRanks(p, (ch) => coll.reduce(ch, String(ch.rank), concat, root));
        expect(results).toEqual(Array.from({ length: p }, (_, r) => (r === root ? ranksUpTo(p - 1) : undefined)));
      }
    }
  });

  it("allreduce: the same result on every rank, in rank order (recursive doubling for any p)", async () => {
    for (const p of SIZES) {
      const { results } = await onRanks(p, (ch) => coll.allreduce(ch, String(ch.rank), concat));
      expect(new Set(results)).toEqual(new Set([ranksUpTo(p - 1)]));
      const sums = await onRanks(p, (ch) => coll.allreduce(ch, ch.rank + 1, "sum"));
      expect(sums.results).toEqual(Array.from({ length: p }, () => (p * (p + 1)) / 2));
    }
  });

  it("allreduce of a large typed array (the ring path for p > 2): element sums, the same bits on every rank", async () => {
    const n = coll.RING_BYTES / 8 + 13; // not a multiple of p: chunks of unequal length
    for (const p of [1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64]) {
      const { results, messages } = await onRanks(p, (ch) => {
        const a = new Float64Array(n);
        for (let i = 0; i < n; i++) a[i] = 0.1 * ch.rank + i; // sums that round: bit-identity matters
        return coll.allreduce(ch, a, "sum");
      });
      const first = results[0] as Float64Array;
      expect(first[0]).toBeCloseTo((0.1 * p * (p - 1)) / 2, 9);
      expect(first[n - 1]).toBeCloseTo((0.1 * p * (p - 1)) / 2 + p * (n - 1), 6);
      for (const r of results) expect(Buffer.from((r as Float64Array).buffer).equals(Buffer.from(first.buffer))).toBe(true);
      // Ring: 2(p − 1) messages per rank (reduce-scatter, then allgather), after one shape check.
      if (p > 2) expect(messages).toBeGreaterThanOrEqual(2 * p * (p - 1));
    }
  });

  it("gather and allgather: every rank's value in rank order (on the root / everywhere, Bruck for any p)", async () => {
    for (const p of SIZES) {
      const expected = Array.from({ length: p }, (_, r) => ({ r }));
      for (const root of roots(p)) {
        const { results } = await onRanks(p, (ch) => coll.gather(ch, { r: ch.rank }, root));
        expect(results).toEqual(Array.from({ length: p }, (_, r) => (r === root ? expected : undefined)));
      }
      const all = await onRanks(p, (ch) => coll.allgather(ch, { r: ch.rank }));
      expect(all.results).toEqual(Array.from({ length: p }, () => expected));
      expect(all.messages).toBe(p * log2ceil(p));
    }
  });

  it("scatter: rank r gets the root's values[r], from any root; a wrong count rejects on every rank", async () => {
    for (const p of SIZES) {
      for (const root of roots(p)) {
        const { results } = await onRanks(p, (ch) => coll.scatter(ch, ch.rank === root ? Array.from({ length: p }, (_, r) => `v${r}`) : null, root));
        expect(results).toEqual(Array.from({ length: p }, (_, r) => `v${r}`));
      }
      const bad = await onRanks(p, (ch) => coll.scatter(ch, ch.rank === 0 ? ["only one", "and two"].slice(0, p === 2 ? 1 : 2) : null, 0).then(() => "ok", (e: Error) => e.message));
      for (const m of bad.results) expect(m).toMatch(/scatter: the root \(rank 0\) must pass an array of \d+ values/);
    }
  });

  it("alltoall: rank r gets what each rank put at index r, in rank order", async () => {
    for (const p of SIZES) {
      const { results, messages } = await onRanks(p, (ch) => coll.alltoall(ch, Array.from({ length: p }, (_, to) => `${ch.rank}→${to}`)));
      expect(results).toEqual(Array.from({ length: p }, (_, r) => Array.from({ length: p }, (_, from) => `${from}→${r}`)));
      expect(messages).toBe(p * (p - 1));
    }
  });

  it("scan and exscan: prefixes combined in rank order (exscan: undefined on rank 0)", async () => {
    for (const p of SIZES) {
      const scan = await onRanks(p, (ch) => coll.scan(ch, String(ch.rank), concat));
      expect(scan.results).toEqual(Array.from({ length: p }, (_, r) => ranksUpTo(r)));
      const ex = await onRanks(p, (ch) => coll.exscan(ch, String(ch.rank), concat));
      expect(ex.results).toEqual(Array.from({ length: p }, (_, r) => (r === 0 ? undefined : ranksUpTo(r - 1))));
    }
  });

  it("a user op that throws on one rank rejects on every rank (allreduce, scan), never hangs", async () => {
    // Rank 1's op throws (an op may depend on the rank's own state); the others' add.
    const op = (ch: coll.Channel) =>
      ((a: number, b: number) => {
        if (ch.rank === 1) throw new Error("not on rank 1");
        return a + b;
      }) as Op;
    for (const p of [2, 3, 5, 8, 17, 64]) {
      for (const run of [(ch: coll.Channel) => coll.allreduce(ch, ch.rank, op(ch)), (ch: coll.Channel) => coll.scan(ch, ch.rank, op(ch))]) {
        const { results } = await onRanks(p, (ch) => run(ch).then(() => "ok", (e: Error) => e.message));
        for (const m of results) expect(m, `${p} ranks`).toMatch(/the reduction op threw: not on rank 1/);
      }
    }
  });
});
