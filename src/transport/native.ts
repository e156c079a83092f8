/**
 * The shared-memory addon (native/tsmpi_shm.c), typed. This file is its only importer, as
 * zeromq.js keeps its binding behind one `native.ts`: everything above sees plain TypeScript.
 *
 * node-gyp-build takes a from-source build (native/build/Release, made by this repository's
 * `npm install`) over the prebuilt binary shipped in native/prebuilds, which is what a user's
 * `npm install tsmpi` gets (npm 11 runs no dependency install scripts without approval).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** A thread that sleeps until a word of a segment changes, then calls back on the JS thread. */
export interface Waiter {
  readonly __waiter: unique symbol;
}

export interface ShmAddon {
  /**
   * Maps the POSIX shared-memory segment `name` ("/tsmpi-…"). `create`: make it (mode 0600, fails
   * if it exists) and reserve all of its memory now, so a full /dev/shm is an ENOSPC error here
   * rather than a SIGBUS later.
   */
  map(name: string, bytes: number, create: boolean): ArrayBuffer;
  /** Removes the segment's name; existing mappings stay valid. False if it was already gone. */
  unlink(name: string): boolean;
  /** Wakes every process sleeping on the 32-bit word at `byteOffset` (a futex wake). */
  wake(buffer: ArrayBuffer, byteOffset: number): void;
  /**
   * Blocks this (the JS) thread while the word at `byteOffset` holds `expected`, for at most
   * `micros`; false if the time ran out. Nothing else in the process runs meanwhile.
   */
  sleep(buffer: ArrayBuffer, byteOffset: number, expected: number, micros: number): boolean;
  /** Gives the CPU to another runnable thread (sched_yield). */
  yieldCpu(): void;
  /** Starts a waiter on the word at `byteOffset`; `callback` runs on the JS thread after each armed wait. */
  waiter(buffer: ArrayBuffer, byteOffset: number, callback: () => void): Waiter;
  /** Calls back once the word no longer holds `expected`; an armed waiter keeps the process alive. */
  arm(waiter: Waiter, expected: number): void;
  /** Stops the waiter's thread; no callback runs after this returns. */
  close(waiter: Waiter): void;
  /**
   * `out[i] = a[i] op b[i]` over a's length (op: an index into OP_CODES), for typed arrays of one
   * class; false, with nothing done, where C would not give JavaScript's bits (32-bit integer
   * products, bitwise ops on floats, Uint8ClampedArray).
   */
  combine(op: number, out: ArrayBufferView, a: ArrayBufferView, b: ArrayBufferView): boolean;
  /**
   * Copies `src`'s bytes to the start of `dst` (at least as long) past the cache (non-temporal
   * stores): for results nobody reads soon, whose lines an ordinary copy would first read.
   */
  stream(dst: ArrayBufferView, src: ArrayBufferView): void;
  /**
   * `out[i] = ((ins[0][i] op ins[1][i]) op ins[2][i]) …` over out's length, in one pass: `out`
   * written past the cache, the same values into `copy` too (which may be one of `ins`); with
   * `out` null, into `copy` only. False, with nothing done, where `combine` would be.
   */
  fold(op: number, out: ArrayBufferView | null, copy: ArrayBufferView | null, ins: readonly ArrayBufferView[]): boolean;
}

/** The built-in ops in the order native/tsmpi_shm.c numbers them. */
export const OP_CODES = ["sum", "prod", "min", "max", "land", "lor", "band", "bor", "bxor"] as const;

/** The addon, or why it could not be loaded (for the fallback's one warning line). */
export type LoadResult = { addon: ShmAddon; error?: undefined } | { addon?: undefined; error: string };

/** native/ of this package, from src/transport (tsx) or dist/src/transport (built). */
function nativeDir(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    dir = dirname(dir);
    if (existsSync(join(dir, "native", "binding.gyp"))) return join(dir, "native");
  }
  return undefined;
}

let loaded: LoadResult | undefined;

/**
 * The addon's element-wise kernel, if the addon loads (loading it if need be); undefined without
 * it, and then JavaScript loops (src/op.ts).
 */
export function combineKernel(): ShmAddon["combine"] | undefined {
  return loadShm().addon?.combine;
}

/** The addon's non-temporal copy, if the addon loads; undefined without it (then TypedArray.set). */
export function streamCopy(): ShmAddon["stream"] | undefined {
  return loadShm().addon?.stream;
}

/** The addon's one-pass fold over many arrays, if the addon loads; undefined without it. */
export function foldKernel(): ShmAddon["fold"] | undefined {
  return loadShm().addon?.fold;
}

/** Loads the addon once; never throws. TSMPI_SHM_ADDON=0 pretends it is missing (to test the fallback). */
export function loadShm(): LoadResult {
  if (loaded) return loaded;
  if (process.platform !== "linux") return (loaded = { error: `shared memory needs Linux (futexes); this is ${process.platform}` });
  if (process.env.TSMPI_SHM_ADDON === "0") return (loaded = { error: "TSMPI_SHM_ADDON=0 disables the shared-memory addon" });
  const dir = nativeDir();
  if (!dir) return (loaded = { error: "the package has no native/ folder" });
  try {
    const require = createRequire(import.meta.url);
    const build = require("node-gyp-build") as (dir: string) => unknown;
    return (loaded = { addon: build(dir) as ShmAddon });
  } catch (e) {
    return (loaded = { error: `the shared-memory addon did not load: ${(e as Error).message.split("\n")[0]}` });
  }
}
