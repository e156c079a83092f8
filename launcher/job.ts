/**
 * One tsmpirun job: places ranks, starts them through host agents, runs the rendezvous, and
 * applies the failure rule — the first rank to fail stops the job and its exit status becomes
 * the launcher's (128 + signal number for a signal).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { constants as osConstants } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { GoneHow, RankToLauncher } from "../src/control.js";
import type { PeerAddress } from "../src/transport.js";
import { HostAgent, type HostPlan } from "./agent.js";
import { UsageError, type LaunchOptions } from "./args.js";
import { compileScript, needsCompile, resolveScript } from "./compile.js";
import { Output } from "./output.js";

/** Time ranks get to exit after SIGTERM before they are killed. */
const STOP_GRACE_MS = 3000;
/** Exit status when --timeout ends the job (as timeout(1) does). */
export const TIMEOUT_EXIT = 124;

const hooks = pathToFileURL(fileURLToPath(new URL("./rank-hooks.js", import.meta.url))).href;

function signalNumber(sig: string): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return env;
}

export async function runJob(opts: LaunchOptions, out = new Output(opts.tagOutput)): Promise<number> {
  if (opts.hosts.length > 0 || opts.hostfile) {
    throw new UsageError("--host/--hostfile: launching on other hosts is not available yet; without them every rank runs on this machine");
  }
  const entry = resolveScript(opts.script);
  const cwd = opts.wdir ? resolve(opts.wdir) : process.cwd();
  // Per-job directory: ipc socket paths and the compiled script, so two jobs never collide.
  const jobDir = mkdtempSync(join(tmpdir(), "tsmpi-"));
  try {
    let runFile = entry;
    const nodeFlags: string[] = [];
    if (needsCompile(entry)) {
      runFile = join(jobDir, "main.mjs");
      await compileScript(entry, runFile);
      nodeFlags.push("--enable-source-maps");
    }
    const host = hostname();
    const size = opts.np;
    const plan: HostPlan = {
      host,
      command: [process.execPath, ...nodeFlags, "--import", hooks, runFile, ...opts.scriptArgs],
      cwd,
      env: { ...inheritedEnv(), ...definedOnly(opts.env) },
      ranks: Array.from({ length: size }, (_, rank) => ({
        rank,
        env: {
          TSMPI_RANK: String(rank),
          TSMPI_SIZE: String(size),
          TSMPI_LOCAL_RANK: String(rank),
          TSMPI_LOCAL_SIZE: String(size),
          TSMPI_HOST_ID: host,
          TSMPI_JOB_DIR: jobDir,
        },
      })),
    };
    return await new Job(plan, opts, out).run();
  } finally {
    rmSync(jobDir, { recursive: true, force: true });
  }
}

function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

interface Failure {
  code: number;
}

class Job {
  private readonly size: number;
  private readonly agent: HostAgent;
  private readonly hellos = new Map<number, PeerAddress | null>();
  private readonly finalized = new Set<number>();
  private readonly exited = new Set<number>();
  /** Ranks that exited 0 without calling init(). */
  private readonly neverInit = new Set<number>();
  private failure: Failure | null = null;
  private killTimer: NodeJS.Timeout | undefined;
  private interrupted = false;

  constructor(
    plan: HostPlan,
    private readonly opts: LaunchOptions,
    private readonly out: Output,
  ) {
    this.size = plan.ranks.length;
    this.agent = new HostAgent(plan, {
      control: (rank, msg) => this.control(rank, msg),
      output: (rank, stream, line) => this.out.line(rank, stream, line),
      exit: (rank, code, signal) => this.exit(rank, code, signal),
    });
  }

  async run(): Promise<number> {
    const onSignal = (sig: NodeJS.Signals) => {
      if (this.interrupted) {
        this.agent.signal("SIGKILL"); // second Ctrl-C: no more waiting
        return;
      }
      this.interrupted = true;
      this.fail(128 + signalNumber(sig), `caught ${sig}`);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", onSignal);
    const timer =
      this.opts.timeout > 0
        ? setTimeout(() => this.fail(TIMEOUT_EXIT, `the job ran longer than --timeout ${this.opts.timeout} s`), this.opts.timeout * 1000)
        : undefined;
    try {
      await this.agent.run();
    } finally {
      clearTimeout(timer);
      clearTimeout(this.killTimer);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("SIGHUP", onSignal);
    }
    return this.failure?.code ?? 0;
  }

  private control(rank: number, msg: RankToLauncher): void {
    switch (msg.t) {
      case "hello":
        this.hellos.set(rank, msg.address);
        this.checkInitDeadlock();
        if (this.hellos.size === this.size) {
          const table = Array.from({ length: this.size }, (_, r) => this.hellos.get(r) ?? null);
          for (let r = 0; r < this.size; r++) this.agent.send(r, { t: "peers", table });
        }
        break;
      case "fin":
        this.finalized.add(rank);
        this.broadcastGone(rank, msg.sentTo, "finalized");
        break;
      case "abort":
        this.fail(msg.code, `rank ${rank} (host ${this.agent.plan.host}) called abort(${msg.code}): ${msg.reason}`);
        break;
    }
  }

  private exit(rank: number, code: number | null, signal: string | null): void {
    this.exited.add(rank);
    if (this.failure) return;
    const where = `rank ${rank} (host ${this.agent.plan.host})`;
    if (signal) {
      this.fail(128 + signalNumber(signal), `${where} was killed by signal ${signal}`);
    } else if (code !== 0) {
      this.fail(code ?? 1, `${where} exited with code ${code}`);
    } else if (!this.hellos.has(rank)) {
      this.neverInit.add(rank);
      this.checkInitDeadlock();
    } else if (!this.finalized.has(rank)) {
      // It left without finalize (process.exit): what it sent may be lost, but nobody should
      // wait for it forever.
      this.broadcastGone(rank, [], "exited");
    }
  }

  /** A rank that exits without init() strands every rank waiting for it in init(). */
  private checkInitDeadlock(): void {
    if (this.neverInit.size === 0 || this.hellos.size === 0 || this.failure) return;
    const gone = [...this.neverInit].sort((a, b) => a - b);
    const waiting = [...this.hellos.keys()].sort((a, b) => a - b);
    this.fail(
      1,
      `rank ${gone.join(", ")} exited without calling init() while rank ${waiting.join(", ")} waited for it in init()`,
    );
  }

  private broadcastGone(rank: number, sentTo: number[], how: GoneHow): void {
    for (let r = 0; r < this.size; r++) {
      if (r !== rank && !this.exited.has(r)) this.agent.send(r, { t: "gone", rank, sentTo, how });
    }
  }

  private fail(code: number, message: string): void {
    if (this.failure) return;
    this.failure = { code };
    const live = this.size - this.exited.size;
    this.out.note(live > 0 ? `${message}; stopping ${live} rank${live === 1 ? "" : "s"}` : message);
    this.agent.signal("SIGTERM");
    this.killTimer = setTimeout(() => this.agent.signal("SIGKILL"), STOP_GRACE_MS);
  }
}
