/**
 * The heat example's FTCS stencil, twice: a plain TypeScript loop (the readable one), and the
 * same arithmetic as a WebAssembly SIMD kernel (two cells per instruction), used when the grids
 * live in WebAssembly memory. Both compute c + r·(up + down + left + right − 4c) in that order
 * with IEEE doubles (WebAssembly has no fused multiply-add here), so they give the same bits and
 * the field does not depend on the kernel any more than on the number of ranks.
 */

/** Update rows [i0, i1) × columns [j0, j1) of `dst` from `src`; both have rows of `W` elements. */
export type StepFunction = (src: Float64Array, dst: Float64Array, W: number, r: number, i0: number, i1: number, j0: number, j1: number) => void;

/** Plain TypeScript: keeps the row's left/centre/right in variables as it slides along. */
export const stepJs: StepFunction = (src, dst, W, r, i0, i1, j0, j1) => {
  for (let i = i0; i < i1; i++) {
    let k = i * W + j0;
    const end = i * W + j1;
    let left = src[k - 1]!, c = src[k]!;
    for (; k < end; k++) {
      const right = src[k + 1]!;
      dst[k] = c + r * (src[k - W]! + src[k + W]! + left + right - 4 * c);
      left = c;
      c = right;
    }
  }
};

// ---- the WebAssembly module, assembled here (536 bytes; no toolchain needed) ---------------

const leb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
};
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const name = (s: string) => [...leb(s.length), ...Buffer.from(s)];

// Function parameters and locals, by index.
const [SRC, DST, W, I0, I1, J0, J1, R, WB, I, P, END, UP, DOWN, LEFT, OUT, VR, V4, VC, C] = Array.from({ length: 20 }, (_, i) => i) as number[] as [number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number, number];
const get = (l: number) => [0x20, l], set = (l: number) => [0x21, l], tee = (l: number) => [0x22, l];
const i32 = (n: number) => [0x41, ...sleb(n)];
const f64 = (x: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return [0x44, ...b];
};
const simd = (op: number, ...imm: number[]) => [0xfd, ...leb(op), ...imm];
const ADD = [0x6a], SUB = [0x6b], MUL = [0x6c], SHL = [0x74], GE_U = [0x4f], GT_U = [0x4b], LT_U = [0x49];
const BLOCK = [0x02, 0x40], LOOP = [0x03, 0x40], IF = [0x04, 0x40], END_ = [0x0b];
const br = (depth: number) => [0x0c, depth], brIf = (depth: number) => [0x0d, depth];

/** Two cells at a time (v128) or one (f64): loads and stores at a byte offset, and the arithmetic. */
interface Lanes { load(offset: number): number[]; store(offset: number): number[]; add: number[]; sub: number[]; mul: number[]; r: number[]; four: number[]; c: number; width: number }
const VECTOR: Lanes = { load: (o) => simd(0x00, 3, ...leb(o)), store: (o) => simd(0x0b, 3, ...leb(o)), add: simd(0xf0), sub: simd(0xf1), mul: simd(0xf2), r: get(VR), four: get(V4), c: VC, width: 16 };
const SCALAR: Lanes = { load: (o) => [0x2b, 3, ...leb(o)], store: (o) => [0x39, 3, ...leb(o)], add: [0xa0], sub: [0xa1], mul: [0xa2], r: get(R), four: f64(4), c: C, width: 8 };

/**
 * dst = c + r·(up + down + left + right − 4c) for the cells `offset` bytes past the row pointers
 * UP, DOWN, LEFT (one cell left of the centre) and OUT. The loads are addressed by the
 * instruction's own offset, so the pointers move once per four cells, not per load.
 */
const update = (x: Lanes, offset: number) => [
  ...get(OUT),
  ...get(LEFT), ...x.load(offset + 8), ...tee(x.c),
  ...x.r,
  ...get(UP), ...x.load(offset),
  ...get(DOWN), ...x.load(offset), ...x.add,
  ...get(LEFT), ...x.load(offset), ...x.add,
  ...get(LEFT), ...x.load(offset + 16), ...x.add,
  ...x.four, ...get(x.c), ...x.mul, ...x.sub,
  ...x.mul, ...x.add, ...x.store(offset),
];
/** Moves P and the row pointers on by `bytes`. */
const advance = (bytes: number) => [P, UP, DOWN, LEFT, OUT].flatMap((l) => [...get(l), ...i32(bytes), ...ADD, ...set(l)]);

const code = [
  // locals: Wb, i, p, end, up, down, left, out (i32); vr, v4, vc (v128); c (f64)
  ...leb(3), 8, 0x7f, 3, 0x7b, 1, 0x7c,
  ...get(W), ...i32(3), ...SHL, ...set(WB),
  ...get(R), ...simd(0x14), ...set(VR),
  ...f64(4), ...simd(0x14), ...set(V4),
  ...get(I0), ...set(I),
  ...BLOCK, ...LOOP,
  ...get(I), ...get(I1), ...GE_U, ...brIf(1),
  ...get(I), ...get(W), ...MUL, ...get(J0), ...ADD, ...i32(3), ...SHL, ...set(P),
  ...get(I), ...get(W), ...MUL, ...get(J1), ...ADD, ...i32(3), ...SHL, ...set(END),
  ...get(SRC), ...get(P), ...ADD, ...get(WB), ...SUB, ...set(UP),
  ...get(SRC), ...get(P), ...ADD, ...get(WB), ...ADD, ...set(DOWN),
  ...get(SRC), ...get(P), ...ADD, ...i32(8), ...SUB, ...set(LEFT),
  ...get(DST), ...get(P), ...ADD, ...set(OUT),
  // Four cells at a time, then two, then one.
  ...BLOCK, ...LOOP,
  ...get(P), ...i32(32), ...ADD, ...get(END), ...GT_U, ...brIf(1),
  ...update(VECTOR, 0), ...update(VECTOR, 16), ...advance(32),
  ...br(0), ...END_, ...END_,
  ...get(END), ...get(P), ...i32(16), ...ADD, ...GE_U, ...IF, ...update(VECTOR, 0), ...advance(16), ...END_,
  ...get(P), ...get(END), ...LT_U, ...IF, ...update(SCALAR, 0), ...END_,
  ...get(I), ...i32(1), ...ADD, ...set(I),
  ...br(0), ...END_, ...END_,
  ...END_,
];

const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [1, 0x60, 8, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7c, 0]), // (i32 ×7, f64) -> ()
  ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 1]), // imported memory, ≥ 1 page
  ...section(3, [1, 0]),
  ...section(7, [1, ...name("step"), 0x00, 0]),
  ...section(10, [1, ...leb(code.length), ...code]),
]);

// The project's type libraries (ES2023 + Node) declare WebAssembly only as a namespace of types;
// this is the part of the runtime object used here.
declare const WebAssembly: {
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};

/** Float64Arrays in one WebAssembly memory, and a step function that runs on them. */
export interface Kernel {
  alloc(length: number): Float64Array;
  step: StepFunction;
}

/**
 * Float64Arrays in one WebAssembly memory, and the SIMD step over them. Returns null where
 * WebAssembly SIMD is missing or the arrays would not fit in 4 GiB of 32-bit addresses.
 */
export function wasmKernel(totalElements: number): Kernel | null {
  const bytes = totalElements * 8 + 64;
  if (bytes > 2 ** 32 - 65536 || !WebAssembly.validate(MODULE)) return null;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE), { env: { memory } });
  const step = instance.exports.step as (src: number, dst: number, W: number, i0: number, i1: number, j0: number, j1: number, r: number) => void;
  let next = 16; // keep byte offset 0 unused so no index arithmetic lands on it by accident
  return {
    alloc(length: number): Float64Array {
      if (next + length * 8 > memory.buffer.byteLength) throw new Error("wasmKernel: out of reserved memory");
      const a = new Float64Array(memory.buffer, next, length);
      next += length * 8;
      return a;
    },
    step: (src, dst, Wd, r, i0, i1, j0, j1) => step(src.byteOffset, dst.byteOffset, Wd, i0, i1, j0, j1, r),
  };
}

/** Rows [i0, i1) × columns [j0, j1) to update in one step. */
export type Box = [[number, number], [number, number]];

/**
 * Cache blocking over time: k steps in one pass over the block instead of k passes. Step t
 * updates `boxes[t]` from the array step t − 1 wrote (`a` for t = 0, then `b`, `a`, …), rows in
 * bands of `band`, each step one row behind the step before it (a wavefront): row i of step t
 * needs rows i − 1 … i + 1 of step t − 1, which were computed moments ago and are still in the
 * cache. Two arrays suffice: step t + 1 overwrites step t − 1's rows only below where step t
 * still reads them. Every cell gets the same arithmetic as with one step per pass, so the same
 * bits; memory traffic drops from 24 bytes per cell update to about 24/k.
 *
 * Needs the boxes of a deep-halo window (BlockGrid.updateBox): each step's box inside the one
 * before it, grown by at most one cell per side into cells that step did not write (boundary
 * ghosts that keep their value in both arrays).
 */
export function wavefront(step: (src: Float64Array, dst: Float64Array, i0: number, i1: number, j0: number, j1: number) => void, a: Float64Array, b: Float64Array, boxes: Box[], band: number): void {
  const k = boxes.length;
  const done = boxes.map((x) => x[0][0]);
  for (let edge = done[0]! + band; ; edge += band) {
    let finished = true;
    for (let t = 0; t < k; t++) {
      const [[, i1], [j0, j1]] = boxes[t]!;
      const limit = Math.min(i1, edge - t);
      if (limit > done[t]!) {
        if (t % 2 === 0) step(a, b, done[t]!, limit, j0, j1);
        else step(b, a, done[t]!, limit, j0, j1);
        done[t] = limit;
      }
      if (done[t]! < i1) finished = false;
    }
    if (finished) return;
  }
}
