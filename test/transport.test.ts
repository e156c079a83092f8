import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { fixture, run } from "./helpers.js";

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
