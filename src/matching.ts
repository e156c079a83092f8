/**
 * The matching engine: pairs arriving messages with posted receives by (context, source, tag),
 * as MPI does. Messages are kept in arrival order and receives in posting order, so two messages
 * from one source on one context and tag are matched in the order they were sent.
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
}

export interface Waiter {
  ctx: number;
  /** World rank, or ANY_SOURCE. */
  src: number;
  tag: number;
  resolve(m: Incoming): void;
  reject(e: Error): void;
}

function matches(w: { ctx: number; src: number; tag: number }, m: Incoming): boolean {
  return w.ctx === m.ctx && (w.src === ANY_SOURCE || w.src === m.src) && (w.tag === ANY_TAG || w.tag === m.tag);
}

export class Matcher {
  private readonly unexpected: Incoming[] = [];
  private readonly recvs: Waiter[] = [];
  private readonly probes: Waiter[] = [];

  /** A message arrived: complete the oldest matching receive, or keep it for a later one. */
  arrive(m: Incoming): void {
    const i = this.recvs.findIndex((w) => matches(w, m));
    if (i >= 0) {
      this.recvs.splice(i, 1)[0]!.resolve(m);
      return;
    }
    this.unexpected.push(m);
    // Probes see only what no posted receive took, as MPI_Probe does.
    for (let j = 0; j < this.probes.length; ) {
      const p = this.probes[j]!;
      if (matches(p, m)) {
        this.probes.splice(j, 1);
        p.resolve(m);
      } else j++;
    }
  }

  /** Removes and returns the oldest matching message that has arrived. */
  take(ctx: number, src: number, tag: number): Incoming | undefined {
    const i = this.unexpected.findIndex((m) => matches({ ctx, src, tag }, m));
    return i >= 0 ? this.unexpected.splice(i, 1)[0] : undefined;
  }

  /** Returns the oldest matching message that has arrived, leaving it queued. */
  peek(ctx: number, src: number, tag: number): Incoming | undefined {
    return this.unexpected.find((m) => matches({ ctx, src, tag }, m));
  }

  postRecv(w: Waiter): void {
    this.recvs.push(w);
  }

  postProbe(w: Waiter): void {
    this.probes.push(w);
  }

  /** Rejects every waiting receive and probe for which `pred` holds. */
  failWhere(pred: (w: Waiter) => boolean, err: (w: Waiter) => Error): void {
    for (const list of [this.recvs, this.probes]) {
      for (let i = 0; i < list.length; ) {
        const w = list[i]!;
        if (pred(w)) {
          list.splice(i, 1);
          w.reject(err(w));
        } else i++;
      }
    }
  }
}
