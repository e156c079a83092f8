// BlockGrid and the two solvers through real launches: exchange against a globally indexed
// field, bit-identical fields for every rank count, and the physics the examples must get right.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { grid } from "./fixtures/suites/grid.js";
import { CLI, eventually, leftovers, newMark, ROOT, run, start, suiteCases, TRANSPORTS } from "./helpers.js";

/** Runs an example with --json and returns rank 0's JSON line (the last line of stdout). */
async function json(n: number, args: string[]): Promise<Record<string, number | string>> {
  const r = await run(["-n", String(n), ...args, "--json"]);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!);
}

describe.each(TRANSPORTS)("BlockGrid over --transport %s", (transport) => {
  // Exchange, gather and scatter against a globally indexed field (1-, 2-, 3-D), a case per configuration.
  describe.each([1, 2, 3, 4, 5, 6])("on %i ranks (one job; each case on its own duplicate of the world)", (n) => {
    suiteCases("grid", Object.keys(grid), () => ["-n", String(n), "--transport", transport]);
  });
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

  it("cache blocking over time (--halo K with --tile rows) gives the --halo 1 fieldHash on 1, 3 and 4 ranks, both kernels", async () => {
    const base = ["examples/heat.ts", "--n", "48", "--steps", "37"];
    const want = (await json(2, base)).fieldHash;
    for (const ranks of [1, 3, 4]) {
      for (const [K, tile, kernel] of [["4", "1", "wasm"], ["8", "3", "wasm"], ["3", "5", "js"]] as const) {
        const r = await json(ranks, [...base, "--halo", K, "--tile", tile, "--kernel", kernel]);
        expect(r.fieldHash, `${ranks} ranks, --halo ${K} --tile ${tile} --kernel ${kernel}`).toBe(want);
      }
    }
  });

  it("rejects a bad option with exit status 2", async () => {
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

describe("checkpoint and restart in the examples", () => {
  const scratch = () => mkdtempSync(join(tmpdir(), "tsmpi-restart-"));

  it("heat: a run restarted from its checkpoint on other rank counts and --halo ends with the uninterrupted fieldHash", async () => {
    const dir = scratch(), file = join(dir, "heat.npy");
    const args = ["examples/heat.ts", "--n", "64", "--steps", "90"];
    const whole = await json(3, args);
    const first = await json(3, [...args.slice(0, 3), "--steps", "40", "--checkpoint", file, "--checkpoint-every", "15", "--halo", "4"]);
    expect(first.steps).toBe(40);
    const saved = JSON.parse(readFileSync(`${file}.json`, "utf8"));
    expect(saved.meta).toEqual({ example: "heat", step: 40, n: 64, alpha: 1, dt: whole.dt });
    expect(saved.sha256).toBe(first.fieldHash); // the sidecar's hash is the field's
    for (const [ranks, halo] of [[1, "1"], [5, "2"], [4, "8"]] as const) {
      const again = await json(ranks, [...args, "--restart", file, "--halo", halo]);
      expect([again.fieldHash, again.l2error, again.ranks]).toEqual([whole.fieldHash, whole.l2error, ranks]);
    }
  });

  it("heat: a restart that does not fit the checkpoint is said once, with status 2", async () => {
    const dir = scratch(), file = join(dir, "heat.npy");
    expect((await json(2, ["examples/heat.ts", "--n", "32", "--steps", "20", "--checkpoint", file])).steps).toBe(20);
    const cases: [string[], string][] = [
      [["--n", "48"], `heat.ts: --restart ${file}: BlockGrid.load("${file}"): the file's shape is [32, 32], not [48, 48]`],
      [["--n", "32", "--alpha", "2"], `heat.ts: --restart ${file}: the checkpoint was run with alpha = 1, this run has alpha = 2 (give the run's options again)`],
      [["--n", "32", "--steps", "10"], `heat.ts: --restart ${file}: the checkpoint is at step 20, past --steps 10`],
      [["--restart", join(dir, "none.npy")], `heat.ts: --restart ${join(dir, "none.npy")}: BlockGrid.load("${join(dir, "none.npy")}"): ${join(dir, "none.npy")}: no such file`],
    ];
    for (const [extra, message] of cases) {
      const r = await run(["-n", "3", "examples/heat.ts", "--restart", file, ...extra]);
      expect(r.exitCode, message).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.split(message).length - 1).toBe(1);
    }
    const ising = await run(["-n", "2", "examples/ising.ts", "--L", "32", "--restart", file]);
    expect(ising.exitCode).toBe(2);
    expect(ising.stderr).toContain(`ising.ts: --restart ${file}: BlockGrid.load("${file}"): the file holds Float64Array (<f8), not Int8Array`);
  });

  it("ising: a restarted run ends with the uninterrupted lattice, |m| and energy, on other rank counts", async () => {
    const dir = scratch(), file = join(dir, "ising.npy");
    const args = ["examples/ising.ts", "--L", "32", "--therm", "10", "--start", "hot", "--T", "2.2"];
    const whole = await json(3, [...args, "--sweeps", "40"]);
    // Stopped just after thermalisation (11 sweeps, checkpoints every 3), then at 35, then run to 40.
    const part = await json(4, [...args, "--sweeps", "1", "--checkpoint", file, "--checkpoint-every", "3"]);
    expect(JSON.parse(readFileSync(`${file}.json`, "utf8")).meta).toMatchObject({ example: "ising", sweepsDone: 11, measured: 1 });
    expect(part.sweeps).toBe(1);
    const a = await json(1, [...args, "--sweeps", "25", "--restart", file, "--checkpoint", file, "--halo", "3"]);
    expect(a.sweeps).toBe(25);
    const b = await json(5, [...args, "--sweeps", "40", "--restart", file]);
    expect([b.fieldHash, b.absMagnetization, b.energy]).toEqual([whole.fieldHash, whole.absMagnetization, whole.energy]);
  });

  it("heat: a job killed with SIGKILL between checkpoints restarts on another rank count and ends with the uninterrupted fieldHash", async () => {
    const dir = scratch(), file = join(dir, "heat.npy");
    const args = ["examples/heat.ts", "--n", "96", "--steps", "6000", "--kernel", "js"];
    const mark = newMark();
    const job = start(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, ...args, "--checkpoint", file, "--checkpoint-every", "500"]);
    await eventually(() => existsSync(`${file}.json`), (x) => x, 60_000);
    job.kill("SIGKILL");
    await job;
    expect(await leftovers(mark)).toEqual([]); // and none of them writes a checkpoint after this
    const step = JSON.parse(readFileSync(`${file}.json`, "utf8")).meta.step as number;
    expect(step % 500).toBe(0);
    expect(step).toBeLessThan(6000); // killed mid-run
    const [again, whole] = [await json(2, [...args, "--restart", file]), await json(1, args)];
    expect(again.fieldHash).toBe(whole.fieldHash);
  });

  it("heat: a job killed while writing a checkpoint restarts from the previous one", async () => {
    const dir = scratch(), file = join(dir, "heat.npy");
    const args = ["examples/heat.ts", "--n", "512", "--steps", "400"];
    // A checkpoint every step: most of the run is spent writing them. Kill it while a new
    // checkpoint's data is being written, after one has completed.
    let hit = false;
    for (let attempt = 0; attempt < 5 && !hit; attempt++) {
      const mark = newMark();
      const job = start(["-n", "2", "-x", `TSMPI_TEST_MARK=${mark}`, ...args, "--checkpoint", file, "--checkpoint-every", "1"]);
      await eventually(() => existsSync(`${file}.json`) && existsSync(`${file}.partial`), (x) => x, 60_000);
      job.kill("SIGKILL");
      await job;
      expect(await leftovers(mark)).toEqual([]);
      hit = existsSync(`${file}.partial`); // still there: the kill came mid-write
    }
    expect(hit).toBe(true);
    // The kill may also come while the new sidecar is written, before its rename (the commit):
    // its .partial is left too, and ignored.
    expect(readdirSync(dir).sort().filter((f) => f !== "heat.npy.json.partial")).toEqual(["heat.npy", "heat.npy.json", "heat.npy.partial"]);
    const [again, whole] = [await json(3, [...args, "--restart", file]), await json(2, args)];
    expect(again.fieldHash).toBe(whole.fieldHash);
  });
});

describe("the examples' command lines", () => {
  it("a progress line on rank 0 when tsmpirun's stderr is a terminal, none when it is piped", async () => {
    // `script` (util-linux) runs tsmpirun on a pseudo-terminal, as a person at a terminal would.
    const cli = `${process.execPath} ${CLI}`;
    for (const [example, line] of [
      ["examples/heat.ts --n 64 --steps 100", /^heat: 100\/100 steps \(100 %\), [\d.]+ s elapsed, ~0\.0 s left\r?$/m],
      ["examples/ising.ts --L 32 --sweeps 20 --therm 5", /^ising: 25\/25 sweeps \(100 %\), [\d.]+ s elapsed, ~0\.0 s left\r?$/m],
    ] as const) {
      const tty = spawnSync("script", ["-qec", `${cli} -n 3 ${example}`, "/dev/null"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
      expect(tty.status, tty.stdout).toBe(0);
      expect(tty.stdout).toMatch(line);
      expect(tty.stdout.match(/ \(100 %\)/g)).toHaveLength(1); // rank 0 only
      const piped = await run(["-n", "3", ...example.split(" ")]);
      expect(piped.stderr).toBe("");
    }
  });

  it("--help prints every option once and exits 0; bad values are said once by rank 0 with status 2", async () => {
    for (const example of ["heat", "ising", "sweep"]) {
      const help = await run(["-n", "3", `examples/${example}.ts`, "--help"]);
      expect(help.exitCode).toBe(0);
      expect(help.stdout.split("--json").length - 1, example).toBe(1);
      expect(help.stdout).toContain(`tsmpirun -n N examples/${example}.ts [options]`);
    }
    const cases: [string, string[], string][] = [
      ["heat", ["--steps", "-1"], `heat.ts: --steps must be an integer ≥ 0, got "-1"`],
      ["heat", ["--kernel", "gpu"], `heat.ts: Invalid values:\n  Argument: kernel, Given: "gpu", Choices: "wasm", "js"`],
      ["heat", ["--checkpoint-every", "5"], "heat.ts: --checkpoint-every needs --checkpoint"],
      ["heat", ["--checkpoint-every", "0", "--checkpoint", "x.npy"], `heat.ts: --checkpoint-every must be an integer ≥ 1, got "0"`],
      ["heat", ["--frobnicate"], "heat.ts: Unknown argument: frobnicate"],
      ["heat", ["--n"], "heat.ts: Not enough arguments following: n"],
      ["ising", ["--T", "warm"], `ising.ts: --T must be a number, got "warm"`],
      ["sweep", ["--points", "1.5"], `sweep.ts: --points must be an integer ≥ 1, got "1.5"`],
    ];
    for (const [example, args, message] of cases) {
      const r = await run(["-n", "3", `examples/${example}.ts`, ...args]);
      expect(r.exitCode, message).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.split(message).length - 1).toBe(1);
      expect(r.stdout).toBe("");
    }
  });
});
