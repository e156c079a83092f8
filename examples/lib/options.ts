/**
 * Command-line options for the examples, on yargs: `--help` prints them and exits 0, values are
 * checked (integers, ranges, choices, output directories), and a bad one is reported once, by
 * rank 0, with exit status 2.
 */
import { statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { dimsCreate } from "tsmpi";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";

export type Spec = Record<
  string,
  {
    default?: number | string | boolean;
    kind: "int" | "number" | "string" | "flag";
    min?: number;
    max?: number;
    choices?: readonly string[];
    /** The value is a file to write: its directory must exist (checked before any work is done). */
    output?: true;
    /** Only meaningful together with this other option. */
    implies?: string;
    help: string;
  }
>;
type Values<S extends Spec> = {
  [K in keyof S]: S[K]["kind"] extends "flag" ? boolean : S[K]["kind"] extends "string" ? (S[K]["default"] extends string ? string : string | undefined) : S[K]["default"] extends number ? number : number | undefined;
};

const isRank0 = () => (process.env.TSMPI_RANK ?? "0") === "0";

/**
 * Ends the job over a bad option with status 2: rank 0 prints `message` and exits, which ends the
 * job; the others wait for that, blocked (exiting first, they could end the job and stop rank 0
 * before it said why, and the launcher would report them as leaving early). Every rank must
 * reach the same verdict, so call it only on what every rank knows alike.
 */
export function optionError(script: string, message: string): never {
  if (!isRank0()) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // until tsmpirun stops this rank
    process.exit(0);
  }
  process.stderr.write(`${basename(fileURLToPath(script))}: ${message}\n`);
  process.exit(2);
}

/**
 * The 2D process grid of `ranks` ranks for a square of `side` cells a side (option `--name`), or
 * an option error when some rank would get no cell.
 */
export function squareGrid(script: string, ranks: number, side: number, name: string, cells: string): number[] {
  const dims = dimsCreate(ranks, 2);
  const need = Math.max(...dims);
  if (side < need) optionError(script, `--${name} ${side} is too small for ${ranks} ranks: their ${dims.join("×")} process grid needs at least ${need} ${cells} per side`);
  return dims;
}

/** Parses this process's arguments against `spec`; `about` heads the --help text. */
export function options<S extends Spec>(script: string, about: string, spec: S): Values<S> {
  const name = basename(fileURLToPath(script));
  const args = hideBin(process.argv);
  // Every rank parses the same arguments; one help text is enough.
  if (!isRank0() && args.some((a) => a === "--help" || a === "-h")) process.exit(0);
  let parser = yargs(args)
    .scriptName(`tsmpirun -n N examples/${name}`)
    .usage(`$0 [options]\n\n${about}`)
    .parserConfiguration({ "camel-case-expansion": false })
    .strict()
    .help()
    .alias("help", "h")
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
  for (const [key, s] of Object.entries(spec)) {
    const number = s.kind === "int" || s.kind === "number";
    parser = parser.option(key, {
      type: s.kind === "flag" ? "boolean" : number ? "number" : "string",
      describe: s.help,
      default: s.default,
      choices: s.choices as string[] | undefined,
      requiresArg: s.kind !== "flag",
      // Given twice, the last one counts (as with most command lines).
      coerce: (raw: unknown) => (raw === undefined ? raw : number ? checkNumber(key, s, raw, args) : s.output ? checkOutput(key, raw) : last(raw)),
    });
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = parser.parseSync() as Record<string, unknown>;
  } catch (e) {
    return optionError(script, `${(e as Error).message}\n(${name} --help lists the options)`);
  }
  if (parsed.help) process.exit(0);
  for (const [key, s] of Object.entries(spec)) {
    if (s.implies && parsed[key] !== undefined && parsed[s.implies] === undefined) optionError(script, `--${key} needs --${s.implies}\n(${name} --help lists the options)`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) out[key] = s.kind === "flag" ? parsed[key] === true : parsed[key];
  return out as Values<S>;
}

function checkNumber(key: string, s: Spec[string], raw: unknown, args: string[]): number {
  const v = Number(last(raw));
  // yargs turns "abc" into NaN: the message quotes what was typed.
  const text = Number.isNaN(v) ? typed(key, args) : String(v);
  const range = s.min !== undefined && s.max !== undefined ? ` from ${s.min} to ${s.max}` : s.min !== undefined ? ` ≥ ${s.min}` : s.max !== undefined ? ` ≤ ${s.max}` : "";
  const ok = text !== "" && Number.isFinite(v) && (s.kind === "number" || Number.isInteger(v)) && (s.min === undefined || v >= s.min) && (s.max === undefined || v <= s.max);
  if (!ok) throw new Error(`--${key} must be ${s.kind === "int" ? "an integer" : "a number"}${range}, got ${JSON.stringify(text)}`);
  return v;
}

function last(raw: unknown): unknown {
  return Array.isArray(raw) ? raw[raw.length - 1] : raw;
}

/** The last value given for --key on the command line, as typed. */
function typed(key: string, args: string[]): string {
  let text = "";
  args.forEach((a, i) => {
    if (a === `--${key}` || a === `-${key}`) text = args[i + 1] ?? "";
    else if (a.startsWith(`--${key}=`)) text = a.slice(key.length + 3);
  });
  return text;
}

/** Found out now rather than after the whole run, when the result could not be saved. */
function checkOutput(key: string, raw: unknown): string {
  const file = String(last(raw));
  const dir = dirname(resolve(file));
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`--${key} ${file}: directory ${dir} does not exist`);
  return file;
}
