/**
 * Checks a `--trace` file the way a viewer reads it: every span closed and nested within its
 * track, spans in time order per track, every message's start paired with its end (same cat and
 * id), and each message event inside a span of its own track. Returns what the tests look at.
 */
import { readFileSync } from "node:fs";
import { expect } from "vitest";

export interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  id?: number;
  cat?: string;
  bp?: string;
  args?: Record<string, unknown>;
}

export interface CheckedTrace {
  events: TraceEvent[];
  spans: TraceEvent[];
  /** Messages: the span that sent each and the span that received it. */
  messages: { id: number; from: TraceEvent; to: TraceEvent; sentAt: number; takenAt: number }[];
  /** process_name of each pid. */
  processes: Map<number, string>;
  otherData: Record<string, unknown>;
}

const key = (e: TraceEvent) => `${e.pid}/${e.tid}`;

export function checkTrace(file: string): CheckedTrace {
  const doc = JSON.parse(readFileSync(file, "utf8")) as { traceEvents: TraceEvent[]; otherData: Record<string, unknown> };
  const events = doc.traceEvents;
  expect(Array.isArray(events)).toBe(true);
  const processes = new Map<number, string>();
  for (const e of events) if (e.ph === "M" && e.name === "process_name") processes.set(e.pid, String(e.args!.name));
  const spans = events.filter((e) => e.ph === "X");
  const byTrack = new Map<string, TraceEvent[]>();
  for (const s of spans) {
    expect(typeof s.ts).toBe("number");
    expect(s.dur).toBeGreaterThanOrEqual(0);
    let list = byTrack.get(key(s));
    if (!list) byTrack.set(key(s), (list = []));
    list.push(s);
  }
  for (const [track, list] of byTrack) {
    // In file order, starts never go back; spans are either disjoint or one holds the other.
    for (let i = 1; i < list.length; i++) expect(list[i]!.ts, `track ${track}`).toBeGreaterThanOrEqual(list[i - 1]!.ts);
    const open: TraceEvent[] = [];
    for (const s of list) {
      while (open.length > 0 && open[open.length - 1]!.ts + open[open.length - 1]!.dur! <= s.ts) open.pop();
      const top = open[open.length - 1];
      if (top) expect(s.ts + s.dur!, `span ${s.name} at ${s.ts} on track ${track} overlaps ${top.name} at ${top.ts} without nesting`).toBeLessThanOrEqual(top.ts + top.dur!);
      open.push(s);
    }
  }
  /** The innermost span of `e`'s track that holds its time (what a viewer binds a flow event to). */
  const holder = (e: TraceEvent) => {
    const inside = (byTrack.get(key(e)) ?? []).filter((s) => s.ts <= e.ts && e.ts <= s.ts + s.dur!);
    expect(inside.length, `flow event ${e.ph} ${e.id} at ${e.ts} on ${key(e)} is in no span`).toBeGreaterThan(0);
    return inside.reduce((a, b) => (b.dur! <= a.dur! ? b : a));
  };
  const starts = new Map<number, TraceEvent>();
  const ends = new Map<number, TraceEvent>();
  for (const e of events) {
    if (e.ph !== "s" && e.ph !== "f") continue;
    expect(e.cat).toBe("message");
    const map = e.ph === "s" ? starts : ends;
    expect(map.has(e.id!), `flow id ${e.id} ${e.ph} twice`).toBe(false);
    map.set(e.id!, e);
  }
  expect([...starts.keys()].sort()).toEqual([...ends.keys()].sort());
  const messages = [...starts].map(([id, s]) => {
    const f = ends.get(id)!;
    expect(f.bp).toBe("e");
    return { id, from: holder(s), to: holder(f), sentAt: s.ts, takenAt: f.ts };
  });
  return { events, spans, messages, processes, otherData: doc.otherData };
}
