// Allreduce, reduce, allgather and barrier on shared-memory boards and stages (src/board.ts), through real launches.
import { describe, expect, it } from "vitest";
import { fixture, run } from "./helpers.js";

/** Arrays through the stages (see the fixture): every class, then ops, into and in place, and several blocks. */
const STAGED_CASES = [
  ...[Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array].map((C) => `${C.name} of ${Math.ceil(10_001 / C.BYTES_PER_ELEMENT)}, sum, new`),
  "Int16Array of 5001, prod, new", "Int32Array of 5001, prod, into", "BigInt64Array of 1001, prod, in place", "Uint32Array of 5001, bor, into",
  "Float32Array of 5001, max, in place", "Float64Array of 700001, sum, into", "Float64Array of 700001, max, in place", "Uint8Array of 3000001, sum, new",
];

const CASES = [
  "number sum in rank order", "max", "land", "lor", "bor beyond 32 bits",
  ...[Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array].map((C) => `${C.name} of ${96 / C.BYTES_PER_ELEMENT}`),
  "allreduceInto and in place", "12 in flight",
  ...STAGED_CASES,
  "large ones in flight on two communicators", "quarter-stage ones in flight on two communicators", "large arrays whose classes differ", "large arrays whose lengths differ", "large arrays whose sizes differ", "and the world still works",
  ...["a number", "Float64Array of 12", "Float64Array of 2001", "Float64Array of 700001", "Int32Array of 300001, prod"].map((w) => `reduce of ${w} to each root`),
  "allgather of numbers, booleans, null and arrays of every class and size", "allgathers in flight with other calls on two communicators",
  "reduces and allreduces in flight", "reduce with roots that differ", "and the world still works after it",
  "an array larger than a slot", "a bigint", "a function op", "kinds that differ", "then the world still works", "split", "beyond 64 communicators", "with point-to-point and bcast",
];

/** The JSON report: the last line of stdout. */
const report = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!) as { ranks: { rank: number; messagesSent: number }[] };

describe("collectives on shared-memory boards", () => {
  for (const [n, transport] of [[4, "shm"], [3, "shm"], [4, "zmq"]] as const) {
    it(`give what rank order gives, for every value a board carries and every one it does not (${n} ranks, --transport ${transport})`, async () => {
      const r = await run(["-n", String(n), "--transport", transport, "--timeout", "60", "-x", `TSMPI_TEST_BOARDS=${transport === "shm" ? 1 : 0}`, fixture("board.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      for (let k = 0; k < n; k++) for (const c of CASES) expect(r.stdout).toContain(`rank ${k}: ${c}: ok`);
      expect(r.stdout).not.toContain("FAILED");
    });
  }

  it("send no message for an allreduce (small or 1 MiB), a 1 MiB reduce, a 1 MiB allgather or a barrier, where TSMPI_BOARDS=off or ZeroMQ sends them all", async () => {
    const sent = async (boards: string, transport = "shm") => {
      const r = await run(["-n", "4", "--transport", transport, "--report", "json", "-x", `TSMPI_BOARDS=${boards}`, fixture("board.ts"), "count"]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      for (let k = 0; k < 4; k++) expect(r.stdout).toContain(`rank ${k}: count: ok`);
      return report(r.stdout).ranks.map((x) => x.messagesSent);
    };
    expect(await sent("on")).toEqual([0, 0, 0, 0]);
    // Recursive doubling and the dissemination barrier: 2 messages per rank per call on 4 ranks;
    // the ring: 2 · 3 chunks per rank per call. (A reduce's binomial tree sends from 3 of 4 ranks.)
    for (const m of await sent("off")) expect(m).toBeGreaterThanOrEqual(2 * 400 + 6 * 20);
    // Ranks that do not share memory have no boards.
    for (const m of await sent("on", "zmq")) expect(m).toBeGreaterThanOrEqual(2 * 400 + 6 * 20);
  });

  it("reject with RankFailedError when a rank has finalized without taking part, and never hang", async () => {
    const r = await run(["-n", "3", "--transport", "shm", "--timeout", "60", fixture("board.ts"), "finalized"]);
    expect(r.exitCode).toBe(0);
    for (const k of [0, 1]) {
      expect(r.stdout).toContain(`rank ${k}: RankFailedError: allreduce (op sum) cannot complete: world rank 2 has finalized without taking part in it (is RankFailedError: true)`);
    }
  });
});
