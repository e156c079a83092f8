// BlockGrid and the two solvers through real launches: exchange against a globally indexed
// field, bit-identical fields for every rank count, and the physics the examples must get right.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { fixture, run, TRANSPORTS } from "./helpers.js";

/** Runs an example with --json and returns rank 0's JSON line (the last line of stdout). */
async function json(n: number, args: string[]): Promise<Record<string, number | string>> {
  const r = await run(["-n", String(n), ...args, "--json"]);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!);
}

describe.each(TRANSPORTS)("BlockGrid over --transport %s", (transport) => {
  for (const n of [1, 2, 3, 4, 5, 6]) {
    it(`exchange, gather and scatter match a globally indexed field (1-, 2-, 3-D) on ${n} rank${n > 1 ? "s" : ""}`, async () => {
      const r = await run(["-n", String(n), "--transport", transport, fixture("grid-suite.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      for (let k = 0; k < n; k++) expect(r.stdout).toContain(`grid-suite ok rank ${k}/${n} 38 configs`);
    });
  }
});

describe("examples/heat.ts", () => {
  it("gives the same fieldHash on 1, 2, 3, 4 and 6 ranks (and over ZeroMQ), and l2error < 2e-4", async () => {
    const results = [];
    for (const n of [1, 2, 3, 4, 6]) results.push(await json(n, ["examples/heat.ts", "--n", "128", "--steps", "400"]));
    // The same bits whichever transport carried the halos.
    results.push(await json(4, ["--transport", "zmq", "examples/heat.ts", "--n", "128", "--steps", "400"]));
    for (const r of results) {
      expect(Object.keys(r).sort()).toEqual(["cellUpdatesPerSecond", "dt", "fieldHash", "l2error", "n", "ranks", "seconds", "steps"]);
      expect(r.fieldHash).toMatch(/^[0-9a-f]{64}$/);
      expect(r.fieldHash).toBe(results[0]!.fieldHash);
      expect(r.l2error).toBeLessThan(2e-4);
      expect(r.l2error).toBeGreaterThan(0);
      expect([r.n, r.steps]).toEqual([128, 400]);
    }
    expect(results.map((r) => r.ranks)).toEqual([1, 2, 3, 4, 6, 4]);
    // The plain TypeScript kernel gives the same bits as the WebAssembly SIMD one.
    const js = await json(3, ["examples/heat.ts", "--n", "128", "--steps", "400", "--kernel", "js"]);
    expect(js.fieldHash).toBe(results[0]!.fieldHash);
  });

  it("--halo K (one exchange every K steps) gives the same fieldHash for K = 1, 2, 4, 8 on 1, 2, 4 and 6 ranks", async () => {
    // 37 steps: the last window of every K > 1 is a short one.
    const hashes = new Set<string>();
    for (const ranks of [1, 2, 4, 6]) {
      for (const K of [1, 2, 4, 8]) {
        const r = await json(ranks, ["examples/heat.ts", "--n", "48", "--steps", "37", "--halo", String(K)]);
        expect(r.ranks).toBe(ranks);
        hashes.add(r.fieldHash as string);
      }
    }
    expect([...hashes]).toHaveLength(1);
    // Deeper than the thinnest block: said once, before running, with status 2.
    const thick = await run(["-n", "4", "examples/heat.ts", "--n", "48", "--halo", "25"]);
    expect(thick.exitCode).toBe(2);
    expect(thick.stderr).toContain("heat.ts: --halo 25: BlockGrid.create: along dimension 0, 48 cells on 2 ranks give blocks of 24, thinner than the ghost width 25");
    expect(thick.stderr.match(/--halo 25/g)).toHaveLength(1);
  });

  it("writes a PNG of the field, and rejects a bad option with exit status 2", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "tsmpi-png-")), "heat.png");
    const r = await run(["-n", "2", "examples/heat.ts", "--n", "40", "--steps", "10", "--png", file]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("L2 error");
    const png = PNG.sync.read(readFileSync(file));
    expect(png.width).toBeGreaterThanOrEqual(40);
    expect(png.height).toBe(png.width);
    const bad = await run(["-n", "2", "examples/heat.ts", "--n", "abc"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('heat.ts: --n must be an integer ≥ 1, got "abc"');
    expect(bad.stderr.match(/--n must be/g)).toHaveLength(1); // said once, by rank 0
  });

  it("says before running when the grid is too small for the ranks or the picture has nowhere to go", async () => {
    const small = await run(["-n", "4", "examples/heat.ts", "--n", "1"]);
    expect(small.exitCode).toBe(2);
    expect(small.stderr).toContain("heat.ts: --n 1 is too small for 4 ranks: their 2×2 process grid needs at least 2 cells per side");
    expect(small.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    const ising = await run(["-n", "3", "examples/ising.ts", "--L", "2"]);
    expect(ising.exitCode).toBe(2);
    expect(ising.stderr).toContain("ising.ts: --L 2 is too small for 3 ranks");
    const nowhere = await run(["-n", "2", "examples/sweep.ts", "--png", "/no/such/dir/sweep.png"]);
    expect(nowhere.exitCode).toBe(2);
    expect(nowhere.stderr).toContain("sweep.ts: --png /no/such/dir/sweep.png: directory /no/such/dir does not exist");
    expect(nowhere.stdout).toBe(""); // no sweep was run
  });
});

describe("examples/ising.ts", () => {
  it("--halo K gives the same lattice, |m| and energy for K = 1, 2, 3, 8 on 1, 2, 4 and 6 ranks", async () => {
    const seen = new Set<string>();
    for (const ranks of [1, 2, 4, 6]) {
      for (const K of [1, 2, 3, 8]) {
        const r = await json(ranks, ["examples/ising.ts", "--L", "48", "--sweeps", "13", "--therm", "4", "--start", "hot", "--halo", String(K)]);
        expect(r.ranks).toBe(ranks);
        seen.add(JSON.stringify([r.fieldHash, r.absMagnetization, r.energy]));
      }
    }
    expect([...seen]).toHaveLength(1);
    const odd = await run(["-n", "2", "examples/ising.ts", "--L", "47", "--halo", "2"]);
    expect(odd.exitCode).toBe(2);
    expect(odd.stderr).toContain("ising.ts: --halo 2 needs an even --L (47 is odd: the checkerboard breaks across the periodic edge)");
  });

  it("gives the same fieldHash on 1 and 4 ranks, from a cold and a hot start", async () => {
    for (const start of ["cold", "hot"]) {
      const args = ["examples/ising.ts", "--L", "48", "--sweeps", "60", "--therm", "10", "--T", "2.3", "--start", start];
      const [one, four] = [await json(1, args), await json(4, args)];
      expect(four.fieldHash).toBe(one.fieldHash);
      expect(four.absMagnetization).toBe(one.absMagnetization);
      expect(four.energy).toBe(one.energy);
    }
  });

  it("matches Onsager at T = 2.0 (|m| 0.9113, e −1.7456) and the known energy at T = 3.0 (−0.8173) on L = 64", async () => {
    const cold = await json(2, ["examples/ising.ts", "--L", "64", "--T", "2.0"]);
    expect(Math.abs(Number(cold.absMagnetization) - 0.9113)).toBeLessThan(0.01);
    expect(Math.abs(Number(cold.energy) + 1.7456)).toBeLessThan(0.01);
    const hot = await json(2, ["examples/ising.ts", "--L", "64", "--T", "3.0"]);
    expect(Math.abs(Number(hot.energy) + 0.8173)).toBeLessThan(0.02);
    expect(Number(hot.absMagnetization)).toBeLessThan(0.2);
    expect(Object.keys(cold).sort()).toEqual(["L", "T", "absMagnetization", "energy", "fieldHash", "ranks", "seconds", "siteUpdatesPerSecond", "sweeps"]);
  });
});
