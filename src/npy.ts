/**
 * The NumPy `.npy` file format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 * a magic string, a version, a header that is a Python dict literal ({'descr', 'fortran_order',
 * 'shape'}), padded so the data starts on a 64-byte boundary, then the array's bytes in C order.
 * Written and read here so that checkpoints are files users open with `numpy.load`, and so that
 * a field prepared with `numpy.save` can seed a run.
 */
import { MpiError } from "./errors.js";
import type { TypedArray } from "./wire.js";

/** The typed-array classes a `.npy` file maps to, by NumPy's little-endian type string. */
const BY_DESCR = {
  "<f8": Float64Array,
  "<f4": Float32Array,
  "|i1": Int8Array,
  "|u1": Uint8Array,
  "<i2": Int16Array,
  "<u2": Uint16Array,
  "<i4": Int32Array,
  "<u4": Uint32Array,
  "<i8": BigInt64Array,
  "<u8": BigUint64Array,
} as const;

export type NpyDescr = keyof typeof BY_DESCR;

/** What a `.npy` header says: the element type, the shape, and where the data starts. */
export interface NpyHeader {
  descr: NpyDescr;
  shape: number[];
  /** Byte offset of the first element (the header's whole length). */
  dataOffset: number;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** NumPy's type string for a typed-array class, e.g. Float64Array → "<f8". */
export function npyDescr(dtype: { readonly name: string }): NpyDescr {
  if (dtype.name === "Uint8ClampedArray") return "|u1";
  for (const [descr, T] of Object.entries(BY_DESCR)) if (T.name === dtype.name) return descr as NpyDescr;
  throw new MpiError(`.npy: no NumPy type for ${dtype.name}`);
}

/** The typed-array class for a type string read from a file. */
export function npyClass(descr: NpyDescr): { new (length: number): TypedArray; readonly BYTES_PER_ELEMENT: number; readonly name: string } {
  return BY_DESCR[descr];
}

/** The header bytes for an array of `descr` and `shape` (version 1.0, or 2.0 when it is long). */
export function encodeNpyHeader(descr: NpyDescr, shape: readonly number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  // Version 1.0 has a 2-byte header length; only absurd numbers of dimensions need 2.0's 4 bytes.
  const major = dict.length + 1 + 10 > 0xffff ? 2 : 1;
  const prefix = 6 + 2 + (major === 1 ? 2 : 4);
  const total = Math.ceil((prefix + dict.length + 1) / 64) * 64;
  const out = new Uint8Array(total);
  out.set(MAGIC);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, total - prefix, true);
  else view.setUint32(8, total - prefix, true);
  out.fill(0x20, prefix);
  for (let i = 0; i < dict.length; i++) out[prefix + i] = dict.charCodeAt(i);
  out[total - 1] = 0x0a;
  return out;
}

/**
 * Reads the header from the first bytes of a file (`head`: at least the first 10 bytes, and the
 * whole header when it is longer; `needed` says how many to read when they are too few).
 * Throws MpiError naming `file` for anything but a C-order little-endian array of a type above.
 */
export function decodeNpyHeader(head: Uint8Array, file: string): NpyHeader | { needed: number } {
  const bad = (why: string) => new MpiError(`${file}: not a .npy file tsmpi can read: ${why}`);
  if (head.length < 10 || MAGIC.some((b, i) => head[i] !== b)) throw bad("it does not start with \\x93NUMPY");
  const major = head[6]!;
  if (major < 1 || major > 3) throw bad(`format version ${major}.${head[7]} is unknown`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const prefix = major === 1 ? 10 : 12;
  if (head.length < prefix) return { needed: prefix };
  const length = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (head.length < prefix + length) return { needed: prefix + length };
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(head.subarray(prefix, prefix + length));
  const field = (key: string, value: string) => new RegExp(`['"]${key}['"]\\s*:\\s*${value}`).exec(text);
  const descr = field("descr", `['"]([^'"]*)['"]`)?.[1];
  const fortran = field("fortran_order", `(True|False)`)?.[1];
  const shapeText = field("shape", `\\(([^)]*)\\)`)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(`its header ${JSON.stringify(text.trim())} lacks descr, fortran_order or shape`);
  if (fortran === "True") throw bad("it is in Fortran order (save numpy.ascontiguousarray(a) instead)");
  // NumPy writes "=" or "|" for byte order where it does not matter; a little-endian machine reads "<".
  const normal = descr.replace(/^=/, "<").replace(/^<([iub]1)$/, "|$1");
  if (!(normal in BY_DESCR)) throw bad(`its element type ${descr} is not one of ${Object.keys(BY_DESCR).join(", ")}`);
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  if (shape.some((n) => !Number.isSafeInteger(n) || n < 0)) throw bad(`its shape (${shapeText}) is not a list of sizes`);
  return { descr: normal as NpyDescr, shape, dataOffset: prefix + length };
}
