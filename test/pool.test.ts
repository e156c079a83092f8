// taskPool through real launches: every call with 1, 2 and 4 ranks, and a body that fails.
import { describe, expect, it } from "vitest";
import { fixture, leftovers, newMark, run } from "./helpers.js";

describe("taskPool", () => {
  for (const n of [1, 2, 4]) {
    it(`map, submit, imapUnordered, load balancing and failures with ${n} rank${n > 1 ? "s" : ""}`, async () => {
      const r = await run(["-n", String(n), fixture("pool-suite.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      for (let k = 0; k < n; k++) expect(r.stdout).toContain(`pool-suite ok rank ${k}/${n}`);
    });
  }

  it("a body that throws uncaught fails the job with its stack; the workers are released", async () => {
    const mark = newMark();
    const r = await run(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("pool-throw.ts")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("Error: the body gave up");
    expect(r.stderr).toMatch(/pool-throw\.ts:\d+/);
    expect(r.stderr).toMatch(/rank 0/);
    expect(await leftovers(mark)).toEqual([]);
  });
});
