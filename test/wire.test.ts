// The wire format on its own: values to frames and back, as a receiver would see them.
import { describe, expect, it } from "vitest";
import { pack, unpack } from "msgpackr";
import { decode, decodeInto, encode, Kind, readU32, writeU32 } from "../src/wire.js";
import { MpiError, TruncateError } from "../src/errors.js";

/** What the receiving side gets: frames copied into fresh buffers, as zeromq delivers them. */
function roundTrip(v: unknown): unknown {
  const e = encode(v);
  return decode(e.kind, e.meta, e.frames.map((f) => Buffer.from(f)));
}

describe("wire format", () => {
  it("leaves the user's own msgpackr usable: typed arrays keep their bytes there", () => {
    // msgpackr's extension table is process-wide; tsmpi's extensions must not break other users.
    const v = { a: new Float32Array([1.5, -2]), b: new Uint8Array([0, 200, 255]), c: new BigInt64Array([-3n]), d: new ArrayBuffer(2) };
    const back = unpack(pack(v)) as typeof v;
    expect(back.a).toBeInstanceOf(Float32Array);
    expect([...back.a, ...back.b, ...back.c]).toEqual([1.5, -2, 0, 200, 255, -3n]);
    expect(back.d.byteLength).toBe(2);
    expect(unpack(pack({ f: () => 1 }))).toEqual({ f: undefined });
    // and tsmpi's own encoding still sends those bytes as side frames, not inside the msgpack
    const e = encode(v);
    expect(e.frames).toHaveLength(5);
    expect(e.frames[0]!.byteLength).toBeLessThan(60);
    expect(() => encode({ f: () => 1 })).toThrow(/a function \(f\) cannot be sent/);
  });

  it("keeps the type of every structured-clone value", () => {
    const values: unknown[] = [null, undefined, NaN, -Infinity, 7n, -(2n ** 90n), "ü", [1, [2]], { a: { b: undefined } }, new Map([[1, new Set(["x"])]]), new Date(5)];
    for (const v of values) expect(roundTrip(v)).toEqual(v);
  });

  it("sends a top-level typed array as one raw frame, with no msgpack", () => {
    const a = new Float64Array([1, 2, 3]);
    const e = encode(a);
    expect(e.kind).toBe(Kind.Raw);
    expect(e.frames).toHaveLength(1);
    expect(e.frames[0]!.equals(Buffer.from(a.buffer))).toBe(true);
    expect(roundTrip(a)).toEqual(a);
  });

  it("sends nested binaries as their own raw frames", () => {
    const big = new Float32Array(10_000).fill(1.5);
    const v = { big, list: [new BigUint64Array([1n]), new ArrayBuffer(3)], view: new DataView(new ArrayBuffer(2)) };
    const e = encode(v);
    expect(e.kind).toBe(Kind.Packed);
    expect(e.frames).toHaveLength(5);
    expect(e.frames[0]!.byteLength).toBeLessThan(200); // the floats are not inside the msgpack
    const back = roundTrip(v) as typeof v;
    expect(back.big).toBeInstanceOf(Float32Array);
    expect(back).toEqual(v);
  });

  it("gives received arrays their own memory, not a view of a shared pool", () => {
    const back = roundTrip(new Int16Array([1, 2])) as Int16Array;
    expect(back.buffer.byteLength).toBe(4);
  });

  it("reads a typed array from a frame inside a larger buffer, aligned or not, into memory of its own with the bits as sent", () => {
    const sent = new Float64Array([1.5, NaN]);
    new Uint32Array(sent.buffer)[2] = 0xdeadbeef; // a NaN with a payload
    for (const offset of [8, 12]) {
      const pool = new ArrayBuffer(64);
      new Uint8Array(pool, offset, 16).set(new Uint8Array(sent.buffer));
      const back = decode(Kind.Raw, encode(sent).meta, [Buffer.from(pool, offset, 16)]) as Float64Array;
      expect(back).toBeInstanceOf(Float64Array);
      expect(back.buffer.byteLength).toBe(16);
      expect(Buffer.from(back.buffer).equals(Buffer.from(sent.buffer))).toBe(true);
    }
  });

  it("rejects functions and symbols with MpiError", () => {
    expect(() => encode({ cb: () => 0 })).toThrow(MpiError);
    expect(() => encode(Symbol("s"))).toThrow(/cannot be encoded/);
  });

  it("rejects what structured clone refuses instead of sending it as {}: WeakMap, WeakSet, WeakRef, Promise", () => {
    expect(() => encode({ cache: new WeakMap() })).toThrow(new MpiError("a WeakMap cannot be sent (structured clone refuses it too)"));
    expect(() => encode([new WeakSet()])).toThrow("a WeakSet cannot be sent");
    expect(() => encode(new WeakRef({}))).toThrow("a WeakRef cannot be sent");
    expect(() => encode({ p: Promise.resolve(1) })).toThrow("a Promise cannot be sent");
    // Someone else's msgpackr still packs them, without an error (they unpack as undefined).
    expect(unpack(pack({ w: new WeakMap() }))).toEqual({ w: undefined });
  });

  it("reads and writes little-endian u32s as Buffer does, at any offset, over the whole range", () => {
    const values = [0, 1, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 123456789];
    for (const at of [0, 1, 2, 3, 5]) {
      for (const v of values) {
        const ours = Buffer.alloc(12, 0xaa);
        writeU32(ours, at, v);
        const theirs = Buffer.alloc(12, 0xaa);
        theirs.writeUInt32LE(v, at);
        expect(ours).toEqual(theirs); // the bytes around are left alone
        expect(readU32(theirs, at)).toBe(v);
      }
    }
  });

  it("receives into a typed array, and reports truncation", () => {
    const e = encode(new Int32Array([1, 2, 3]));
    const into = new Int32Array(4);
    expect(decodeInto(e.kind, e.frames, into, "recvInto")).toBe(3);
    expect([...into]).toEqual([1, 2, 3, 0]);
    expect(() => decodeInto(e.kind, e.frames, new Int32Array(2), "recvInto")).toThrow(TruncateError);
  });
});
