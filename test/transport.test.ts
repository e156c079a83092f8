import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eventually, fixture, leftovers, newMark, processesWith, run, start, waitForOutput } from "./helpers.js";

interface Probe {
  rank: number;
  segments: number;
  zmqLoaded: boolean;
  leftInDevShm: number;
}

function probes(stdout: string): Probe[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Probe)
    .sort((a, b) => a.rank - b.rank);
}

const tsmpiSegments = () => readdirSync("/dev/shm").filter((f) => f.startsWith("tsmpi-"));

describe("choosing a transport (--transport, TSMPI_TRANSPORT)", () => {
  it("by default ranks on one host talk through shared memory and never load ZeroMQ", async () => {
    const before = tsmpiSegments();
    const r = await run(["-n", "3", fixture("transport-probe.ts")]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const p = probes(r.stdout);
    expect(p).toHaveLength(3);
    // Its own segment and each peer's, already unlinked from /dev/shm once everyone had mapped them.
    for (const x of p) expect(x).toMatchObject({ segments: 3, zmqLoaded: false, leftInDevShm: 0 });
    expect(tsmpiSegments()).toEqual(before);
  });

  it("--transport zmq uses ZeroMQ ipc and maps no segment", async () => {
    const r = await run(["-n", "3", "--transport", "zmq", fixture("transport-probe.ts")]);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const x of probes(r.stdout)) expect(x).toMatchObject({ segments: 0, zmqLoaded: true });
  });

  it("TSMPI_TRANSPORT=zmq in the environment does the same", async () => {
    const r = await run(["-n", "2", fixture("transport-probe.ts")], { env: { TSMPI_TRANSPORT: "zmq" } });
    expect(r.exitCode, r.stderr).toBe(0);
    for (const x of probes(r.stdout)) expect(x).toMatchObject({ segments: 0, zmqLoaded: true });
  });

  it("without the addon, auto falls back to ZeroMQ with one warning line for the host", async () => {
    const r = await run(["-n", "3", "-x", "TSMPI_SHM_ADDON=0", fixture("transport-probe.ts")]);
    expect(r.exitCode, r.stderr).toBe(0);
    const warnings = r.stderr.split("\n").filter((l) => l.includes("warning"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/ZeroMQ ipc, not shared memory: TSMPI_SHM_ADDON=0/);
    for (const x of probes(r.stdout)) expect(x).toMatchObject({ segments: 0, zmqLoaded: true });
  });

  it("a forced --transport shm that cannot load the addon is an error naming why", async () => {
    const r = await run(["-n", "2", "--transport", "shm", "-x", "TSMPI_SHM_ADDON=0", fixture("transport-probe.ts")]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/--transport shm: TSMPI_SHM_ADDON=0 disables the shared-memory addon/);
    expect(r.stdout).toBe("");
  });

  it("an unknown transport is a usage error, from the option or the environment", async () => {
    const a = await run(["-n", "2", "--transport", "carrier-pigeon", fixture("transport-probe.ts")]);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/--transport "carrier-pigeon": must be one of auto, shm, zmq/);
    const b = await run(["-n", "2", fixture("transport-probe.ts")], { env: { TSMPI_TRANSPORT: "SHM" } });
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/TSMPI_TRANSPORT "SHM": must be one of auto, shm, zmq/);
  });
});

describe("shared memory under stress and faults", () => {
  it("a 2 GiB message arrives intact", async () => {
    const r = await run(["-n", "2", "--transport", "shm", fixture("shm-faults.ts"), "big"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`big ok ${2 ** 31} bytes`);
  });

  it("a rank blocked in recv for 5 s sleeps instead of spinning (< 0.25 s of CPU)", async () => {
    const r = await run(["-n", "2", "--transport", "shm", fixture("shm-faults.ts"), "idle"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const { waitedSeconds, cpuSeconds } = JSON.parse(r.stdout.trim()) as { waitedSeconds: number; cpuSeconds: number };
    expect(waitedSeconds).toBeGreaterThan(4);
    expect(cpuSeconds).toBeLessThan(0.25);
  });

  it("kill -9 of a rank mid-transfer ends the job naming it, leaving no process and no segment", async () => {
    const mark = newMark();
    const before = tsmpiSegments();
    const job = start(["-n", "3", "--transport", "shm", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("shm-faults.ts"), "stream"]);
    await waitForOutput(job, "ready", 2);
    const rank1 = processesWith(mark).find((p) => readFileSync(`/proc/${p}/environ`, "latin1").includes("\0TSMPI_RANK=1\0"));
    expect(rank1).toBeDefined();
    process.kill(rank1!, "SIGKILL");
    const r = await job;
    expect(r.exitCode).toBe(137);
    expect(String(r.stderr)).toMatch(/rank 1 \(host [^)]+\) was killed by signal SIGKILL/);
    expect(await leftovers(mark)).toEqual([]);
    expect(tsmpiSegments()).toEqual(before);
  });

  it("kill -9 of tsmpirun mid-transfer leaves no process, no segment and no job directory", async () => {
    const mark = newMark();
    const before = tsmpiSegments();
    const tmp = mkdtempSync(join(tmpdir(), "tsmpi-test-"));
    const job = start(["-n", "3", "--transport", "shm", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("shm-faults.ts"), "stream"], { env: { TMPDIR: tmp } });
    await waitForOutput(job, "ready", 2);
    job.kill("SIGKILL");
    await job;
    expect(await leftovers(mark)).toEqual([]);
    // The reaper shell removes them once tsmpirun's pipe to it closes, on its own time.
    expect(await eventually(tsmpiSegments, (s) => s.length === before.length)).toEqual(before);
    expect(await eventually(() => readdirSync(tmp), (d) => d.length === 0)).toEqual([]);
    rmSync(tmp, { recursive: true });
  });
});

describe("a rank killed at a random moment", () => {
  it("100 times: SIGKILL of a random rank of a 4-rank job mid-traffic ends it within 1 s naming the rank, leaving no process, segment or job directory", async () => {
    const before = tsmpiSegments();
    const slow: string[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      const mark = newMark();
      const tmp = mkdtempSync(join(tmpdir(), "tsmpi-kill-"));
      const job = start(["-n", "4", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("churn.ts")], { env: { TMPDIR: tmp } });
      await waitForOutput(job, "ready", 4);
      await new Promise((r) => setTimeout(r, Math.random() * 300));
      const victim = Math.floor(Math.random() * 4);
      const pid = processesWith(mark).find((p) => readFileSync(`/proc/${p}/environ`, "latin1").includes(`\0TSMPI_RANK=${victim}\0`) && readFileSync(`/proc/${p}/comm`, "latin1").trim() === "node");
      expect(pid, `attempt ${attempt}`).toBeDefined();
      const t0 = Date.now();
      process.kill(pid!, "SIGKILL");
      const r = await job;
      const took = Date.now() - t0;
      if (took >= 1000) slow.push(`attempt ${attempt}: ${took} ms`);
      expect(r.exitCode, `attempt ${attempt}`).toBe(137);
      expect(String(r.stderr), `attempt ${attempt}`).toMatch(new RegExp(`tsmpirun: rank ${victim} \\(host [^)]+\\) was killed by signal SIGKILL`));
      expect(await leftovers(mark), `attempt ${attempt}`).toEqual([]);
      expect(await eventually(() => readdirSync(tmp), (d) => d.length === 0), `attempt ${attempt}`).toEqual([]);
      rmSync(tmp, { recursive: true });
    }
    expect(await eventually(tsmpiSegments, (x) => x.length === before.length)).toEqual(before);
    expect(slow).toEqual([]);
  }, 600_000);
});
