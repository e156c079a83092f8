/**
 * Task pool (the mpi4py.futures MPICommExecutor pattern): the root runs the caller's body and
 * hands tasks to whichever worker rank is free; the other ranks serve tasks until the body
 * returns. Tasks name a function that every rank registered, so nothing but the function's name
 * and the values travel. Built on point-to-point messages over a private duplicate of the
 * communicator, so pool traffic never meets the user's.
 */
import { performance } from "node:perf_hooks";
import { NONE, trace } from "./trace.js";
import type { Communicator } from "./comm.js";
import { ANY_SOURCE, ANY_TAG } from "./constants.js";
import { MpiError, TaskError } from "./errors.js";

/** A task function: takes one item (anything `send` accepts), returns a value or a Promise of one. */
// `never` as the parameter type makes every one-argument function assignable here.
export type TaskFunction = (item: never) => unknown;
/** The task functions of a pool by name: every rank passes the same ones to `taskPool`. */
export type TaskFunctions = Record<string, TaskFunction>;

/** The item type a task function takes. */
export type TaskItem<Fn> = Fn extends (item: infer A) => unknown ? A : never;
/** What a task function's promise resolves with (or what it returns). */
export type TaskResult<Fn> = Fn extends (...args: never[]) => infer R ? Awaited<R> : never;
type Item<Fn> = TaskItem<Fn>;
type Result<Fn> = TaskResult<Fn>;

/** What `imapUnordered` yields for each task as it finishes. */
export interface Finished<T> {
  /** The item's index in the input. */
  index: number;
  /** The task's result. */
  value: T;
}

/** Options of `map` and `imapUnordered`. */
export interface MapOptions {
  /** Items sent to a worker at a time (fewer messages for many tiny tasks). Default 1. */
  chunksize?: number;
}

/** What the body of `taskPool` gets on the root. */
export interface Pool<F extends TaskFunctions> {
  /**
   * Runs the task function named `fn` on every item, on whichever worker is free; results in
   * input order. Several calls may be in flight at once.
   * @throws TaskError when a task throws (the queued tasks of this call are dropped) or its items cannot be sent.
   */
  map<K extends keyof F & string>(fn: K, items: Iterable<Item<F[K]>>, options?: MapOptions): Promise<Result<F[K]>[]>;
  /**
   * `map` with the task function itself (one of those given to `taskPool`) instead of its name.
   * @throws as the other form.
   */
  map<Fn extends F[keyof F]>(fn: Fn, items: Iterable<Item<Fn>>, options?: MapOptions): Promise<Result<Fn>[]>;
  /**
   * Runs one task on whichever worker is free.
   * @throws TaskError when the task throws or its item cannot be sent.
   */
  submit<K extends keyof F & string>(fn: K, item: Item<F[K]>): Promise<Result<F[K]>>;
  /**
   * `submit` with the task function itself.
   * @throws as the other form.
   */
  submit<Fn extends F[keyof F]>(fn: Fn, item: Item<Fn>): Promise<Result<Fn>>;
  /**
   * Yields `{ index, value }` as tasks finish, in the order they finish.
   * @throws TaskError (and stops) when a task throws.
   */
  imapUnordered<K extends keyof F & string>(fn: K, items: Iterable<Item<F[K]>>, options?: MapOptions): AsyncIterableIterator<Finished<Result<F[K]>>>;
  /**
   * `imapUnordered` with the task function itself.
   * @throws as the other form.
   */
  imapUnordered<Fn extends F[keyof F]>(fn: Fn, items: Iterable<Item<Fn>>, options?: MapOptions): AsyncIterableIterator<Finished<Result<Fn>>>;
  /** Ranks that run tasks (the root itself when it is alone). */
  readonly workers: readonly number[];
}

/** Options of `taskPool`. */
export interface TaskPoolOptions {
  /** The rank that runs the body. Default 0. */
  root?: number;
}

// Message tags on the pool's private communicator.
const TAG_TASK = 1, TAG_RESULT = 2, TAG_STOP = 3;
/** Chunks a worker may hold: one running and one queued behind it, so it never waits for the next. */
const AHEAD = 2;

type TaskMessage = [chunk: number, fn: string, start: number, items: unknown[]];
type Failure = { index: number; name: string; message: string; stack?: string };
type ResultMessage = [chunk: number, values: unknown[], failure: Failure | null];

/** One map/submit/imapUnordered call: its items' results as they arrive. */
interface Call {
  fn: string;
  pending: number;
  done: boolean;
  result(index: number, value: unknown): void;
  fail(e: TaskError): void;
}

interface Chunk {
  id: number;
  call: Call;
  start: number;
  items: unknown[];
}

/**
 * Runs `body` on the root with a pool of the other ranks as workers. Collective over `comm`:
 * every rank calls it; the root gets the body's value, the others undefined once it returns.
 */
export async function taskPool<F extends TaskFunctions, R>(
  comm: Communicator,
  functions: F,
  body: (pool: Pool<F>) => R | Promise<R>,
  options: TaskPoolOptions = {},
): Promise<R | undefined> {
  const { root = 0 } = options;
  if (!Number.isInteger(root) || root < 0 || root >= comm.size) {
    throw new MpiError(`taskPool: root ${root} is not a rank of this communicator (0..${comm.size - 1})`);
  }
  if (typeof functions !== "object" || functions === null || Object.values(functions).some((f) => typeof f !== "function")) {
    throw new MpiError("taskPool: functions must be an object of named functions, e.g. { simulate, fit }");
  }
  if (typeof body !== "function") throw new MpiError("taskPool: body must be a function (pool) => ...");
  const pc = await comm.dup();
  if (pc.rank !== root) {
    await serve(pc, functions, root);
    return undefined;
  }
  const master = new Master(pc, functions, root);
  let out: R;
  try {
    out = await body(master.pool);
  } catch (e) {
    await master.shutdown(true);
    throw e;
  }
  await master.shutdown(false);
  return out;
}

/** A worker: runs the chunks it is sent, in order, until told to stop. */
async function serve(pc: Communicator, functions: TaskFunctions, root: number): Promise<void> {
  for (;;) {
    const m = await pc.recvMessage<TaskMessage | null>(root, ANY_TAG);
    if (m.tag === TAG_STOP) return;
    const [chunk, name, start, items] = m.data!;
    const { values, failure } = await runChunk(functions, name, start, items, pc.rank);
    try {
      await pc.send([chunk, values, failure] satisfies ResultMessage, root, TAG_RESULT);
    } catch (e) {
      // The results could not be encoded: report that instead of dying.
      const f: Failure = { index: start + values.length - 1, name: "MpiError", message: `the task's result cannot be sent: ${(e as Error).message}` };
      await pc.send([chunk, [], f] satisfies ResultMessage, root, TAG_RESULT);
    }
  }
}

async function runChunk(functions: TaskFunctions, name: string, start: number, items: unknown[], rank: number): Promise<{ values: unknown[]; failure: Failure | null }> {
  const fn = Object.hasOwn(functions, name) ? (functions[name] as (item: unknown) => unknown) : undefined;
  if (!fn) return { values: [], failure: { index: start, name: "MpiError", message: `function "${name}" is not registered on rank ${rank}` } };
  const values: unknown[] = [];
  for (let i = 0; i < items.length; i++) {
    const t0 = trace ? performance.now() : 0;
    try {
      values.push(await fn(items[i]));
      trace?.span(`task ${name}`, NONE, NONE, NONE, -1, t0, performance.now());
    } catch (e) {
      trace?.span(`task ${name} (failed)`, NONE, NONE, NONE, -1, t0, performance.now());
      const err = e instanceof Error ? e : new Error(String(e));
      return { values, failure: { index: start + i, name: err.name, message: err.message, stack: err.stack } };
    }
  }
  return { values, failure: null };
}

class Master<F extends TaskFunctions> {
  readonly pool: Pool<F>;
  private readonly workers: number[];
  private readonly load = new Map<number, number>();
  private readonly queue: Chunk[] = [];
  private readonly inflight = new Map<number, { chunk: Chunk; worker: number }>();
  private nextChunk = 0;
  private receiving = false;
  private drained: (() => void) | null = null;

  constructor(
    private readonly pc: Communicator,
    private readonly functions: F,
    private readonly root: number,
  ) {
    this.workers = Array.from({ length: pc.size }, (_, r) => r).filter((r) => r !== root);
    for (const w of this.workers) this.load.set(w, 0);
    const self = this;
    this.pool = {
      workers: this.workers.length > 0 ? this.workers : [root],
      map(fn: string | TaskFunction, items: Iterable<unknown>, options?: MapOptions) {
        return self.map("map", fn, items, options);
      },
      submit(fn: string | TaskFunction, item: unknown) {
        return self.map("submit", fn, [item], {}).then((r) => r[0]);
      },
      imapUnordered(fn: string | TaskFunction, items: Iterable<unknown>, options?: MapOptions) {
        return self.imapUnordered(fn, items, options);
      },
    } as unknown as Pool<F>;
  }

  /** The registered name of `fn`; throws MpiError (before anything is sent) when it is not registered. */
  private resolve(call: string, fn: string | TaskFunction): string {
    if (typeof fn === "string") {
      if (Object.hasOwn(this.functions, fn)) return fn;
      throw new MpiError(`pool.${call}: no function named "${fn}" was registered with taskPool (registered: ${Object.keys(this.functions).join(", ") || "none"})`);
    }
    for (const [name, f] of Object.entries(this.functions)) if (f === fn) return name;
    throw new MpiError(`pool.${call}: function ${(fn as { name?: string })?.name || String(fn)} was not registered with taskPool; pass it in the functions object (registered: ${Object.keys(this.functions).join(", ") || "none"})`);
  }

  private chunksize(call: string, options?: MapOptions): number {
    const c = options?.chunksize ?? 1;
    if (!Number.isInteger(c) || c < 1) throw new MpiError(`pool.${call}: chunksize ${c} must be a positive integer`);
    return c;
  }

  async map(method: string, fn: string | TaskFunction, items: Iterable<unknown>, options?: MapOptions): Promise<unknown[]> {
    const name = this.resolve(method, fn);
    const size = this.chunksize(method, options);
    const list = [...items];
    const results = new Array<unknown>(list.length);
    const t0 = performance.now();
    const done = new Promise<unknown[]>((resolve, reject) => {
      const call: Call = {
        fn: name,
        pending: list.length,
        done: false,
        result(index, value) {
          results[index] = value;
          if (--call.pending === 0) (call.done = true), resolve(results);
        },
        fail(e) {
          call.done = true;
          reject(e);
        },
      };
      if (list.length === 0) return resolve(results);
      this.enqueue(call, list, size);
    });
    // For --trace: the call spans its chunks' messages.
    return trace ? done.finally(() => trace!.span(`pool.${method} ${name}`, NONE, NONE, NONE, -1, t0, performance.now())) : done;
  }

  imapUnordered(fn: string | TaskFunction, items: Iterable<unknown>, options?: MapOptions): AsyncIterableIterator<{ index: number; value: unknown }> {
    const name = this.resolve("imapUnordered", fn);
    const size = this.chunksize("imapUnordered", options);
    const list = [...items];
    const ready: { index: number; value: unknown }[] = [];
    let failure: TaskError | null = null;
    let wake: (() => void) | null = null;
    // For --trace: the call spans from here to its last result.
    const t0 = performance.now();
    let traced = false;
    const over = () => {
      if (trace && !traced) trace.span(`pool.imapUnordered ${name}`, NONE, NONE, NONE, -1, t0, performance.now());
      traced = true;
    };
    const call: Call = {
      fn: name,
      pending: list.length,
      done: list.length === 0,
      result(index, value) {
        ready.push({ index, value });
        if (--call.pending === 0) (call.done = true), over();
        wake?.();
      },
      fail(e) {
        failure = e;
        call.done = true;
        over();
        wake?.();
      },
    };
    if (list.length > 0) this.enqueue(call, list, size);
    else over();
    const it: AsyncIterableIterator<{ index: number; value: unknown }> = {
      [Symbol.asyncIterator]: () => it,
      next: async () => {
        for (;;) {
          if (ready.length > 0) return { done: false, value: ready.shift()! };
          if (failure) throw failure;
          if (call.done) return { done: true, value: undefined };
          await new Promise<void>((r) => (wake = r));
          wake = null;
        }
      },
      return: async () => {
        // The consumer stopped early: drop what has not been sent yet.
        call.done = true;
        over();
        this.cancel(call);
        return { done: true, value: undefined };
      },
    };
    return it;
  }

  private enqueue(call: Call, items: unknown[], size: number): void {
    for (let start = 0; start < items.length; start += size) {
      this.queue.push({ id: this.nextChunk++, call, start, items: items.slice(start, start + size) });
    }
    if (this.workers.length === 0) void this.runLocally();
    else this.dispatch();
  }

  /** Drops the queued chunks of a call that has ended (failed, or its consumer stopped). */
  private cancel(call: Call): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.call === call) this.queue.splice(i, 1);
  }

  /** Hands queued chunks to workers: idle ones first, then one queued ahead on each. */
  private dispatch(): void {
    for (let limit = 1; limit <= AHEAD; limit++) {
      for (const w of this.workers) {
        while (this.queue.length > 0 && this.load.get(w)! < limit) {
          const chunk = this.queue.shift()!;
          if (chunk.call.done) continue;
          const failed = (e: unknown) => {
            chunk.call.fail(e instanceof MpiError ? new TaskError(`pool: the items of ${chunk.call.fn} cannot be sent: ${e.message}`, chunk.call.fn, chunk.start, w) : (e as TaskError));
            this.cancel(chunk.call);
          };
          let sent: Promise<void>;
          try {
            // Items that cannot be encoded fail here, before the chunk counts as in flight: a
            // chunk in flight keeps a receive posted for its result, which would never come.
            sent = this.pc.startSend("send", [chunk.id, chunk.call.fn, chunk.start, chunk.items] satisfies TaskMessage, w, TAG_TASK);
          } catch (e) {
            failed(e);
            continue;
          }
          this.load.set(w, this.load.get(w)! + 1);
          this.inflight.set(chunk.id, { chunk, worker: w });
          sent.catch((e: unknown) => {
            this.inflight.delete(chunk.id);
            this.load.set(w, this.load.get(w)! - 1);
            failed(e);
          });
        }
      }
    }
    if (this.inflight.size > 0 && !this.receiving) void this.receive();
  }

  /** Takes results off the wire while chunks are out; ends when none is. */
  private async receive(): Promise<void> {
    this.receiving = true;
    try {
      while (this.inflight.size > 0) {
        const m = await this.pc.recvMessage<ResultMessage>(ANY_SOURCE, TAG_RESULT);
        const [id, values, failure] = m.data;
        const entry = this.inflight.get(id);
        if (!entry) continue;
        this.inflight.delete(id);
        this.load.set(m.source, this.load.get(m.source)! - 1);
        this.complete(entry.chunk, values, failure, m.source);
        this.dispatch();
      }
    } finally {
      this.receiving = false;
      if (this.inflight.size === 0) this.drained?.();
    }
  }

  private complete(chunk: Chunk, values: unknown[], failure: Failure | null, worker: number): void {
    const { call } = chunk;
    if (call.done) return;
    values.forEach((v, i) => call.result(chunk.start + i, v));
    if (failure && !call.done) {
      const e = new TaskError(`task ${call.fn}(item ${failure.index}) failed on rank ${worker}: ${failure.name}: ${failure.message}`, call.fn, failure.index, worker, failure.stack);
      // The worker's own error, with its stack, as the cause (Node prints it under the TaskError).
      const cause = new Error(failure.message);
      cause.name = failure.name;
      cause.stack = failure.stack ? `${failure.stack.replace(/^/, `[rank ${worker}] `)}` : cause.stack;
      Object.defineProperty(e, "cause", { value: cause, enumerable: false, configurable: true, writable: true });
      call.fail(e);
      this.cancel(call);
    }
  }

  /** Alone (one rank): the root runs the queue itself, one chunk at a time. */
  private localRun: Promise<void> | null = null;
  private runLocally(): Promise<void> {
    this.localRun ??= (async () => {
      while (this.queue.length > 0) {
        const chunk = this.queue.shift()!;
        if (chunk.call.done) continue;
        // Let the body post its other calls before the first task runs, as with workers.
        await new Promise((r) => setImmediate(r));
        const { values, failure } = await runChunk(this.functions, chunk.call.fn, chunk.start, chunk.items, this.root);
        this.complete(chunk, values, failure, this.root);
      }
      this.localRun = null;
    })();
    return this.localRun;
  }

  /**
   * Ends the pool: waits for the chunks that are out (after a failure of the body, drops the
   * queued ones first), then releases every worker.
   */
  async shutdown(failed: boolean): Promise<void> {
    if (failed) {
      // The body is gone: nobody awaits its calls any more, so their outcomes are dropped
      // (a late TaskError would otherwise surface as an unhandled rejection).
      this.queue.length = 0;
      for (const { chunk } of this.inflight.values()) chunk.call.done = true;
    }
    for (;;) {
      if (this.localRun) await this.localRun;
      else if (this.inflight.size > 0) await new Promise<void>((r) => (this.drained = r));
      else if (this.queue.length > 0 && !failed) {
        // Calls that the body posted without awaiting: finish them, as an executor does on exit.
        this.dispatch();
        await new Promise<void>((r) => (this.drained = r));
      } else break;
    }
    await Promise.all(this.workers.map((w) => this.pc.send(null, w, TAG_STOP)));
  }
}
