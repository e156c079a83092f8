/**
 * The host agent: starts the ranks of one host and reports on them. The launcher runs one
 * in-process for its own host; on a remote host the same code runs behind the launch agent.
 */
import { existsSync, readFileSync } from "node:fs";
import { execa } from "execa";
import type { LauncherToRank, RankToLauncher } from "../src/control.js";

/** `env` without its unset entries. */
export function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/** This process's environment without the unset entries (what a rank's environment starts from). */
export function inheritedEnv(): Record<string, string> {
  return definedOnly(process.env);
}

export interface RankSpec {
  rank: number;
  /** Variables for this rank only (TSMPI_RANK and friends). */
  env: Record<string, string>;
  /** The launcher's standard input is forwarded to this rank (rank 0, as mpirun does). */
  stdin?: boolean;
}

export interface HostPlan {
  /** Name used in messages. */
  host: string;
  /** Program and arguments that start a rank (node, its flags, the script and its arguments). */
  command: string[];
  cwd: string;
  env: Record<string, string>;
  ranks: RankSpec[];
  /** Told each rank's pid as it starts (its process group's id), to clean up after the job. */
  onSpawn?: (pid: number) => void;
}

export interface HostEvents {
  control(rank: number, msg: RankToLauncher): void;
  /** A promise asks for no more of that rank's output until it settles (the reader is slow). */
  output(rank: number, stream: "stdout" | "stderr", line: string): void | Promise<void>;
  /** The rank has exited and all of its output has been delivered. */
  exit(rank: number, code: number | null, signal: string | null): void;
  /** The rank's fate is unknown: its host agent or the connection to it died. */
  lost?(rank: number, why: string): void;
}

/** What the job needs of a host, whether the launcher's own (HostAgent) or a remote one. */
export interface Agent {
  readonly host: string;
  /** Sends a control message to a rank of this host. */
  send(rank: number, msg: LauncherToRank): void;
  /** Signals every rank of this host still running. */
  signal(sig: NodeJS.Signals): void;
  /** Writes to a rank's standard input (null closes it); resolves when it may take more. */
  feed(rank: number, chunk: Buffer | null): Promise<void>;
}

/**
 * util-linux's setpriv (on every Debian-like system) starts the rank with a parent-death signal:
 * the kernel kills the rank the moment the process that started it dies, even while the rank is
 * busy computing and cannot notice anything itself. It execs the rank: no extra process. Where it
 * is missing, the rank starts a watchdog thread instead (rank-hooks.ts). TSMPI_SETPRIV=0 turns
 * it off.
 */
const SETPRIV = process.env.TSMPI_SETPRIV === "0" ? undefined : ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

/**
 * glibc's malloc serves blocks above 128 KiB (a threshold it raises as they are freed, up to
 * 32 MiB) with their own mmap and gives memory back to the kernel once 2× that is free at the
 * top of its heap. A rank that makes large arrays call after call (an 8 MiB `allreduce` into a
 * new array, a `recv` of one) then pays the kernel for every page of every one of them: V8 frees
 * them in batches of ~64 MiB, glibc returns the batch, and the next arrays fault it back in.
 * An 8 MiB `allreduce` on 4 ranks took 8–11 ms that way, 3.4–3.6 ms with blocks up to 32 MiB
 * from the heap and 64 MiB of free memory kept at its top (a rank's resident memory then shrinks
 * less after a peak). A user's own MALLOC_* or glibc.malloc tunables win. Other C libraries
 * ignore these variables.
 */
export function withMallocDefaults(env: Record<string, string>): Record<string, string> {
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || env.MALLOC_TRIM_THRESHOLD_ !== undefined || env.GLIBC_TUNABLES?.includes("glibc.malloc.")) return env;
  return { ...env, MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(64 << 20) };
}

function spawnRank(file: string, args: string[], cwd: string, env: Record<string, string>, stdin: boolean) {
  const [cmd, argv] = SETPRIV ? [SETPRIV, ["--pdeathsig", "KILL", "--", file, ...args]] : [file, args];
  const rankEnv = withMallocDefaults(env);
  return execa(cmd, argv, {
    cwd,
    env: SETPRIV ? { ...rankEnv, TSMPI_PDEATHSIG: "1" } : rankEnv,
    extendEnv: false,
    stdin: stdin ? "pipe" : "ignore",
    ipc: true,
    serialization: "json",
    buffer: false,
    reject: false,
    // Its own process group: a Ctrl-C at the terminal reaches the launcher alone, which then
    // stops the ranks in order, and signalling the group reaches the rank's own children.
    detached: true,
    cleanup: false,
    forceKillAfterDelay: false,
  });
}

/** Whether process `pid` is stopped (by a signal, or a tracer), from Linux's /proc; false elsewhere. */
function isStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat[stat.lastIndexOf(")") + 2];
    return state === "T" || state === "t";
  } catch {
    return false;
  }
}

interface Running {
  proc: ReturnType<typeof spawnRank>;
  exited: boolean;
}

export class HostAgent implements Agent {
  private readonly running = new Map<number, Running>();

  constructor(
    readonly plan: HostPlan,
    private readonly events: HostEvents,
  ) {}

  get host(): string {
    return this.plan.host;
  }

  /** Starts every rank; resolves when all have exited. */
  run(): Promise<void> {
    const [file, ...args] = this.plan.command;
    return Promise.all(this.plan.ranks.map((spec) => this.runRank(file!, args, spec))).then(() => {});
  }

  /**
   * Sends a control message to a rank; one that has exited or is exiting is skipped. A stopped
   * rank cannot answer "state?", so the agent says for it that it is stopped.
   */
  send(rank: number, msg: LauncherToRank): void {
    const r = this.running.get(rank);
    if (!r || r.exited || !r.proc.connected) return;
    if (msg.t === "state?" && r.proc.pid !== undefined && isStopped(r.proc.pid)) {
      this.events.control(rank, { t: "state", rank, waits: [], on: [], moved: -1, resources: [], stopped: true });
      return;
    }
    try {
      // execa types messages as strict JSON, which optional fields are not; they serialize fine.
      r.proc.sendMessage(msg as Parameters<typeof r.proc.sendMessage>[0]).catch(() => {});
    } catch {
      // It disconnected between the check and the send (execa throws synchronously then).
    }
  }

  /**
   * Writes to a rank's standard input (`null` closes it); resolves once the chunk is in the pipe,
   * so a rank that does not read holds the launcher's input back instead of filling memory.
   */
  feed(rank: number, chunk: Buffer | null): Promise<void> {
    const input = this.running.get(rank)?.proc.stdin;
    if (!input || input.destroyed || input.writableEnded) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        input.off("close", done);
        resolve();
      };
      input.once("close", done); // the rank exited or closed its input: stop waiting
      if (chunk === null) input.end(done);
      else input.write(chunk, () => done());
    });
  }

  /** Signals every rank's process group: the rank if it still runs, and its own children. */
  signal(sig: NodeJS.Signals): void {
    for (const r of this.running.values()) {
      // A rank that has exited may have left children in its group: they go too.
      if (r.proc.pid === undefined) continue;
      try {
        process.kill(-r.proc.pid, sig);
        // A stopped rank acts on a signal only once it runs again (what a shell's kill does).
        if (sig === "SIGTERM" || sig === "SIGINT") process.kill(-r.proc.pid, "SIGCONT");
      } catch {
        // already gone
      }
    }
  }

  private async runRank(file: string, args: string[], spec: RankSpec): Promise<void> {
    const proc = spawnRank(file, args, this.plan.cwd, { ...this.plan.env, ...spec.env }, spec.stdin === true);
    if (proc.pid !== undefined) this.plan.onSpawn?.(proc.pid); // its process group has its pid
    // A rank that exits or closes its input while we still write to it is not an error.
    proc.stdin?.on("error", () => {});
    const r: Running = { proc, exited: false };
    this.running.set(spec.rank, r);
    const lines = (["stdout", "stderr"] as const).map(async (from) => {
      for await (const line of proc.iterable({ from })) await this.events.output(spec.rank, from, line);
    });
    const messages = (async () => {
      for await (const msg of proc.getEachMessage()) this.events.control(spec.rank, msg as RankToLauncher);
    })();
    const result = await proc;
    r.exited = true;
    await Promise.allSettled([...lines, messages]);
    if (result.exitCode === undefined && result.signal === undefined) {
      // It never ran (no such program or working directory): say why, as a shell would (127).
      const why = (result as { originalMessage?: string }).originalMessage ?? result.message;
      this.events.output(spec.rank, "stderr", `tsmpirun: cannot start rank ${spec.rank} on host ${this.plan.host}: ${why}`);
      this.events.exit(spec.rank, 127, null);
      return;
    }
    this.events.exit(spec.rank, result.exitCode ?? null, result.signal ?? null);
  }
}
