/**
 * The 2D heat equation u_t = α (u_xx + u_yy) on the unit square, u = 0 on the boundary,
 * u(x, y, 0) = sin(πx)·sin(πy), solved with the explicit 5-point stencil (FTCS) on a grid split
 * over all ranks. The exact solution is u0 · exp(−2π²αt), so the error is known.
 *
 *   npx tsmpirun -n 4 examples/heat.ts --n 512 --steps 1000 --png heat.png
 *   npx tsmpirun -n 4 examples/heat.ts --json        # one JSON line from rank 0
 *   npx tsmpirun -n 4 examples/heat.ts --steps 5000 --checkpoint run.npy --checkpoint-every 500
 *   npx tsmpirun -n 6 examples/heat.ts --steps 5000 --restart run.npy   # any rank count, same bits
 *
 * To solve something else, change `initial` and `step`; the grid, the halo exchange and the
 * gather stay as they are.
 */
import { createHash } from "node:crypto";
import { BlockGrid, finalize, init, wtime } from "tsmpi";
import { stepJs, wasmKernel, wavefront, type Box, type Kernel, type StepFunction } from "./lib/ftcs.js";
import { optionError, options, squareGrid } from "./lib/options.js";
import { progress } from "./lib/progress.js";
import { fieldImage, render } from "./lib/plot.js";

const opt = options(import.meta.url, "The 2D heat equation on the unit square (FTCS, u = 0 on the boundary), on a grid split over all ranks.", {
  n: { kind: "int", default: 512, min: 1, help: "interior cells per side" },
  steps: { kind: "int", default: 1000, min: 0, help: "time steps in all (a restarted run continues up to this)" },
  alpha: { kind: "number", default: 1, help: "diffusivity α" },
  dt: { kind: "number", help: "time step (default 0.2·h²/α)" },
  kernel: { kind: "string", default: "wasm", choices: ["wasm", "js"], help: "stencil kernel: wasm (SIMD, two cells at a time) or js (same bits)" },
  halo: { kind: "int", default: 1, min: 1, help: "ghost layers exchanged at once: one exchange every K steps (same field for every K)" },
  tile: { kind: "int", min: 0, help: "rows per band when the K steps between exchanges go in one pass over the block (cache blocking over time; default: sized to the cache, 0: one pass per step)" },
  checkpoint: { kind: "string", output: true, help: "write the field to FILE (a NumPy .npy, with FILE.json) at the end and every --checkpoint-every steps" },
  "checkpoint-every": { kind: "int", min: 1, implies: "checkpoint", help: "steps between checkpoints" },
  restart: { kind: "string", help: "continue the run saved in FILE by --checkpoint (same --n, --alpha and --dt; any number of ranks)" },
  png: { kind: "string", output: true, help: "write the final field to this PNG file" },
  json: { kind: "flag", help: "print one JSON line (rank 0)" },
});

const world = await init();
const n = opt.n;
const h = 1 / (n + 1); // cell i sits at x = (i + 1)·h; x = 0 and x = 1 are the boundary (ghosts)
const dt = opt.dt ?? (0.2 * h * h) / opt.alpha;
const r = (opt.alpha * dt) / (h * h);
if (world.rank === 0 && r > 0.25) console.error(`heat.ts: warning: α·dt/h² = ${r.toFixed(3)} > 0.25, FTCS is unstable`);

// The WebAssembly kernel can only reach its own memory, so the two grids are allocated there:
// the first allocation reserves room for both (they have the same size).
let wasm: Kernel | null = null;
const alloc = (length: number) => {
  if (opt.kernel === "wasm") wasm ??= wasmKernel(2 * length);
  return wasm ? wasm.alloc(length) : new Float64Array(length);
};

// A 2D process grid (dims chosen for us), not periodic: ghosts at the edges keep u = 0.
const dims = squareGrid(import.meta.url, world.size, n, "n", "cells");
const cart = await world.cart(dims);
// --halo K: K ghost layers, exchanged once every K steps (deep halos; see BlockGrid.updateBox).
// Beyond one step the corner ghosts matter too, hence the "box" exchange.
const K = opt.halo;
const gridOptions = { shape: [n, n], alloc, ghost: K, stencil: K > 1 ? ("box" as const) : ("star" as const) };
const grid = () => BlockGrid.create(cart, gridOptions).catch((e: Error) => optionError(import.meta.url, `--halo ${K}: ${e.message}`));
/** What a checkpoint holds beside the field: the step reached, and what must match to continue. */
interface Saved {
  example: "heat";
  step: number;
  n: number;
  alpha: number;
  dt: number;
}
const [u0, first] = opt.restart ? await restart(opt.restart) : [await grid(), 0];
let u = u0;
let next = await grid();
const stencil: StepFunction = (wasm as Kernel | null)?.step ?? stepJs; // set by alloc above
const [by, bx] = u.localShape as [number, number];
const W = bx + 2 * K; // row length of the local array, ghosts included

// Initial condition on this rank's block.
if (!opt.restart) {
  for (let i = 0; i < by; i++) {
    const y = (u.offset[0]! + i + 1) * h;
    for (let j = 0; j < bx; j++) u.local[u.index(i, j)] = Math.sin(Math.PI * (u.offset[1]! + j + 1) * h) * Math.sin(Math.PI * y);
  }
}

/** The field and step saved by an earlier run's --checkpoint; an option error when it is another run. */
async function restart(file: string): Promise<[BlockGrid, number]> {
  const { grid, meta } = await BlockGrid.load(cart, file, gridOptions).catch((e: Error) => optionError(import.meta.url, `--restart ${file}: ${e.message}`));
  const saved = meta as Partial<Saved>;
  const differs = (["n", "alpha", "dt"] as const).find((k) => saved[k] !== { n, alpha: opt.alpha, dt }[k]);
  if (saved.example !== "heat" || typeof saved.step !== "number") optionError(import.meta.url, `--restart ${file}: not a checkpoint of heat.ts (its FILE.json has no heat step)`);
  if (differs) optionError(import.meta.url, `--restart ${file}: the checkpoint was run with ${differs} = ${saved[differs]}, this run has ${differs} = ${{ n, alpha: opt.alpha, dt }[differs]} (give the run's options again)`);
  if (saved.step > opt.steps) optionError(import.meta.url, `--restart ${file}: the checkpoint is at step ${saved.step}, past --steps ${opt.steps}`);
  return [grid, saved.step];
}

/** Saves the field after `step` steps (--checkpoint). */
async function checkpoint(step: number): Promise<void> {
  const saved: Saved = { example: "heat", step, n, alpha: opt.alpha, dt };
  await u.save(opt.checkpoint!, { ...saved });
}

/**
 * FTCS, u' = u + r·(up + down + left + right − 4u), on local rows [i0, i1) and columns [j0, j1)
 * (ghosts included: the interior is rows K … K + by − 1). The kernels in ./lib/ftcs.ts do
 * exactly this, in plain TypeScript or in WebAssembly SIMD.
 */
function step(src: Float64Array, dst: Float64Array, i0: number, i1: number, j0: number, j1: number): void {
  if (i1 > i0 && j1 > j0) stencil(src, dst, W, r, i0, i1, j0, j1);
}

// Cache blocking over time: when the two arrays do not fit in the cache, the k steps between
// exchanges go in one pass over the block, a band of rows at a time (see wavefront in
// ./lib/ftcs.ts). The band is sized so that it and the k rows trailing behind it, in both
// arrays, take about 1 MiB (half of this machine's per-core L2).
const CACHE_BYTES = 1 << 20;
const rowBytes = 2 * W * 8;
const tile = opt.tile ?? ((by + 2 * K) * rowBytes <= CACHE_BYTES ? 0 : Math.max(4, Math.floor(CACHE_BYTES / rowBytes) - K));

await world.barrier();
const t0 = wtime();
const every = opt["checkpoint-every"] ?? Infinity;
const tick = progress("heat", opt.steps, "steps");
tick(first);
for (let s = first; s < opt.steps; ) {
  const k = Math.min(K, opt.steps - s, every - (s % every));
  if (tile > 0 && k > 1) {
    await u.exchange();
    wavefront(step, u.local, next.local, Array.from({ length: k }, (_, t) => u.updateBox(t, k) as Box), tile);
    if (k % 2 === 1) [u, next] = [next, u]; // the last step wrote `next`
    s += k;
    tick(s);
    if (s % every === 0 && s < opt.steps) await checkpoint(s);
    continue;
  }
  // One exchange, then k steps on a region that shrinks by a layer each step (k = K but for the
  // last window, or one that ends at a checkpoint). While the exchange is in flight, the first
  // step updates the cells that do not need it; the rest of that step's region (a rim) follows.
  // Every cell gets the same arithmetic whatever the split, K and tiles, so the field is
  // bit-identical for any number of ranks.
  const halo = u.exchange();
  const [[i0, i1], [j0, j1]] = u.updateBox(0, k) as [[number, number], [number, number]];
  const [a0, a1, b0, b1] = [Math.max(i0, K + 1), Math.min(i1, K + by - 1), Math.max(j0, K + 1), Math.min(j1, K + bx - 1)];
  const inner = a1 > a0 && b1 > b0;
  if (inner) step(u.local, next.local, a0, a1, b0, b1);
  await halo;
  if (!inner) step(u.local, next.local, i0, i1, j0, j1);
  else {
    step(u.local, next.local, i0, a0, j0, j1);
    step(u.local, next.local, a1, i1, j0, j1);
    step(u.local, next.local, a0, a1, j0, b0);
    step(u.local, next.local, a0, a1, b1, j1);
  }
  [u, next] = [next, u];
  for (let t = 1; t < k; t++) {
    const [[r0, r1], [c0, c1]] = u.updateBox(t, k) as [[number, number], [number, number]];
    step(u.local, next.local, r0, r1, c0, c1);
    [u, next] = [next, u];
  }
  s += k;
  tick(s);
  if (s % every === 0 && s < opt.steps) await checkpoint(s);
}
if (opt.checkpoint) await checkpoint(opt.steps);
const seconds = await world.allreduce(wtime() - t0, "max");

const field = await u.gather(0);
if (field) {
  const t = opt.steps * dt;
  const decay = Math.exp(-2 * Math.PI * Math.PI * opt.alpha * t);
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const sy = Math.sin(Math.PI * (i + 1) * h);
    for (let j = 0; j < n; j++) {
      const e = field[i * n + j]! - Math.sin(Math.PI * (j + 1) * h) * sy * decay;
      sq += e * e;
    }
  }
  const l2error = Math.sqrt(sq * h * h);
  const fieldHash = createHash("sha256").update(new Uint8Array(field.buffer, field.byteOffset, field.byteLength)).digest("hex");
  if (opt.png) await render(fieldImage({ title: `heat: u on ${n}×${n} cells after ${opt.steps} steps`, data: field, rows: n, cols: n, colours: { kind: "scheme", scheme: "inferno", title: "u" } }), opt.png);
  const result = { n, steps: opt.steps, ranks: world.size, dt, l2error, fieldHash, seconds, cellUpdatesPerSecond: (n * n * (opt.steps - first)) / seconds };
  if (opt.json) console.log(JSON.stringify(result));
  else {
    console.log(`heat: ${n}×${n} cells, ${opt.steps} steps of dt = ${dt.toExponential(3)} on ${world.size} rank(s) (process grid ${cart.dims.join("×")}, ${wasm ? "WebAssembly SIMD" : "TypeScript"} kernel)`);
    console.log(`L2 error vs exact solution: ${l2error.toExponential(3)}`);
    if (first > 0) console.log(`restarted from ${opt.restart} at step ${first}`);
    console.log(`${seconds.toFixed(3)} s, ${(result.cellUpdatesPerSecond / 1e6).toFixed(1)} M cell-updates/s`);
    console.log(`field sha256: ${fieldHash}${opt.png ? `; picture: ${opt.png}` : ""}${opt.checkpoint ? `; checkpoint: ${opt.checkpoint}` : ""}`);
  }
}
await finalize();
