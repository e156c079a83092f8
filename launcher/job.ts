/**
 * One tsmpirun job: places ranks on hosts, starts them through one agent per host (in-process
 * for the launcher's own host, over the launch agent for the others), runs the rendezvous, and
 * applies the failure rule: the first rank to fail stops the job everywhere and its exit status
 * becomes the launcher's (128 + signal number for a signal).
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { hostname, totalmem } from "node:os";
import { constants as osConstants } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { GoneHow, LauncherToRank, RankToLauncher } from "../src/control.js";
import type { RankReport } from "../src/report.js";
import type { PeerAddress } from "../src/transport/index.js";
import { interfaceAddress, ownAddresses } from "./addresses.js";
import { createJobDir } from "./jobdir.js";
import { formatJson, formatTable } from "./report.js";
import { hostClock } from "../src/trace.js";
import { TraceFile } from "./trace.js";
import { stateLines, type RankState } from "./hang.js";
import { definedOnly, HostAgent, inheritedEnv, type Agent, type HostEvents, type RankSpec } from "./agent.js";
import { UsageError, type LaunchOptions } from "./args.js";
import { compileScript, needsCompile, resolveScript } from "./compile.js";
import { allocation, isLocalName, parseHostList, placeRanks, readHostfile, type Hosts } from "./hosts.js";
import { Output } from "./output.js";
import { SCRIPT, type RemotePlan } from "./protocol.js";
import { AgentStartError, isSrun, RemoteHost, splitCommand } from "./remote.js";

/** Time ranks get to exit after SIGTERM before they are killed. */
const STOP_GRACE_MS = 3000;
/** Exit status when --timeout ends the job (as timeout(1) does). */
export const TIMEOUT_EXIT = 124;
/** Exit status when --deadlock-after finds the job deadlocked. */
export const DEADLOCK_EXIT = 125;
/** How often a job's ranks are asked what they wait for (--deadlock-after). */
const POLL_MS = 1000;
/** Exit status when the launcher's standard output is closed under it: 128 + SIGPIPE, as a shell reports a filter that died of it. */
export const BROKEN_PIPE_EXIT = 128 + 13;

const hooks = pathToFileURL(fileURLToPath(new URL("./rank-hooks.js", import.meta.url))).href;

function signalNumber(sig: string): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

function stdinIsData(): boolean {
  try {
    return !process.stdin.isTTY;
  } catch {
    return false; // no standard input at all
  }
}

/** Hosts from --host, --hostfile, the batch allocation, or just this machine. */
export function resolveHosts(opts: LaunchOptions): Hosts {
  if (opts.hosts.length > 0 && opts.hostfile) throw new UsageError("--host and --hostfile: give one or the other");
  if (opts.hosts.length > 0) return { source: "host", hosts: parseHostList(opts.hosts) };
  if (opts.hostfile) return { source: "hostfile", hosts: readHostfile(opts.hostfile) };
  return allocation() ?? { source: "local", hosts: [{ name: hostname(), slots: opts.np }] };
}

/** One host of the job and the ranks it runs. */
interface Placement {
  host: string;
  ranks: number[];
  remote: boolean;
}

export async function runJob(opts: LaunchOptions, out = new Output(opts.tagOutput)): Promise<number> {
  // --timeout counts from here: compiling the script is part of the job's time.
  const deadline = opts.timeout > 0 ? Date.now() + opts.timeout * 1000 : Infinity;
  const entry = resolveScript(opts.script);
  const cwd = opts.wdir ? resolve(opts.wdir) : process.cwd();
  if (opts.wdir && (!existsSync(cwd) || !statSync(cwd).isDirectory())) throw new UsageError(`--wdir ${opts.wdir}: no such directory`);
  const { source, hosts } = resolveHosts(opts);
  const np = opts.npGiven || source === "local" ? opts.np : hosts.reduce((s, h) => s + h.slots, 0);
  const perHost = source === "local" ? [Array.from({ length: np }, (_, r) => r)] : placeRanks(hosts, np, opts.mapBy, opts.oversubscribe, source);
  const launchAgent = splitCommand(opts.launchAgent ?? (source === "slurm" ? "srun" : "ssh"));
  if (launchAgent.length === 0) throw new UsageError("--launch-agent: empty command");
  checkNodeFlags(opts.nodeFlags);
  // Inside Slurm every node, this one included, is reached with srun: the ranks then run in a
  // job step of the allocation, as Slurm expects. Elsewhere this machine needs no launch agent.
  const viaAgent = (name: string) => isSrun(launchAgent) || !isLocalName(name);
  const placements: Placement[] = hosts
    .map((h, i) => ({ host: h.name, ranks: perHost[i]!, remote: source !== "local" && viaAgent(h.name) }))
    .filter((p) => p.ranks.length > 0);
  checkMemory(placements.filter((p) => !p.remote).reduce((a, p) => a + p.ranks.length, 0));
  const traceFile = opts.trace !== undefined ? new TraceFile(opts.trace) : null;

  // Per-job directory: this host's ipc sockets and the compiled script, so jobs never collide.
  const dir = createJobDir();
  const jobDir = dir.path;
  try {
    let runFile = entry;
    let bundle: string | null = null;
    const nodeFlags = [...opts.nodeFlags];
    if (needsCompile(entry)) {
      runFile = join(jobDir, "main.mjs");
      if (!(await beforeDeadline(compileScript(entry, runFile), deadline))) {
        out.note(`the job ran longer than --timeout ${opts.timeout} s (it was still compiling ${opts.script})`);
        return TIMEOUT_EXIT;
      }
      nodeFlags.push("--enable-source-maps");
      if (placements.some((p) => p.remote)) bundle = readFileSync(runFile, "utf8");
    }
    const job = new Job(opts, out, placements, np, traceFile);
    return await job.run({
      launchAgent,
      jobDir,
      deadline,
      track: (pgid) => dir.track(pgid),
      cwd,
      command: (remote) => [process.execPath, ...nodeFlags, "--import", hooks, remote && bundle !== null ? SCRIPT : runFile, ...opts.scriptArgs],
      bundle,
    });
  } finally {
    dir.remove();
    traceFile?.finish(np); // a valid file even when the job never started (finish once: no-op after)
  }
}

/**
 * Options given to `node` before the script, tried once here (`node FLAGS --check` on an empty
 * script) before any rank starts: a bad one would otherwise stop every rank at once with Node's
 * own lines, which name every V8 flag Node passes after the bad one (`bad option:
 * --harmony-import-assertions`), as if those were wrong too. Not tried when an --inspect flag is
 * among them (--inspect-brk would wait for a debugger).
 */
function checkNodeFlags(flags: readonly string[]): void {
  // Nor when one of them loads the user's code (a preload would run once more, here), or writes
  // a file of the process's own at exit (a profile of this check would lie beside the ranks').
  if (flags.length === 0 || flags.some((f) => /^(--inspect|--require|-r|--import|--loader|--experimental-loader|--cpu-prof|--heap-prof|--prof|--trace-event)/.test(f))) return;
  const r = spawnSync(process.execPath, [...flags, "--check", "-"], { input: "", encoding: "utf8", timeout: 10_000 });
  if (r.status === 0) return;
  // Node's first line says what it refused; the rest repeats it for the flags after it.
  const said = r.stderr.split("\n").find((l) => l.trim() !== "")?.replace(/^\S*node\S*: /, "") ?? `exit status ${r.status ?? r.signal}`;
  throw new UsageError(`node ${flags.join(" ")}: Node.js does not accept these options: ${said}`);
}

/** Least memory a Node.js rank takes (its heap, code and buffers: 40–60 MB measured here). */
const RANK_BYTES = 30 << 20;

/**
 * Refuses to start more ranks here than this machine's memory could hold, instead of spawning
 * until the machine swaps or the kernel kills processes (`-n 100000` by a slip of the finger).
 */
function checkMemory(localRanks: number): void {
  const need = localRanks * RANK_BYTES;
  if (need <= totalmem()) return;
  const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;
  throw new UsageError(`-n ${localRanks}: that many ranks on this machine need at least ${gb(need)} of memory (${RANK_BYTES >> 20} MB each) and it has ${gb(totalmem())}; use fewer ranks, or other hosts (--host, --hostfile)`);
}

/** Whether `work` finished before `deadline` (ms since the epoch; Infinity: no limit). */
async function beforeDeadline(work: Promise<void>, deadline: number): Promise<boolean> {
  if (deadline === Infinity) return work.then(() => true);
  let timer: { clear(): void } | undefined;
  const late = new Promise<boolean>((resolve) => (timer = longTimeout(() => resolve(false), Math.max(0, deadline - Date.now()))));
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    timer?.clear();
  }
}

interface Start {
  launchAgent: string[];
  jobDir: string;
  /** When --timeout ends the job (ms since the epoch; Infinity: never). */
  deadline: number;
  /** Keeps a local rank's process group, to end what is left of it with the job. */
  track(pgid: number): void;
  cwd: string;
  command(remote: boolean): string[];
  bundle: string | null;
}

class Job {
  private readonly agentOf = new Map<number, Agent>();
  private readonly remotes: RemoteHost[] = [];
  private readonly hellos = new Map<number, PeerAddress | null>();
  private readonly finalized = new Set<number>();
  /** Each rank's last answer to "state?": when it came, and since when nothing has moved there while it waited. */
  private readonly states = new Map<number, RankState & { at: number; since: number; stuck: boolean }>();
  /** What each rank reported at finalize (--report). */
  private readonly reports = new Map<number, RankReport>();
  /** --trace times are ms since the job started, on this host's clock (see hostClock). */
  private readonly epoch = hostClock();
  /** Ranks that exited with 0 after init() but without finalize(), in order. */
  private readonly leftEarly: number[] = [];
  private readonly exited = new Set<number>();
  /** Ranks that exited 0 without calling init(). */
  private readonly neverInit = new Set<number>();
  private failure: { code: number } | null = null;
  /** The ranks' lines are being gathered for a report (askWhere): polls wait for it. */
  private reporting = false;
  /** The state of a job whose busy rank keeps the others waiting has been printed (once, until something moves). */
  private busyShown = false;
  /** When polling began: a rank that never answered has been silent since then. */
  private pollsSince = 0;
  /** Requests for its state each rank has not answered yet. */
  private readonly unanswered = new Map<number, number>();
  private killTimer: NodeJS.Timeout | undefined;
  private interrupted = false;
  private readonly events: HostEvents;
  /**
   * The launcher's standard input goes to rank 0, as with mpirun, when it is a pipe or a file. A
   * terminal is not read: a job in the background would be stopped for reading it (SIGTTIN).
   */
  private readonly forwardStdin = stdinIsData();

  constructor(
    private readonly opts: LaunchOptions,
    private readonly out: Output,
    private readonly placements: Placement[],
    private readonly size: number,
    /** --trace: where the ranks' traces go. */
    private readonly traceFile: TraceFile | null = null,
  ) {
    this.events = {
      control: (rank, msg) => this.control(rank, msg),
      output: (rank, stream, line) => this.out.line(rank, stream, line),
      exit: (rank, code, signal) => this.exit(rank, code, signal),
      lost: (rank, why) => this.lost(rank, why),
    };
    // `tsmpirun ... | head`: once nobody reads the output, the job ends, as a Unix filter would
    // on SIGPIPE. A closed stderr only loses the messages that would have gone there.
    out.onBroken((stream) => {
      if (stream === "stdout") this.fail(BROKEN_PIPE_EXIT, "standard output was closed (broken pipe)");
    });
  }

  private hostOf(rank: number): string {
    return this.agentOf.get(rank)?.host ?? "?";
  }

  private rankSpecs(p: Placement): RankSpec[] {
    return p.ranks.map((rank, local) => ({
      rank,
      stdin: rank === 0 && this.forwardStdin,
      env: {
        TSMPI_RANK: String(rank),
        TSMPI_SIZE: String(this.size),
        TSMPI_LOCAL_RANK: String(local),
        TSMPI_LOCAL_SIZE: String(p.ranks.length),
        TSMPI_HOST_ID: p.host,
        ...(this.opts.report ? { TSMPI_REPORT: "1" } : {}),
        // Ranks write to pipes; this tells them a person watches (progress lines, say).
        ...(process.stderr.isTTY ? { TSMPI_STDERR_TTY: "1" } : {}),
      },
    }));
  }

  async run(start: Start): Promise<number> {
    const onSignal = (sig: NodeJS.Signals) => {
      if (this.interrupted) {
        this.signalAll("SIGKILL"); // second Ctrl-C: no more waiting
        return;
      }
      this.interrupted = true;
      this.fail(128 + signalNumber(sig), `caught ${sig}`);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("SIGHUP", onSignal);
    // As mpirun does: the user signals the launcher, every rank gets it (to checkpoint, say).
    const forward = (sig: NodeJS.Signals) => this.signalAll(sig);
    process.on("SIGUSR1", forward);
    process.on("SIGUSR2", forward);
    const timer = start.deadline < Infinity ? longTimeout(() => void this.timedOut(), Math.max(0, start.deadline - Date.now())) : undefined;
    const poller = this.opts.deadlockAfter > 0 ? setInterval(() => this.poll(), POLL_MS) : undefined;
    try {
      const runs = await this.startHosts(start);
      if (runs && this.forwardStdin) void this.pumpStdin();
      if (runs) await Promise.all(runs);
    } finally {
      if (this.forwardStdin) process.stdin.destroy(); // stop reading, so the launcher can exit
      timer?.clear();
      clearInterval(poller);
      clearTimeout(this.killTimer);
      for (const r of this.remotes) r.close();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("SIGHUP", onSignal);
      process.off("SIGUSR1", forward);
      process.off("SIGUSR2", forward);
    }
    if (this.opts.report) {
      const reports = [...this.reports.values()].sort((a, b) => a.rank - b.rank);
      if (this.opts.report === "json") this.out.text("stdout", formatJson(reports, this.size));
      else this.out.text("stderr", formatTable(reports, this.size));
    }
    for (const note of this.traceFile?.finish(this.size) ?? []) this.out.note(note);
    return this.failure?.code ?? 0;
  }

  /** Starts every host's agent (remote ones first, all at once), then every rank. */
  private async startHosts(start: Start): Promise<Promise<void>[] | null> {
    const multiHost = this.placements.length > 1;
    const userEnv = {
      ...definedOnly(this.opts.env),
      TSMPI_TRANSPORT: this.opts.transport,
      ...(this.opts.insecure ? { TSMPI_INSECURE: "1" } : {}),
      // For every host's agent too: a remote one aligns its host's clock when tracing.
      ...(this.traceFile ? { TSMPI_TRACE: "1", TSMPI_TRACE_EPOCH: String(this.epoch) } : {}),
    };
    const remote = this.placements.filter((p) => p.remote);
    const tcpIfHere = this.opts.tcpIf ? interfaceAddress(this.opts.tcpIf) : undefined;
    if (multiHost && this.opts.tcpIf && !tcpIfHere && this.placements.some((p) => !p.remote)) {
      throw new UsageError(`--tcp-if ${this.opts.tcpIf}: this host has no IPv4 address on that interface or in that block`);
    }
    const ready = new Map<string, Awaited<ReturnType<RemoteHost["start"]>>>();
    if (remote.length > 0) {
      const note = (text: string) => this.out.note(text);
      for (const p of remote) this.remotes.push(new RemoteHost(p.host, { launchAgent: start.launchAgent, env: userEnv, tcpIf: this.opts.tcpIf }, { ...this.events, note }));
      try {
        const got = await Promise.race([
          Promise.all(this.remotes.map((r) => r.start())),
          new Promise<never>((_, reject) => this.onFailure(() => reject(new AgentStartError("")))),
        ]);
        got.forEach((g, i) => ready.set(this.remotes[i]!.host, g));
      } catch (e) {
        for (const r of this.remotes) r.kill();
        if (this.failure) return null; // interrupted or timed out while connecting
        this.failure = { code: 1 };
        if (e instanceof AgentStartError) this.out.note(e.message);
        else throw e;
        return null;
      }
    }
    // The address this host's ranks listen on for the others: as a remote host reached us.
    const seenFromOutside = [...ready.values()].find((g) => g.client)?.client;
    const localTcp = multiHost ? tcpIfHere ?? seenFromOutside ?? (remote.length > 0 ? ownAddresses()[0] : undefined) ?? "127.0.0.1" : null;
    const runs: Promise<void>[] = [];
    let remoteIndex = 0;
    for (const p of this.placements) {
      const ranks = this.rankSpecs(p);
      if (p.remote) {
        const r = this.remotes[remoteIndex++]!;
        for (const k of p.ranks) this.agentOf.set(k, r);
        const g = ready.get(p.host)!;
        const plan: RemotePlan = {
          host: p.host,
          command: start.command(true),
          bundle: start.bundle,
          cwd: start.cwd,
          env: userEnv,
          ranks,
          multiHost,
          tcpAddress: g.tcpAddress ?? g.server,
        };
        runs.push(r.run(plan));
      } else {
        const env: Record<string, string> = { ...inheritedEnv(), ...userEnv, TSMPI_JOB_DIR: start.jobDir };
        if (localTcp) env.TSMPI_TCP_ADDRESS = localTcp;
        const a = new HostAgent({ host: p.host, command: start.command(false), cwd: start.cwd, env, ranks, onSpawn: start.track }, this.events);
        for (const k of p.ranks) this.agentOf.set(k, a);
        runs.push(a.run());
      }
    }
    return runs;
  }

  /** Copies the launcher's standard input to rank 0, at the pace rank 0 reads it. */
  private async pumpStdin(): Promise<void> {
    const agent = this.agentOf.get(0);
    if (!agent) return;
    try {
      for await (const chunk of process.stdin) await agent.feed(0, chunk as Buffer);
      await agent.feed(0, null);
    } catch {
      // The input was closed under us (the job ended): nothing more to forward.
    }
  }

  private failureHooks: (() => void)[] = [];
  private onFailure(f: () => void): void {
    this.failureHooks.push(f);
  }

  private send(rank: number, msg: LauncherToRank): void {
    this.agentOf.get(rank)?.send(rank, msg);
  }

  private signalAll(sig: NodeJS.Signals): void {
    const seen = new Set<Agent>();
    for (const a of this.agentOf.values()) if (!seen.has(a)) (seen.add(a), a.signal(sig));
    if (sig === "SIGKILL") for (const r of this.remotes) if (!seen.has(r)) r.kill();
  }

  private control(rank: number, msg: RankToLauncher): void {
    switch (msg.t) {
      case "hello":
        this.hellos.set(rank, msg.address);
        this.checkInitDeadlock();
        if (this.hellos.size === this.size) {
          const table = Array.from({ length: this.size }, (_, r) => this.hellos.get(r) ?? null);
          for (let r = 0; r < this.size; r++) this.send(r, { t: "peers", table });
        }
        break;
      case "fin":
        this.finalized.add(rank);
        this.broadcastGone(rank, msg.sentTo, "finalized");
        break;
      case "state": {
        this.unanswered.set(rank, 0);
        const last = this.states.get(rank);
        const now = Date.now();
        // Waiting with nothing else that could wake it (no timer or I/O of its own): stuck, unless
        // a message moves. A stopped process is stuck too: nothing in the job will wake it.
        const stuck = msg.stopped === true || (msg.waits.length > 0 && msg.resources.length === 0);
        const since = last && last.moved === msg.moved && stuck && last.stuck ? last.since : now;
        this.states.set(rank, { waits: msg.waits, on: msg.on, moved: msg.moved, resources: msg.resources, stopped: msg.stopped, at: now, since, stuck });
        break;
      }
      case "report":
        this.reports.set(rank, msg.report);
        this.send(rank, { t: "ack" });
        break;
      case "trace":
        if (!this.traceFile) break;
        this.traceFile.add(rank, msg.part, msg.last);
        if (msg.last) this.send(rank, { t: "ack" });
        break;
      case "abort":
        this.fail(msg.code, `rank ${rank} (host ${this.hostOf(rank)}) called abort(${msg.code}): ${msg.reason}`);
        break;
    }
  }

  private exit(rank: number, code: number | null, signal: string | null): void {
    this.exited.add(rank);
    if (this.failure) return;
    const where = `rank ${rank} (host ${this.hostOf(rank)})`;
    if (signal) {
      this.fail(128 + signalNumber(signal), `${where} was killed by signal ${signal}`);
    } else if (code !== 0) {
      this.fail(code ?? 1, `${where} exited with code ${code}`);
    } else if (!this.hellos.has(rank)) {
      this.neverInit.add(rank);
      this.checkInitDeadlock();
    } else if (!this.finalized.has(rank)) {
      // It left without finalize (process.exit): what it sent may be lost, but nobody should
      // wait for it forever. If the job fails after this, it is the likely cause: say so.
      this.leftEarly.push(rank);
      this.broadcastGone(rank, [], "exited");
    }
  }

  /** Ranks that run now: started (said hello), not exited, not finalized. */
  private live(): number[] {
    return [...this.hellos.keys()].filter((r) => !this.exited.has(r) && !this.finalized.has(r)).sort((a, b) => a - b);
  }

  /**
   * Asks every running rank what it waits for, and ends the job as deadlocked when every one has
   * waited in tsmpi (or been stopped) for --deadlock-after seconds with no message moving
   * anywhere. A rank busy in JavaScript does not answer: it may be computing for a long time, so
   * a job with one is not ended, but when the others have all waited on for as long, the state
   * is printed once, so a rank stuck in a loop is seen.
   */
  private poll(): void {
    if (this.failure || this.hellos.size < this.size || this.reporting) return;
    const live = this.live();
    const now = Date.now();
    this.pollsSince ||= now;
    const limit = this.opts.deadlockAfter * 1000;
    const waitedLong = (r: number) => {
      const s = this.states.get(r);
      return s !== undefined && now - s.at <= 2.5 * POLL_MS && s.stuck && now - s.since >= limit;
    };
    // Silent: it has not answered the last two requests, and not for the threshold. (A rank
    // that answers every poll can have its last answer a whole poll old.)
    const silentLong = (r: number) => (this.unanswered.get(r) ?? 0) >= 2 && now - (this.states.get(r)?.at ?? this.pollsSince) >= limit;
    const quiet = live.filter((r) => !waitedLong(r));
    if (live.length > 0 && quiet.length === 0) {
      void this.reportStuck(live, live, () => {
        const n = this.opts.deadlockAfter;
        const head = live.some((r) => this.states.get(r)?.stopped) ? `waited in tsmpi or been stopped ${n} s,` : `waited ${n} s in tsmpi`;
        this.out.text("stderr", `tsmpirun: deadlock: every rank has ${head} with no message moving:\n${stateLines(live, this.states, (r) => this.hostOf(r)).join("\n")}\n`);
        this.fail(DEADLOCK_EXIT, `the job is deadlocked (--deadlock-after ${this.opts.deadlockAfter})`);
      });
      return;
    }
    const busy = quiet.length < live.length && quiet.every(silentLong);
    if (busy && !this.busyShown) {
      this.busyShown = true;
      void this.reportStuck(live, live.filter((r) => !quiet.includes(r)), (fresh) => {
        const lines = stateLines(live, fresh, (r) => this.hostOf(r));
        this.out.text("stderr", `tsmpirun: no message has moved for ${this.opts.deadlockAfter} s, and ${quiet.length === 1 ? "a rank does" : "ranks do"} not answer (not stopping the job: a rank may compute for long; --timeout stops it):\n${lines.join("\n")}\n`);
      });
      return;
    }
    if (!busy) this.busyShown = false;
    for (const r of live) this.ask(r, { t: "state?" });
  }

  /**
   * Asks the ranks `live` for their state with the user's lines and waits for the answers of
   * `answering` (at most a poll's time), then calls `print` with the answers if the job is still
   * stuck: no answer says that something has moved meanwhile.
   */
  private async reportStuck(live: number[], answering: number[], print: (fresh: Map<number, RankState>) => void): Promise<void> {
    const before = new Map(live.map((r) => [r, this.states.get(r)?.moved]));
    const fresh = await this.askWhere(live, answering);
    if (this.failure) return;
    if ([...fresh.keys()].some((r) => this.states.get(r)?.moved !== before.get(r) && before.get(r) !== undefined)) return;
    print(fresh);
  }

  /** Asks rank `r` for its state, counting the request until it answers. */
  private ask(r: number, msg: LauncherToRank & { t: "state?" }): void {
    this.unanswered.set(r, (this.unanswered.get(r) ?? 0) + 1);
    this.send(r, msg);
  }

  /**
   * Sends "state?" with the user's lines to `ranks`; resolves with the answers, once `expected`
   * have answered (a rank known to be busy would only make it wait) or a poll's time is up.
   * Polls pause meanwhile: an answer to one, without lines, would replace an answer with them.
   */
  private async askWhere(ranks: number[], expected = ranks): Promise<Map<number, RankState>> {
    this.reporting = true;
    try {
      const asked = Date.now();
      for (const r of ranks) this.ask(r, { t: "state?", where: true });
      const answered = (r: number) => (this.states.get(r)?.at ?? -1) >= asked;
      while (!expected.every(answered) && Date.now() - asked < POLL_MS && !this.failure) await new Promise((resolve) => setTimeout(resolve, 20));
      return new Map(ranks.filter(answered).map((r) => [r, this.states.get(r)!]));
    } finally {
      this.reporting = false;
    }
  }

  /** --timeout: says what each rank was doing (as mpirun --report-state-on-timeout), then stops the job. */
  private async timedOut(): Promise<void> {
    if (this.failure) return;
    const live = this.live();
    const fresh = await this.askWhere(live);
    if (this.failure) return;
    if (live.length > 0) this.out.text("stderr", `tsmpirun: --timeout ${this.opts.timeout} s: what each rank was doing:\n${stateLines(live, fresh, (r) => this.hostOf(r)).join("\n")}\n`);
    this.fail(TIMEOUT_EXIT, `the job ran longer than --timeout ${this.opts.timeout} s`);
  }

  private lost(rank: number, why: string): void {
    this.exited.add(rank);
    this.fail(1, `${why}; rank ${rank} is lost`);
  }

  /** A rank that exits without init() strands every rank waiting for it in init(). */
  private checkInitDeadlock(): void {
    if (this.neverInit.size === 0 || this.hellos.size === 0 || this.failure) return;
    const gone = [...this.neverInit].sort((a, b) => a - b);
    const waiting = [...this.hellos.keys()].sort((a, b) => a - b);
    this.fail(1, `rank ${gone.join(", ")} exited without calling init() while rank ${waiting.join(", ")} waited for it in init()`);
  }

  private broadcastGone(rank: number, sentTo: number[], how: GoneHow): void {
    for (let r = 0; r < this.size; r++) {
      if (r !== rank && !this.exited.has(r)) this.send(r, { t: "gone", rank, sentTo, how });
    }
  }

  private fail(code: number, message: string): void {
    if (this.failure) return;
    this.failure = { code };
    if (this.leftEarly.length > 0) {
      const ranks = this.leftEarly.map((r) => `rank ${r} (host ${this.hostOf(r)})`).join(", ");
      message += ` after ${ranks} left the job early, with exit code 0 but without finalize() (process.exit?)`;
    }
    for (const f of this.failureHooks.splice(0)) f();
    const live = this.agentOf.size > 0 ? this.size - this.exited.size : 0;
    this.out.note(live > 0 ? `${message}; stopping ${live} rank${live === 1 ? "" : "s"}` : message);
    this.signalAll("SIGTERM");
    this.killTimer = setTimeout(() => this.signalAll("SIGKILL"), STOP_GRACE_MS);
  }
}

/**
 * setTimeout for any delay: Node's timers take at most 2³¹ − 1 ms (24.8 days) and fire at once
 * beyond it, which would end a `--timeout 2592000` (30 days) job as it starts.
 */
export function longTimeout(fn: () => void, ms: number): { clear(): void } {
  const MAX = 2 ** 31 - 1;
  let handle: NodeJS.Timeout;
  const arm = (left: number) => {
    handle = setTimeout(() => (left > MAX ? arm(left - MAX) : fn()), Math.min(left, MAX));
  };
  arm(ms);
  return { clear: () => clearTimeout(handle) };
}
