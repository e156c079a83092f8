/** Command-line arguments of tsmpirun, parsed with yargs into LaunchOptions. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import yargs from "yargs";
import { isTransportChoice, TRANSPORT_CHOICES, type TransportChoice } from "../src/transport/index.js";
import type { ReportFormat } from "./report.js";

/** A mistake in how tsmpirun was called: printed without a stack, exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface LaunchOptions {
  np: number;
  /** True when -n was given (otherwise np is the number of slots). */
  npGiven: boolean;
  script: string;
  scriptArgs: string[];
  /** Node.js options for every rank, from `tsmpirun node --flag=value script.js`. */
  nodeFlags: string[];
  hosts: string[];
  hostfile?: string;
  oversubscribe: boolean;
  mapBy: "slot" | "node";
  /** Variables to export to every rank; a value of undefined means "this launcher's value". */
  env: Record<string, string | undefined>;
  wdir?: string;
  tagOutput: boolean;
  /** Seconds; 0 means no limit. */
  timeout: number;
  launchAgent?: string;
  /** Interface name or CIDR block whose address ranks listen on for other hosts. */
  tcpIf?: string;
  /** How ranks on one host talk (ranks on different hosts always use tcp). */
  transport: TransportChoice;
  /** Seconds every rank may wait in tsmpi with nothing moving before the job counts as deadlocked; 0: never. */
  deadlockAfter: number;
  /** --report: print what each rank did at exit, as a text table (stderr) or one JSON line (stdout). */
  report?: ReportFormat;
  /** --trace: the file to write the job's trace-event JSON to. */
  trace?: string;
  /** --insecure: connections between hosts without CURVE authentication and encryption. */
  insecure: boolean;
}

/** tsmpirun's long options, and whether each takes a value. */
const LONG_OPTIONS = new Map<string, boolean>([
  ["np", true], ["host", true], ["hostfile", true], ["machinefile", true], ["map-by", true], ["wdir", true],
  ["timeout", true], ["launch-agent", true], ["tcp-if", true], ["deadlock-after", true], ["trace", true], ["transport", true],
  ["oversubscribe", false], ["tag-output", false], ["insecure", false], ["help", false], ["version", false], ["report", false],
]);
/** Short options that take a value (the next word, or joined: `-n4`). */
const SHORT_WITH_VALUE = new Set(["n", "c", "x", "H"]);

/**
 * MPI users type long options with one dash (`-np 4`, `-host a,b`, `-hostfile f`, as Open MPI
 * and MPICH accept); yargs would read `-np` as `-n -p` and `-host` as `-h` (help). Those become
 * `--np`, `--host`, ... Only the launcher's own options are touched: rewriting stops at the
 * script, whose arguments are its own.
 */
function normalize(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--" || !a.startsWith("-") || a === "-") return [...out, ...argv.slice(i)];
    const single = /^-([a-z][a-z-]+)(=.*)?$/.exec(a);
    const long = single && LONG_OPTIONS.has(single[1]!) ? `-${a}` : a;
    out.push(long);
    const name = long.startsWith("--") ? long.slice(2).split("=")[0]! : long.slice(1);
    const takesValue = long.startsWith("--") ? LONG_OPTIONS.get(name) === true && !long.includes("=") : SHORT_WITH_VALUE.has(name);
    if (takesValue && i + 1 < argv.length) out.push(argv[++i]!);
    // `--report json`: the format is optional, so only its two words are taken as one (a script
    // right after a bare --report stays the script).
    if (long === "--report") out[out.length - 1] = argv[i + 1] === "json" || argv[i + 1] === "text" ? `--report=${argv[++i]}` : "--report=text";
  }
  return out;
}

function parseEnv(items: string[], warn: (line: string) => void): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const item of items) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new UsageError(`-x ${item}: ${JSON.stringify(name)} is not a valid environment variable name`);
    // Open MPI warns too: a typo in `-x NAME` would otherwise pass unnoticed.
    if (eq < 0 && process.env[name] === undefined) warn(`-x ${name}: ${name} is not set in this environment, so the ranks do not get it`);
    env[name] = eq < 0 ? process.env[name] : item.slice(eq + 1);
  }
  return env;
}

/**
 * The number an option was given as. yargs' own number type turns `-n x` into NaN, and a
 * message should quote what the user typed.
 */
function numberOption(flag: string, raw: string | string[] | undefined, valid: (n: number) => boolean, rule: string): number | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) throw new UsageError(`${flag} was given ${raw.length} times (${raw.join(", ")}); give it once`);
  const n = raw.trim() === "" ? NaN : Number(raw);
  if (!valid(n)) throw new UsageError(`${flag} ${raw}: ${rule}`);
  return n;
}

/** tsmpi's version, from the package.json two levels above this file (dist/launcher or launcher). */
export function version(): string {
  for (const rel of ["../../package.json", "../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "tsmpi" && pkg.version) return pkg.version;
    } catch {
      // not there: try the next
    }
  }
  return "unknown";
}

/** Programs a user may name before the script, as with `mpirun -n 4 python3 script.py`. */
const NODE_COMMANDS = new Set(["node", "nodejs", "tsx"]);

let valueOptions: Map<string, string> | undefined;

/**
 * Node's options that take a value (`--cpu-prof-interval 50`, `-r x.js`), each name (long and
 * short) → its long name. Read from `node --help`, which writes them `--name=...`, so the list
 * is the one of the Node that runs the ranks; asked only when a command has such a word.
 */
function nodeValueOptions(): Map<string, string> {
  if (valueOptions) return valueOptions;
  valueOptions = new Map();
  const help = spawnSync(process.execPath, ["--help"], { encoding: "utf8", timeout: 10_000 }).stdout ?? "";
  for (const m of help.matchAll(/^\s+(?:(-\w), )?(--[\w-]+)=\.\.\./gm)) {
    valueOptions.set(m[2]!, m[2]!);
    if (m[1]) valueOptions.set(m[1], m[2]!);
  }
  return valueOptions;
}

/**
 * `node [--flag[=value] ...] script args` → the script, its arguments and the flags for Node.
 * A Node option that takes a value may have it as the next word, as with node itself; the flags
 * come back with their values joined (`--cpu-prof-interval=50`).
 */
function splitNodeCommand(positional: string[]): { script: string | undefined; scriptArgs: string[]; nodeFlags: string[] } {
  const [first, ...rest] = positional;
  const isNode = first !== undefined && (NODE_COMMANDS.has(basename(first)) || first === process.execPath);
  if (!isNode) return { script: first, scriptArgs: rest, nodeFlags: [] };
  const nodeFlags: string[] = [];
  let at = 0;
  for (; at < rest.length && rest[at]!.startsWith("-"); at++) {
    const flag = rest[at]!;
    const long = flag.includes("=") || at + 1 >= rest.length ? undefined : nodeValueOptions().get(flag);
    if (long) nodeFlags.push(`${long}=${rest[++at]}`);
    else nodeFlags.push(flag);
  }
  if (at >= rest.length) throw new UsageError(`${[first, ...rest].join(" ")}: no script given after ${first}${nodeFlags.length ? " and its options" : ""}`);
  const script = rest[at]!;
  // V8's options (`--max-old-space-size 8192`) take their value only after "=", in node too.
  const last = nodeFlags[nodeFlags.length - 1];
  if (last !== undefined && !last.includes("=") && !/\.[cm]?[jt]sx?$/.test(script)) {
    throw new UsageError(`${[first, ...rest.slice(0, at + 1)].join(" ")}: ${script} is not a script; if it is the value of ${last}, join them: ${last}=${script}`);
  }
  return { script, scriptArgs: rest.slice(at + 1), nodeFlags };
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function parseArgs(argv: string[], warn: (line: string) => void = (line) => process.stderr.write(`tsmpirun: ${line}\n`)): LaunchOptions {
  const parser = yargs(normalize(argv))
    .scriptName("tsmpirun")
    .usage("$0 [options] [node [node options]] <script> [script args...]\n\nRuns <script> (.ts, .mts, .js, .mjs) as an MPI-style job of N ranks.")
    .parserConfiguration({ "halt-at-non-option": true, "camel-case-expansion": false })
    .option("np", { alias: ["n", "c"], type: "string", describe: "number of ranks (default: the slots available; 1 per CPU core locally)" })
    // Not `array: true`: that would swallow the script and its arguments after `-x VAR`; a
    // repeated option still arrives as an array.
    .option("host", { alias: "H", type: "string", describe: "hosts as h1,h2:4,... (host[:slots])" })
    .option("hostfile", { alias: "machinefile", type: "string", describe: "hostfile: `host slots=N [max_slots=M]` or `host:N` lines" })
    .option("oversubscribe", { type: "boolean", default: false, describe: "allow more ranks than the hosts have slots" })
    .option("map-by", { choices: ["slot", "node"] as const, default: "slot" as const, describe: "fill each host first (slot) or round-robin over hosts (node)" })
    .option("x", { type: "string", describe: "export VAR[=VALUE] to all ranks (repeatable)" })
    .option("wdir", { type: "string", describe: "working directory of the ranks" })
    .option("tag-output", { type: "boolean", default: false, describe: "prefix every output line with [rank]" })
    .option("timeout", { type: "string", describe: "stop the whole job after SECONDS (exit status 124); 0, the default, means no limit" })
    .option("launch-agent", { type: "string", describe: "how remote hosts are reached (default ssh; srun inside a Slurm allocation)" })
    .option("transport", {
      type: "string",
      describe: "how ranks on one host talk: auto (shared memory when the addon loads, else ZeroMQ ipc with a warning), shm (shared memory or an error), zmq (env TSMPI_TRANSPORT)",
    })
    .option("deadlock-after", { type: "string", describe: "when every rank has waited SECONDS in tsmpi calls with no message moving, print what each waits for (the call and the line of the script that awaits it) and the wait-for cycle, and stop the job (exit status 125); default 10, 0 = never" })
    .option("report", { type: "string", describe: "at exit, print what each rank did (time waiting in tsmpi calls, messages, bytes, slowest calls): a table on stderr, or with --report json one JSON line on stdout" })
    .option("insecure", { type: "boolean", default: false, describe: "connect ranks on different hosts without CURVE (no authentication, no encryption): anyone who reaches a rank's port can then send it messages in any rank's name" })
    .option("trace", { type: "string", describe: "write one trace of the whole job to FILE (Chrome trace-event JSON: open it in https://ui.perfetto.dev): a track per rank, a span per tsmpi call, an arrow per message" })
    .option("tcp-if", { type: "string", describe: "interface name or CIDR block (e.g. eth1, 10.0.0.0/8) whose address ranks use between hosts (env TSMPI_TCP_IF)" })
    .strictOptions()
    .help()
    .alias("help", "h")
    .version(false)
    .option("version", { alias: "V", type: "boolean", describe: "print tsmpi's version and exit" })
    .wrap(100)
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  const a = parser.parseSync();
  if ("help" in a && a.help) throw new HelpShown();
  if (a.version) {
    process.stdout.write(`tsmpirun (tsmpi) ${version()}, Node.js ${process.version}\n`);
    throw new HelpShown();
  }

  const { script, scriptArgs, nodeFlags } = splitNodeCommand(a._.map(String));
  if (!script) throw new UsageError("no script given: usage is tsmpirun [options] <script> [script args...]");

  const given = numberOption("-n", a.np, (n) => Number.isInteger(n) && n >= 1, "the number of ranks must be a whole number ≥ 1");
  // Without -n: one rank per core here; with hosts, the job places one per slot instead.
  const np = given ?? availableParallelism();
  const npGiven = given !== undefined;
  const timeout = numberOption("--timeout", a.timeout, (n) => Number.isFinite(n) && n >= 0, "must be a number of seconds ≥ 0") ?? 0;

  return {
    np,
    npGiven,
    script,
    scriptArgs,
    nodeFlags,
    hosts: hostList(list(a.host)),
    hostfile: a.hostfile,
    oversubscribe: a.oversubscribe,
    mapBy: a["map-by"],
    env: parseEnv(list(a.x), warn),
    wdir: a.wdir,
    tagOutput: a["tag-output"],
    timeout,
    launchAgent: a["launch-agent"],
    tcpIf: a["tcp-if"] ?? process.env.TSMPI_TCP_IF,
    transport: transportOption(a.transport),
    report: reportOption(a.report),
    trace: traceOption(a.trace),
    insecure: a.insecure,
    deadlockAfter: numberOption("--deadlock-after", a["deadlock-after"], (n) => Number.isFinite(n) && n >= 0, "must be a number of seconds ≥ 0") ?? 10,
  };
}

/** --host values split at commas; an empty one is a mistake (a variable that expanded to nothing), not "no hosts". */
function hostList(values: string[]): string[] {
  return values.flatMap((v) => {
    const names = v.split(",").map((h) => h.trim());
    if (names.some((h) => h === "")) throw new UsageError(`--host ${JSON.stringify(v)}: ${v.trim() === "" ? "no host given" : "an empty host name"} (expected host[:slots],...)`);
    return names;
  });
}

function traceOption(given: string | string[] | undefined): string | undefined {
  if (Array.isArray(given)) throw new UsageError("--trace was given more than once: the job writes one trace file");
  if (given === undefined) return undefined;
  if (given === "") throw new UsageError("--trace needs a file name (e.g. --trace job.json)");
  return given;
}

function reportOption(given: string | undefined): ReportFormat | undefined {
  if (given === undefined) return undefined;
  if (given === "" || given === "text") return "text";
  if (given === "json") return "json";
  throw new UsageError(`--report=${given}: the format must be text (the default) or json`);
}

function transportOption(given: string | undefined): TransportChoice {
  const [value, where] = given !== undefined ? [given, "--transport"] : [process.env.TSMPI_TRANSPORT ?? "auto", "TSMPI_TRANSPORT"];
  if (!isTransportChoice(value)) throw new UsageError(`${where} ${JSON.stringify(value)}: must be one of ${TRANSPORT_CHOICES.join(", ")}`);
  return value;
}

/** --help was printed; nothing else to do. */
export class HelpShown extends Error {}
