// Reduction ops on every kind of value they take, and the errors for values they do not.
import { describe, expect, it } from "vitest";
import { checkOp, checkReducible, combine, combineArrays, type OpName } from "../src/op.js";
import { combineKernel, foldKernel, OP_CODES } from "../src/transport/native.js";
import type { TypedArray } from "../src/wire.js";

describe("reduction ops", () => {
  it("combine numbers, bigints and booleans", () => {
    expect(combine("t", "sum", 2, 3)).toBe(5);
    expect(combine("t", "prod", 2, 3)).toBe(6);
    expect(combine("t", "min", 2, -3)).toBe(-3);
    expect(combine("t", "max", 2, -3)).toBe(2);
    expect(combine("t", "band", 2 ** 40 + 3, 2 ** 40 + 5)).toBe(2 ** 40 + 1);
    expect(combine("t", "bxor", 6, 3)).toBe(5);
    expect(combine("t", "sum", 1n << 80n, 1n)).toBe((1n << 80n) + 1n);
    expect(combine("t", "land", true, false)).toBe(false);
    expect(combine("t", "lor", true, false)).toBe(true);
    expect(combine("t", "land", 2, 3)).toBe(1);
    expect(Number.isNaN(combine("t", "max", NaN, 1))).toBe(true);
  });

  it("combine typed arrays element-wise into a new array of the same class", () => {
    const a = new Int16Array([1, 2, 3]), b = new Int16Array([4, -5, 6]);
    const s = combine("t", "sum", a, b) as Int16Array;
    expect(s).toBeInstanceOf(Int16Array);
    expect([...s]).toEqual([5, -3, 9]);
    expect([...a]).toEqual([1, 2, 3]);
    expect([...(combine("t", "min", new BigInt64Array([5n]), new BigInt64Array([-5n])) as BigInt64Array)]).toEqual([-5n]);
    expect([...(combine("t", "sum", new Uint8ClampedArray([200]), new Uint8ClampedArray([100])) as Uint8ClampedArray)]).toEqual([255]);
    expect([...(combine("t", "land", new Float32Array([0, 2]), new Float32Array([1, 1])) as Float32Array)]).toEqual([0, 1]);
  });

  it("reject values that do not go together, naming them", () => {
    expect(() => combine("allreduce", "sum", new Float64Array(2), new Float64Array(3))).toThrow(/Float64Array of length 2 and of length 3/);
    expect(() => combine("allreduce", "sum", new Float64Array(2), new Float32Array(2))).toThrow(/Float64Array and Float32Array/);
    expect(() => combine("allreduce", "sum", 1, 1n)).toThrow(/number and bigint/);
  });

  it("check ops and values before anything is sent", () => {
    expect(() => checkOp("reduce", "mean")).toThrow(/op "mean" is not a reduction op/);
    expect(() => checkReducible("reduce", "abc", "sum")).toThrow(/cannot reduce string with "sum"/);
    expect(() => checkReducible("reduce", true, "sum")).toThrow(/booleans reduce with land/);
    expect(() => checkReducible("reduce", 1.5, "bor")).toThrow(/bitwise ops need integers/);
    expect(() => checkReducible("reduce", new Float32Array(1), "bxor")).toThrow(/integer typed array/);
    expect(() => checkReducible("reduce", { a: 1 }, (x: unknown) => x)).not.toThrow();
  });

  // Large arrays are combined by the addon's C loop: it must give JavaScript's bits exactly
  // (wrapping, NaN and -0, rounding of float32), or leave the work to JavaScript.
  describe("the native kernel gives JavaScript's bits", () => {
    const kernel = combineKernel();
    it("is there (the addon loads here)", () => {
      expect(kernel).toBeTypeOf("function");
      expect(kernel!(OP_CODES.indexOf("sum"), new Float64Array(4), new Float64Array(4), new Float64Array(4))).toBe(true);
      // A 32-bit product rounds in JavaScript (a double) and wraps in C: left to JavaScript.
      expect(kernel!(OP_CODES.indexOf("prod"), new Int32Array(4), new Int32Array(4), new Int32Array(4))).toBe(false);
    });
    const edges = [0, -0, 1, -1, 0.5, -2.75, 127, 128, 255, 256, -129, 32767, -32769, 65535, 2 ** 31 - 1, -(2 ** 31), 2 ** 32 - 1, 1e300, -1e-300, 3.4e38, Infinity, -Infinity, NaN];
    const classes = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];
    const opsOf = (C: (typeof classes)[number]): OpName[] =>
      C === Float32Array || C === Float64Array ? ["sum", "prod", "min", "max", "land", "lor"] : ["sum", "prod", "min", "max", "land", "lor", "band", "bor", "bxor"];
    /** `count` arrays of n edge and random values of class C, the same ones on every run. */
    const arrays = (C: (typeof classes)[number], n: number, count: number): TypedArray[] => {
      const big = C === BigInt64Array || C === BigUint64Array;
      let seed = 12345;
      const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
      const value = (): number | bigint => {
        const e = edges[next() % edges.length]!;
        if (big) return BigInt.asIntN(64, BigInt(next()) * BigInt(next()) * (next() % 2 ? 1n : -1n) + (Number.isFinite(e) ? BigInt(Math.trunc(e)) : 0n));
        return next() % 3 === 0 ? e : (next() - 2 ** 30) / (next() % 7 === 0 ? 1 : 1000);
      };
      return Array.from({ length: count }, () => {
        const a = new (C as unknown as new (n: number) => TypedArray)(n);
        for (let i = 0; i < n; i++) (a as unknown as (number | bigint)[])[i] = value();
        return a;
      });
    };
    /** JavaScript's own fold of `ins` (pieces below the kernel's size), left to right. */
    const byJavaScript = (op: OpName, ins: TypedArray[]): TypedArray => {
      const n = ins[0]!.length;
      const want = new (ins[0]!.constructor as new (n: number) => TypedArray)(n);
      for (let i = 0; i < n; i += 100) {
        const piece = want.subarray(i, i + 100);
        piece.set(ins[0]!.subarray(i, i + 100) as never);
        for (let k = 1; k < ins.length; k++) combineArrays(op, piece, ins[k]!.subarray(i, i + 100), piece);
      }
      return want;
    };
    const firstDifference = (got: TypedArray, want: TypedArray): number | undefined => Array.from({ length: want.length }, (_, i) => i).find((i) => !Object.is(got[i], want[i]));
    for (const C of classes) {
      const ops = opsOf(C);
      it(`${C.name}: ${ops.join(", ")}`, () => {
        const [a, b] = arrays(C, 2000, 2) as [TypedArray, TypedArray];
        for (const op of ops) {
          const got = combineArrays(op, a, b);
          const want = byJavaScript(op, [a, b]);
          const bad = firstDifference(got, want);
          expect(bad === undefined ? "same" : `${op} at ${bad}: ${a[bad]} ${op} ${b[bad]} = ${got[bad]}, JavaScript ${want[bad]}`).toBe("same");
        }
      });
    }

    // A staged allreduce's share (src/board.ts): p arrays folded in one pass, in their order, the
    // result streamed to an array at any alignment and copied into one of the inputs.
    const fold = foldKernel()!;
    for (const C of classes) {
      const ops = opsOf(C);
      it(`fold of 4 ${C.name}s over several chunks, into a misaligned result and back into an input: ${ops.join(", ")}`, () => {
        const n = 5001; // more than one of fold's 4 KiB chunks for every class
        const ins = arrays(C, n, 4);
        for (const op of ops) {
          const want = byJavaScript(op, ins);
          const out = new (C as unknown as new (n: number) => TypedArray)(n + 1).subarray(1);
          const inputs = ins.map((x) => x.slice());
          const done = fold(OP_CODES.indexOf(op), out, inputs[2]!, inputs);
          // Exactly where combine leaves the work to JavaScript, fold does too, touching nothing.
          const native = combineKernel()!(OP_CODES.indexOf(op), new (C as unknown as new (n: number) => TypedArray)(1), ins[0]!.subarray(0, 1), ins[1]!.subarray(0, 1));
          expect(done).toBe(native);
          if (!done) {
            expect(firstDifference(inputs[2]!, ins[2]!)).toBeUndefined();
            continue;
          }
          for (const [name, got] of [["result", out], ["copy", inputs[2]!]] as const) {
            const bad = firstDifference(got, want);
            expect(bad === undefined ? "same" : `${op} ${name} at ${bad}: ${got[bad]}, JavaScript ${want[bad]}`).toBe("same");
          }
        }
      });
    }

    it("fold takes one input (a copy), no copy, no result (into the copy only), and an empty result", () => {
      const a = Float64Array.from({ length: 700 }, (_, i) => i - 0.5);
      const out = new Float64Array(700);
      expect(fold(OP_CODES.indexOf("max"), out, null, [a])).toBe(true);
      expect(Array.from(out)).toEqual(Array.from(a));
      const copy = new Float64Array(700);
      expect(fold(OP_CODES.indexOf("sum"), null, copy, [a, a])).toBe(true);
      expect(Array.from(copy)).toEqual(Array.from(a, (x) => 2 * x));
      expect(fold(OP_CODES.indexOf("sum"), new Float64Array(0), null, [a, a])).toBe(true);
    });

    it("fold refuses arrays that do not go together, naming what is wrong", () => {
      const sum = OP_CODES.indexOf("sum");
      const f8 = (n: number) => new Float64Array(n);
      expect(() => fold(sum, null, null, [f8(4)])).toThrow(/fold needs a result array, a copy, or both/);
      expect(() => fold(sum, f8(4), null, [])).toThrow(/fold takes an array of 1 to 1024 typed arrays/);
      expect(() => fold(sum, f8(4), null, f8(4) as never)).toThrow(/fold takes an array of 1 to 1024 typed arrays/);
      expect(() => fold(sum, f8(4), null, [f8(4), new Float32Array(4)])).toThrow(/one class, each at least as long as out/);
      expect(() => fold(sum, f8(4), null, [f8(4), f8(3)])).toThrow(/one class, each at least as long as out/);
      expect(() => fold(sum, f8(4), f8(3), [f8(4)])).toThrow(/copy must be of out's class and at least as long/);
      expect(() => fold(sum, f8(4), null, [f8(4), [1, 2] as never])).toThrow(/fold takes typed arrays/);
    });
  });
});
