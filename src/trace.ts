/**
 * What a rank did, in time, for `tsmpirun --trace`: a span for every tsmpi call and an event for
 * every message sent and taken by a receive. Kept only when the launcher asks for it
 * (TSMPI_TRACE=1): otherwise nothing here runs, and the message path pays one null check.
 *
 * Records go into a ring (the last TSMPI_TRACE_EVENTS, 10⁶ by default), as plain numbers: the
 * work of turning them into trace events (lanes, flow binding, JSON) is done once, at finalize.
 */
import { performance } from "node:perf_hooks";
import { ANY_SOURCE, ANY_TAG, PROC_NULL } from "./constants.js";

const SPAN = 0;
const OUT = 1;
const IN = 2;
/**
 * A point-to-point call and the one message it sent or took, in one record (see `end`): a span
 * that carries its flow. Half the records, and half the work per message, of a span and a flow.
 */
const OUT_CALL = 3;
const IN_CALL = 4;

/** Trace time unit: 125 ns, so that every time in µs is an exact binary fraction (k / 8) and survives JSON. */
const TICKS_PER_MS = 8000;

/** Records the ring has room for from the start (see start). */
const INITIAL_RECORDS = 1 << 16;

/**
 * The clock of calls and messages (performance.now(), ms). One function for every timed call, so
 * that the warm-up (see Trace.warmUp) hands the job an optimized one.
 */
export const now = (): number => performance.now();

/**
 * Rounds of the warm-up (see Trace.warmUp): enough for V8 to mark each recording method for
 * optimization under the launcher's interrupt budget (launcher/rank-hooks.ts); 10,000 were
 * measured to be just enough. ~25 ms of a traced rank's start.
 */
const WARM_UP_ROUNDS = 16_000;

/** A call without a peer (or root) or without a tag. */
export const NONE = -1000;

/** One rank's share of the trace, as it travels to the launcher at finalize (in chunks). */
export interface TracePart {
  /** Trace events (spans and metadata) as JSON texts, ready for the file. */
  events: string[];
  /** Flow events, four numbers each: kind (1 = start at a send, 2 = end at a receive), time in µs, lane, id. */
  flows: number[];
  /** Records the ring dropped (oldest first) because it was full. */
  dropped: number;
}

/** Which calls may contain others (their own messages or calls), and which are single operations. */
const LEAF = new Set(["send", "recv", "recvMessage", "recvInto", "probe"]);
const SENDS = new Set(["send", "sendrecv", "sendrecvInto"]);
const RECEIVES = new Set(["recv", "recvMessage", "recvInto", "sendrecv", "sendrecvInto"]);

interface Span {
  s: number;
  e: number;
  name: string;
  /** Peer or root as the caller gave it (rank in the communicator), its world rank, tag (NONE: none), communicator id (−1: none). */
  peer: number;
  world: number;
  tag: number;
  ctx: number;
  sent: number;
  received: number;
  lane: number;
}

interface Flow {
  kind: number;
  t: number;
  id: number;
  /** World rank at the other end, wire context, tag, bytes. */
  peer: number;
  ctx: number;
  tag: number;
  bytes: number;
  span: Span | null;
}

export class Trace {
  private cap: number;
  private n = 0;
  private head = 0;
  private dropped = 0;
  private t0 = new Float64Array(0);
  private t1 = new Float64Array(0);
  private x = new Float64Array(0);
  /**
   * An Int32Array, not a Uint8Array: code that writes a Uint8Array is optimized on the assumption
   * that no Uint8Array has changed prototype yet, and the first Buffer that native code makes over
   * external memory (a shared-memory segment mapped, a ZeroMQ message received) breaks it: V8
   * throws that code away, and in a job as short as heat it is not optimized again.
   */
  private kind = new Int32Array(0);
  private name = new Int32Array(0);
  private peer = new Int32Array(0);
  private world = new Int32Array(0);
  private tag = new Int32Array(0);
  private ctx = new Int32Array(0);
  /** A call's message's bytes (OUT_CALL, IN_CALL records). */
  private bytes = new Float64Array(0);
  private readonly names: string[] = [];
  private readonly nameIds = new Map<string, number>();
  private rank = 0;
  private size = 1;
  /** Messages sent to / arrived from each world rank: a message's sequence number on its pair of ranks. */
  private outSeq = new Float64Array(1);
  private inSeq = new Float64Array(1);
  /** Flow ids are (src · size + dst) · 2^k + sequence: unique in the job, below 2^53. */
  private pairScale = 1;
  /**
   * What turns this process's performance.now() into the job's time line (ms since the launcher
   * started the job, on the launcher's host clock): ranks on the launcher's host share that
   * clock; an agent on another host measured how far that host's clock is from the launcher's.
   */
  offset = 0;

  constructor(capacity: number) {
    this.cap = Math.max(16, capacity);
  }

  /** Sets the rank and job size (at init). */
  start(rank: number, size: number): void {
    this.rank = rank;
    this.size = size;
    this.outSeq = new Float64Array(size);
    this.inSeq = new Float64Array(size);
    this.pairScale = 2 ** (53 - Math.ceil(Math.log2(Math.max(2, size * size))));
    // Room for a short job's records at once (3.3 MiB): growing copies every array, and new
    // arrays early in a job cost collections while the job is timing itself.
    const want = Math.min(this.cap, INITIAL_RECORDS);
    if (this.t0.length < want) this.grow(want);
  }

  /** Records made so far (dropped ones included): a call reads it before its message goes out. */
  records = 0;
  /** Where the latest record is. */
  private last = -1;

  private slot(): number {
    this.records++;
    if (this.n < this.t0.length) return (this.last = this.n++);
    if (this.n < this.cap) {
      this.grow(Math.min(this.cap, Math.max(1024, 2 * this.n)));
      return (this.last = this.n++);
    }
    const i = this.head;
    this.head = (this.head + 1) % this.n;
    this.dropped++;
    return (this.last = i);
  }

  private grow(to: number): void {
    const f64 = (a: Float64Array) => (((b) => (b.set(a), b))(new Float64Array(to)));
    const i32 = (a: Int32Array) => (((b) => (b.set(a), b))(new Int32Array(to)));
    this.t0 = f64(this.t0);
    this.t1 = f64(this.t1);
    this.x = f64(this.x);
    this.bytes = f64(this.bytes);
    this.kind = i32(this.kind);
    this.name = i32(this.name);
    this.peer = i32(this.peer);
    this.world = i32(this.world);
    this.tag = i32(this.tag);
    this.ctx = i32(this.ctx);
  }

  private nameId(name: string): number {
    let id = this.nameIds.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.names.push(name);
      this.nameIds.set(name, id);
    }
    return id;
  }

  /**
   * As an observer of calls: the call ended; recorded as a span. `mark`: `records` when the call
   * began, for a point-to-point call. When its one message is the latest record (nothing else
   * was recorded since), that record becomes the call's: a send's flow starts where the call
   * starts, a receive's ends where it ends.
   */
  end(call: string, peer: number, world: number, tag: number, ctx: number, t0: number, t1: number, mark = -1): void {
    const i = this.last;
    const k = call === "send" ? OUT : IN;
    if (mark < 0 || this.records !== mark + 1 || this.kind[i] !== k) return this.span(call, peer, world, tag, ctx, t0, t1);
    this.bytes[i] = this.t1[i]!;
    this.call(i, k === OUT ? OUT_CALL : IN_CALL, call, peer, world, tag, ctx, t0, t1);
  }

  /** A call that ran from `t0` to `t1` (performance.now() ms); `peer`/`tag` NONE: the call has none. */
  span(name: string, peer: number, world: number, tag: number, ctx: number, t0: number, t1: number): void {
    this.call(this.slot(), SPAN, name, peer, world, tag, ctx, t0, t1);
  }

  /** Record `i` holds a call (SPAN, OUT_CALL or IN_CALL). */
  private call(i: number, kind: number, name: string, peer: number, world: number, tag: number, ctx: number, t0: number, t1: number): void {
    this.kind[i] = kind;
    this.t0[i] = t0;
    this.t1[i] = t1;
    this.name[i] = this.nameId(name);
    this.peer[i] = peer;
    this.world[i] = world;
    this.tag[i] = tag;
    this.ctx[i] = ctx;
  }

  private flow(kind: number, id: number, peer: number, ctx: number, tag: number, bytes: number, at: number): void {
    const i = this.slot();
    this.kind[i] = kind;
    this.t0[i] = at;
    this.t1[i] = bytes;
    this.x[i] = id;
    this.world[i] = peer;
    this.ctx[i] = ctx;
    this.tag[i] = tag;
  }

  /**
   * A message to world rank `dest` leaves now. Called in the order messages go on the wire.
   * `at` ≥ 0: the time the send call that makes it began, read already (a clock read costs
   * 0.2–0.3 µs in code V8 has not optimized yet, as a rank's is for its first thousands of calls).
   */
  sent(dest: number, ctx: number, tag: number, bytes: number, at = -1): void {
    this.flow(OUT, (this.rank * this.size + dest) * this.pairScale + this.outSeq[dest]++, dest, ctx, tag, bytes, at < 0 ? now() : at);
  }

  /** The id of the next message from world rank `src` (called as messages arrive, in order). */
  arrived(src: number): number {
    return (src * this.size + this.rank) * this.pairScale + this.inSeq[src]++;
  }

  /** A receive took message `id` from `src` now. */
  taken(id: number, src: number, ctx: number, tag: number, bytes: number, at = now()): void {
    this.flow(IN, id, src, ctx, tag, bytes, at);
  }

  /**
   * A send that completed at once ends now: `end` with the clock read here. What the point-to-
   * point calls call when the trace is the only observer (no --report): one call into code the
   * warm-up has optimized, instead of a chain of small ones that stay unoptimized.
   */
  sendEnded(peer: number, world: number, tag: number, ctx: number, t0: number, mark: number): void {
    this.end("send", peer, world, tag, ctx, t0, now(), mark);
  }

  /**
   * A timed receive ends now, having taken message `flow` (undefined: sent before the trace
   * began) from `src` with `msgCtx`/`msgTag`, `bytes` of payload; `peer`, `world`, `tag` and
   * `ctx` (a wire context) are the receive's own, as the caller asked. As `sendEnded`.
   */
  received(call: string, peer: number, world: number, tag: number, ctx: number, t0: number, flow: number | undefined, src: number, msgCtx: number, msgTag: number, bytes: number): void {
    const t1 = now();
    const mark = this.records;
    if (flow !== undefined) this.taken(flow, src, msgCtx, msgTag, bytes, t1);
    this.end(call, peer, world, tag, ctx >> 1, t0, t1, mark);
  }

  /**
   * Records `rounds` rounds of calls and messages of every kind, then forgets them (the names
   * too): the job starts with the recording methods optimized. The launcher's large interrupt
   * budget (launcher/rank-hooks.ts) spares ranks compiling the message path again and again, but
   * a method called a few times per step, as these are, then stays unoptimized for a whole short
   * job, where recording a call and its message costs ~1 µs more than in optimized code
   * (16-rank heat traced: 10 % slower than plain without a warm-up that lasts, 3 % with one;
   * see the README's benchmarks). Called at init once the transport is up, not earlier: opening
   * it throws optimized code like this away (see runtime.ts). This instance is warmed, not a
   * scratch one: optimized code is bound to the object's shape. For the same reason the rounds
   * take every branch the job's calls can take (a message without its call, a call without its
   * message, a new call name, the clock read here) and values past the small-integer range, so
   * that no field changes representation later.
   */
  warmUp(rounds = WARM_UP_ROUNDS): void {
    // A small ring, so that its growing and its wrapping happen too, early, while V8 is still
    // gathering what the code meets (a branch first met in optimized code throws that code away).
    const cap = this.cap;
    this.cap = Math.min(cap, 1024);
    this.start(1, 4);
    this.cap = Math.min(cap, 4096);
    const names = ["send", "recvInto", "recv", "exchange"];
    for (let i = 0; i < rounds; i++) {
      const tag = (i & 31) === 7 ? 0xfffffff0 : 5;
      const ctx = (i & 63) === 9 ? 2 ** 31 + 1 : i & 1;
      const a = now();
      const m = this.records;
      this.sent(2, ctx, tag, 1024, (i & 7) === 0 ? -1 : a);
      if ((i & 15) === 1) this.sent(3, 1, tag, 8);
      this.end("send", 2, 2, tag, 0, a, now(), m);
      const b = now();
      const m2 = this.records;
      if ((i & 7) === 3) this.taken(this.arrived(2), 2, ctx, tag, 1024);
      else this.taken(this.arrived(2), 2, ctx, tag, 1024, b);
      this.end((i & 1023) === 5 ? `warm-up ${i}` : names[i & 3]!, (i & 7) === 0 ? ANY_SOURCE : 2, 2, (i & 7) === 4 ? ANY_TAG : tag, ctx, a, b, (i & 15) === 0 ? -1 : m2);
      if ((i & 3) === 0) this.span("exchange", NONE, NONE, NONE, 1, a, b);
    }
    // A loop of its own for a send's ending: in a loop that calls more, V8 compiles the loop
    // itself first (on-stack replacement) with it inlined, and it would not run up a budget of
    // its own. (Trace.received does not get there either way within a warm-up this short.)
    for (let i = 0; i < rounds; i++) {
      const c = now();
      const m = this.records;
      if ((i & 15) !== 2) this.sent(2, i & 1, (i & 31) === 7 ? 0xfffffff0 : 5, 64, c);
      this.sendEnded(2, 2, 5, i & 1, c, m);
    }
    this.cap = cap;
    this.n = this.head = this.dropped = this.records = 0;
    this.last = -1;
    this.outSeq.fill(0);
    this.inSeq.fill(0);
    this.names.length = 0;
    this.nameIds.clear();
  }

  /**
   * The trace events of this rank, in the launcher's time (µs since the job started): spans on
   * lanes so that they nest (calls pending at once go side by side), and each message event
   * bound to the call it belongs to.
   */
  export(host: string): TracePart {
    const toTicks = (ms: number) => Math.round((ms + this.offset) * TICKS_PER_MS);
    const spans: Span[] = [];
    const flows: Flow[] = [];
    for (let k = 0; k < this.n; k++) {
      const i = (this.head + k) % this.n;
      const kind = this.kind[i]!;
      if (kind === SPAN || kind === OUT_CALL || kind === IN_CALL) {
        const s = toTicks(this.t0[i]!);
        const span: Span = { s, e: Math.max(toTicks(this.t1[i]!), s + 2), name: this.names[this.name[i]!]!, peer: this.peer[i]!, world: this.world[i]!, tag: this.tag[i]!, ctx: this.ctx[i]!, sent: 0, received: 0, lane: 0 };
        spans.push(span);
        if (kind === SPAN) continue;
        const out = kind === OUT_CALL;
        flows.push({ kind: out ? OUT : IN, t: out ? span.s : span.e, id: this.x[i]!, peer: span.world, ctx: -1, tag: span.tag, bytes: this.bytes[i]!, span });
      } else {
        flows.push({ kind: this.kind[i]!, t: toTicks(this.t0[i]!), id: this.x[i]!, peer: this.world[i]!, ctx: this.ctx[i]!, tag: this.tag[i]!, bytes: this.t1[i]!, span: null });
      }
    }
    bind(spans, flows);
    lanes(spans);
    const events: string[] = [
      meta("process_name", this.rank, 0, { name: `rank ${this.rank} (${host})` }),
      meta("process_sort_index", this.rank, 0, { sort_index: this.rank }),
    ];
    const laneCount = spans.reduce((m, s) => Math.max(m, s.lane + 1), 1);
    for (let l = 0; l < laneCount; l++) events.push(meta("thread_name", this.rank, l, { name: l === 0 ? "tsmpi calls" : `tsmpi calls (${l + 1})` }));
    if (this.dropped > 0 && spans.length > 0) {
      events.push(JSON.stringify({ name: `trace cut: ${this.dropped} earlier events were dropped (TSMPI_TRACE_EVENTS=${this.cap})`, ph: "i", s: "p", pid: this.rank, tid: 0, ts: spans[0]!.s / 8 }));
    }
    for (const s of spans) {
      events.push(JSON.stringify({ name: s.name, cat: "tsmpi", ph: "X", pid: this.rank, tid: s.lane, ts: s.s / 8, dur: (s.e - s.s) / 8, args: spanArgs(s) }));
    }
    const out: number[] = [];
    for (const f of flows) {
      const sp = f.span!;
      // Strictly inside its span, so that the viewer binds it to that span and no other.
      const t = Math.min(Math.max(f.t, sp.s + 1), sp.e - 1);
      out.push(f.kind, t / 8, sp.lane, f.id);
    }
    return { events, flows: out, dropped: this.dropped };
  }
}

function meta(name: string, pid: number, tid: number, args: object): string {
  return JSON.stringify({ name, ph: "M", pid, tid, args });
}

const ROOTED = new Set(["bcast", "reduce", "gather", "scatter"]);

function spanArgs(s: Span): Record<string, number | string> {
  const a: Record<string, number | string> = {};
  if (s.peer !== NONE) {
    const role = ROOTED.has(s.name) ? "root" : SENDS.has(s.name) ? "dest" : "source";
    a[role] = s.peer === ANY_SOURCE ? "ANY_SOURCE" : s.peer === PROC_NULL ? "PROC_NULL" : s.peer;
  }
  if (s.tag !== NONE) a.tag = s.tag === ANY_TAG ? "ANY_TAG" : s.tag;
  if (s.ctx >= 0) a.communicator = s.ctx;
  if (s.sent > 0) a.bytesSent = s.sent;
  if (s.received > 0) a.bytesReceived = s.received;
  return a;
}

/** Can this span have sent (`OUT`) or taken (`IN`) this message? */
function fits(s: Span, f: Flow): boolean {
  if (f.kind === OUT ? s.name === "probe" || (LEAF.has(s.name) && !SENDS.has(s.name)) : s.name === "send" || s.name === "probe") return false;
  if (!LEAF.has(s.name) && !SENDS.has(s.name) && !RECEIVES.has(s.name)) return true;
  // A point-to-point call: its own communicator (even wire contexts), peer and tag.
  if (f.ctx !== 2 * s.ctx) return false;
  if (f.kind === OUT) return SENDS.has(s.name) && s.world === f.peer && (s.name !== "send" || s.tag === f.tag);
  if (s.name === "sendrecv" || s.name === "sendrecvInto") return true;
  return (s.world === f.peer || s.peer === ANY_SOURCE) && (s.tag === ANY_TAG || s.tag === f.tag);
}

/**
 * Binds every message event not recorded with its call to the innermost call pending at its time
 * that could have made it, and counts its bytes there. An event no call contains (a library's internal message) gets a
 * short span of its own.
 */
function bind(spans: Span[], flows: Flow[]): void {
  spans.sort((a, b) => a.s - b.s || b.e - a.e);
  flows.sort((a, b) => a.t - b.t);
  const active: Span[] = [];
  const extra: Span[] = [];
  let next = 0;
  for (const f of flows) {
    if (f.span) {
      // Recorded with its call (OUT_CALL, IN_CALL).
      if (f.kind === OUT) f.span.sent += f.bytes;
      else f.span.received += f.bytes;
      continue;
    }
    while (next < spans.length && spans[next]!.s <= f.t) active.push(spans[next++]!);
    let best: Span | null = null;
    for (let j = active.length - 1; j >= 0; j--) {
      const s = active[j]!;
      if (s.e < f.t) {
        active.splice(j, 1);
        continue;
      }
      if (fits(s, f) && (!best || s.e - s.s < best.e - best.s)) best = s;
    }
    if (!best) {
      best = { s: f.t - 1, e: f.t + 1, name: f.kind === OUT ? "send (internal)" : "recv (internal)", peer: NONE, world: f.peer, tag: NONE, ctx: -1, sent: 0, received: 0, lane: 0 };
      extra.push(best);
    }
    if (f.kind === OUT) best.sent += f.bytes;
    else best.received += f.bytes;
    f.span = best;
  }
  if (extra.length > 0) {
    spans.push(...extra);
    spans.sort((a, b) => a.s - b.s || b.e - a.e);
  }
}

/**
 * Puts each span on the first lane where it nests: inside the call open there (when that call
 * can contain others), or where nothing is open. Spans come sorted by start, longest first.
 */
function lanes(spans: Span[]): void {
  const open: Span[][] = [];
  for (const s of spans) {
    for (let l = 0; ; l++) {
      const stack = (open[l] ??= []);
      while (stack.length > 0 && stack[stack.length - 1]!.e <= s.s) stack.pop();
      const top = stack[stack.length - 1];
      if (!top || (!LEAF.has(top.name) && !top.name.endsWith("(internal)") && top.e >= s.e)) {
        s.lane = l;
        stack.push(s);
        break;
      }
    }
  }
}

function capacity(): number {
  const v = process.env.TSMPI_TRACE_EVENTS;
  const n = v === undefined ? 1_000_000 : Number(v);
  return Number.isInteger(n) && n > 0 ? n : 1_000_000;
}

/**
 * For tests of the alignment: TSMPI_TEST_CLOCK_SKEW="h2:5000,h3:-3000" makes hosts h2 and h3
 * read their clocks that many ms off (on one machine, every host's clock is the same one).
 */
export function testSkew(host: string | undefined, spec = process.env.TSMPI_TEST_CLOCK_SKEW): number {
  for (const item of (spec ?? "").split(",")) {
    const [h, ms] = item.split(":");
    if (h === host && Number.isFinite(Number(ms))) return Number(ms);
  }
  return 0;
}

/**
 * The host's clock in ms: CLOCK_MONOTONIC, the same for every process of a host (network
 * namespaces included). Not performance.timeOrigin + performance.now(): the origin is a wall
 * time taken once at start-up, and a process started on a loaded machine can have it several
 * ms off from its neighbours' (measured: a message received 6.6 ms before it was sent).
 */
export const hostClock = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * host clock − performance.now(), in ms. Both count from the same monotonic clock, so this is a
 * constant of the process; it is read between two performance.now() calls, from the tightest of
 * a few tries, so that a preemption between two reads cannot shift a rank's whole trace.
 */
function hostMinusPerformance(): number {
  let best = { gap: Infinity, value: 0 };
  for (let i = 0; i < 9; i++) {
    const a = performance.now();
    const h = hostClock();
    const b = performance.now();
    if (b - a < best.gap) best = { gap: b - a, value: h - (a + b) / 2 };
  }
  return best.value;
}

function jobClock(): number {
  const toHost = hostMinusPerformance() + testSkew(process.env.TSMPI_HOST_ID);
  const epoch = Number(process.env.TSMPI_TRACE_EPOCH ?? toHost);
  const hostOffset = Number(process.env.TSMPI_CLOCK_OFFSET ?? 0);
  return toHost - epoch + (Number.isFinite(hostOffset) ? hostOffset : 0);
}

/** This rank's trace, or null when no trace was asked for. */
export const trace: Trace | null = process.env.TSMPI_TRACE === "1" ? Object.assign(new Trace(capacity()), { offset: jobClock() }) : null;
