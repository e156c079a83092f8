// dimsCreate and Cartesian geometry: pure functions, checked against what MPI_Dims_create gives.
import { describe, expect, it } from "vitest";
import { MpiError, PROC_NULL, dimsCreate } from "../src/index.js";
import { CartGeometry, fillDims } from "../src/topology.js";

describe("dimsCreate", () => {
  it("factorises as MPI_Dims_create does: balanced, largest first", () => {
    const cases: [number, number, number[]][] = [
      [1, 2, [1, 1]], [2, 2, [2, 1]], [4, 2, [2, 2]], [6, 2, [3, 2]], [7, 2, [7, 1]], [12, 2, [4, 3]],
      [16, 2, [4, 4]], [8, 3, [2, 2, 2]], [6, 3, [3, 2, 1]], [24, 3, [4, 3, 2]], [64, 3, [4, 4, 4]], [5, 1, [5]],
    ];
    for (const [n, d, want] of cases) expect(dimsCreate(n, d), `${n}, ${d}`).toEqual(want);
  });

  it("fills only the zero entries, keeping the fixed ones", () => {
    expect(fillDims(12, [0, 3])).toEqual([4, 3]);
    expect(fillDims(12, [2, 0, 0])).toEqual([2, 3, 2]);
    expect(fillDims(6, [6, 0])).toEqual([6, 1]);
  });

  it("rejects what cannot be filled, saying why", () => {
    expect(() => fillDims(12, [5, 0])).toThrow(/cannot multiply to 12/);
    expect(() => fillDims(12, [3, 2])).toThrow(MpiError);
    expect(() => dimsCreate(0, 2)).toThrow(/nnodes must be a positive integer/);
    expect(() => dimsCreate(4, 0)).toThrow(/ndims must be a positive integer/);
  });
});

describe("Cartesian geometry", () => {
  const g = new CartGeometry([2, 3, 4], [false, true, false]);
  it("numbers ranks row-major and round-trips coordinates", () => {
    expect(g.rankAt([1, 2, 3])).toBe(23);
    expect(g.coordsOf(23)).toEqual([1, 2, 3]);
    for (let r = 0; r < 24; r++) expect(g.rankAt(g.coordsOf(r))).toBe(r);
  });
  it("wraps periodic dimensions and gives PROC_NULL off the others", () => {
    expect(g.rankAt([0, -1, 0])).toBe(g.rankAt([0, 2, 0]));
    expect(g.rankAt([2, 0, 0])).toBe(PROC_NULL);
    expect(g.shift(0, 0, 1)).toEqual({ source: PROC_NULL, dest: 12 });
    expect(g.shift(0, 1, 1)).toEqual({ source: 8, dest: 4 });
    expect(g.shift(0, 2, -1)).toEqual({ source: 1, dest: PROC_NULL });
  });
  it("rejects bad directions and ranks", () => {
    expect(() => g.shift(0, 3, 1)).toThrow(/direction 3 is not a dimension/);
    expect(() => g.coordsOf(24)).toThrow(/rank 24 is not in the grid/);
  });
});
