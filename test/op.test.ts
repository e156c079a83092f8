// Reduction ops on every kind of value they take, and the errors for values they do not.
import { describe, expect, it } from "vitest";
import { checkOp, checkReducible, combine } from "../src/op.js";

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
});
