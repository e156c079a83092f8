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
  begin(t0: number): void;
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
  barrier: {}, bcast: { peer: ROOT(1) }, reduce: { peer: ROOT(2) }, allreduce: {}, gather: { peer: ROOT(1) },
  allgather: {}, scatter: { peer: ROOT(1) }, alltoall: {}, scan: {}, exscan: {}, split: {}, dup: {}, cart: {},
};

/** The grid's calls that are timed (named apart from the communicator's collectives). */
export const GRID_CALLS: Record<string, CallShape & { as: string }> = {
  exchange: { as: "exchange" }, gather: { as: "grid.gather", peer: ROOT(0) }, scatter: { as: "grid.scatter", peer: ROOT(1) }, save: { as: "grid.save" },
};

/** The observers this rank has: the report's and the trace's, when asked for. */
export const observers: CallObserver[] = [activity, trace].filter((o): o is NonNullable<typeof o> => o !== null);

/**
 * Wraps `calls` of `proto` so that every observer sees each call. `where(self)` gives the
 * communicator the call is made on: its id, and its group to name peers by world rank.
 */
export function instrument(proto: object, calls: Record<string, CallShape & { as?: string }>, where: (self: unknown) => { ctx: number; group: readonly number[] | null }): void {
  if (observers.length === 0) return;
  const methods = proto as Record<string, (...args: unknown[]) => unknown>;
  for (const [name, shape] of Object.entries(calls)) {
    const f = methods[name];
    if (typeof f !== "function") continue;
    const call = shape.as ?? name;
    const ended = (self: unknown, args: IArguments, t0: number) => {
      const t1 = performance.now();
      const peer = shape.peer ? (typeof args[shape.peer[0]] === "number" ? (args[shape.peer[0]] as number) : shape.peer[1]) : NONE;
      const tag = shape.tag ? (typeof args[shape.tag[0]] === "number" ? (args[shape.tag[0]] as number) : shape.tag[1]) : NONE;
      const { ctx, group } = where(self);
      const world = peer >= 0 && group ? group[peer] ?? peer : peer;
      for (const o of observers) o.end(call, peer, world, tag, ctx, t0, t1);
    };
    methods[name] = function (this: unknown) {
      // `arguments`, not a rest parameter: no array is made on every message.
      // eslint-disable-next-line prefer-rest-params
      const args = arguments;
      const t0 = performance.now();
      for (const o of observers) o.begin(t0);
      let r: unknown;
      try {
        r = f.apply(this, args as unknown as unknown[]);
      } catch (e) {
        ended(this, args, t0);
        throw e;
      }
      // A send that completed at once (the engine's own resolved promise) ends now: no promise
      // of ours on top of it, and no turn of the microtask queue added to every small message.
      if (r === SENT || !(r instanceof Promise)) {
        ended(this, args, t0);
        return r;
      }
      return r.then(
        (v: unknown) => (ended(this, args, t0), v),
        (e: unknown) => {
          ended(this, args, t0);
          throw e;
        },
      );
    };
  }
}
