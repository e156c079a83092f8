/**
 * Where ranks run: hosts and their slots from a hostfile, a --host list, or the batch system's
 * allocation (Slurm, PBS), and the placement of ranks on them (--map-by, --oversubscribe).
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { UsageError } from "./args.js";

export interface HostSlots {
  name: string;
  /** Ranks the host takes before it is oversubscribed. */
  slots: number;
  /** Hard limit even with --oversubscribe (Open MPI's max_slots). */
  maxSlots?: number;
}

/** Where the host list came from (for messages and the choice of launch agent). */
export type HostSource = "local" | "host" | "hostfile" | "slurm" | "pbs";

export interface Hosts {
  source: HostSource;
  hosts: HostSlots[];
}

/** More slots than any machine has: a typo, refused before it costs memory or time. */
export const MAX_SLOTS = 1 << 20;

function positiveInt(s: string): number | null {
  return /^\d+$/.test(s) && Number(s) > 0 && Number(s) <= MAX_SLOTS ? Number(s) : null;
}

/** Adds `h` to `list`, merging a host named twice (its slots add up, as in Open MPI). */
function add(list: HostSlots[], h: HostSlots): void {
  const seen = list.find((x) => x.name === h.name);
  if (!seen) list.push(h);
  else {
    // Each line's limit is its max_slots, or its slots when it has none; the limits add up too.
    if (h.maxSlots !== undefined || seen.maxSlots !== undefined) seen.maxSlots = (seen.maxSlots ?? seen.slots) + (h.maxSlots ?? h.slots);
    seen.slots += h.slots;
  }
}

/**
 * Parses a hostfile: Open MPI lines (`node slots=4 max_slots=8`, also `slots:4`, `cpu=`/`count=`
 * as aliases) and MPICH lines (`node:4`), `#` comments, blank lines. Errors name the file and line.
 */
export function parseHostfile(text: string, file: string): HostSlots[] {
  const hosts: HostSlots[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const where = `${file}:${i + 1}`;
    const line = raw.replace(/#.*/, "").trim();
    if (!line) return;
    const [first, ...rest] = line.split(/\s+/) as [string, ...string[]];
    let name = first;
    let slots = 1;
    let maxSlots: number | undefined;
    const colon = first.lastIndexOf(":");
    // host:N (MPICH), but not an IPv6 address (which has several colons).
    if (colon > 0 && first.indexOf(":") === colon) {
      name = first.slice(0, colon);
      const n = positiveInt(first.slice(colon + 1));
      if (n === null) throw new UsageError(`${where}: "${first}": the slot count after ':' must be a whole number from 1 to ${MAX_SLOTS}`);
      slots = n;
    }
    if (!/^[A-Za-z0-9_.:\-[\]%]+$/.test(name)) throw new UsageError(`${where}: "${name}" is not a valid host name`);
    for (const field of rest) {
      const m = /^(slots|max_slots|max-slots|cpu|count)\s*[=:]\s*(.*)$/.exec(field);
      if (!m) throw new UsageError(`${where}: unknown field "${field}" (expected slots=N or max_slots=N)`);
      const n = positiveInt(m[2]!);
      if (n === null) throw new UsageError(`${where}: "${field}": ${m[1]} must be a whole number from 1 to ${MAX_SLOTS}`);
      if (m[1]!.startsWith("max")) maxSlots = n;
      else slots = n;
    }
    if (maxSlots !== undefined && maxSlots < slots) throw new UsageError(`${where}: max_slots=${maxSlots} is less than slots=${slots}`);
    add(hosts, { name, slots, maxSlots });
  });
  if (hosts.length === 0) throw new UsageError(`${file}: the hostfile names no host`);
  return hosts;
}

export function readHostfile(file: string): HostSlots[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`--hostfile ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseHostfile(text, file);
}

/** `--host h1,h2:4`: MPICH style, one slot unless `:N` says otherwise. */
export function parseHostList(entries: readonly string[]): HostSlots[] {
  const hosts: HostSlots[] = [];
  for (const entry of entries) {
    const m = /^([^:\s]+)(?::(.*))?$/.exec(entry);
    if (!m) throw new UsageError(`--host ${entry}: expected host or host:slots`);
    const slots = m[2] === undefined ? 1 : positiveInt(m[2]);
    if (slots === null) throw new UsageError(`--host ${entry}: the slot count after ':' must be a whole number from 1 to ${MAX_SLOTS}`);
    add(hosts, { name: m[1]!, slots });
  }
  return hosts;
}

/** Splits on commas that are not inside brackets. */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "[") depth++;
    else if (s[i] === "]") depth--;
    else if (s[i] === "," && depth === 0) (parts.push(s.slice(start, i)), (start = i + 1));
  }
  parts.push(s.slice(start));
  return parts.filter((p) => p.length > 0);
}

/**
 * Expands a Slurm hostlist expression: `node[01-04,07],gpu3` → node01 … node04, node07, gpu3
 * (zero padding kept; several bracket groups multiply: `r[1-2]n[1-2]` → r1n1, r1n2, r2n1, r2n2).
 */
export function expandHostlist(expr: string): string[] {
  const out: string[] = [];
  for (const part of splitTop(expr.trim())) {
    const m = /^([^[]*)\[([^\]]*)\](.*)$/.exec(part);
    if (!m) {
      if (/[[\]]/.test(part)) throw new UsageError(`SLURM_JOB_NODELIST: unbalanced brackets in "${part}"`);
      out.push(part);
      continue;
    }
    const [, prefix, ranges, suffix] = m as unknown as [string, string, string, string];
    for (const range of ranges.split(",")) {
      const r = /^(\d+)(?:-(\d+))?$/.exec(range);
      if (!r) throw new UsageError(`SLURM_JOB_NODELIST: bad range "${range}" in "${part}"`);
      const lo = Number(r[1]), hi = r[2] === undefined ? lo : Number(r[2]);
      if (hi < lo) throw new UsageError(`SLURM_JOB_NODELIST: range "${range}" runs backwards`);
      const rests = suffix ? expandHostlist(suffix) : [""];
      for (let k = lo; k <= hi; k++) for (const rest of rests) out.push(prefix + String(k).padStart(r[1]!.length, "0") + rest);
    }
  }
  return out;
}

/** Expands SLURM_TASKS_PER_NODE: `2(x3),1` → [2, 2, 2, 1]. */
export function expandTasksPerNode(expr: string): number[] {
  const out: number[] = [];
  for (const part of expr.split(",")) {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(part.trim());
    if (!m) throw new UsageError(`SLURM_TASKS_PER_NODE: cannot read "${part}" in "${expr}"`);
    for (let k = 0; k < Number(m[2] ?? 1); k++) out.push(Number(m[1]));
  }
  return out;
}

/** A PBS nodefile: one line per slot, a host once per slot it has. */
export function parsePbsNodefile(text: string): HostSlots[] {
  const hosts: HostSlots[] = [];
  for (const line of text.split(/\r?\n/)) {
    const name = line.trim();
    if (name) add(hosts, { name, slots: 1 });
  }
  return hosts;
}

/** The allocation of the batch system this launcher runs in, or null outside one. */
export function allocation(env: NodeJS.ProcessEnv = process.env): Hosts | null {
  const nodelist = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  if (nodelist) {
    const names = expandHostlist(nodelist);
    const tpn = env.SLURM_TASKS_PER_NODE ?? env.SLURM_JOB_CPUS_PER_NODE;
    const counts = tpn ? expandTasksPerNode(tpn) : names.map(() => 1);
    if (counts.length !== names.length) {
      throw new UsageError(`Slurm allocation: SLURM_JOB_NODELIST names ${names.length} nodes but SLURM_TASKS_PER_NODE=${tpn} gives ${counts.length} counts`);
    }
    return { source: "slurm", hosts: names.map((name, i) => ({ name, slots: counts[i]! })) };
  }
  if (env.PBS_NODEFILE) {
    let text: string;
    try {
      text = readFileSync(env.PBS_NODEFILE, "utf8");
    } catch (e) {
      throw new UsageError(`PBS_NODEFILE=${env.PBS_NODEFILE}: cannot read it (${(e as NodeJS.ErrnoException).code})`);
    }
    const hosts = parsePbsNodefile(text);
    if (hosts.length === 0) throw new UsageError(`PBS_NODEFILE=${env.PBS_NODEFILE} names no host`);
    return { source: "pbs", hosts };
  }
  return null;
}

/** Names that mean the machine the launcher runs on. */
export function isLocalName(name: string): boolean {
  const h = hostname();
  return name === "localhost" || name === "127.0.0.1" || name === "::1" || name === h || name === h.split(".")[0];
}

/**
 * Assigns `np` ranks to hosts: by slot (fill each host's slots in order) or by node
 * (round-robin, one rank per host per turn, skipping hosts whose slots are full). Beyond the
 * slots (only with --oversubscribe) ranks go round-robin up to each host's max_slots.
 * Returns, for each host, the ranks it runs, in order.
 */
export function placeRanks(hosts: readonly HostSlots[], np: number, mapBy: "slot" | "node", oversubscribe: boolean, source: HostSource): number[][] {
  const total = hosts.reduce((s, h) => s + h.slots, 0);
  const what = source === "host" ? "--host" : source === "hostfile" ? "the hostfile" : `the ${source === "slurm" ? "Slurm" : "PBS"} allocation`;
  if (np > total && !oversubscribe) {
    throw new UsageError(`-n ${np}: ${what} has ${total} slot${total === 1 ? "" : "s"} (${hosts.map((h) => `${h.name}:${h.slots}`).join(", ")}); add --oversubscribe to run more ranks than slots`);
  }
  const cap = hosts.map((h) => h.maxSlots ?? Infinity);
  const capTotal = cap.reduce((a, b) => a + b, 0);
  if (np > capTotal) throw new UsageError(`-n ${np}: more ranks than the max_slots of ${what} allow (${capTotal})`);
  const placed: number[][] = hosts.map(() => []);
  let rank = 0;
  if (mapBy === "slot") {
    hosts.forEach((h, i) => {
      for (let k = 0; k < h.slots && rank < np; k++) placed[i]!.push(rank++);
    });
  } else {
    while (rank < np && placed.some((p, i) => p.length < hosts[i]!.slots)) {
      hosts.forEach((h, i) => {
        if (rank < np && placed[i]!.length < h.slots) placed[i]!.push(rank++);
      });
    }
  }
  // Oversubscribed: the rest round-robin over the hosts, each up to its max_slots.
  while (rank < np) {
    hosts.forEach((_, i) => {
      if (rank < np && placed[i]!.length < cap[i]!) placed[i]!.push(rank++);
    });
  }
  return placed;
}
