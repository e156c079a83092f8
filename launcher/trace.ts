/**
 * `tsmpirun --trace FILE`: the ranks' traces (src/trace.ts), collected at finalize, written as one
 * Chrome trace-event JSON file that Perfetto (https://ui.perfetto.dev) and chrome://tracing open.
 * Spans are written as they arrive; message events are kept until the end, when each send's
 * event is paired with its receive's (one without the other, cut from a ring or lost with a
 * failed rank, is left out: a flow arrow needs both ends).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { TracePart } from "../src/trace.js";
import { UsageError } from "./args.js";

export class TraceFile {
  private readonly fd: number;
  private first = true;
  private readonly flows = new Map<number, number[]>();
  private readonly dropped = new Map<number, number>();
  private readonly complete = new Set<number>();
  private finished = false;

  /** Opens `path` for writing now, so that a path that cannot be written fails before any rank starts. */
  constructor(readonly path: string) {
    try {
      this.fd = openSync(path, "w");
    } catch (e) {
      throw new UsageError(`--trace ${path}: cannot write the trace there: ${(e as Error).message}`);
    }
    writeSync(this.fd, '{"traceEvents":[\n');
  }

  /** A piece of rank `rank`'s trace. */
  add(rank: number, part: TracePart, last: boolean): void {
    for (const e of part.events) this.write(e);
    let f = this.flows.get(rank);
    if (!f) this.flows.set(rank, (f = []));
    for (const x of part.flows) f.push(x);
    if (part.dropped > 0) this.dropped.set(rank, part.dropped);
    if (last) this.complete.add(rank);
  }

  private write(text: string): void {
    writeSync(this.fd, this.first ? text : `,\n${text}`);
    this.first = false;
  }

  /**
   * Writes the paired message events and closes the file. Returns the notes for the user: ranks
   * that sent no trace, and traces cut by their ring.
   */
  finish(size: number): string[] {
    if (this.finished) return [];
    this.finished = true;
    // A message's id appears once at its send (kind 1) and once at its receive (kind 2).
    const seen = new Map<number, number>();
    for (const f of this.flows.values()) for (let i = 0; i < f.length; i += 4) seen.set(f[i + 3]!, (seen.get(f[i + 3]!) ?? 0) | f[i]!);
    for (const [rank, f] of this.flows) {
      for (let i = 0; i < f.length; i += 4) {
        const id = f[i + 3]!;
        if (seen.get(id) !== 3) continue;
        const start = f[i] === 1;
        this.write(JSON.stringify({ name: "message", cat: "message", ph: start ? "s" : "f", ...(start ? {} : { bp: "e" }), id, pid: rank, tid: f[i + 2], ts: f[i + 1] }));
      }
    }
    writeSync(this.fd, `\n],\n"displayTimeUnit":"ms",\n"otherData":${JSON.stringify({ tsmpi: 1, size, ranksTraced: this.complete.size })}}\n`);
    closeSync(this.fd);
    const notes: string[] = [];
    const missing = Array.from({ length: size }, (_, r) => r).filter((r) => !this.complete.has(r));
    if (missing.length > 0) notes.push(`--trace: rank${missing.length === 1 ? "" : "s"} ${list(missing)} sent no trace (a rank sends its trace at finalize); ${this.path} has the others`);
    for (const [rank, n] of this.dropped) notes.push(`--trace: rank ${rank} kept only its last events: ${n} earlier ones were dropped (raise TSMPI_TRACE_EVENTS to keep more)`);
    return notes;
  }
}

function list(ranks: number[]): string {
  return ranks.length > 8 ? `${ranks.slice(0, 8).join(", ")} … (${ranks.length} in all)` : ranks.join(", ");
}
