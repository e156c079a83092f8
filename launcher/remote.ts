/**
 * The launcher's side of one remote host: starts the tsmpi agent there through the launch agent
 * (one ssh or srun per host, never one per rank), then relays between the job and that agent.
 */
import { hostClock } from "../src/trace.js";
import { execa } from "execa";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { LauncherToRank } from "../src/control.js";
import { ownAddresses } from "./addresses.js";
import type { Agent, HostEvents } from "./agent.js";
import type { AgentToLauncher, LauncherToAgent, RemotePlan } from "./protocol.js";

const AGENT_SCRIPT = fileURLToPath(new URL("./remote-agent.js", import.meta.url));

/** How long a host may take to start its agent before the job gives up on it. */
export const AGENT_START_TIMEOUT_MS = Number(process.env.TSMPI_AGENT_TIMEOUT ?? 8) * 1000;

/** The host could not be reached or its agent did not start. */
export class AgentStartError extends Error {
  override name = "AgentStartError";
}

/** Quotes `s` for a POSIX shell (ssh hands the remote command to the user's shell). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_\/.,:=+@%-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Splits a --launch-agent value into words ("ssh -F 'my config'" → ssh, -F, my config). */
export function splitCommand(cmd: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(cmd))) words.push(m[1] ?? m[2]?.replace(/\\(.)/g, "$1") ?? m[3]!);
  return words;
}

/** Whether the launch agent is Slurm's srun (which runs the command itself, not through a shell). */
export function isSrun(launchAgent: readonly string[]): boolean {
  return /(^|\/)srun$/.test(launchAgent[0] ?? "");
}

export interface RemoteOptions {
  launchAgent: string[];
  /** Variables for the agent itself (the user's -x list), set before it starts. */
  env: Record<string, string>;
  tcpIf?: string;
}

export class RemoteHost implements Agent {
  private proc: ReturnType<typeof execa> | null = null;
  private readonly reported = new Set<number>();
  private readonly stderrTail: string[] = [];
  private ready: ((m: Extract<AgentToLauncher, { t: "ready" }>) => void) | null = null;
  private exited: Promise<{ exitCode?: number; signal?: string }> | null = null;
  private ranks: number[] = [];

  constructor(
    readonly host: string,
    private readonly opts: RemoteOptions,
    private readonly events: HostEvents & { note(text: string): void },
  ) {}

  /** The command that starts the agent on the host. */
  command(): string[] {
    const node = process.execPath;
    const launcher = ownAddresses();
    const agentArgs = [AGENT_SCRIPT, ...(this.opts.tcpIf ? ["--tcp-if", this.opts.tcpIf] : []), ...(launcher.length ? ["--launcher", launcher.join(",")] : [])];
    const envWords = Object.entries(this.opts.env).map(([k, v]) => `${k}=${v}`);
    if (isSrun(this.opts.launchAgent)) {
      // One task on that node, unbuffered so lines arrive as they are written, sharing the
      // allocation's CPUs with the ranks it starts.
      return [...this.opts.launchAgent, "--nodes=1", "--ntasks=1", `--nodelist=${this.host}`, "--kill-on-bad-exit=1", "--unbuffered", "--quiet", "--overlap", "env", ...envWords, node, ...agentArgs];
    }
    const remote = ["exec", "env", ...envWords, node, ...agentArgs].map(shellQuote).join(" ");
    return [...this.opts.launchAgent, this.host, remote];
  }

  /** Starts the agent and waits until it runs; throws AgentStartError naming the host if it does not. */
  async start(): Promise<Extract<AgentToLauncher, { t: "ready" }>> {
    const [file, ...args] = this.command();
    const proc = execa(file!, args, { stdin: "pipe", stdout: "pipe", stderr: "pipe", buffer: false, reject: false, cleanup: true, detached: true, forceKillAfterDelay: false });
    this.proc = proc;
    const readyMsg = new Promise<Extract<AgentToLauncher, { t: "ready" }>>((resolve) => (this.ready = resolve));
    createInterface({ input: proc.stderr! }).on("line", (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
      if (this.ranks.length > 0) this.events.note(`host ${this.host}: ${line}`);
    });
    createInterface({ input: proc.stdout! }).on("line", (line) => this.receive(line));
    this.exited = proc.then((r) => {
      // Nobody will answer for the input any more.
      this.exitedNow = true;
      for (const w of this.drainWaiters.splice(0)) w();
      return { exitCode: r.exitCode, signal: r.signal };
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AgentStartError(`host ${this.host} did not answer within ${AGENT_START_TIMEOUT_MS / 1000} s (${this.describe()})`)), AGENT_START_TIMEOUT_MS);
    });
    const early = this.exited.then((r) => {
      throw new AgentStartError(`cannot start on host ${this.host}: ${this.opts.launchAgent[0]} exited with ${r.signal ? `signal ${r.signal}` : `code ${r.exitCode}`}${this.stderrTail.length ? `: ${this.stderrTail.join(" / ")}` : ""} (${this.describe()})`);
    });
    try {
      return await Promise.race([readyMsg, timeout, early]);
    } catch (e) {
      this.kill();
      throw e;
    } finally {
      clearTimeout(timer);
      early.catch(() => {});
    }
  }

  private describe(): string {
    return `launch agent: ${this.opts.launchAgent.join(" ")}`;
  }

  /** Hands the host its ranks; resolves when every one has exited and the agent has ended. */
  async run(plan: RemotePlan): Promise<void> {
    this.ranks = plan.ranks.map((r) => r.rank);
    this.write({ t: "plan", plan });
    const r = await this.exited!;
    const missing = this.ranks.filter((k) => !this.reported.has(k));
    if (missing.length > 0) {
      // The agent or its connection died without reporting these ranks: they count as failed.
      const why = `lost the connection to host ${this.host} (${this.opts.launchAgent[0]} exited with ${r.signal ? `signal ${r.signal}` : `code ${r.exitCode}`}${this.stderrTail.length ? `: ${this.stderrTail.slice(-3).join(" / ")}` : ""})`;
      for (const k of missing) this.events.lost?.(k, why);
    }
  }

  send(rank: number, msg: LauncherToRank): void {
    this.write({ t: "send", rank, msg });
  }

  /** Forwards standard input to a rank there; resolves when the agent has put it in the rank's pipe. */
  feed(rank: number, chunk: Buffer | null): Promise<void> {
    if (this.exitedNow) return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.write({ t: "stdin", rank, data: chunk === null ? null : chunk.toString("base64") });
    });
  }
  private readonly drainWaiters: (() => void)[] = [];
  private exitedNow = false;

  signal(sig: NodeJS.Signals): void {
    this.write({ t: "signal", sig });
    if (sig === "SIGKILL") {
      // If the agent cannot hear us any more, closing its input makes it stop its ranks; if
      // even the launch agent hangs, end it.
      this.proc?.stdin?.end();
      setTimeout(() => this.kill(), 3000).unref();
    }
  }

  /** Ends the launch agent process (and with it the remote agent's input). */
  kill(): void {
    const pid = this.proc?.pid;
    this.proc?.stdin?.destroy();
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }

  /** The job is over: let the agent's input close so it exits. */
  close(): void {
    this.proc?.stdin?.end();
  }

  private write(msg: LauncherToAgent): void {
    const stdin = this.proc?.stdin;
    if (!stdin || stdin.destroyed || stdin.writableEnded) return;
    stdin.write(`${JSON.stringify(msg)}\n`);
  }

  private receive(line: string): void {
    let msg: AgentToLauncher;
    try {
      msg = JSON.parse(line) as AgentToLauncher;
    } catch {
      this.events.note(`host ${this.host}: ${line}`); // e.g. a login banner
      return;
    }
    switch (msg.t) {
      case "ready":
        this.ready?.(msg);
        break;
      case "control":
        this.events.control(msg.rank, msg.msg);
        break;
      case "output": {
        // The launcher's output is full: stop reading this host until it drains, which in turn
        // holds back the agent there and its ranks.
        const wait = this.events.output(msg.rank, msg.stream, msg.line);
        const from = this.proc?.stdout;
        if (wait && from) {
          from.pause();
          void wait.then(() => from.resume());
        }
        break;
      }
      case "exit":
        this.reported.add(msg.rank);
        this.events.exit(msg.rank, msg.code, msg.signal);
        break;
      case "error":
        this.events.note(`host ${this.host}: ${msg.message}`);
        break;
      case "drained":
        this.drainWaiters.shift()?.();
        break;
      case "clock?":
        this.write({ t: "clock", now: hostClock() });
        break;
    }
  }
}
