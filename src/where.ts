/**
 * Where the user's code awaits a call that waits (file:line), for the reports of a job that
 * hangs. Found only when a report asks, so calls cost nothing for it: capturing a stack on every
 * call costs 2–4 µs here, more than a whole message.
 */
import { basename, dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** This library's own source folders: their frames are not the user's. */
const OWN = ((): string[] => {
  const here = dirname(fileURLToPath(import.meta.url));
  // Built (dist/bundle or dist/src): source maps may name src/, as stacks are mapped with
  // --enable-source-maps.
  return basename(dirname(here)) === "dist" ? [here, resolve(here, "..", "..", "src")] : [here];
})();

/**
 * The user's file:line in a stack trace's text: the first frame that is neither this library's
 * nor Node's own, relative to the working folder when inside it. Undefined when there is none.
 */
export function userFrame(stack: string, cwd = process.cwd()): string | undefined {
  for (const line of stack.split("\n")) {
    const frame = /^\s+at (?:async )?(?:.*\((.+)\)|(.+))$/.exec(line);
    const place = frame?.[1] ?? frame?.[2];
    const at = place ? /^(.*):(\d+):\d+$/.exec(place) : null;
    if (!at) continue; // "at async Promise.all (index 0)", "<anonymous>"
    let file = at[1]!;
    if (file.startsWith("node:")) continue;
    if (file.startsWith("file://")) file = fileURLToPath(file);
    if (!isAbsolute(file) || OWN.some((d) => file.startsWith(d + sep))) continue;
    const rel = relative(cwd, file);
    return `${rel.startsWith("..") ? file : rel}:${at[2]}`;
  }
  return undefined;
}

/** The resolving functions a waiter settles its promise with. */
export interface Settle<T> {
  done(v: T | PromiseLike<T>): void;
  fail(e: Error): void;
}

/**
 * Finds where the caller awaits a waiter's pending promise P, which `done` resolves.
 *
 * V8 writes "at async f (file:line)" frames by walking, from the promise that the running
 * reaction will settle, the chain of functions that await it. A receive's own promise has no such
 * reaction of ours, so one is made now: P is resolved with R = S.then(h), which keeps P pending
 * (it follows R), and when h runs, the walk from R goes to P and through every function awaiting
 * it up to the user's. h returns Q, a new pending promise that the waiter settles from now on
 * (`handOver` gets Q's resolving functions), so the call completes as before, a few turns of
 * the microtask queue later. Resolves with the user's file:line, or undefined when nobody awaits
 * P, or awaits it in a way the walk cannot follow.
 */
export function awaitedAt<T>(done: Settle<T>["done"], handOver: (next: Settle<T>) => void): Promise<string | undefined> {
  return new Promise((found) => {
    let next!: Settle<T>;
    const q = new Promise<T>((done, fail) => (next = { done, fail }));
    q.catch(() => {}); // a rejection before h returns q is handled by P's awaiter, through R
    let start!: () => void;
    const s = new Promise<void>((r) => (start = r));
    const r = s.then(() => {
      // Whatever happens here, the call goes on with q: a stack formatter of the user's
      // (Error.prepareStackTrace) must not turn a lookup into a failed receive.
      const limit = Error.stackTraceLimit;
      try {
        Error.stackTraceLimit = 64; // the async frames count against it
        const stack: unknown = new Error().stack;
        found(typeof stack === "string" ? userFrame(stack) : undefined);
      } catch {
        found(undefined);
      } finally {
        Error.stackTraceLimit = limit;
      }
      return q;
    });
    done(r);
    handOver(next);
    // Only now, so that h runs after the job that makes P follow R (queued by done): the walk
    // needs that link.
    start();
  });
}

/**
 * A call's promise, settled through `done` and `fail`, and where the user awaits it once a report
 * asks (`locate`): what a receive waiting for its message and a collective waiting on a
 * shared-memory board have in common.
 */
export class Awaited<T> {
  protected done!: (v: T | PromiseLike<T>) => void;
  protected fail!: (e: Error) => void;
  readonly promise: Promise<T>;
  private where: Promise<string | undefined> | undefined;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.done = resolve;
      this.fail = reject;
    });
  }

  /** The user's file:line that awaits this call, for a report of what the rank waits for. */
  locate(): Promise<string | undefined> {
    this.where ??= awaitedAt(this.done, (next) => {
      this.done = next.done;
      this.fail = next.fail;
    });
    return this.where;
  }
}
