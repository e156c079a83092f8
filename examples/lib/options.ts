/**
 * Command-line options for the examples: `--name value` pairs with defaults, checked, and a clear
 * message (from rank 0 only) plus exit status 2 when one is wrong.
 */
import { statSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { dimsCreate } from "tsmpi";

export type Spec = Record<
  string,
  {
    default?: number | string | boolean;
    kind: "int" | "number" | "string" | "flag";
    min?: number;
    choices?: readonly string[];
    /** The value is a file to write: its directory must exist (checked before any work is done). */
    output?: true;
    help: string;
  }
>;
type Values<S extends Spec> = {
  [K in keyof S]: S[K]["kind"] extends "flag" ? boolean : S[K]["kind"] extends "string" ? string | undefined : number;
};

/**
 * Ends the job over a bad option with status 2: rank 0 prints `message`, the others leave quietly
 * with 0 (failing too, one of them could end the job, and stop rank 0, before rank 0 said why).
 * Every rank must reach the same verdict, so call it only on what every rank knows alike.
 */
export function optionError(script: string, message: string): never {
  if ((process.env.TSMPI_RANK ?? "0") !== "0") process.exit(0);
  process.stderr.write(`${basename(script)}: ${message}\n`);
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

export function options<S extends Spec>(script: string, spec: S): Values<S> {
  const die = (msg: string): never => {
    const usage = Object.entries(spec).map(([k, s]) => `  --${k}${s.kind === "flag" ? "" : " <value>"}  ${s.help}${s.default !== undefined ? ` (default ${s.default})` : ""}`);
    return optionError(script, `${msg}\nOptions:\n${usage.join("\n")}`);
  };
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: Object.fromEntries(Object.entries(spec).map(([k, s]) => [k, { type: s.kind === "flag" ? "boolean" : "string" }])),
      strict: true,
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    return die((e as Error).message);
  }
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(spec)) {
    const raw = parsed[k];
    if (s.kind === "flag") out[k] = raw === true;
    else if (s.kind === "string") {
      const v = (raw as string | undefined) ?? s.default;
      if (s.choices && !s.choices.includes(String(v))) die(`--${k} must be ${s.choices.join(" or ")}, got ${JSON.stringify(v)}`);
      if (s.output && v !== undefined) {
        // Found out now rather than after the whole run, when the result could not be saved.
        const dir = dirname(resolve(String(v)));
        if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) die(`--${k} ${v}: directory ${dir} does not exist`);
      }
      out[k] = v;
    }
    else if (raw === undefined) out[k] = s.default;
    else {
      const v = Number(raw);
      const ok = raw !== "" && Number.isFinite(v) && (s.kind === "number" || Number.isInteger(v)) && (s.min === undefined || v >= s.min);
      if (!ok) die(`--${k} must be ${s.kind === "int" ? "an integer" : "a number"}${s.min !== undefined ? ` ≥ ${s.min}` : ""}, got ${JSON.stringify(raw)}`);
      out[k] = v;
    }
  }
  return out as Values<S>;
}
