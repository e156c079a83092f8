// The board protocol on its own (src/board.ts): two or three members whose boards are plain
// shared memory in this process, and a pump standing in for the waiting loop that serves watches.
import { describe, expect, it } from "vitest";
import { Board, BY_MESSAGES, NOT_ON_BOARD, type BoardHooks } from "../src/board.js";
import { BOARD_BYTES, type BoardWatch } from "../src/transport/index.js";

const watching = new Set<BoardWatch>();

/** Members 0..n−1 of one communicator, each with its Board over the same n boards. */
function members(n: number, hooks: Partial<BoardHooks> = {}): Board[] {
  const areas = Array.from({ length: n }, () => new Int32Array(new SharedArrayBuffer(BOARD_BYTES)));
  const group = Array.from({ length: n }, (_, r) => r);
  const h: BoardHooks = { mismatch: (tag) => new Error(`mismatch at ${tag}`), gone: () => undefined, anyGone: () => false, describe: String, moved: () => {}, ...hooks };
  return group.map((r) => new Board({ areas, notify: () => {}, watch: (w) => watching.add(w), unwatch: (w) => watching.delete(w) }, r, group, h));
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
});
