/**
 * Wire format: how a value becomes frames and back.
 *
 * A top-level typed array / ArrayBuffer / Buffer / DataView travels as one raw frame (kind `Raw`,
 * `meta` = its type code). Anything else is packed with msgpackr (kind `Packed`); binary values
 * nested inside it are not copied into the msgpack bytes but travel as extra raw frames, each
 * referenced from the packed frame by index. Frames that are views of the caller's memory are
 * reported as `borrowed` so the transport can decide whether to copy them or wait for an ack.
 */
import { Buffer } from "node:buffer"; // not the global, which is a getter: a call on every use
// The entry without the optional native string decoder (msgpackr-extract): loading that cost each
// rank ~12 ms of start-up, for a speed-up only large string-heavy messages would see.
import { Packr, addExtension } from "msgpackr/pack";
import { MpiError, TruncateError } from "./errors.js";

export const enum Kind {
  Raw = 0,
  Packed = 1,
}

/** Constructors of the binary types, indexed by the type code that travels in the header. */
const BINARY_TYPES = [
  ArrayBuffer,
  Buffer,
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
] as const;
/** How many type codes a raw payload may carry (checked on every message that arrives). */
export const BINARY_TYPE_COUNT = BINARY_TYPES.length;

/** Every typed-array class: what travels as raw bytes, and what `recvInto` receives into. */
export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

export type TypedArrayConstructor = { new (length: number): TypedArray; new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray; readonly BYTES_PER_ELEMENT: number; readonly name: string };

const CODE_ARRAYBUFFER = 0;
const CODE_BUFFER = 1;
const CODE_DATAVIEW = 13;

const codeByConstructor = new Map<unknown, number>(BINARY_TYPES.map((c, i) => [c, i]));

/** The type code of a binary value, or -1 when `v` is not one. */
export function binaryCode(v: unknown): number {
  if (typeof v !== "object" || v === null) return -1;
  const code = codeByConstructor.get(v.constructor);
  if (code !== undefined) return code;
  // Subclasses travel as their nearest built-in class, as structured clone does.
  if (v instanceof ArrayBuffer) return CODE_ARRAYBUFFER;
  if (ArrayBuffer.isView(v)) {
    for (let i = BINARY_TYPES.length - 1; i > 0; i--) if (v instanceof BINARY_TYPES[i]) return i;
  }
  return -1;
}

/**
 * The type code of `v` when it is an instance of a built-in typed-array class itself (not a
 * subclass, not a Buffer), else -1.
 */
export function plainTypedArrayCode(v: unknown): number {
  if (typeof v !== "object" || v === null) return -1;
  const code = codeByConstructor.get(v.constructor);
  return code === undefined || code === CODE_ARRAYBUFFER || code === CODE_BUFFER || code === CODE_DATAVIEW ? -1 : code;
}

export function isTypedArray(v: unknown): v is TypedArray {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/** A Buffer viewing the bytes of a binary value, without copying. */
export function bytesOf(v: ArrayBufferView | ArrayBufferLike): Buffer {
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return Buffer.from(v);
}

function fromFrame(code: number, buf: Buffer): unknown {
  if (code === CODE_BUFFER) return buf;
  // Each read once: these are builtin calls, and a received typed array comes through here.
  const ab = buf.buffer;
  const offset = buf.byteOffset;
  const bytes = buf.length;
  // A view is free when the frame owns its whole backing store (large frames do); a small frame
  // can sit in a shared pool, and a view would expose the pool's other bytes through `.buffer`.
  const owned = offset === 0 && ab.byteLength === bytes;
  if (code === CODE_ARRAYBUFFER) return owned ? ab : ab.slice(offset, offset + bytes);
  if (code === CODE_DATAVIEW) return new DataView(owned ? ab : ab.slice(offset, offset + bytes));
  const T = BINARY_TYPES[code] as TypedArrayConstructor | undefined;
  if (!T) throw new MpiError(`corrupt message: unknown binary type code ${code}`);
  const bpe = T.BYTES_PER_ELEMENT;
  if (bytes % bpe !== 0) throw new MpiError(`corrupt message: ${bytes} bytes is not a whole number of ${T.name} elements`);
  const n = bytes / bpe;
  if (owned) return new T(ab, 0, n);
  // A copy that never reads the new array's `.buffer`: a small typed array lives inside V8's heap
  // until its buffer is asked for, which moves it out (a malloc now, a sweep later). Inline
  // payloads start 8-byte aligned (protocol.ts), so the bytes can be read as a T in place.
  if (offset % bpe !== 0) return new T(ab.slice(offset, offset + bytes), 0, n);
  const out = new T(n);
  // One class on both sides: set() copies the bytes as they are (NaN payloads too). The casts
  // only merge the bigint and number classes for TypeScript.
  (out as Uint8Array).set(new T(ab, offset, n) as Uint8Array);
  return out;
}

// Nested binaries are collected into module-level lists while one pack/unpack runs. Packing and
// unpacking are synchronous, so no other message can interleave with them.
let sideOut: Buffer[] = [];
let sideIn: Buffer[] = [];
/** True while tsmpi itself packs: msgpackr's extension table is process-wide, so the same
 * extensions also run when the user's own code packs with msgpackr. */
let packing = false;

function writeBinary(v: ArrayBufferView | ArrayBuffer): unknown[] {
  if (!packing) {
    // Someone else's msgpackr.pack(): keep the bytes in the packed data itself (latin1 maps each
    // byte to one character, and back).
    return [binaryCode(v), -1, Buffer.from(bytesOf(v)).toString("latin1")];
  }
  sideOut.push(bytesOf(v));
  return [binaryCode(v), sideOut.length - 1];
}
function readBinary(ref: unknown): unknown {
  const [code, index, inline] = ref as [number, number, string?];
  if (index === -1) return fromFrame(code, Buffer.from(inline ?? "", "latin1"));
  const buf = sideIn[index + 1]; // frame 0 is the packed value itself
  if (!buf) throw new MpiError(`corrupt message: missing binary frame ${index}`);
  return fromFrame(code, buf);
}
const TypedArrayBase = Object.getPrototypeOf(Uint8Array) as abstract new () => TypedArray;
// addExtension registers on msgpackr's module-wide table. 0x20-0x23 are free: msgpackr itself
// uses 0x00, 0x10, 0x11, 0x42, 0x52, 0x62, 0x65, 0x69, 0x70, 0x72-0x74, 0x78 and 0xff.
addExtension({ Class: TypedArrayBase, type: 0x20, write: writeBinary, read: readBinary });
addExtension({ Class: DataView, type: 0x21, write: writeBinary, read: readBinary });
addExtension({ Class: ArrayBuffer, type: 0x22, write: writeBinary, read: readBinary });
addExtension({
  Class: Function,
  type: 0x23,
  write(fn: Function) {
    if (!packing) return null; // someone else's pack(): a function unpacks as undefined, no error
    throw new MpiError(`a function (${fn.name || "anonymous"}) cannot be sent`);
  },
  read: () => undefined,
});

// What structured clone refuses and msgpackr would send as an empty object: refused too, rather
// than arriving as {} (their contents are not reachable, or not data).
const UNSENDABLE: [new (...args: never[]) => object, number][] = [
  [WeakMap, 0x24],
  [WeakSet, 0x25],
  [WeakRef, 0x26],
  [Promise, 0x27],
];
for (const [Class, type] of UNSENDABLE) {
  addExtension({
    Class,
    type,
    write() {
      if (!packing) return null; // someone else's pack(): unpacks as undefined, as a function does
      throw new MpiError(`a ${Class.name} cannot be sent (structured clone refuses it too)`);
    },
    read: () => undefined,
  });
}

const packr = new Packr({ structuredClone: true, useBigIntExtension: true });

export interface Encoded {
  kind: Kind;
  meta: number;
  frames: Buffer[];
  /** Frames from this index on are views of the caller's memory (it may overwrite them later). */
  borrowedFrom: number;
}

/** Encodes `value`; throws MpiError when it cannot be encoded. */
export function encode(value: unknown): Encoded {
  const code = binaryCode(value);
  if (code >= 0) {
    return { kind: Kind.Raw, meta: code, frames: [bytesOf(value as ArrayBufferView)], borrowedFrom: 0 };
  }
  sideOut = [];
  let packed: Buffer;
  packing = true;
  try {
    packed = packr.pack(value);
  } catch (e) {
    if (e instanceof MpiError) throw e;
    throw new MpiError(`value cannot be encoded: ${(e as Error).message}`);
  } finally {
    packing = false;
  }
  const frames = [packed, ...sideOut];
  sideOut = [];
  // msgpackr never writes over a buffer it has returned, so the packed frame is ours to keep.
  return { kind: Kind.Packed, meta: 0, frames, borrowedFrom: 1 };
}

/** `meta`: the header's; its low byte is a raw payload's type code (a collective's signature sits above). */
export function decode(kind: number, meta: number, frames: Buffer[]): unknown {
  if (kind === Kind.Raw) return fromFrame(meta & 0xff, frames[0]!);
  sideIn = frames;
  try {
    return packr.unpack(frames[0]!);
  } finally {
    sideIn = [];
  }
}

/** Bytes per element of a view (1 for a DataView or Buffer). */
export function elementBytes(v: ArrayBufferView): number {
  return (v as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
}

/**
 * The elements `bytes` bytes of a raw message fill in `into`, or undefined when they do not fit
 * it as decodeInto requires (no larger, a whole number of elements).
 */
export function elementsIn(bytes: number, into: ArrayBufferView): number | undefined {
  const bpe = elementBytes(into);
  return bytes <= into.byteLength && bytes % bpe === 0 ? bytes / bpe : undefined;
}

/**
 * A little-endian u32 at byte `at`, by plain byte loads; the caller checks the bounds. Headers and
 * frame lengths are read and written on every message, and Buffer's readUInt32LE/writeUInt32LE
 * validate each call in JavaScript of their own, which V8 has not optimized for a job's first
 * thousands of messages: a header was written in 1.5 µs and read in 0.75 µs there, 0.56 and
 * 0.37 µs with bytes (0.19 → 0.09 and 0.08 → 0.02 µs once optimized).
 */
export function readU32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 0x1000000;
}

/** Stores `v` (0 to 2³² − 1) as a little-endian u32 at byte `at`; the caller checks the bounds. */
export function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** Payload size in bytes, as `probe` reports it. */
export function payloadBytes(frames: Buffer[]): number {
  let n = 0;
  for (let i = 0; i < frames.length; i++) n += frames[i]!.length; // length: see protocol.writeHeader
  return n;
}

/**
 * Copies a raw message into `target`, returning the number of elements written.
 * Only binary messages can be received into a typed array; the bytes are taken as they are
 * (as MPI does with matching datatypes), so the element sizes must divide the byte count.
 */
export function decodeInto(kind: number, frames: Buffer[], target: TypedArray, call: string): number {
  if (kind !== Kind.Raw) throw new MpiError(`${call}: the message is not a typed array or binary buffer; use recv() for objects`);
  const src = frames[0]!;
  // Sizes from `length`s: see protocol.writeHeader.
  const bytes = src.length;
  const bpe = target.BYTES_PER_ELEMENT;
  if (bytes > target.length * bpe) {
    throw new TruncateError(`${call}: message of ${bytes} bytes does not fit the ${target.constructor.name} of ${target.length} elements (${target.byteLength} bytes)`);
  }
  if (bytes % bpe !== 0) {
    throw new MpiError(`${call}: message of ${bytes} bytes is not a whole number of ${target.constructor.name} elements`);
  }
  new Uint8Array(target.buffer, target.byteOffset, bytes).set(src);
  return bytes / bpe;
}
