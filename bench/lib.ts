/** What the benchmark drivers share: where things are, how to run and time commands. */
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CLI = fileURLToPath(new URL("../dist/launcher/cli.js", import.meta.url));
/** Open MPI refuses to run as root unless told it may (CI and these machines run as root). */
export const REFERENCE_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" };

export const has = (cmd: string): boolean => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

/** A python3 that can import `modules`: Debian's has python3-mpi4py, another one earlier on PATH may not. */
export function pythonWith(modules: string): string | undefined {
  return ["/usr/bin/python3", "python3"].find((p) => spawnSync(p, ["-c", `import ${modules}`]).status === 0);
}

/** Runs a command and parses the JSON object on the last line of its stdout. */
export function lastJson(cmd: string, args: string[], pick: (line: string) => boolean = () => true): Record<string, number> {
  const out = execFileSync(cmd, args, { cwd: ROOT, env: REFERENCE_ENV, encoding: "utf8" }).trim().split("\n").filter(pick);
  return JSON.parse(out[out.length - 1]!);
}

/** Best of `runs` runs of `key` in the command's JSON line (highest, or lowest for times): the machine is small and noisy. */
export function best(cmd: string, args: string[], key: string, { runs = 3, higher = true } = {}): number {
  const xs = Array.from({ length: runs }, () => lastJson(cmd, args)[key]!);
  return higher ? Math.max(...xs) : Math.min(...xs);
}

/** Median wall time (s) of `runs` launches of `tsmpirun ...args`. */
export function launchTime(args: string[], env: NodeJS.ProcessEnv = process.env, runs = 7): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: "ignore" });
    if (r.status !== 0) throw new Error(`tsmpirun ${args.join(" ")} failed with status ${r.status}`);
    times.push((performance.now() - t0) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Median one-way time in µs of `iters` round trips after a warm-up, in 10 batches. */
export async function oneWayMicros(iters: number, roundTrip: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(200, iters); i++) await roundTrip();
  const batch = Math.max(1, Math.floor(iters / 10));
  const samples: number[] = [];
  for (let b = 0; b < 10; b++) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) await roundTrip();
    samples.push(((performance.now() - t0) * 1000) / batch / 2);
  }
  return median(samples);
}
