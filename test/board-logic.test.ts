// The board protocol on its own (src/board.ts): two or three members whose boards are plain
// shared memory in this process, and a pump standing in for the waiting loop that serves watches.
import { describe, expect, it } from "vitest";
import { Board, BY_MESSAGES, NOT_ON_BOARD, type BoardHooks } from "../src/board.js";
import { BOARD_BYTES, type BoardWatch, type SharedStages, type StageHolder } from "../src/transport/index.js";

const watching = new Set<BoardWatch>();

/** What has each member's stage in `members` (see SharedStages). */
let holders: (StageHolder | null)[] = [];
const taken = () => holders.map((h) => h !== null);

/**
 * Members 0..n−1 of one communicator, each with its Board over the same n boards, and stages of
 * `stage` bytes (none if 0): small, so that a large reduction takes many blocks.
 */
function members(n: number, hooks: Partial<BoardHooks> = {}, stage = 0): Board[] {
  const areas = Array.from({ length: n }, () => new Int32Array(new SharedArrayBuffer(BOARD_BYTES)));
  const stageAreas = Array.from({ length: n }, () => new Uint8Array(new SharedArrayBuffer(stage)));
  holders = Array.from({ length: n }, () => null);
  const group = Array.from({ length: n }, (_, r) => r);
  const h: BoardHooks = { mismatch: (tag) => new Error(`mismatch at ${tag}`), gone: () => undefined, anyGone: () => false, describe: String, moved: () => {}, ...hooks };
  const stages = (r: number): SharedStages | null =>
    stage === 0
      ? null
      : {
          areas: stageAreas,
          take: (h) => {
            const had = holders[r];
            if (had && had !== h && !had.release()) return false;
            holders[r] = h;
            return true;
          },
        };
  return group.map((r) => new Board({ areas, notify: () => {}, watch: (w) => watching.add(w), unwatch: (w) => watching.delete(w), stages: stages(r) }, r, group, h));
}

/** Member r's array of `n` elements for call k: fractions, so that the order of the sums shows in the bits. */
const part = (r: number, k: number, n: number) => Float64Array.from({ length: n }, (_, i) => (r + 1) * 0.1 + i * 1e-3 + k / 7);
/** What rank order gives for `parts`. */
function foldInOrder(parts: Float64Array[]): Float64Array {
  const out = parts[0]!.slice();
  for (const p of parts.slice(1)) for (let i = 0; i < out.length; i++) out[i] = out[i]! + p[i]!;
  return out;
}

/** Fires every ready watch until none is. */
function pump(): void {
  for (let moved = true; moved; ) {
    moved = false;
    for (const w of [...watching]) {
      if (w.ready()) {
        w.fire();
        moved = true;
      }
    }
  }
}

/** Lets settled promises' reactions run. */
const settle = () => new Promise((r) => setImmediate(r));

describe("boards", () => {
  it("combine every member's value in rank order, the same bits on each", async () => {
    const [a, b, c] = members(3);
    const got = [a!.exchange(0, 1, 0.1, "sum"), b!.exchange(0, 1, 0.2, "sum"), c!.exchange(0, 1, 0.3, "sum")];
    pump();
    const want = 0.1 + 0.2 + 0.3;
    expect(await Promise.all(got)).toEqual([want, want, want]);
    expect(watching.size).toBe(0);
  });

  it("write an array result into `into`, also in place", async () => {
    const [a, b] = members(2);
    const v = Float64Array.from([1, 2]);
    const got = [a!.exchange(0, 1, v, "max", v), b!.exchange(0, 1, Float64Array.from([3, 0]), "max")];
    pump();
    const [r0, r1] = await Promise.all(got);
    expect(r0).toBe(v);
    expect([...v]).toEqual([3, 2]);
    expect([...(r1 as Float64Array)]).toEqual([3, 2]);
  });

  it("send the call by messages on every member when one member's value goes by messages, or the kinds or sizes differ", async () => {
    const [a, b] = members(2);
    const calls = [
      [a!.exchange(0, 1, NOT_ON_BOARD, "sum"), b!.exchange(0, 1, 5, "sum")],
      [a!.exchange(1, 1, 5, "sum"), b!.exchange(1, 1, true, "sum")],
      [a!.exchange(2, 1, new Float64Array(2), "sum"), b!.exchange(2, 1, new Float64Array(3), "sum")],
    ];
    pump();
    for (const pair of calls) expect(await Promise.all(pair)).toEqual([BY_MESSAGES, BY_MESSAGES]);
  });

  it("reuse a slot only once every member has read it: a member far ahead waits, then goes on", async () => {
    const [a, b] = members(2);
    const ahead = Array.from({ length: 6 }, (_, k) => a!.exchange(k, 1, k, "sum"));
    pump();
    let done = 0;
    for (const p of ahead) void p.then(() => done++);
    await settle();
    expect(done).toBe(0); // member 1 has written nothing yet
    const behind = Array.from({ length: 6 }, (_, k) => b!.exchange(k, 1, 10 * k, "sum"));
    pump();
    expect(await Promise.all(ahead)).toEqual([0, 11, 22, 33, 44, 55]);
    expect(await Promise.all(behind)).toEqual([0, 11, 22, 33, 44, 55]);
    expect(watching.size).toBe(0);
  });

  it("name a mismatch at the earlier of two calls, from the member that is ahead", async () => {
    const seen: unknown[][] = [];
    const [a, b] = members(2, { mismatch: (...args) => (seen.push(args), new Error("mismatch")) });
    // Member 0 posts its first board call at collective call 3; member 1 at call 2 (it made a call the other did not).
    const p0 = a!.exchange(3, 7, 1, "sum");
    const p1 = b!.exchange(2, 9, 1, "sum");
    pump();
    // Member 0 (ahead) reports at member 1's call (tag 2), with member 1's signature there...
    await expect(p0).rejects.toThrow("mismatch");
    expect(seen).toEqual([[2, undefined, 9, 1]]);
    // ...and member 1 waits for the notice that the communicator's collectives have ended.
    let settled = false;
    void p1.then(() => (settled = true), () => (settled = true));
    await settle();
    expect(settled).toBe(false);
    b!.fail(new Error("told"));
    await expect(p1).rejects.toThrow("told");
  });

  it("reduce an array too large for a slot through the stages, block by block, in rank order", async () => {
    // 256-byte stages: blocks of 16 elements, so 601 elements take 38 blocks and the last is short.
    const [a, b, c] = members(3, {}, 256);
    const n = 601;
    const parts = [0, 1, 2].map((r) => part(r, 0, n));
    const want = foldInOrder(parts);
    const inPlace = parts[0]!.slice(), into = new Float64Array(n);
    const got = [a!.exchange(0, 1, inPlace, "sum", inPlace), b!.exchange(0, 1, parts[1]!, "sum", into), c!.exchange(0, 1, parts[2]!, "sum")];
    pump();
    const [r0, r1, r2] = (await Promise.all(got)) as Float64Array[];
    expect(r0).toBe(inPlace);
    expect(r1).toBe(into);
    for (const r of [r0!, r1!, r2!]) expect(Array.from(r).every((x, i) => Object.is(x, want[i]))).toBe(true);
    expect(Array.from(parts[1]!)).toEqual(Array.from(part(1, 0, n))); // the input is left alone
    expect(watching.size).toBe(0);
    // Each board keeps its stage, and gives it up when asked: nothing reads it any more.
    expect(holders.every((h) => h !== null && h.release())).toBe(true);
  });

  it("reduce to a root through the stages and in one round: the root gets rank order's bits, the others nothing", async () => {
    // 4 KiB stages: 601 elements take 3 blocks, 100 go through a quarter, 5 through a slot.
    const [a, b, c] = members(3, {}, 4096);
    for (const [k, [n, root]] of ([[601, 1], [601, 2], [100, 0], [100, 2], [5, 0], [5, 1]] as const).entries()) {
      const parts = [0, 1, 2].map((r) => part(r, k, n));
      const want = foldInOrder(parts);
      const calls = [a, b, c].map((m, r) => m!.exchange(k, 1, parts[r]!, "sum", undefined, root));
      pump();
      const got = await Promise.all(calls);
      const result = got[root] as Float64Array;
      expect(Array.from(result).every((x, i) => Object.is(x, want[i]))).toBe(true);
      // The others hold no result (a one-round call reads no other slot; blocks gather nothing).
      for (const r of [0, 1, 2].filter((r) => r !== root)) expect(got[r] ?? null).toBeNull();
      expect(Array.from(parts[0]!)).toEqual(Array.from(part(0, k, n)));
    }
    expect(watching.size).toBe(0);
  });

  it("allgather through slots, quarters and blocks: this member's own value itself, copies of the others'", async () => {
    // 4 KiB stages: 601 doubles take 3 blocks, 100 go through a quarter, 5 through a slot.
    const [a, b, c] = members(3, {}, 4096);
    const values = (k: number, n: number) => [0, 1, 2].map((r) => part(r, k, n));
    for (const [k, n] of [601, 100, 5, 601].entries()) {
      const vs = values(k, n);
      const calls = [a, b, c].map((m, r) => m!.collect(k, 1, vs[r]));
      pump();
      const got = (await Promise.all(calls)) as Float64Array[][];
      for (const r of [0, 1, 2]) {
        expect(got[r]![r]).toBe(vs[r]);
        for (const i of [0, 1, 2]) {
          if (i !== r) expect(got[r]![i]).not.toBe(vs[i]);
          expect(Array.from(got[r]![i]!)).toEqual(Array.from(vs[i]!));
        }
      }
    }
    const scalars = [a, b, c].map((m, r) => m!.collect(9, 1, r * 0.5));
    pump();
    expect(await Promise.all(scalars)).toEqual([[0, 0.5, 1], [0, 0.5, 1], [0, 0.5, 1]]);
    expect(watching.size).toBe(0);
  });

  it("allgather by messages on every member when the values differ in kind or size", async () => {
    const [a, b] = members(2, {}, 4096);
    for (const [k, [x, y]] of ([[1, part(1, 0, 3)], [part(0, 0, 200), part(1, 0, 201)], [{ not: "carried" }, 2]] as const).entries()) {
      const calls = [a!.collect(k, 1, x), b!.collect(k, 1, y)];
      pump();
      expect(await Promise.all(calls)).toEqual([BY_MESSAGES, BY_MESSAGES]);
    }
    watching.clear();
  });

  it("reject with RankFailedError when a member goes in the middle of an allgather through the stages", async () => {
    let gone: string | undefined;
    const [a, b] = members(2, { gone: (r) => (r === 1 ? gone : undefined), describe: () => "allgather" }, 256);
    const p0 = a!.collect(0, 1, part(0, 0, 600));
    void b!.collect(0, 1, part(1, 0, 600));
    a!.fire();
    gone = "exited";
    a!.peerGone();
    await expect(p0).rejects.toThrow("allgather cannot complete: world rank 1 has exited in the middle of it");
    watching.clear();
  });

  it("run calls through the stages one after another, with small calls between, whichever member is ahead", async () => {
    const [a, b] = members(2, {}, 512);
    const n = 700;
    const calls = (m: Board, r: number) => [m.exchange(0, 1, part(r, 0, n), "sum"), m.exchange(1, 1, r + 1, "sum"), m.exchange(2, 1, part(r, 2, n), "sum"), m.exchange(3, 1, part(r, 3, n), "sum")];
    const first = calls(a!, 0);
    pump();
    const second = calls(b!, 1);
    pump();
    for (const got of [await Promise.all(first), await Promise.all(second)]) {
      expect(got[1]).toBe(3);
      for (const k of [0, 2, 3]) expect(Array.from(got[k] as Float64Array)).toEqual(Array.from(foldInOrder([part(0, k, n), part(1, k, n)])));
    }
    expect(watching.size).toBe(0);
  });

  it("mix calls in one round and in blocks, in flight at once, and complete each in its order", async () => {
    // 512-byte stages: arrays of 14 doubles (112 B) fit a quarter, 300 take blocks.
    const [a, b, c] = members(3, {}, 512);
    const sizes = [300, 14, 14, 300, 14, 300, 14, 14, 14, 14, 300];
    const calls = (m: Board, r: number) => sizes.map((n, k) => m.exchange(k, 1, part(r, k, n), "sum"));
    const got = [calls(a!, 0)];
    pump();
    got.push(calls(c!, 2));
    pump();
    got.push(calls(b!, 1));
    pump();
    for (const results of got) {
      (await Promise.all(results)).forEach((r, k) => {
        const want = foldInOrder([0, 1, 2].map((m) => part(m, k, sizes[k]!)));
        expect(Array.from(r as Float64Array).every((x, i) => Object.is(x, want[i]))).toBe(true);
      });
    }
    expect(watching.size).toBe(0);
  });

  it("send the call by messages on every member when one member's stage is taken (by a call on another communicator)", async () => {
    const [a, b] = members(2, {}, 256);
    holders[1] = { release: () => false };
    const got = [a!.exchange(0, 1, part(0, 0, 600), "sum"), b!.exchange(0, 1, part(1, 0, 600), "sum")];
    pump();
    expect(await Promise.all(got)).toEqual([BY_MESSAGES, BY_MESSAGES]);
    expect(holders[0]!.release()).toBe(true); // member 0's board has its stage, in use no more
    expect(holders[1]!.release()).toBe(false); // member 1's is still the other call's
  });

  it("reject with RankFailedError when a member goes in the middle of a call through the stages", async () => {
    let gone: string | undefined;
    const [a, b] = members(2, { gone: (r) => (r === 1 ? gone : undefined), describe: () => "allreduce (op sum)" }, 256);
    const p0 = a!.exchange(0, 1, part(0, 0, 600), "sum");
    // Member 1 posts and copies its first block in, then exits.
    void b!.exchange(0, 1, part(1, 0, 600), "sum");
    a!.fire();
    gone = "exited";
    a!.peerGone();
    await expect(p0).rejects.toThrow("allreduce (op sum) cannot complete: world rank 1 has exited in the middle of it");
    // The stage stays the failed call's: a member may still be reading it.
    expect(holders[0]!.release()).toBe(false);
    watching.clear();
  });

  it("reduce an array that fits a quarter of the stage in one round, reusing the quarter only once every member has read it", async () => {
    const [a, b, c] = members(3, {}, 64 * 1024);
    const n = 1000;
    // Member 0 runs six calls ahead: it may write a quarter again (call 5) only once the others have read it.
    const ahead = [0, 1, 2, 3, 4, 5].map((k) => a!.exchange(k, 1, part(0, k, n), "sum"));
    pump();
    let done = 0;
    for (const p of ahead) void p.then(() => done++);
    await settle();
    expect(done).toBe(0);
    const rest = [b!, c!].map((m, i) => [0, 1, 2, 3, 4, 5].map((k) => m.exchange(k, 1, part(i + 1, k, n), "sum")));
    pump();
    for (const got of [ahead, ...rest]) {
      const results = (await Promise.all(got)) as Float64Array[];
      results.forEach((r, k) => {
        const want = foldInOrder([0, 1, 2].map((m) => part(m, k, n)));
        expect(r.every((x, i) => Object.is(x, want[i]))).toBe(true);
      });
    }
    // Each member keeps its stage; the others' DONE has reached its last call, so another board may have it now.
    expect(taken()).toEqual([true, true, true]);
    expect(holders.every((h) => h!.release())).toBe(true);
    expect(watching.size).toBe(0);
  });
});
