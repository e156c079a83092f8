// The shared-memory addon between real processes: private segments, clear errors, and futex
// wake-ups that cross processes without ever being lost.
import { cpSync, existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { loadShm } from "../src/transport/native.js";
import { fixture, ROOT, run } from "./helpers.js";

const shm = loadShm().addon!;
const segmentName = () => `/tsmpi-test-${randomBytes(6).toString("hex")}`;

describe("shared-memory addon", () => {
  it("loads (built from source by npm install, or the prebuilt binary)", () => {
    expect(loadShm().error).toBeUndefined();
    expect(Object.keys(shm).sort()).toEqual(["arm", "close", "combine", "fold", "map", "sleep", "stream", "unlink", "waiter", "wake", "yieldCpu"]);
  });

  it("ships a prebuilt binary that loads without any build (what a user's npm install gets)", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "tsmpi-prebuilt-")), "native");
    cpSync(join(ROOT, "native", "prebuilds"), join(dir, "prebuilds"), { recursive: true });
    const build = createRequire(import.meta.url)("node-gyp-build") as ((d: string) => Record<string, unknown>) & { path(d: string): string };
    expect(build.path(dir)).toMatch(/prebuilds\/linux-x64\/.*\.node$/);
    // The same functions as the source build: a stale prebuilt binary would quietly lack new ones.
    expect(Object.keys(build(dir)).sort()).toEqual(Object.keys(shm).sort());
  });

  it("streams bytes past the cache exactly, at any alignment and length, and refuses a destination that is too short", () => {
    const src = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 255);
    for (const [to, from, n] of [[0, 0, 5000], [3, 1, 4000], [16, 5, 63], [7, 0, 64], [1, 2, 0], [9, 13, 1]] as const) {
      const dst = new Uint8Array(5100).fill(0xee);
      shm.stream(dst.subarray(to), src.subarray(from, from + n));
      expect(Array.from(dst.subarray(to, to + n))).toEqual(Array.from(src.subarray(from, from + n)));
      expect(dst[to - 1] ?? 0xee).toBe(0xee);
      expect(dst[to + n]).toBe(0xee);
    }
    const doubles = Float64Array.from({ length: 1000 }, (_, i) => i / 3);
    const out = new Float64Array(1001);
    shm.stream(out.subarray(1), doubles);
    expect(Array.from(out.subarray(1))).toEqual(Array.from(doubles));
    expect(() => shm.stream(new Uint8Array(10), new Uint8Array(11))).toThrow(/destination is shorter than its source/);
  });

  it("reports why it is unavailable instead of throwing when the addon cannot be used (TSMPI_SHM_ADDON=0)", async () => {
    const code = `import { loadShm } from "./src/transport/native.ts"; console.log(JSON.stringify(loadShm()));`;
    const r = await execa(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, env: { TSMPI_SHM_ADDON: "0" }, timeout: 30_000 });
    expect(JSON.parse(r.stdout)).toEqual({ error: "TSMPI_SHM_ADDON=0 disables the shared-memory addon" });
  });

  it("creates private segments (mode 0600) that two mappings share, and refuses to create one twice", () => {
    const name = segmentName();
    const a = shm.map(name, 1 << 20, true);
    try {
      expect(statSync(`/dev/shm${name}`).mode & 0o777).toBe(0o600);
      const b = shm.map(name, 1 << 20, false);
      new Int32Array(a)[1000] = 42;
      expect(new Int32Array(b)[1000]).toBe(42);
      expect(() => shm.map(name, 1 << 20, true)).toThrow(/cannot create shared-memory segment .*File exists/);
    } finally {
      expect(shm.unlink(name)).toBe(true);
    }
    expect(existsSync(`/dev/shm${name}`)).toBe(false);
    expect(new Int32Array(a)[1000]).toBe(42); // mappings outlive the name
    expect(() => shm.map(name, 4096, false)).toThrow(/cannot open shared-memory segment .*No such file/);
    expect(shm.unlink(name)).toBe(false);
  });

  it("says ENOSPC up front when /dev/shm cannot hold the segment, and leaves nothing behind", () => {
    const name = segmentName();
    let err: (Error & { code?: string }) | undefined;
    try {
      shm.map(name, 2 ** 50, true); // 1 PiB: no tmpfs here holds that
    } catch (e) {
      err = e as Error;
    }
    expect(err?.code).toBe("ENOSPC");
    expect(err?.message).toMatch(/cannot reserve shared memory for segment \/tsmpi-test-\w+: No space left on device/);
    expect(existsSync(`/dev/shm${name}`)).toBe(false);
  });

  it("wakes a waiter in another process 2,000 times in a row, and the sleeping peer uses little CPU", async () => {
    const name = segmentName();
    const buf = shm.map(name, 4096, true);
    const words = new Int32Array(buf);
    const rounds = 2000;
    const peer = execa(process.execPath, ["--import", "tsx", fixture("shm-peer.ts"), name, String(rounds)], { cwd: ROOT, timeout: 60_000 });
    // Ping, then sleep until the peer's pong: a lost wake-up on either side would hang here.
    let pongs = 0;
    await new Promise<void>((resolve) => {
      const w = shm.waiter(buf, 4, () => {
        const pong = Atomics.load(words, 1);
        if (pong === pongs) return shm.arm(w, pongs);
        pongs = pong;
        if (pongs === rounds) {
          shm.close(w);
          return resolve();
        }
        Atomics.store(words, 0, pongs + 1);
        shm.wake(buf, 0);
        shm.arm(w, pongs);
      });
      // Wait a while before the first ping: the peer is asleep then, and must not spin.
      setTimeout(() => {
        Atomics.store(words, 0, 1);
        shm.wake(buf, 0);
        shm.arm(w, 0);
      }, 1500);
    });
    const out = await peer;
    shm.unlink(name);
    const report = JSON.parse(out.stdout) as { rounds: number; cpuSeconds: number; wallSeconds: number };
    expect(report.rounds).toBe(rounds);
    // It slept through the 1.5 s before the first ping: a spinning waiter would burn all of it.
    expect(report.cpuSeconds).toBeLessThan(report.wallSeconds / 2);
  });

  it("sleeps on the JS thread until another process changes the word and wakes it, or the time is up", async () => {
    const name = segmentName();
    const buf = shm.map(name, 4096, true);
    try {
      const words = new Int32Array(buf);
      expect(shm.sleep(buf, 0, 1, 5e6)).toBe(true); // the word is 0, not 1: no sleep at all
      let t0 = performance.now();
      expect(shm.sleep(buf, 0, 0, 50_000)).toBe(false);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
      const code = `
        import { loadShm } from "./src/transport/native.ts";
        const shm = loadShm().addon;
        const buf = shm.map(${JSON.stringify(name)}, 4096, false);
        console.log("mapped");
        setTimeout(() => { Atomics.store(new Int32Array(buf), 0, 7); shm.wake(buf, 0); }, 300);
      `;
      const peer = execa(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, timeout: 30_000 });
      await new Promise<void>((resolve) => peer.stdout!.once("data", () => resolve()));
      t0 = performance.now();
      expect(shm.sleep(buf, 0, 0, 10e6)).toBe(true);
      expect(performance.now() - t0).toBeLessThan(5000);
      expect(Atomics.load(words, 0)).toBe(7);
      await peer;
    } finally {
      shm.unlink(name);
    }
  });

  it("lets a process with an idle waiter exit by itself; an armed one keeps it alive until woken", async () => {
    const code = `
      import { loadShm } from "./src/transport/native.ts";
      const shm = loadShm().addon;
      const name = "/tsmpi-test-idle-" + process.pid;
      const buf = shm.map(name, 4096, true);
      shm.unlink(name);
      const idle = shm.waiter(buf, 0, () => {});
      const armed = shm.waiter(buf, 8, () => console.log("woken after", Date.now() - t0 >= 300 ? "the timer" : "too early"));
      shm.arm(armed, 0);
      const t0 = Date.now();
      setTimeout(() => { new Int32Array(buf)[2] = 1; shm.wake(buf, 8); }, 300).unref();
    `;
    const r = await execa(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { cwd: ROOT, timeout: 30_000, reject: false });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("woken after the timer");
    expect(r.exitCode).toBe(0);
  });
});

describe("rings and doorbells between two launched ranks (bench/shm-floor.ts --check)", () => {
  for (const spin of ["50", "0"]) {
    it(`stream 1 B – 3 MiB both ways at once, intact, ${spin === "0" ? "sleeping at once (every wait is a futex wake-up)" : "spinning first"}; nothing left in /dev/shm`, async () => {
      const before = new Set(readdirSync("/dev/shm"));
      const r = await run(["-n", "2", "bench/shm-floor.ts", "--check", "--spin", spin], { timeout: 60_000 });
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("shm-floor check ok rank 0");
      expect(r.stdout).toContain("shm-floor check ok rank 1");
      expect(readdirSync("/dev/shm").filter((f) => !before.has(f))).toEqual([]);
    });
  }
});
