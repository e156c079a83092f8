// Inside a Slurm allocation (a single-node Slurm on this machine, test/rig/slurm-up.sh): tsmpirun
// takes the hosts and slots from the allocation and starts its agents with srun. Needs root;
// elsewhere reported as skipped.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leftovers, newMark, ROOT } from "./helpers.js";

const DIR = "/tmp/tsmpi-slurm-test";
const canSlurm = process.getuid?.() === 0;
if (!canSlurm) console.warn("slurm.test.ts: skipped: the single-node Slurm needs root");
const env = { ...process.env, SLURM_CONF: `${DIR}/slurm.conf` };

describe.skipIf(!canSlurm)("inside a Slurm allocation", () => {
  beforeAll(() => {
    const r = spawnSync("bash", [join(ROOT, "test/rig/slurm-up.sh"), DIR], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`slurm did not come up:\n${r.stdout}\n${r.stderr}`);
  }, 300_000);
  afterAll(() => {
    spawnSync("bash", [join(ROOT, "test/rig/slurm-down.sh"), DIR]);
  });

  it("salloc -n 4 npx tsmpirun runs 4 ranks from the allocation, started by srun", async () => {
    const r = await execa("salloc", ["-n", "4", "npx", "tsmpirun", "test/fixtures/where.ts"], { cwd: ROOT, env, reject: false, timeout: 120_000 });
    expect(r.exitCode).toBe(0);
    const ranks = String(r.stdout).trim().split("\n").map((l) => JSON.parse(l)).sort((a, b) => a.rank - b.rank);
    expect(ranks.map((x) => [x.rank, x.size])).toEqual([[0, 4], [1, 4], [2, 4], [3, 4]]);
    for (const x of ranks) {
      expect(x.step).not.toBeNull(); // in a job step: srun started them
      expect(x.sum).toBe(6);
    }
    const srunHello = await execa("salloc", ["-n", "4", "npx", "tsmpirun", "examples/hello.ts"], { cwd: ROOT, env, reject: false, timeout: 120_000 });
    expect(String(srunHello.stdout).trim().split("\n").map((l) => l.replace(/ \(pid \d+\)/, ""))).toEqual([0, 1, 2, 3].map((k) => `hello from rank ${k} of 4`));
  });

  it("sbatch of a script that calls tsmpirun works", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsmpi-sbatch-"));
    const script = join(dir, "job.sh");
    writeFileSync(script, `#!/bin/bash\n#SBATCH -n 3\n#SBATCH -o ${dir}/out.txt\ncd ${ROOT}\nnpx tsmpirun examples/heat.ts --n 48 --steps 20 --json\n`);
    const r = await execa("sbatch", ["--wait", script], { cwd: dir, env, reject: false, timeout: 180_000 });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const lines = readFileSync(join(dir, "out.txt"), "utf8").trim().split("\n");
    const result = JSON.parse(lines[lines.length - 1]!);
    expect(result.ranks).toBe(3);
    expect(result.l2error).toBeLessThan(1e-3);
  });

  it("a failing rank inside the allocation ends the job with its code, leaving nothing behind", async () => {
    const mark = newMark();
    const r = await execa("salloc", ["-n", "3", "npx", "tsmpirun", "-x", `TSMPI_TEST_MARK=${mark}`, "test/fixtures/fail-exit.ts", "2", "5"], { cwd: ROOT, env, reject: false, timeout: 120_000 });
    expect(r.exitCode).toBe(5); // salloc passes on tsmpirun's status
    expect(String(r.stderr)).toMatch(/tsmpirun: rank 2 \(host [^)]+\) exited with code 5/);
    expect(await leftovers(mark)).toEqual([]);
  });
});
