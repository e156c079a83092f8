/**
 * The matching engine: pairs arriving messages with posted receives by (context, source, tag),
 * as MPI does. Messages are kept in arrival order and receives in posting order, so two messages
 * from one source on one context and tag are matched in the order they were sent.
 *
 * Both sides are queued per (context, source), so a message only looks at the receives posted for
 * its own source (plus the ANY_SOURCE ones of its context), and a receive only at its source's
 * messages: the cost does not grow with the number of ranks or of unrelated messages. A sequence
 * number on every entry decides between an ANY_SOURCE entry and a specific one.
 */
import { ANY_SOURCE, ANY_TAG } from "./constants.js";

export interface Incoming {
  kind: number;
  ctx: number;
  /** Sender's world rank. */
  src: number;
  tag: number;
  meta: number;
  frames: Buffer[];
  /**
   * Set when the payload was copied straight into the receive's `into` array (as it left the
   * transport): the number of elements written. `frames` is empty then.
   */
  landed?: number;
  /** For --trace: the message's flow id (see Trace.arrived). */
  flow?: number;
}

export interface Waiter {
  ctx: number;
  /** World rank, or ANY_SOURCE. */
  src: number;
  tag: number;
  /** A recvInto's array: a transport may copy a raw payload straight into it. */
  into?: ArrayBufferView;
  resolve(m: Incoming): void;
  reject(e: Error): void;
  /** The caller's file:line, for reports of what the rank waits for. */
  locate?(): Promise<string | undefined>;
}

/** An entry with its arrival or posting order. */
interface Entry<T> {
  seq: number;
  item: T;
}

/** A queue per (context, source), and per context the list of its queues (for ANY_SOURCE). */
class Queues<T> {
  private readonly bySource = new Map<number, Entry<T>[]>();
  private readonly byContext = new Map<number, Entry<T>[][]>();

  /** The queue of (ctx, src); `src` may be ANY_SOURCE (a queue of its own). */
  get(ctx: number, src: number): Entry<T>[] | undefined {
    return this.bySource.get(key(ctx, src));
  }

  make(ctx: number, src: number): Entry<T>[] {
    const k = key(ctx, src);
    let q = this.bySource.get(k);
    if (!q) {
      q = [];
      this.bySource.set(k, q);
      let list = this.byContext.get(ctx);
      if (!list) this.byContext.set(ctx, (list = []));
      list.push(q);
    }
    return q;
  }

  /** Every queue of `ctx`. */
  ofContext(ctx: number): readonly Entry<T>[][] {
    return this.byContext.get(ctx) ?? NONE;
  }

  all(): IterableIterator<Entry<T>[]> {
    return this.bySource.values();
  }
}

const NONE: never[] = [];

/** One number per (context, source): sources below 2²¹, contexts below 2³¹ stay exact. ANY_SOURCE is −1. */
function key(ctx: number, src: number): number {
  return ctx * 2097152 + (src + 1);
}

/** Index of the first entry of `q` whose tag matches `tag` (ANY_TAG matches all), or −1. */
function firstWithTag<T extends { tag: number }>(q: Entry<T>[] | undefined, tag: number): number {
  if (!q || q.length === 0) return -1;
  if (tag === ANY_TAG) return 0;
  for (let i = 0; i < q.length; i++) if (q[i]!.item.tag === tag) return i;
  return -1;
}

/** Index of the first waiter of `q` that accepts a message tagged `tag`, or −1. */
function firstAccepting(q: Entry<Waiter>[] | undefined, tag: number): number {
  if (!q) return -1;
  for (let i = 0; i < q.length; i++) {
    const t = q[i]!.item.tag;
    if (t === ANY_TAG || t === tag) return i;
  }
  return -1;
}

/**
 * Removes entry `i` of `q` and returns its item. The first, nearly always: shift() moves the rest
 * in place, where splice() also makes an array of what it removed, on every message.
 */
function removeAt<T>(q: Entry<T>[], i: number): T {
  return (i === 0 ? q.shift()! : q.splice(i, 1)[0]!).item;
}

function matches(w: Waiter, m: Incoming): boolean {
  return w.ctx === m.ctx && (w.src === ANY_SOURCE || w.src === m.src) && (w.tag === ANY_TAG || w.tag === m.tag);
}

export class Matcher {
  private readonly unexpected = new Queues<Incoming>();
  private readonly recvs = new Queues<Waiter>();
  private probes: Waiter[] = [];
  private seq = 0;
  /** Receives posted and not yet matched: when none are, an arriving message is only queued. */
  private posted = 0;

  /** Every receive and probe waiting now, for a report of what this rank waits for. */
  waiting(): Waiter[] {
    const out: Waiter[] = [];
    for (const q of this.recvs.all()) for (const e of q) out.push(e.item);
    return [...out, ...this.probes];
  }

  /** A message arrived: complete the oldest matching receive, or keep it for a later one. */
  arrive(m: Incoming): void {
    const w = this.posted > 0 ? this.claim(m.ctx, m.src, m.tag) : undefined;
    if (w) {
      w.resolve(m);
      return;
    }
    this.unexpected.make(m.ctx, m.src).push({ seq: this.seq++, item: m });
    // Probes see only what no posted receive took, as MPI_Probe does.
    if (this.probes.length > 0) {
      const waiting = this.probes;
      this.probes = [];
      for (const p of waiting) {
        if (matches(p, m)) p.resolve(m);
        else this.probes.push(p);
      }
    }
  }

  /**
   * Removes and returns the receive that a message (ctx, src, tag) arriving now would complete:
   * the oldest posted one that matches. A transport that has read only a message's header uses it
   * to copy the payload straight into that receive's array.
   */
  claim(ctx: number, src: number, tag: number): Waiter | undefined {
    const own = this.recvs.get(ctx, src);
    const any = this.recvs.get(ctx, ANY_SOURCE);
    const i = firstAccepting(own, tag);
    const j = firstAccepting(any, tag);
    if (i < 0 && j < 0) return undefined;
    this.posted--;
    if (j < 0 || (i >= 0 && own![i]!.seq < any![j]!.seq)) return removeAt(own!, i);
    return removeAt(any!, j);
  }

  /** Removes and returns the oldest matching message that has arrived. */
  take(ctx: number, src: number, tag: number): Incoming | undefined {
    const found = this.find(ctx, src, tag);
    return found && removeAt(found.q, found.i);
  }

  /** Returns the oldest matching message that has arrived, leaving it queued. */
  peek(ctx: number, src: number, tag: number): Incoming | undefined {
    const found = this.find(ctx, src, tag);
    return found && found.q[found.i]!.item;
  }

  private find(ctx: number, src: number, tag: number): { q: Entry<Incoming>[]; i: number } | undefined {
    if (src !== ANY_SOURCE) {
      const q = this.unexpected.get(ctx, src);
      const i = firstWithTag(q, tag);
      return i < 0 ? undefined : { q: q!, i };
    }
    // ANY_SOURCE: the earliest arrival among every source's first match.
    let best: { q: Entry<Incoming>[]; i: number } | undefined;
    for (const q of this.unexpected.ofContext(ctx)) {
      const i = firstWithTag(q, tag);
      if (i >= 0 && (!best || q[i]!.seq < best.q[best.i]!.seq)) best = { q, i };
    }
    return best;
  }

  postRecv(w: Waiter): void {
    this.posted++;
    this.recvs.make(w.ctx, w.src).push({ seq: this.seq++, item: w });
  }

  postProbe(w: Waiter): void {
    this.probes.push(w);
  }

  /** Rejects every waiting receive and probe for which `failure` gives an error, with that error. */
  failWhere(failure: (w: Waiter) => Error | undefined): void {
    const failed: [Waiter, Error][] = [];
    for (const q of this.recvs.all()) {
      for (let i = 0; i < q.length; ) {
        const e = failure(q[i]!.item);
        if (e) {
          failed.push([q.splice(i, 1)[0]!.item, e]);
          this.posted--;
        } else i++;
      }
    }
    const probes = this.probes;
    this.probes = [];
    for (const p of probes) {
      const e = failure(p);
      if (e) failed.push([p, e]);
      else this.probes.push(p);
    }
    // Rejected after the scan: a rejection handler may post new receives.
    for (const [w, e] of failed) w.reject(e);
  }
}
