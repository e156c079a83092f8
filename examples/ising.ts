/**
 * The 2D Ising model (J = 1, no field) on a periodic L × L lattice split over all ranks:
 * checkerboard Metropolis, with a random number per (seed, sweep, colour, site) so the lattice
 * after any number of sweeps is the same for every number of ranks.
 *
 *   npx tsmpirun -n 4 examples/ising.ts --L 256 --T 2.0 --png ising.png
 *   npx tsmpirun -n 4 examples/ising.ts --json
 *   npx tsmpirun -n 4 examples/ising.ts --sweeps 20000 --checkpoint ising.npy --checkpoint-every 1000
 *   npx tsmpirun -n 2 examples/ising.ts --sweeps 20000 --restart ising.npy
 *
 * The kernel (update, measurement, random numbers) is in ./lib/ising.ts; this file is the
 * parallel part: the grid, the halo exchanges and the reductions.
 */
import { createHash } from "node:crypto";
import { BlockGrid, finalize, init, wtime } from "tsmpi";
import { halfSweepKey, measure, siteRandom, thresholds, updateColour, type Block } from "./lib/ising.js";
import { optionError, options, squareGrid } from "./lib/options.js";
import { progress } from "./lib/progress.js";
import { fieldImage, render } from "./lib/plot.js";

const opt = options(import.meta.url, "The 2D Ising model on a periodic lattice split over all ranks (checkerboard Metropolis).", {
  L: { kind: "int", default: 256, min: 2, help: "lattice side" },
  T: { kind: "number", default: 2.0, help: "temperature (T_c ≈ 2.269)" },
  sweeps: { kind: "int", default: 2000, min: 1, help: "measured sweeps in all (a restarted run continues up to this)" },
  therm: { kind: "int", default: 1000, min: 0, help: "thermalisation sweeps (not measured)" },
  seed: { kind: "int", default: 1, help: "random seed" },
  halo: { kind: "int", default: 1, min: 1, help: "ghost layers exchanged at once: one exchange every K half-sweeps (same lattice for every K)" },
  start: { kind: "string", default: "cold", choices: ["cold", "hot"], help: "initial spins: cold (all up) or hot (random: a quench, shows domains)" },
  checkpoint: { kind: "string", output: true, help: "write the spins to FILE (a NumPy .npy, with FILE.json) at the end and every --checkpoint-every sweeps" },
  "checkpoint-every": { kind: "int", min: 1, implies: "checkpoint", help: "sweeps (thermalisation included) between checkpoints" },
  restart: { kind: "string", help: "continue the run saved in FILE by --checkpoint (same --L, --T, --seed, --therm, --start; any number of ranks)" },
  png: { kind: "string", output: true, help: "write the final spins to this PNG file" },
  json: { kind: "flag", help: "print one JSON line (rank 0)" },
});
const { L, T, sweeps, therm, seed } = opt;
if (L % 2 !== 0 && (process.env.TSMPI_RANK ?? "0") === "0") console.error("ising.ts: warning: an odd L breaks the checkerboard across the periodic edge");

const world = await init();
const dims = squareGrid(import.meta.url, world.size, L, "L", "sites");
const cart = await world.cart(dims, { periodic: [true, true] });
// --halo K: K ghost layers, exchanged once every K half-sweeps (deep halos, as in heat.ts).
const K = opt.halo;
// Across the periodic edge of an odd L two neighbours have one colour, so a site's update
// depends on the order of visits: ghost cells would not repeat their owner's updates.
if (K > 1 && L % 2 !== 0) optionError(import.meta.url, `--halo ${K} needs an even --L (${L} is odd: the checkerboard breaks across the periodic edge)`);
const gridOptions = { shape: [L, L], dtype: Int8Array, ghost: K, stencil: K > 1 ? ("box" as const) : ("star" as const) };
/** What a checkpoint holds beside the spins: the sweeps done, the measurements so far, and what must match to continue. */
interface Saved {
  example: "ising";
  sweepsDone: number;
  L: number;
  T: number;
  seed: number;
  therm: number;
  start: string;
  /** Measured sweeps summed into sumAbsM and sumE (Σ|M| and ΣE over the lattice, exact integers). */
  measured: number;
  sumAbsM: number;
  sumE: number;
}
const restarted = opt.restart ? await restart(opt.restart) : undefined;
const grid = restarted?.grid ?? (await BlockGrid.create(cart, gridOptions).catch((e: Error) => optionError(import.meta.url, `--halo ${K}: ${e.message}`)));
const [rows, cols] = grid.localShape as [number, number];
const block: Block = { spins: grid.local, width: cols + 2 * K, rows, cols, y0: grid.offset[0]!, x0: grid.offset[1]!, L, ghost: K };
// Cold: all up. Hot: a random spin per site, from the same counter-based numbers (sweep −1).
const initKey = halfSweepKey(seed, -1, 0);
for (let i = 0; i < rows && !restarted; i++) {
  for (let j = 0; j < cols; j++) {
    const hot = siteRandom(initKey, (block.y0 + i) * L + block.x0 + j) < 2 ** 31 ? 1 : -1;
    grid.local[grid.index(i, j)] = opt.start === "hot" ? hot : 1;
  }
}

/** The spins and measurements saved by an earlier run's --checkpoint; an option error when it is another run. */
async function restart(file: string): Promise<{ grid: BlockGrid<Int8Array>; saved: Saved }> {
  const fail = (why: string) => optionError(import.meta.url, `--restart ${file}: ${why}`);
  const { grid, meta } = await BlockGrid.load(cart, file, gridOptions).catch((e: Error) => fail(e.message));
  const saved = meta as unknown as Saved;
  if (saved.example !== "ising" || typeof saved.sweepsDone !== "number") fail("not a checkpoint of ising.ts (its FILE.json has no sweeps done)");
  const now: Record<string, unknown> = { L, T, seed, therm, start: opt.start };
  const differs = Object.keys(now).find((k) => (saved as unknown as Record<string, unknown>)[k] !== now[k]);
  if (differs) fail(`the checkpoint was run with --${differs} ${(saved as unknown as Record<string, unknown>)[differs]}, this run has --${differs} ${now[differs]} (give the run's options again)`);
  if (saved.sweepsDone > therm + sweeps) fail(`the checkpoint is at sweep ${saved.sweepsDone}, past --therm ${therm} + --sweeps ${sweeps}`);
  return { grid, saved };
}

const thr = thresholds(T);
// This rank's part of M and E after every measured sweep; summed over ranks once, at the end,
// instead of one collective per sweep.
const localM = new Float64Array(sweeps), localE = new Float64Array(sweeps);
// Measurements already summed over ranks and sweeps (at checkpoints and at the end).
let measured = restarted?.saved.measured ?? 0, sumAbsM = restarted?.saved.sumAbsM ?? 0, sumE = restarted?.saved.sumE ?? 0;
/** Sums the measured sweeps up to `upTo` over ranks, and adds them up in sweep order (the same bits however the run was cut). */
async function fold(upTo: number): Promise<void> {
  if (upTo <= measured) return;
  const [M, E] = await Promise.all([world.allreduce(localM.subarray(measured, upTo)), world.allreduce(localE.subarray(measured, upTo))]);
  for (let s = 0; s < upTo - measured; s++) (sumAbsM += Math.abs(M[s]!)), (sumE += E[s]!);
  measured = upTo;
}
/** Saves the spins and the measurements after `done` sweeps (--checkpoint). */
async function checkpoint(done: number): Promise<void> {
  await fold(Math.max(0, done - therm));
  const saved: Saved = { example: "ising", sweepsDone: done, L, T, seed, therm, start: opt.start, measured, sumAbsM, sumE };
  await grid.save(opt.checkpoint!, { ...saved });
}
const every = 2 * (opt["checkpoint-every"] ?? Infinity); // in half-sweeps
const h0 = 2 * (restarted?.saved.sweepsDone ?? 0);
await world.barrier();
const t0 = wtime();
const tick = progress("ising", therm + sweeps, "sweeps");
tick(h0 / 2);
/** A measured sweep whose measurement waits for the next exchange (its right and lower ghosts are stale). */
let unmeasured = -1;
const record = (sweep: number) => {
  const { M, E } = measure(block);
  localM[sweep - therm] = M;
  localE[sweep - therm] = E;
};
const halfSweeps = 2 * (therm + sweeps);
for (let h = h0; h < halfSweeps; ) {
  // One exchange, then k half-sweeps on a region that shrinks by a layer each time (k = K but
  // for the last window, or one that ends at a checkpoint); a half-sweep reads only the other
  // colour, so it is a stencil step.
  const k = Math.min(K, halfSweeps - h, every - (h % every));
  tick(h >> 1);
  await grid.exchange();
  if (unmeasured >= 0) record(unmeasured);
  unmeasured = -1;
  // A checkpoint once the last sweep's measurement, which needed this exchange, is in.
  if (h > h0 && h % every === 0) await checkpoint(h / 2);
  for (let t = 0; t < k; t++, h++) {
    const sweep = h >> 1, colour = h & 1;
    updateColour(block, colour, seed, sweep, thr, grid.updateBox(t, k));
    if (colour === 1 && sweep >= therm) {
      // The layer past the interior is current while the region still reaches beyond it.
      if (k - 1 - t >= 1) record(sweep);
      else unmeasured = sweep;
    }
  }
}
if (unmeasured >= 0) {
  await grid.exchange();
  record(unmeasured);
}
tick(therm + sweeps);
if (opt.checkpoint) await checkpoint(therm + sweeps);
// Sums of integers: exact, so the means below are the same bits for any decomposition.
await fold(sweeps);
const seconds = await world.allreduce(wtime() - t0, "max");
const N = L * L;

const spins = await grid.gather(0);
if (spins) {
  const fieldHash = createHash("sha256").update(new Uint8Array(spins.buffer, spins.byteOffset, spins.byteLength)).digest("hex");
  if (opt.png) {
    const categories = [{ value: 1, label: "+1", colour: "#fac83c" }, { value: -1, label: "−1", colour: "#28145a" }];
    await render(fieldImage({ title: `Ising: ${L}×${L} spins at T = ${T} after ${therm} + ${sweeps} sweeps`, data: spins, rows: L, cols: L, colours: { kind: "categories", title: "spin", categories } }), opt.png);
  }
  const result = {
    L, T, sweeps, ranks: world.size,
    absMagnetization: sumAbsM / sweeps / N,
    energy: sumE / sweeps / N,
    fieldHash, seconds,
    siteUpdatesPerSecond: (N * (sweeps + therm - h0 / 2)) / seconds,
  };
  if (opt.json) console.log(JSON.stringify(result));
  else {
    console.log(`ising: ${L}×${L} at T = ${T}, ${therm} + ${sweeps} sweeps on ${world.size} rank(s) (process grid ${cart.dims.join("×")})`);
    console.log(`<|m|> = ${result.absMagnetization.toFixed(5)}, <e> = ${result.energy.toFixed(5)} per site`);
    if (h0 > 0) console.log(`restarted from ${opt.restart} after ${h0 / 2} sweeps`);
    console.log(`${seconds.toFixed(3)} s, ${(result.siteUpdatesPerSecond / 1e6).toFixed(1)} M site-updates/s`);
    console.log(`field sha256: ${fieldHash}${opt.png ? `; picture: ${opt.png}` : ""}${opt.checkpoint ? `; checkpoint: ${opt.checkpoint}` : ""}`);
  }
}
await finalize();
