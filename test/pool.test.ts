// taskPool through real launches: every call with 1, 2 and 4 ranks, and a body that fails.
import { describe, expect, it } from "vitest";
import { pool } from "./fixtures/suites/pool.js";
import { fixture, leftovers, newMark, run, suiteCases, TRANSPORTS } from "./helpers.js";

describe.each(TRANSPORTS)("taskPool over --transport %s", (transport) => {
  describe.each([1, 2, 4])("on %i ranks (one job; each case on its own duplicate of the world)", (n) => {
    suiteCases("pool", Object.keys(pool), () => ["-n", String(n), "--transport", transport]);
  });
});

describe("taskPool", () => {
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

describe("taskPool items that cannot be sent", () => {
  for (const mode of ["alone", "with others"]) {
    it(`reject their call with TaskError, handled by the body, and the pool ends cleanly (${mode})`, async () => {
      const r = await run(["-n", "3", fixture("pool-unsendable.ts"), ...(mode === "alone" ? ["alone"] : [])]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      const error = "TaskError: pool: the items of double cannot be sent: send: a function (f) cannot be sent";
      expect(r.stdout).toContain(mode === "alone" ? `${error}\n` : `${error}; ${error}; then 10,12,14\n`);
      for (let k = 0; k < 3; k++) expect(r.stdout).toContain(`rank ${k} released`);
    });
  }
});

describe("taskPool worker death", () => {
  it("a worker that dies ends the job with its exit code, naming it; nothing is left", async () => {
    const mark = newMark();
    const r = await run(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("pool-die.ts")]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/tsmpirun: rank [12] \(host [^)]+\) exited with code 3/);
    expect(r.stdout).not.toContain("should not get here");
    expect(await leftovers(mark)).toEqual([]);
  });
});

describe("examples/sweep.ts", () => {
  async function sweep(n: number, args: string[]) {
    const r = await run(["-n", String(n), "examples/sweep.ts", ...args, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n");
    return JSON.parse(lines[lines.length - 1]!) as { T: number[]; absMagnetization: number[]; energy: number[]; resultsHash: string; ranks: number; points: number };
  }

  it("gives the same resultsHash on 1 and 3 ranks", async () => {
    const args = ["--L", "16", "--points", "7", "--sweeps", "300", "--therm", "100"];
    const [one, three] = [await sweep(1, args), await sweep(3, args)];
    expect(three.resultsHash).toMatch(/^[0-9a-f]{64}$/);
    expect(three.resultsHash).toBe(one.resultsHash);
    expect([one.ranks, three.ranks, three.points, three.T.length]).toEqual([1, 3, 7, 7]);
  });

  it("matches Onsager at T = 1.5 (|m| 0.9865) and is disordered at T = 3.5 on L = 64", async () => {
    const r = await sweep(3, ["--L", "64", "--Tmin", "1.5", "--Tmax", "3.5", "--points", "2"]);
    expect(r.T).toEqual([1.5, 3.5]);
    expect(Math.abs(r.absMagnetization[0]! - 0.9865)).toBeLessThan(0.01);
    expect(r.absMagnetization[1]!).toBeLessThan(0.3);
  });

  it("prints progress lines on stderr with --progress", async () => {
    const r = await run(["-n", "2", "examples/sweep.ts", "--L", "8", "--points", "3", "--sweeps", "50", "--therm", "10", "--progress"]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/^sweep: 3\/3 temperatures \(100 %\), [\d.]+ s elapsed, ~0\.0 s left$/m);
  });
});
