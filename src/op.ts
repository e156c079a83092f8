/**
 * Reduction operations (MPI_Op): the built-in ones by name, or a user function assumed
 * associative. Built-ins work on numbers, bigints, booleans and typed arrays (element-wise);
 * a user function combines whole values and may take any encodable value.
 */
import { MpiError } from "./errors.js";
import { combineKernel, OP_CODES } from "./transport/native.js";
import { isTypedArray, type TypedArray, type TypedArrayConstructor } from "./wire.js";

/**
 * The built-in reduction ops (MPI_SUM … MPI_BXOR): on numbers, bigints and typed arrays
 * (element-wise); `land`/`lor`/`band`/`bor`/`bxor` also on booleans.
 */
export type OpName = "sum" | "prod" | "min" | "max" | "land" | "lor" | "band" | "bor" | "bxor";
/**
 * A user reduction: `a` from the lower ranks, `b` from the higher; assumed associative, not
 * commutative (operands are always combined in rank order). It may throw: the call then rejects.
 */
export type OpFunction<T = unknown> = (a: T, b: T) => T;
/** What `reduce`, `allreduce`, `scan` and `exscan` take: a built-in op by name, or a function. */
export type Op<T = unknown> = OpName | OpFunction<T>;

/** Values the built-in ops reduce. */
export type Reducible = number | bigint | boolean | TypedArray;

const NAMES: ReadonlySet<string> = new Set<OpName>(["sum", "prod", "min", "max", "land", "lor", "band", "bor", "bxor"]);
const LOGICAL: ReadonlySet<string> = new Set(["land", "lor"]);
const BITWISE: ReadonlySet<string> = new Set(["band", "bor", "bxor"]);
const INTEGER_ARRAYS: ReadonlySet<string> = new Set([
  "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "BigInt64Array", "BigUint64Array",
]);

/** Throws MpiError unless `op` is a built-in name or a function. */
export function checkOp(call: string, op: unknown): asserts op is Op {
  if (typeof op === "function") return;
  if (typeof op === "string" && NAMES.has(op)) return;
  throw new MpiError(`${call}: op ${typeof op === "string" ? JSON.stringify(op) : String(op)} is not a reduction op: use one of ${[...NAMES].join(", ")} or a function (a, b) => c`);
}

/** A value's type for messages: its class for objects (`Float64Array`), else `typeof`. */
export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return (v as object).constructor?.name ?? "object";
  return typeof v;
}

/**
 * Throws MpiError when `value` cannot be reduced with the built-in `op` on any rank. Every rank
 * checks its own value before communicating, so the common mistakes (a string with "sum", a
 * Float64Array with "band") fail on the rank that made them without a message being sent.
 */
export function checkReducible(call: string, value: unknown, op: Op): void {
  if (typeof op === "function") return;
  const bad = (why: string) => new MpiError(`${call}: cannot reduce ${typeName(value)} with "${op}": ${why}`);
  if (typeof value === "boolean") {
    if (!LOGICAL.has(op) && !BITWISE.has(op)) throw bad("booleans reduce with land, lor, band, bor or bxor");
    return;
  }
  if (typeof value === "number") {
    if (BITWISE.has(op) && !Number.isSafeInteger(value)) throw bad(`bitwise ops need integers, got ${value}`);
    return;
  }
  if (typeof value === "bigint") return;
  if (isTypedArray(value)) {
    if (BITWISE.has(op) && !INTEGER_ARRAYS.has(value.constructor.name)) throw bad("bitwise ops need an integer typed array");
    return;
  }
  throw bad("built-in ops take a number, bigint, boolean or typed array (pass a function for other values)");
}

function scalar(op: OpName, a: number, b: number): number {
  switch (op) {
    case "sum": return a + b;
    case "prod": return a * b;
    case "min": return a < b || Number.isNaN(a) ? a : b;
    case "max": return a > b || Number.isNaN(a) ? a : b;
    case "land": return a && b ? 1 : 0;
    case "lor": return a || b ? 1 : 0;
    // Through BigInt so integers beyond 32 bits keep every bit (JS's own & truncates to int32).
    case "band": return Number(BigInt(a) & BigInt(b));
    case "bor": return Number(BigInt(a) | BigInt(b));
    case "bxor": return Number(BigInt(a) ^ BigInt(b));
  }
}

function big(op: OpName, a: bigint, b: bigint): bigint {
  switch (op) {
    case "sum": return a + b;
    case "prod": return a * b;
    case "min": return a < b ? a : b;
    case "max": return a > b ? a : b;
    case "land": return a && b ? 1n : 0n;
    case "lor": return a || b ? 1n : 0n;
    case "band": return a & b;
    case "bor": return a | b;
    case "bxor": return a ^ b;
  }
}

/**
 * `out[i] = a[i] op b[i]` for every element. One loop per op so the JIT sees a monomorphic body;
 * the ops are written with `+`/`*`/`<` so they work on number and bigint arrays alike.
 */
function elementwise(op: OpName, out: TypedArray, a: TypedArray, b: TypedArray): void {
  const n = a.length;
  // The casts let one body serve number and bigint arrays; the element types match by the checks.
  const o = out as unknown as number[], x = a as unknown as number[], y = b as unknown as number[];
  switch (op) {
    case "sum": for (let i = 0; i < n; i++) o[i] = x[i]! + y[i]!; return;
    case "prod": for (let i = 0; i < n; i++) o[i] = x[i]! * y[i]!; return;
    case "min": for (let i = 0; i < n; i++) { const p = x[i]!, q = y[i]!; o[i] = p < q || p !== p ? p : q; } return;
    case "max": for (let i = 0; i < n; i++) { const p = x[i]!, q = y[i]!; o[i] = p > q || p !== p ? p : q; } return;
    case "band": for (let i = 0; i < n; i++) o[i] = x[i]! & y[i]!; return;
    case "bor": for (let i = 0; i < n; i++) o[i] = x[i]! | y[i]!; return;
    case "bxor": for (let i = 0; i < n; i++) o[i] = x[i]! ^ y[i]!; return;
    case "land": case "lor": {
      const one = (typeof x[0] === "bigint" ? 1n : 1) as number, zero = (typeof x[0] === "bigint" ? 0n : 0) as number;
      if (op === "land") for (let i = 0; i < n; i++) o[i] = x[i]! && y[i]! ? one : zero;
      else for (let i = 0; i < n; i++) o[i] = x[i]! || y[i]! ? one : zero;
      return;
    }
  }
}

/**
 * From this many elements on, the addon's kernel (when it loads) combines arrays: a call into it
 * costs about as much as a few hundred elements of the JavaScript loop, which it then runs ~10×
 * faster than (vectorised).
 */
const NATIVE_FROM = 512;
let kernel: ReturnType<typeof combineKernel> | null = null;

/** Element-wise `a op b`, into `into` or a new array of a's class. */
export function combineArrays(op: OpName, a: TypedArray, b: TypedArray, into?: TypedArray): TypedArray {
  const out = into ?? new (a.constructor as TypedArrayConstructor)(a.length);
  if (a.length >= NATIVE_FROM) {
    if (kernel === null) kernel = combineKernel();
    if (kernel !== undefined && kernel(OP_CODES.indexOf(op), out, a, b)) return out;
  }
  elementwise(op, out, a, b);
  return out;
}

/**
 * `a op b`, with `a` from the lower ranks. Throws MpiError when the two values do not go together
 * (different types, typed arrays of different classes or lengths).
 */
export function combine(call: string, op: Op, a: unknown, b: unknown): unknown {
  if (typeof op === "function") return op(a, b);
  const bad = (why: string) => new MpiError(`${call}: ranks passed values that do not reduce together with "${op}": ${why}`);
  if (isTypedArray(a) || isTypedArray(b)) {
    if (!isTypedArray(a) || !isTypedArray(b) || a.constructor !== b.constructor) throw bad(`${typeName(a)} and ${typeName(b)}`);
    if (a.length !== b.length) throw bad(`${typeName(a)} of length ${a.length} and of length ${b.length}`);
    return combineArrays(op, a, b);
  }
  if (typeof a !== typeof b) throw bad(`${typeName(a)} and ${typeName(b)}`);
  if (typeof a === "number") return scalar(op, a, b as number);
  if (typeof a === "bigint") return big(op, a, b as bigint);
  if (typeof a === "boolean") {
    const r = scalar(op, a ? 1 : 0, b ? 1 : 0);
    return r !== 0;
  }
  throw bad(`${typeName(a)} is not reducible`);
}
