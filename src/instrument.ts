/**
 * Times the calls of the public classes for `--report` and `--trace`: their methods are wrapped,
 * once at start-up and only when one of them is asked for, so a job without them runs the
 * methods as they are.
 */
import { performance } from "node:perf_hooks";
import { ANY_SOURCE, ANY_TAG } from "./constants.js";
import { activity } from "./report.js";
import { SENT } from "./transport/index.js";
import { NONE, trace } from "./trace.js";

/** Something that wants to know about every call: when it begins, and what it was when it ends. */
export interface CallObserver {
  begin(call: string): void;
  end(call: string, peer: number, world: number, tag: number, ctx: number, t0: number, t1: number): void;
}

/** Which argument of a call is its peer or root, and which its tag, with their defaults. */
interface CallShape {
  peer?: [index: number, fallback: number];
  tag?: [index: number, fallback: number];
}

const SOURCE: CallShape["peer"] = [0, ANY_SOURCE];
const ROOT = (i: number): CallShape["peer"] => [i, 0];

/** The communicator's calls that are timed. */
export const COMMUNICATOR_CALLS: Record<string, CallShape> = {
  send: { peer: [1, NONE], tag: [2, 0] },
  recv: { peer: SOURCE, tag: [1, ANY_TAG] },
  recvMessage: { peer: SOURCE, tag: [1, ANY_TAG] },
  recvInto: { peer: [1, ANY_SOURCE], tag: [2, ANY_TAG] },
  sendrecv: { peer: [1, NONE] },
  sendrecvInto: { peer: [1, NONE] },
  probe: { peer: SOURCE, tag: [1, ANY_TAG] },
  barrier: {}, bcast: { peer: ROOT(1) }, reduce: { peer: ROOT(2) }, allreduce: {}, allreduceInto: {}, gather: { peer: ROOT(1) },
  allgather: {}, scatter: { peer: ROOT(1) }, alltoall: {}, scan: {}, exscan: {}, split: {}, dup: {}, cart: {},
};

/** The grid's calls that are timed (named apart from the communicator's collectives). */
export const GRID_CALLS: Record<string, CallShape & { as: string }> = {
  exchange: { as: "exchange" }, gather: { as: "grid.gather", peer: ROOT(0) }, scatter: { as: "grid.scatter", peer: ROOT(1) }, save: { as: "grid.save" },
};

/** The observers this rank has: the report's and the trace's, when asked for. */
export const observers: CallObserver[] = [activity, trace].filter((o): o is NonNullable<typeof o> => o !== null);

/** Argument `i` of a call's five. */
const pick = (i: number, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown) => (i === 0 ? a : i === 1 ? b : i === 2 ? c : i === 3 ? d : e);
const numberOr = (v: unknown, fallback: number) => (typeof v === "number" ? v : fallback);

/**
 * The receive the engine posted last (set only while calls are observed). The engine tells the
 * wrapper when it settles a receive (`settled`), so the receive's span ends without a promise of
 * the wrapper's on top: an extra turn of the microtask queue on each receive, with ranks
 * oversubscribed, cost up to 10 % of heat's speed (the next receive is posted later, and a
 * transport with nothing posted stops polling). A slot that the wrapper reads right after its
 * call, rather than a WeakMap from promise to receive: a WeakMap entry per receive made every
 * young-generation collection walk its entries, and tracing cost 2 µs per message.
 */
interface Posted {
  readonly promise: Promise<unknown>;
  settled: (() => void) | null;
}
export const posted: { last: Posted | null } | null = observers.length > 0 ? { last: null } : null;

/** The receive the engine posted since the wrapper cleared the slot, if any; clears it. */
function takePosted(): Posted | null {
  const w = posted!.last;
  posted!.last = null;
  return w;
}

/**
 * Wraps `calls` of `proto` so that every observer sees each call. `ctxOf(self)` and
 * `groupOf(self)` give the communicator the call is made on: its id, and its group (world
 * ranks) to name peers by world rank. Per call, one closure is made: the one that ends its span.
 */
export function instrument(
  proto: object,
  calls: Record<string, CallShape & { as?: string }>,
  ctxOf: (self: unknown) => number,
  groupOf: (self: unknown) => readonly number[] | null,
): void {
  if (observers.length === 0) return;
  const methods = proto as Record<string, (this: unknown, ...args: unknown[]) => unknown>;
  for (const [name, shape] of Object.entries(calls)) {
    const f = methods[name];
    if (typeof f !== "function") continue;
    const call = shape.as ?? name;
    const [pi, pd] = shape.peer ?? [-1, NONE];
    const [ti, td] = shape.tag ?? [-1, NONE];
    const ended = (self: unknown, peer: number, tag: number, t0: number) => {
      const t1 = performance.now();
      const group = peer >= 0 ? groupOf(self) : null;
      const world = group ? group[peer] ?? peer : peer;
      for (const o of observers) o.end(call, peer, world, tag, ctxOf(self), t0, t1);
    };
    // Five named parameters rather than `arguments` or a rest array: no object is made per call,
    // and none escapes into the closures below (the calls take at most five arguments).
    methods[name] = function (this: unknown, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown) {
      const t0 = performance.now();
      for (const o of observers) o.begin(call);
      const peer = pi < 0 ? NONE : numberOr(pick(pi, a, b, c, d, e), pd);
      const tag = ti < 0 ? NONE : numberOr(pick(ti, a, b, c, d, e), td);
      posted!.last = null;
      let r: unknown;
      try {
        r = f.call(this, a, b, c, d, e);
      } catch (err) {
        ended(this, peer, tag, t0);
        throw err;
      }
      // A send that completed at once (the engine's own resolved promise) ends now: no promise
      // of ours on top of it, and no turn of the microtask queue added to every small message.
      if (r === SENT || !(r instanceof Promise)) {
        ended(this, peer, tag, t0);
        return r;
      }
      // The receive this call posted, if the promise it returned is that receive's own (a
      // collective returns a promise of its own, and is ended below).
      const w = takePosted();
      const self = this;
      if (w !== null && w.promise === r) {
        w.settled = () => ended(self, peer, tag, t0);
        return r;
      }
      // The caller gets the call's own promise, not one chained after ours: a chained one would
      // add a turn of the microtask queue before the caller goes on (5 % of heat's speed on 4
      // ranks, for its `exchange`). Ours was attached first, so it still ends the span first.
      const end = () => ended(self, peer, tag, t0);
      void r.then(end, end);
      return r;
    };
  }
}
