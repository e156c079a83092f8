// tsmpirun --report: the formatting on its own, then real jobs whose messages are counted.
import { describe, expect, it } from "vitest";
import { formatTable, verdict } from "../launcher/report.js";
import type { RankReport } from "../src/report.js";
import { fixture, run } from "./helpers.js";

const rank = (r: number, wall: number, wait: number, calls: RankReport["calls"]): RankReport => ({
  rank: r, host: "h1", wallSeconds: wall, waitSeconds: wait, sleeps: 7, messagesSent: 2, messagesReceived: 3, bytesSent: 2048, bytesReceived: 3 << 20,
  calls, slowest: [{ call: "recv", peer: 1, seconds: 0.25 }], topPeers: [[1, 2, 2048]],
});

describe("the report's text", () => {
  it("a verdict says the waiting share and the call most of it went to", () => {
    expect(verdict([rank(0, 10, 6, { recv: { count: 5, seconds: 5, waitSeconds: 5 }, barrier: { count: 1, seconds: 1, waitSeconds: 1 } }), rank(1, 10, 6.4, { recv: { count: 5, seconds: 4, waitSeconds: 4 } })]))
      .toBe("ranks spend 62 % of their time waiting in tsmpi calls, most of it in recv: mostly waiting");
    // The call pending longest is not the one waited in most (a receive pending while the rank computes).
    expect(verdict([rank(0, 10, 2, { irecv: { count: 1, seconds: 9, waitSeconds: 0.5 }, barrier: { count: 1, seconds: 2, waitSeconds: 1.5 } })]))
      .toBe("ranks spend 20 % of their time waiting in tsmpi calls, most of it in barrier: waiting for a good part of the time");
    expect(verdict([rank(0, 10, 0.1, {})])).toBe("ranks spend 1 % of their time waiting in tsmpi calls: mostly computing");
    expect(verdict([])).toBe("no rank reported (none reached finalize)");
  });

  it("a table has a row per rank, the slowest calls, and says which ranks did not report", () => {
    const text = formatTable([rank(0, 2, 1, {})], 2);
    expect(text).toMatch(/^tsmpirun --report:\n  rank +host +wall s +wait s +wait % +sleeps +sent +bytes sent +received +bytes recv +top peer \(bytes sent\)\n  0 +h1 +2\.000 +1\.000 +50 +7 +2 +2\.0 KiB +3 +3\.0 MiB +1 \(2\.0 KiB\)\n/);
    expect(text).toContain("slowest calls:\n  rank 0: recv from 1, 250.0 ms\n");
    expect(text).toContain("(1 rank did not reach finalize and sent no report)");
  });
});

/** The JSON report: the last line of stdout. */
function report(stdout: string): { size: number; ranks: RankReport[]; verdict: string } {
  const lines = stdout.trim().split("\n");
  const r = JSON.parse(lines[lines.length - 1]!);
  expect(r.tsmpiReport).toBe(1);
  return r;
}

describe("tsmpirun --report", () => {
  it("counts every message and byte each rank sent and received (json, on stdout, last)", async () => {
    const r = await run(["-n", "4", "--report", "json", fixture("report-count.ts")]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const { ranks, size } = report(r.stdout);
    expect(size).toBe(4);
    expect(ranks.map((x) => [x.rank, x.messagesSent, x.bytesSent, x.messagesReceived, x.bytesReceived])).toEqual([
      [0, 1, 1000, 4, 4000],
      [1, 2, 2000, 1, 1000],
      [2, 3, 3000, 2, 2000],
      [3, 4, 4000, 3, 3000],
    ]);
    for (const x of ranks) {
      expect(x.topPeers).toEqual([[(x.rank + 1) % 4, x.rank + 1, 1000 * (x.rank + 1)]]);
      // A rank whose messages were all there when it asked may not have waited at all.
      expect(x.waitSeconds).toBeGreaterThanOrEqual(0);
      expect(x.waitSeconds).toBeLessThanOrEqual(x.wallSeconds);
      expect(x.calls.send!.count).toBe(x.rank + 1);
      expect(x.host).toBeTruthy();
    }
  });

  // A receive left pending while the rank computes is not waiting: only time with nothing to run
  // counts (the event loop idle, or the transport polling or asleep), over either transport.
  for (const transport of ["shm", "zmq"]) {
    it(`counts time blocked in a call as waiting, and a call pending while the rank computes as not (--transport ${transport})`, async () => {
      const waited = async (mode: string) => {
        const r = await run(["-n", "2", "--transport", transport, "--report", "json", fixture("report-wait.ts"), mode]);
        expect(r.exitCode).toBe(0);
        const rank0 = report(r.stdout).ranks.find((x) => x.rank === 0)!;
        expect(rank0.calls.recv!.seconds).toBeGreaterThan(0.35); // the call itself was pending that long either way
        // A wait of 400 ms outlasts any poll window: over shared memory it sleeps in the kernel.
        // ZeroMQ's waits are the event loop's, not counted.
        if (mode === "blocked" && transport === "shm") expect(rank0.sleeps).toBeGreaterThan(0);
        if (transport === "zmq") expect(rank0.sleeps).toBe(0);
        // The waiting is the receive's: nothing else was pending meanwhile.
        expect(rank0.calls.recv!.waitSeconds).toBeCloseTo(rank0.waitSeconds - (rank0.calls.barrier?.waitSeconds ?? 0), 2);
        return rank0.waitSeconds - (rank0.calls.barrier?.waitSeconds ?? 0);
      };
      expect(await waited("blocked")).toBeGreaterThan(0.3);
      expect(await waited("overlap")).toBeLessThan(0.1);
    });
  }

  it("on heat: what is sent is what is received, and 16 ranks on 2 cores wait more than 2 (a table on stderr)", async () => {
    const share = async (n: number) => {
      const r = await run(["-n", String(n), "--report=json", "examples/heat.ts", "--n", "256", "--steps", "300", "--json"]);
      expect(r.exitCode).toBe(0);
      const { ranks } = report(r.stdout);
      expect(ranks).toHaveLength(n);
      const sum = (f: (x: RankReport) => number) => ranks.reduce((a, x) => a + f(x), 0);
      expect(sum((x) => x.messagesSent)).toBe(sum((x) => x.messagesReceived));
      expect(sum((x) => x.bytesSent)).toBe(sum((x) => x.bytesReceived));
      // Each rank sends at least its halos: one message per neighbour per step.
      expect(Math.min(...ranks.map((x) => x.messagesSent))).toBeGreaterThanOrEqual(300);
      return sum((x) => x.waitSeconds) / sum((x) => x.wallSeconds);
    };
    expect(await share(16)).toBeGreaterThan(await share(2));
    const table = await run(["-n", "2", "--report", "examples/heat.ts", "--n", "64", "--steps", "10"]);
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toContain("field sha256"); // the script is the script, not --report's value
    expect(table.stderr).toMatch(/tsmpirun --report:\n  rank .*\n  0 .*\n  1 .*\nslowest calls:\n(  rank \d: .*\n)+verdict: ranks spend \d+ % of their time waiting in tsmpi calls/);
  });
});
