// The heat example's kernels in one process: cache blocking over time (wavefront) against one
// pass per step, bit for bit, on the boxes a deep-halo window gives.
import { describe, expect, it } from "vitest";
import { stepJs, wasmKernel, wavefront, type Box, type StepFunction } from "../examples/lib/ftcs.js";

/** A rows × cols block with g ghost layers, filled with a field that is not smooth. */
function field(rows: number, cols: number, g: number, make: (n: number) => Float64Array): Float64Array {
  const a = make((rows + 2 * g) * (cols + 2 * g));
  for (let k = 0; k < a.length; k++) a[k] = Math.sin(k * 0.37) + (k % 7) * 0.01;
  return a;
}

/** The boxes of steps 0 … k − 1 of a window, as BlockGrid.updateBox gives them (neighbours on the sides in `grow`). */
function boxes(rows: number, cols: number, g: number, k: number, grow: { top: boolean; bottom: boolean; left: boolean; right: boolean }): Box[] {
  return Array.from({ length: k }, (_, t): Box => {
    const e = k - 1 - t;
    return [[g - (grow.top ? e : 0), g + rows + (grow.bottom ? e : 0)], [g - (grow.left ? e : 0), g + cols + (grow.right ? e : 0)]];
  });
}

const kernels: [string, StepFunction, (n: number) => Float64Array][] = [["js", stepJs, (n) => new Float64Array(n)]];
const wasm = wasmKernel(16 * 64 * 64);
if (wasm) kernels.push(["wasm", wasm.step, (n) => wasm.alloc(n)]);

describe.skipIf(!wasm)("the WebAssembly kernel", () => {
  it("gives the TypeScript kernel's bits on rows of every length mod 4 (four cells at a time, then two, then one)", () => {
    for (const cols of [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 31]) {
      const g = 1, rows = 5, W = cols + 2 * g;
      const src = field(rows, cols, g, (n) => wasm!.alloc(n));
      const [a, b] = [wasm!.alloc(src.length), new Float64Array(src.length)];
      wasm!.step(src, a, W, 0.23, g, g + rows, g, g + cols);
      stepJs(src, b, W, 0.23, g, g + rows, g, g + cols);
      expect([...a]).toEqual([...b]);
    }
  });
});

describe.each(kernels)("wavefront over the %s kernel", (_name, kernel, make) => {
  const cases = [
    { rows: 23, cols: 17, g: 4, k: 4, band: 1, grow: { top: true, bottom: true, left: true, right: true } },
    { rows: 23, cols: 17, g: 8, k: 7, band: 3, grow: { top: false, bottom: true, left: true, right: false } },
    { rows: 9, cols: 30, g: 3, k: 3, band: 100, grow: { top: false, bottom: false, left: false, right: false } },
    { rows: 30, cols: 5, g: 5, k: 2, band: 4, grow: { top: true, bottom: false, left: false, right: true } },
  ];
  for (const c of cases) {
    it(`gives the bits of one pass per step: ${c.rows}×${c.cols}, k = ${c.k}, band ${c.band}, growing ${Object.entries(c.grow).filter(([, v]) => v).map(([s]) => s).join("/") || "nowhere"}`, () => {
      const W = c.cols + 2 * c.g, r = 0.2;
      const step = (src: Float64Array, dst: Float64Array, i0: number, i1: number, j0: number, j1: number) => {
        if (i1 > i0 && j1 > j0) kernel(src, dst, W, r, i0, i1, j0, j1);
      };
      const bx = boxes(c.rows, c.cols, c.g, c.k, c.grow);
      // One pass per step.
      let [u, next] = [field(c.rows, c.cols, c.g, make), field(c.rows, c.cols, c.g, make)];
      for (const [[i0, i1], [j0, j1]] of bx) {
        step(u, next, i0, i1, j0, j1);
        [u, next] = [next, u];
      }
      // All k steps in one pass.
      const [a, b] = [field(c.rows, c.cols, c.g, make), field(c.rows, c.cols, c.g, make)];
      wavefront(step, a, b, bx, c.band);
      const result = c.k % 2 === 0 ? a : b;
      const interior = (x: Float64Array) => Array.from({ length: c.rows }, (_, i) => [...x.subarray((c.g + i) * W + c.g, (c.g + i) * W + c.g + c.cols)]);
      expect(interior(result)).toEqual(interior(u));
    });
  }
});
