/**
 * Times the calls of the public classes for `--report` and `--trace`. The point-to-point calls
 * (send and the receives), made thousands of times a second, time themselves (`began`/`ended`,
 * behind one flag check); the other calls are wrapped, once at start-up and only when one of the
 * two is asked for, so a job without them runs the methods as they are.
 */
import { ANY_SOURCE, ANY_TAG } from "./constants.js";
import { activity } from "./report.js";
import { NONE, now, trace } from "./trace.js";

/** Something that wants to know about every call: when it begins, and what it was when it ends. */
export interface CallObserver {
  /** Only observers that need the beginning have it (the report: what is pending). */
  begin?(call: string): void;
  /** `mark`: the trace's record count when a point-to-point call began (−1: none; see Trace.end). */
  end(call: string, peer: number, world: number, tag: number, ctx: number, t0: number, t1: number, mark?: number): void;
}

/** Which argument of a call is its peer or root, and which its tag, with their defaults. */
interface CallShape {
  peer?: [index: number, fallback: number];
  tag?: [index: number, fallback: number];
}

const SOURCE: CallShape["peer"] = [0, ANY_SOURCE];
const ROOT = (i: number): CallShape["peer"] => [i, 0];

/**
 * The communicator's calls that are wrapped. Not send, recv, recvMessage and recvInto: they call
 * `began`/`ended` themselves, with no closure or promise handler per call. Wrapped, their spans
 * were most of what tracing cost heat on 4 ranks, and in a fresh rank a traced send and receive
 * cost 3.5 µs more than an untraced one (2.7 µs now).
 */
export const COMMUNICATOR_CALLS: Record<string, CallShape> = {
  sendrecv: { peer: [1, NONE] },
  sendrecvInto: { peer: [1, NONE] },
  probe: { peer: SOURCE, tag: [1, ANY_TAG] },
  barrier: {}, bcast: { peer: ROOT(1) }, reduce: { peer: ROOT(2) }, allreduce: {}, allreduceInto: {}, gather: { peer: ROOT(1) },
  allgather: {}, scatter: { peer: ROOT(1) }, alltoall: {}, scan: {}, exscan: {}, split: {}, dup: {}, cart: {},
};

/**
 * The grid's calls that are wrapped (named apart from the communicator's collectives). Not
 * `exchange`: it times itself, as the point-to-point calls do.
 */
export const GRID_CALLS: Record<string, CallShape & { as: string }> = {
  gather: { as: "grid.gather", peer: ROOT(0) }, scatter: { as: "grid.scatter", peer: ROOT(1) }, save: { as: "grid.save" },
};

/** The observers this rank has: the report's and the trace's, when asked for. */
export const observers: CallObserver[] = [activity, trace].filter((o): o is NonNullable<typeof o> => o !== null);

/** Calls are timed (--report or --trace): the one check the point-to-point calls make. */
export const observed = observers.length > 0;
/**
 * The trace is the only observer (no --report): the point-to-point calls end their spans with
 * one call into it (Trace.sendEnded, Trace.received), which its warm-up has optimized.
 */
export const traceOnly = trace !== null && activity === null ? trace : null;
const beginners = observers.filter((o) => o.begin !== undefined);

/** A call begins: tells the observers; returns its start time. */
export function began(call: string): number {
  const t0 = now();
  for (let i = 0; i < beginners.length; i++) beginners[i]!.begin!(call);
  return t0;
}

/**
 * The call begun at `t0` ends at `t1` (`peer`, `tag`: NONE when the call has none). `mark`: see
 * `marked`.
 */
export function ended(call: string, peer: number, world: number, tag: number, ctx: number, t0: number, mark = -1, t1 = now()): void {
  for (let i = 0; i < observers.length; i++) observers[i]!.end(call, peer, world, tag, ctx, t0, t1, mark);
}

/**
 * For a point-to-point call, read before its message is recorded: the trace then keeps the call
 * and its message as one record (see Trace.end). −1 when there is no trace.
 */
export const marked = (): number => (trace ? trace.records : -1);

/** Argument `i` of a call's five. */
const pick = (i: number, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown) => (i === 0 ? a : i === 1 ? b : i === 2 ? c : i === 3 ? d : e);
const numberOr = (v: unknown, fallback: number) => (typeof v === "number" ? v : fallback);

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
    const end = (self: unknown, peer: number, tag: number, t0: number) => {
      const group = peer >= 0 ? groupOf(self) : null;
      ended(call, peer, group ? group[peer] ?? peer : peer, tag, ctxOf(self), t0);
    };
    // Five named parameters rather than `arguments` or a rest array: no object is made per call,
    // and none escapes into the closures below (the calls take at most five arguments).
    methods[name] = function (this: unknown, a: unknown, b: unknown, c: unknown, d: unknown, e: unknown) {
      const t0 = began(call);
      const peer = pi < 0 ? NONE : numberOr(pick(pi, a, b, c, d, e), pd);
      const tag = ti < 0 ? NONE : numberOr(pick(ti, a, b, c, d, e), td);
      let r: unknown;
      try {
        r = f.call(this, a, b, c, d, e);
      } catch (err) {
        end(this, peer, tag, t0);
        throw err;
      }
      if (!(r instanceof Promise)) {
        end(this, peer, tag, t0);
        return r;
      }
      // The caller gets the call's own promise, not one chained after ours: a chained one would
      // add a turn of the microtask queue before the caller goes on (5 % of heat's speed on 4
      // ranks, for its `exchange`). Ours was attached first, so it still ends the span first.
      const self = this;
      const done = () => end(self, peer, tag, t0);
      void r.then(done, done);
      return r;
    };
  }
}
