// Collectives, communicators and Cartesian topologies through real launches with 1, 2, 3, 5, 8 ranks.
import { describe, expect, it } from "vitest";
import { fixture, run, TRANSPORTS } from "./helpers.js";

describe.each(TRANSPORTS)("collectives and communicators over --transport %s", (transport) => {
  for (const n of [1, 2, 3, 5, 8]) {
    it(`every call gives the locally computed result with ${n} rank${n > 1 ? "s" : ""}`, async () => {
      const r = await run(["-n", String(n), "--transport", transport, fixture("collectives-suite.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      for (let k = 0; k < n; k++) expect(r.stdout).toContain(`coll-suite ok rank ${k}/${n}`);
    });
  }
});
