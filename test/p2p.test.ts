// Point-to-point through real launches: every contract call, 2 to 6 ranks, and 10,000 messages.
import { describe, expect, it } from "vitest";
import { P2P_AFTER_FINALIZE } from "./fixtures/suites/harness.js";
import { p2p } from "./fixtures/suites/p2p.js";
import { fixture, run, suiteCases, TRANSPORTS } from "./helpers.js";

describe.each(TRANSPORTS)("point to point over --transport %s", (transport) => {
  describe.each([2, 3, 4, 6])("on %i ranks (one job; each case on its own duplicate of the world)", (n) => {
    suiteCases("p2p", [...Object.keys(p2p), P2P_AFTER_FINALIZE], () => ["-n", String(n), "--transport", transport]);
  });

  it("delivers 10,000 mixed messages (0 B – 8 MiB) uncorrupted and in order", async () => {
    const r = await run(["-n", "4", "--transport", transport, fixture("stress.ts"), "10000"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.match(/stress ok rank \d/g)).toHaveLength(4);
  });
});

describe("point to point", () => {
  it("a receive from a rank that has finalized rejects with RankFailedError", async () => {
    const r = await run(["-n", "2", fixture("finalized-peer.ts")]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("got: last words");
    expect(r.stdout).toMatch(/RankFailedError: recv from world rank 1 cannot complete: that rank has finalized .*is RankFailedError: true/);
  });

  it("a sendrecv or sendrecvInto whose send cannot start rejects without leaving a receive that takes later messages", async () => {
    const r = await run(["-n", "2", fixture("sendrecv-fail.ts")]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("MpiError: sendrecv: a function (f) cannot be sent");
    expect(r.stdout).toContain("MpiError: sendrecvInto: a function (f) cannot be sent");
    expect(r.stdout).toContain("then: for the later recv 4,5 untouched -1,-1");
  });

  it("frames no rank sent, pushed into a rank's ZeroMQ socket, are dropped with one warning; the job's own messages all arrive", async () => {
    const r = await run(["-n", "3", "--transport", "zmq", fixture("garbage.ts")]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("junk done; rank 0 got 19900 from rank 1");
    for (let k = 0; k < 3; k++) expect(r.stdout).toContain(`rank ${k}: allreduce 3`);
    expect(r.stderr.trim().split("\n")).toEqual([
      "tsmpi: rank 0: dropped a malformed message on its ZeroMQ socket (a header of 0 bytes (at least 24)); later ones are counted",
      "tsmpi: rank 0: dropped 8 malformed messages in all",
    ]);
  });

  it("messages piling up for a communicator nobody made stop the rank at TSMPI_STRAY_LIMIT, saying so, instead of filling its memory", async () => {
    const r = await run(["-n", "2", "--transport", "zmq", fixture("limits.ts"), "stray"], { env: { TSMPI_STRAY_LIMIT: "32M" }, timeout: 60_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("tsmpi: rank 0: 32.0 MiB of messages arrived for communicators this rank has not made (context 999: 32.0 MiB), above the limit of 32 MiB (TSMPI_STRAY_LIMIT)");
    expect(r.stderr).toMatch(/tsmpirun: rank 0 \(host \S+\) exited with code 1/);
  });

  it("a send above TSMPI_MAX_MESSAGE rejects at once with an MpiError naming the limit; a stranger's larger message is refused unread", async () => {
    const r = await run(["-n", "2", "--transport", "zmq", fixture("limits.ts"), "too-large"], { env: { TSMPI_MAX_MESSAGE: "1M" } });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("a typed array: MpiError: send: a message of 2 MiB is above the limit of 1 MiB (TSMPI_MAX_MESSAGE; the default is half of this machine's memory): send it in parts");
    expect(r.stdout).toContain("an object: MpiError: send: a message of 2.0 MiB is above the limit of 1 MiB");
    expect(r.stdout).toContain("rank 0 got 1000 bytes from rank 1");
    for (const k of [0, 1]) expect(r.stdout).toContain(`rank ${k}: allreduce 2`);
  });

  it("a shared-memory ring that announces a message above the receiver's TSMPI_MAX_MESSAGE stops that rank with the link and the limit named", async () => {
    const r = await run(["-n", "2", "--transport", "shm", fixture("limit-receiver.ts")], { timeout: 60_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("tsmpi: rank 1: the shared-memory link from rank 0 carries a message of 2.0 MiB, above the limit of 1 MiB (TSMPI_MAX_MESSAGE)");
  });

  for (const transport of TRANSPORTS) {
    it(`a send to a rank that has finalized rejects with RankFailedError, small or large (--transport ${transport})`, async () => {
      const r = await run(["-n", "2", "--transport", transport, fixture("send-to-finalized.ts")]);
      expect(r.exitCode).toBe(0);
      for (const bytes of [8, 1048576]) expect(r.stdout).toContain(`send of ${bytes} B: RankFailedError: send to world rank 1 cannot complete: that rank has finalized`);
    });
  }

  it("runs plain .mjs scripts, and finalizes scripts that forget to", async () => {
    const js = await run(["-n", "2", fixture("plain.mjs")]);
    expect(js.exitCode).toBe(0);
    expect(js.stdout).toContain("js rank 0 got 1");
    const nf = await run(["-n", "3", fixture("no-finalize.ts")]);
    expect(nf.exitCode).toBe(0);
    expect(nf.stdout).toContain("rank 0 from 2");
  });
});

describe.each(TRANSPORTS)("soak over --transport %s", (transport) => {
  it("8 ranks × 12 500 mixed messages (0 B–4 MiB, typed arrays and objects, wildcards): none lost, reordered or corrupt, memory flat", async () => {
    const r = await run(["-n", "8", "--transport", transport, "node", "--expose-gc", fixture("soak.ts"), "12500"], { timeout: 240_000 });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n").sort();
    expect(lines).toHaveLength(8);
    let total = 0;
    for (const line of lines) {
      const m = /^soak ok rank (\d) got (\d+) memory MiB (\d+) (\d+) (\d+) (\d+)$/.exec(line);
      expect(m, line).not.toBeNull();
      total += Number(m![2]);
      // JS heap + array buffers at each quarter of the sends (after a gc): no growth beyond
      // what 64 sends of up to 4 MiB in flight can hold.
      const mem = m!.slice(3).map(Number);
      expect(mem[3]!, line).toBeLessThanOrEqual(mem[0]! + 64);
      for (const x of mem) expect(x, line).toBeLessThan(320);
    }
    expect(total).toBe(8 * 12_500);
  }, 300_000);
});
