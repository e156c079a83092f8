/**
 * Collective algorithms, written once against a small channel that a communicator hands out per
 * call (its own tag on the communicator's collective context). Every algorithm here moves data
 * only through point-to-point messages.
 *
 * Choice of algorithm, as Open MPI and MPICH do it:
 * - bcast: binomial tree (⌈log2 p⌉ rounds).
 * - reduce / allreduce / scan: binomial tree, recursive doubling and Hillis–Steele prefix
 *   (log p rounds), combining in rank order so user ops need only be associative. For typed
 *   arrays of at least RING_BYTES with a built-in op, allreduce is a ring
 *   reduce-scatter followed by a ring allgather: every rank sends and receives 2(p−1)/p of the
 *   array in chunks of 1/p and holds one extra chunk, not p copies.
 * - allgather: Bruck (⌈log2 p⌉ rounds, (p−1)·m data per rank, any p).
 * - gather / scatter / alltoall: direct (all messages posted at once; cost grows with the data).
 * - barrier: dissemination.
 * - Where the communicator's ranks share one host's memory (the channel has `exchange`), the
 *   barrier, an allreduce or reduce of a number, boolean or typed array with a built-in op, and
 *   an allgather of such values (of one kind and size on every rank), go through shared-memory
 *   boards and stages instead (board.ts), as Open MPI's coll/sm does; values they cannot carry
 *   go by the algorithms above.
 * Failures that one rank detects (a value that does not reduce or cannot be encoded, a scatter
 * root with the wrong number of values) travel on through the algorithm as a failure marker, so
 * the ranks that needed the value reject too instead of waiting for a message that never comes.
 */
import { MpiError } from "./errors.js";
import { BY_MESSAGES, NOT_ON_BOARD } from "./board.js";
import { checkReducible, combine, combineArrays, typeName, type Op, type OpName } from "./op.js";
import { SENT } from "./transport/index.js";
import { isTypedArray, type TypedArray } from "./wire.js";

/** One collective call's view of its communicator. */
export interface Channel {
  readonly rank: number;
  readonly size: number;
  send(dest: number, value: unknown): Promise<void>;
  recv(source: number): Promise<unknown>;
  /**
   * Receives a binary message into `into` (which it must fill exactly): over shared memory the
   * bytes land there straight from the ring, with no buffer in between.
   */
  recvInto(source: number, into: TypedArray): Promise<void>;
  /**
   * Where the ranks share memory: posts this rank's value on its board and resolves with every
   * rank's values combined with `op` in rank order (null for a barrier; with a `root`, on the
   * root only), or with BY_MESSAGES when some rank's value is not one a board carries (the call
   * then goes by messages on every rank). See board.ts.
   */
  exchange?(value: unknown, op: OpName | null, into?: TypedArray, root?: number): Promise<unknown>;
  /**
   * Where the ranks share memory: posts this rank's value on its board and resolves with every
   * rank's value in rank order, or with BY_MESSAGES (values a board does not carry, or that differ
   * in kind or size). See board.ts.
   */
  collect?(value: unknown): Promise<unknown>;
}

/**
 * What a collective call is, as every message of the call carries it (in the header's meta,
 * above the payload's type code): the call (5 bits), the op (4 bits) and the root + 1 (15 bits,
 * 0 for none). A rank that receives a message of another call at the same point of the
 * communicator's sequence knows the ranks called different collectives.
 */
const CALLS = ["barrier", "bcast", "reduce", "allreduce", "gather", "allgather", "scatter", "alltoall", "scan", "exscan", "split", "dup", "cart"];
const OPS = ["sum", "prod", "min", "max", "land", "lor", "band", "bor", "bxor"];
const FUNCTION_OP = 15;

export function signature(call: string, root: number | undefined, op: Op | undefined): number {
  const c = CALLS.indexOf(call) + 1; // 0: a call not in the list
  const o = op === undefined ? 0 : typeof op === "function" ? FUNCTION_OP : OPS.indexOf(op) + 1;
  const r = root === undefined ? 0 : (root + 1) & 0x7fff;
  return c | (o << 5) | (r << 9);
}

/** A signature in words: "bcast (root 0)", "allreduce (op max)", "reduce (root 2, a function op)". */
export function describeSignature(sig: number): string {
  const c = sig & 31, o = (sig >>> 5) & 15, r = sig >>> 9;
  const parts = [r > 0 ? `root ${r - 1}` : "", o === FUNCTION_OP ? "a function op" : o > 0 ? `op ${OPS[o - 1]}` : ""].filter((x) => x);
  return `${CALLS[c - 1] ?? "a collective"}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`;
}

/**
 * Sends `value` to `dest` and receives from `source` at once; resolves with what was received,
 * as `Promise.all` of the two would, but without its array and promises when the send completed
 * at once (any small message): those were a tenth of what an 8-byte allreduce allocated.
 */
function sendRecv(ch: Channel, dest: number, value: unknown, source: number): Promise<unknown> {
  const sent = ch.send(dest, value);
  const got = ch.recv(source);
  return sent === SENT ? got : Promise.all([sent, got]).then((both) => both[1]);
}

/** Typed arrays from this size on are reduced with the ring algorithms. */
export const RING_BYTES = 512 * 1024;

const FAILED = "__tsmpi_collective_failed__";
type Failure = { [FAILED]: string };
/** A marker that travels in place of a value to say that the call failed on some rank, and why. */
export const failure = (message: string): Failure => ({ [FAILED]: message });
function isFailure(v: unknown): v is Failure {
  return typeof v === "object" && v !== null && FAILED in v;
}
/** Throws the failure a peer reported, if `v` is one. */
function rethrow<T>(v: T | Failure): T {
  if (isFailure(v)) throw new MpiError(v[FAILED]);
  return v;
}

/** `a op b` (a from lower ranks), or the failure that either side or the combination gives. */
function combineSafe(call: string, op: Op, a: unknown, b: unknown): unknown {
  if (isFailure(a)) return a;
  if (isFailure(b)) return b;
  try {
    return combine(call, op, a, b);
  } catch (e) {
    return failure(e instanceof MpiError ? e.message : `${call}: the reduction op threw: ${(e as Error).message ?? String(e)}`);
  }
}

/** The value this rank contributes to a reduction, or a failure marker when it cannot take part. */
function contribution(call: string, ch: Channel, value: unknown, op: Op): unknown {
  try {
    checkReducible(call, value, op);
  } catch (e) {
    return failure(`${(e as Error).message} (on rank ${ch.rank})`);
  }
  return value;
}

/** `result`, copied if it is the caller's own typed array (results are always new arrays). */
function own<T>(result: T, input: unknown): T {
  return (result === input && isTypedArray(result) ? result.slice() : result) as T;
}

/** Whether the ring algorithms apply to this reduction. */
function useRing(ch: Channel, value: unknown, op: Op): value is TypedArray {
  return ch.size >= 2 && typeof op === "string" && isTypedArray(value) && value.byteLength >= RING_BYTES && value.length >= ch.size;
}

/**
 * Dissemination barrier (Hensgen, Finkel and Manber): in round k every rank signals
 * rank + 2^k and waits for rank − 2^k, so all ranks know of all others after ⌈log2 p⌉ rounds,
 * for any p, not only powers of two.
 */
export async function barrier(ch: Channel): Promise<void> {
  if (ch.exchange) {
    await ch.exchange(null, null);
    return;
  }
  const { rank, size } = ch;
  for (let k = 1; k < size; k <<= 1) {
    await sendRecv(ch, (rank + k) % size, null, (rank - k + size) % size);
  }
}

/** Binomial-tree broadcast from `root`. */
export async function bcast<T>(ch: Channel, value: T, root: number): Promise<T> {
  const { rank, size } = ch;
  const vr = (rank - root + size) % size; // rank relative to the root
  let v = value;
  let mask = 1;
  while (mask < size && !(vr & mask)) mask <<= 1;
  if (vr !== 0) v = (await ch.recv((vr - mask + root) % size)) as T;
  const sends: Promise<void>[] = [];
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (vr + mask < size) sends.push(ch.send((vr + mask + root) % size, v));
  }
  await Promise.all(sends);
  return rethrow(v);
}

/** Reduction to `root`; undefined elsewhere. */
export async function reduce<T>(ch: Channel, value: T, op: Op, root: number): Promise<T | undefined> {
  const mine = contribution("reduce", ch, value, op);
  const { rank, size } = ch;
  if (ch.exchange) {
    // As allreduce's, but only the root gathers the result (the others reduce their shares of it).
    const result = await ch.exchange(typeof op === "string" && !isFailure(mine) ? mine : NOT_ON_BOARD, op as OpName, undefined, root);
    if (result !== BY_MESSAGES) return rank === root ? (result as T) : undefined;
  }
  // Binomial tree towards rank 0, each rank holding the reduction of a contiguous block of ranks,
  // so operands are combined in rank order; then rank 0 hands the result to the root.
  let acc: unknown = mine;
  for (let mask = 1; mask < size; mask <<= 1) {
    if (rank & mask) {
      await ch.send(rank - mask, acc);
      break;
    }
    if (rank + mask < size) acc = combineSafe("reduce", op, acc, await ch.recv(rank + mask));
  }
  if (root !== 0) {
    if (rank === 0) await ch.send(root, acc);
    if (rank === root) acc = await ch.recv(0);
  }
  if (rank === root) return own(rethrow(acc), value) as T;
  rethrow(mine);
  return undefined;
}

/**
 * `into` for allreduceInto: a typed array of the value's class and length, or the value itself
 * (in place). One that does not fit is this rank's failure, met by every rank (see contribution).
 */
function intoContribution(ch: Channel, value: unknown, op: Op, into: TypedArray): unknown {
  if (!isTypedArray(value) || !isTypedArray(into) || into.constructor !== value.constructor || into.length !== value.length) {
    const want = isTypedArray(value) ? `a ${value.constructor.name} of length ${value.length}, like the value` : `a typed array, and so must the value (got a ${typeName(value)})`;
    const got = isTypedArray(into) ? `a ${typeName(into)} of length ${into.length}` : `a ${typeName(into)}`;
    return failure(`allreduceInto: into must be ${want}; got ${got} (on rank ${ch.rank})`);
  }
  if (!sameMemory(into, value) && into.buffer === value.buffer && into.byteOffset < value.byteOffset + value.byteLength && value.byteOffset < into.byteOffset + into.byteLength) {
    return failure(`allreduceInto: into overlaps the value without being it (on rank ${ch.rank}); pass the value itself to reduce in place`);
  }
  return contribution("allreduce", ch, value, op);
}

/** Whether two arrays of one class and length are views of the same bytes (in place). */
const sameMemory = (a: TypedArray, b: TypedArray): boolean => a.buffer === b.buffer && a.byteOffset === b.byteOffset;

/** allreduceInto's result `result`, in `into`: the same on every rank, so a misfit fails everywhere. */
function placed(result: unknown, into: TypedArray): TypedArray {
  if (result === into) return into;
  if (!isTypedArray(result) || result.constructor !== into.constructor || result.length !== into.length) {
    throw new MpiError(`allreduceInto: the op's result, a ${typeName(result)}${isTypedArray(result) ? ` of length ${result.length}` : ""}, does not fit into a ${typeName(into)} of length ${into.length}`);
  }
  (into as { set(a: ArrayLike<number | bigint>): void }).set(result as ArrayLike<number | bigint>);
  return into;
}

/**
 * Reduction whose result every rank receives, with the same bits everywhere: a new value, or
 * written into `into` (allreduceInto; the same bits either way).
 */
export async function allreduce<T>(ch: Channel, value: T, op: Op, into?: TypedArray): Promise<T> {
  const mine = into === undefined ? contribution("allreduce", ch, value, op) : intoContribution(ch, value, op, into);
  if (ch.exchange) {
    // Failures and function ops go by messages, which carry the failure markers and the agreement.
    const result = await ch.exchange(typeof op === "string" && !isFailure(mine) ? mine : NOT_ON_BOARD, op as OpName, into);
    if (result !== BY_MESSAGES) return result as T;
  }
  if (useRing(ch, mine, op)) {
    // Every rank must run the same algorithm. Agreeing on the array's class and length first,
    // with the same message pattern as the tree path, makes a rank whose array differs (and
    // which therefore took the tree path) fail along with the others instead of hanging them.
    rethrow(await treeAllreduce(ch, { [SHAPE]: `${mine.constructor.name}[${mine.length}]` }, sameShape));
    const chunks = await ringReduceScatter(ch, mine, op as OpName, into);
    await ringAllgather(ch, chunks.out, chunks.bounds);
    return chunks.out as T;
  }
  const result = rethrow(await agreed(ch, await treeAllreduce(ch, mine, op), op));
  return (into === undefined ? own(result, value) : placed(result, into)) as T;
}

/** Whichever of two verdicts is a failure (null: none). */
const firstFailure = (a: unknown, b: unknown): unknown => a ?? b;

/**
 * `result`, or the first failure any rank met. A user's op may throw, or return what cannot be
 * sent, on some ranks only (it may depend on the rank); one more round of a tiny message makes
 * every rank reject then, instead of some returning a result. Built-in ops fail alike on every
 * rank, or not at all, and skip the round.
 */
function agreed(ch: Channel, result: unknown, op: Op): unknown {
  // Not an async function: with a built-in op (nearly every call) there is no round, and no
  // promise needs to be made for it.
  if (typeof op !== "function") return result;
  return treeAllreduce(ch, isFailure(result) ? result : null, firstFailure).then((verdict) => (isFailure(verdict) ? verdict : result));
}

const SHAPE = "__tsmpi_shape__";
function sameShape(a: unknown, b: unknown): unknown {
  const describe = (v: unknown) =>
    typeof v === "object" && v !== null && SHAPE in v ? String((v as Record<string, unknown>)[SHAPE]) : isTypedArray(v) ? `${v.constructor.name}[${v.length}]` : typeof v;
  if (describe(a) !== describe(b)) throw new MpiError(`allreduce: ranks passed values that do not reduce together: ${describe(a)} and ${describe(b)}`);
  return a;
}

/**
 * Recursive doubling (MPICH): fold the ranks beyond the largest power of two into their
 * neighbours, exchange with partners 1, 2, 4, … apart, then hand the result back. Partners
 * combine (lower block) op (upper block), so both compute the same bits. Returns the result or
 * the failure marker.
 */
async function treeAllreduce(ch: Channel, mine: unknown, op: Op): Promise<unknown> {
  const { rank, size } = ch;
  let pof2 = 1;
  while (pof2 * 2 <= size) pof2 *= 2;
  const rem = size - pof2;
  let acc: unknown = mine;
  let newrank: number;
  if (rank < 2 * rem) {
    if (rank % 2 === 0) {
      await ch.send(rank + 1, acc);
      newrank = -1;
    } else {
      acc = combineSafe("allreduce", op, await ch.recv(rank - 1), acc);
      newrank = rank >> 1;
    }
  } else newrank = rank - rem;
  if (newrank >= 0) {
    for (let mask = 1; mask < pof2; mask <<= 1) {
      const partner = newrank ^ mask;
      const dest = partner < rem ? partner * 2 + 1 : partner + rem;
      const other = await sendRecv(ch, dest, acc, dest);
      acc = partner < newrank ? combineSafe("allreduce", op, other, acc) : combineSafe("allreduce", op, acc, other);
    }
  }
  if (rank < 2 * rem) {
    if (rank % 2 === 1) await ch.send(rank - 1, acc);
    else acc = await ch.recv(rank + 1);
  }
  return acc;
}

/** Chunk `i` of `n` elements split over `p` ranks: [start, end). */
function chunkBounds(n: number, p: number) {
  return (i: number): [number, number] => [Math.floor((i * n) / p), Math.floor(((i + 1) * n) / p)];
}

/**
 * Ring reduce-scatter: after p−1 steps rank r holds chunk (r+1) mod p reduced over all ranks,
 * in `out`: `into`, or a new array (the caller's value is only read). Each chunk that arrives is
 * received straight into its place in `out` and combined there with this rank's own part: no
 * copy of the input and no scratch buffer (on 2 ranks, 8 MiB went from ~9 ms to ~7 ms without
 * them). In place (`into` is the value's memory), what arrives must not overwrite the part it is combined
 * with, so it lands in a scratch chunk first. Chunk r of `out` is left for the allgather to fill.
 */
async function ringReduceScatter(ch: Channel, value: TypedArray, op: OpName, into?: TypedArray) {
  const { rank, size } = ch;
  const bounds = chunkBounds(value.length, size);
  const make = value.constructor as new (n: number) => TypedArray;
  const out = into ?? new make(value.length);
  const scratch = sameMemory(out, value) ? new make(Math.ceil(value.length / size)) : null;
  const next = (rank + 1) % size, prev = (rank - 1 + size) % size;
  for (let s = 0; s < size - 1; s++) {
    // Step 0 sends this rank's own chunk as it is; later steps the chunk reduced the step before.
    const [ss, se] = bounds((rank - s + size) % size);
    const [rs, re] = bounds((rank - s - 1 + size) % size);
    const got = scratch ? scratch.subarray(0, re - rs) : out.subarray(rs, re);
    await Promise.all([ch.send(next, (s === 0 ? value : out).subarray(ss, se)), ch.recvInto(prev, got)]);
    // The same operand order whether in place or not: the same bits.
    combineArrays(op, got, value.subarray(rs, re), out.subarray(rs, re));
  }
  return { out, bounds };
}

/** Ring allgather of the chunks a ring reduce-scatter left: rank r starts with chunk r+1. */
async function ringAllgather(ch: Channel, out: TypedArray, bounds: (i: number) => [number, number]): Promise<void> {
  const { rank, size } = ch;
  const next = (rank + 1) % size, prev = (rank - 1 + size) % size;
  for (let s = 0; s < size - 1; s++) {
    const [ss, se] = bounds((rank + 1 - s + size) % size);
    const [rs, re] = bounds((rank - s + size) % size);
    await Promise.all([ch.send(next, out.subarray(ss, se)), ch.recvInto(prev, out.subarray(rs, re))]);
  }
}

/** Every rank's value, in rank order, on `root`. */
export async function gather<T>(ch: Channel, value: T, root: number): Promise<T[] | undefined> {
  if (ch.rank !== root) {
    await ch.send(root, value);
    return undefined;
  }
  const out = await Promise.all(Array.from({ length: ch.size }, (_, r) => (r === root ? value : ch.recv(r))));
  return out.map((v) => rethrow(v as T | Failure));
}

/** Bruck's allgather: in round k each rank passes the blocks it has to rank − 2^k. */
export async function allgather<T>(ch: Channel, value: T): Promise<T[]> {
  const { rank, size } = ch;
  if (ch.collect) {
    const got = await ch.collect(value);
    if (got !== BY_MESSAGES) return got as T[];
  }
  const blocks: unknown[] = [value]; // blocks[i] is the value of rank (rank + i) mod size
  for (let k = 1; k < size; k <<= 1) {
    const count = Math.min(k, size - k);
    const got = await sendRecv(ch, (rank - k + size) % size, blocks.slice(0, count), (rank + k) % size);
    // A failure marker stands for all `count` blocks it replaced, and travels on with them.
    blocks.push(...(isFailure(got) ? new Array<unknown>(count).fill(got) : (got as unknown[])));
  }
  return Array.from({ length: size }, (_, r) => rethrow(blocks[(r - rank + size) % size] as T | Failure));
}

/** `values[r]` from the root to every rank r. */
export async function scatter<T>(ch: Channel, values: readonly T[] | null | undefined, root: number): Promise<T> {
  const { rank, size } = ch;
  if (rank !== root) return rethrow((await ch.recv(root)) as T | Failure);
  if (!Array.isArray(values) || values.length !== size) {
    const got = Array.isArray(values) ? `an array of ${values.length}` : values === null ? "null" : typeof values;
    const msg = `scatter: the root (rank ${root}) must pass an array of ${size} values (one per rank), got ${got}`;
    await Promise.all(Array.from({ length: size }, (_, r) => (r === root ? undefined : ch.send(r, failure(msg)))));
    throw new MpiError(msg);
  }
  await Promise.all(values.map((v, r) => (r === root ? undefined : ch.send(r, v))));
  return values[root]!;
}

/** `values[r]` from every rank to rank r; returns what each rank sent to this one. */
export async function alltoall<T>(ch: Channel, values: readonly T[]): Promise<T[]> {
  const { rank, size } = ch;
  let outgoing: readonly unknown[] = values;
  let mistake: string | undefined;
  if (!Array.isArray(values) || values.length !== size) {
    mistake = `alltoall: rank ${rank} must pass an array of ${size} values (one per rank), got ${Array.isArray(values) ? `an array of ${values.length}` : typeof values}`;
    outgoing = Array.from({ length: size }, () => failure(mistake!));
  }
  // Rank r + k first: spreads the load instead of every rank hitting rank 0 first.
  const order = Array.from({ length: size }, (_, k) => (rank + k) % size);
  const sends = order.map((r) => (r === rank ? undefined : ch.send(r, outgoing[r])));
  const got = await Promise.all(order.map((r) => (r === rank ? outgoing[r] : ch.recv((rank - (r - rank) + 2 * size) % size))));
  await Promise.all(sends);
  if (mistake) throw new MpiError(mistake);
  const out = new Array<T>(size);
  got.forEach((v, k) => (out[(rank - k + size) % size] = rethrow(v as T | Failure)));
  return out;
}

/** Inclusive prefix reduction (Hillis–Steele): rank r gets v0 op v1 op … op vr. */
export async function scan<T>(ch: Channel, value: T, op: Op, call = "scan"): Promise<T> {
  const { rank, size } = ch;
  let acc: unknown = contribution(call, ch, value, op);
  for (let k = 1; k < size; k <<= 1) {
    const [, lower] = await Promise.all([
      rank + k < size ? ch.send(rank + k, acc) : undefined,
      rank - k >= 0 ? ch.recv(rank - k) : undefined,
    ]);
    if (rank - k >= 0) acc = combineSafe(call, op, lower, acc);
  }
  return own(rethrow(await agreed(ch, acc, op)), value) as T;
}

/** Exclusive prefix reduction: rank r gets v0 op … op v(r−1); undefined on rank 0. */
export async function exscan<T>(ch: Channel, value: T, op: Op): Promise<T | undefined> {
  const { rank, size } = ch;
  let inclusive: unknown;
  try {
    inclusive = await scan(ch, value, op, "exscan");
  } catch (e) {
    inclusive = failure((e as Error).message);
  }
  const [, lower] = await Promise.all([
    rank + 1 < size ? ch.send(rank + 1, inclusive) : undefined,
    rank > 0 ? ch.recv(rank - 1) : undefined,
  ]);
  rethrow(inclusive);
  return rank === 0 ? undefined : (rethrow(lower) as T);
}
