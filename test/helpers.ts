/** Helpers for integration tests: run tsmpirun as a user would and look for leftover processes. */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { execa, type Options } from "execa";
import { beforeAll, expect, it } from "vitest";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI = fileURLToPath(new URL("../dist/launcher/cli.js", import.meta.url));
export const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

export interface RunResult {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

/**
 * The transports every launched suite runs under: shared memory (the default between ranks of one
 * host) and ZeroMQ (the fallback, and what ranks on different hosts use).
 */
export const TRANSPORTS = ["shm", "zmq"] as const;

/** Starts tsmpirun; `timeout` (ms) is only a hang guard. */
export function start(args: string[], opts: Options & { timeout?: number } = {}) {
  return execa(process.execPath, [CLI, ...args], { reject: false, cwd: ROOT, timeout: 120_000, ...opts });
}

export async function run(args: string[], opts: Options & { timeout?: number } = {}): Promise<RunResult> {
  const r = await start(args, opts);
  return { exitCode: r.exitCode, signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A value to tag a job's processes with (`-x TSMPI_TEST_MARK=...`), to find them later. */
export function newMark(): string {
  return `tsmpi-test-${randomUUID()}`;
}

/** PIDs of live processes whose environment contains `mark`. */
export function processesWith(mark: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "latin1");
      if (!env.includes(mark)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, "latin1");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue; // zombie: already dead
      pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Waits until no process carries `mark`; returns the ones still alive after `ms`. */
export async function leftovers(mark: string, ms = 5000): Promise<number[]> {
  const until = Date.now() + ms;
  let pids = processesWith(mark);
  while (pids.length > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    pids = processesWith(mark);
  }
  return pids;
}

/**
 * Reads `read()` until `done` accepts it or `ms` pass, and returns the last value: for cleanup
 * that other processes finish on their own time (the job directory's reaper shell, say).
 */
export async function eventually<T>(read: () => T, done: (v: T) => boolean, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  let v = read();
  while (!done(v) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    v = read();
  }
  return v;
}

/** Resolves when `text` has appeared `count` times in the job's stdout; rejects if it ends first. */
export function waitForOutput(proc: { stdout: NodeJS.ReadableStream | null; then: PromiseLike<unknown>["then"] }, text: string, count = 1): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    proc.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.split(text).length - 1 >= count) resolve();
    });
    proc.then((r) => reject(new Error(`the job ended before printing ${JSON.stringify(text)} ${count}×: ${JSON.stringify(r)}`)));
  });
}

/**
 * One test per case of a fixture suite (test/fixtures/suites/), from one launch of
 * `tsmpirun ...launch test/fixtures/suite.ts SUITE ...suiteArgs` made before the cases are looked at, and a
 * last test that the job ended cleanly. Call inside a describe block.
 */
export function suiteCases(suite: string, names: readonly string[], launch: () => string[], suiteArgs: () => string[] = () => []): void {
  let job: Promise<RunResult>;
  beforeAll(() => {
    job = run([...launch(), fixture("suite.ts"), suite, ...suiteArgs()]);
  });
  it.each(names)("%s", async (name) => {
    const r = await job;
    const lines = r.stdout.split("\n").filter((l) => l.startsWith(`case ${name}: `));
    expect(lines.length, `the case reported nothing; stderr:\n${r.stderr}`).toBeGreaterThan(0);
    for (const l of lines) expect(l).toBe(`case ${name}: ok`);
  });
  it("the job ends cleanly, every case reported", async () => {
    const r = await job;
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`suite ${suite} done`);
  });
}
