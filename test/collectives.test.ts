// Collectives, communicators and Cartesian topologies through real launches with 1, 2, 3, 5, 8 ranks.
import { describe, expect, it } from "vitest";
import { collectives } from "./fixtures/suites/collectives.js";
import { fixture, run, suiteCases, TRANSPORTS } from "./helpers.js";

describe.each(TRANSPORTS)("collectives and communicators over --transport %s", (transport) => {
  describe.each([1, 2, 3, 5, 8])("on %i ranks (one job; each case on its own duplicate of the world)", (n) => {
    suiteCases("collectives", Object.keys(collectives), () => ["-n", String(n), "--transport", transport]);
  });
});

describe("collectives where a rank's part fails", () => {
  for (const n of [4, 5]) {
    it(`a value that cannot be sent, or a user op that fails on one rank, rejects where it matters and never hangs (${n} ranks)`, async () => {
      const r = await run(["-n", String(n), "--timeout", "60", fixture("collective-unsendable.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      const all = Array.from({ length: n }, (_, k) => k);
      const cases: [string, number[], string][] = [
        ["bcast", all, "bcast: rank 0's value cannot be sent: a function (f) cannot be sent"],
        ["gather", [0, 2], "gather: rank 2's value cannot be sent: a function (f) cannot be sent"],
        ["allgather", all, "allgather: rank 1's value cannot be sent: a function (f) cannot be sent"],
        ["scatter", [0, 1], "scatter: rank 0's value cannot be sent: a function (f) cannot be sent"],
        ["alltoall", [0, 3], "alltoall: rank 0's value cannot be sent: a function (f) cannot be sent"],
        ["allreduce returning a function on rank 1", all, "allreduce: rank 1's value cannot be sent: a function (f) cannot be sent"],
        ["allreduce throwing on rank 1", all, "allreduce: the reduction op threw: no sums on rank 1"],
        ["scan throwing on rank 2", all, "scan: the reduction op threw: no sums on rank 2"],
      ];
      for (const [name, failing, message] of cases) {
        for (const k of all) {
          // ...and the next collective still lines up on every rank.
          expect(r.stdout, `${name} on rank ${k}`).toContain(`rank ${k}: ${name}: ${failing.includes(k) ? message : "ok"} (then allreduce ${n})`);
        }
      }
    });
  }
});

describe("collectives called differently on different ranks", () => {
  for (const [n, transport] of [[4, "shm"], [4, "zmq"], [5, "shm"]] as const) {
    it(`are caught on every rank, naming both calls, and never hang (${n} ranks, --transport ${transport})`, async () => {
      const r = await run(["-n", String(n), "--transport", transport, "--timeout", "60", fixture("collective-mismatch.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      const both: Record<string, [string, string]> = {
        "bcast against reduce": ["bcast (root 0)", "reduce (root 0, op sum)"],
        "bcast with different roots": ["bcast (root 0)", "bcast (root 1)"],
        "bcast against allreduce": ["bcast (root 0)", "allreduce (op sum)"],
        "allreduce with different ops": ["allreduce (op sum)", "allreduce (op max)"],
        "dup against split": ["dup", "split"],
      };
      for (let k = 0; k < n; k++) {
        for (const [name, [a, b]] of Object.entries(both)) {
          const line = r.stdout.split("\n").find((l) => l.startsWith(`rank ${k}: ${name}: `));
          expect(line, `rank ${k}, ${name}`).toMatch(/: MpiError: collective mismatch: .* on rank \d+ met .* from rank \d+ \(collective call #1 of this communicator\)$/);
          expect(line).toContain(a);
          expect(line).toContain(b);
        }
        expect(r.stdout).toContain(`rank ${k}: world still works: ${n}`);
      }
    });
  }
});
