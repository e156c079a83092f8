/**
 * The 2D Ising model (J = 1, no field) on a periodic L × L lattice split over all ranks:
 * checkerboard Metropolis, with a random number per (seed, sweep, colour, site) so the lattice
 * after any number of sweeps is the same for every number of ranks.
 *
 *   npx tsmpirun -n 4 examples/ising.ts --L 256 --T 2.0 --png ising.png
 *   npx tsmpirun -n 4 examples/ising.ts --json
 *
 * The kernel (update, measurement, random numbers) is in ./lib/ising.ts; this file is the
 * parallel part: the grid, the halo exchanges and the reductions.
 */
import { createHash } from "node:crypto";
import { BlockGrid, finalize, init, wtime } from "tsmpi";
import { halfSweepKey, measure, siteRandom, thresholds, updateColour, type Block } from "./lib/ising.js";
import { optionError, options, squareGrid } from "./lib/options.js";
import { writeField } from "./lib/png.js";

const opt = options(import.meta.url, {
  L: { kind: "int", default: 256, min: 2, help: "lattice side" },
  T: { kind: "number", default: 2.0, help: "temperature (T_c ≈ 2.269)" },
  sweeps: { kind: "int", default: 2000, min: 1, help: "measured sweeps" },
  therm: { kind: "int", default: 1000, min: 0, help: "thermalisation sweeps (not measured)" },
  seed: { kind: "int", default: 1, help: "random seed" },
  halo: { kind: "int", default: 1, min: 1, help: "ghost layers exchanged at once: one exchange every K half-sweeps (same lattice for every K)" },
  start: { kind: "string", default: "cold", choices: ["cold", "hot"], help: "initial spins: cold (all up) or hot (random: a quench, shows domains)" },
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
const grid = await BlockGrid.create(cart, { shape: [L, L], dtype: Int8Array, ghost: K, stencil: K > 1 ? "box" : "star" }).catch((e: Error) =>
  optionError(import.meta.url, `--halo ${K}: ${e.message}`),
);
const [rows, cols] = grid.localShape as [number, number];
const block: Block = { spins: grid.local, width: cols + 2 * K, rows, cols, y0: grid.offset[0]!, x0: grid.offset[1]!, L, ghost: K };
// Cold: all up. Hot: a random spin per site, from the same counter-based numbers (sweep −1).
const initKey = halfSweepKey(seed, -1, 0);
for (let i = 0; i < rows; i++) {
  for (let j = 0; j < cols; j++) {
    const hot = siteRandom(initKey, (block.y0 + i) * L + block.x0 + j) < 2 ** 31 ? 1 : -1;
    grid.local[grid.index(i, j)] = opt.start === "hot" ? hot : 1;
  }
}

const thr = thresholds(T);
// This rank's part of M and E after every measured sweep; summed over ranks once, at the end,
// instead of one collective per sweep.
const localM = new Float64Array(sweeps), localE = new Float64Array(sweeps);
await world.barrier();
const t0 = wtime();
/** A measured sweep whose measurement waits for the next exchange (its right and lower ghosts are stale). */
let unmeasured = -1;
const record = (sweep: number) => {
  const { M, E } = measure(block);
  localM[sweep - therm] = M;
  localE[sweep - therm] = E;
};
const halfSweeps = 2 * (therm + sweeps);
for (let h = 0; h < halfSweeps; ) {
  // One exchange, then k half-sweeps on a region that shrinks by a layer each time (k = K but
  // for the last window); a half-sweep reads only the other colour, so it is a stencil step.
  const k = Math.min(K, halfSweeps - h);
  await grid.exchange();
  if (unmeasured >= 0) record(unmeasured);
  unmeasured = -1;
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
const seconds = await world.allreduce(wtime() - t0, "max");
// Sums of integers: exact, so the means below are the same bits for any decomposition.
const [M, E] = await Promise.all([world.allreduce(localM), world.allreduce(localE)]);
const N = L * L;
let sumAbsM = 0, sumE = 0;
for (let s = 0; s < sweeps; s++) (sumAbsM += Math.abs(M[s]!), (sumE += E[s]!));

const spins = await grid.gather(0);
if (spins) {
  const fieldHash = createHash("sha256").update(new Uint8Array(spins.buffer, spins.byteOffset, spins.byteLength)).digest("hex");
  if (opt.png) writeField(opt.png, spins, L, L, (s) => (s > 0 ? [250, 200, 60] : [40, 20, 90]));
  const result = {
    L, T, sweeps, ranks: world.size,
    absMagnetization: sumAbsM / sweeps / N,
    energy: sumE / sweeps / N,
    fieldHash, seconds,
    siteUpdatesPerSecond: (N * (sweeps + therm)) / seconds,
  };
  if (opt.json) console.log(JSON.stringify(result));
  else {
    console.log(`ising: ${L}×${L} at T = ${T}, ${therm} + ${sweeps} sweeps on ${world.size} rank(s) (process grid ${cart.dims.join("×")})`);
    console.log(`<|m|> = ${result.absMagnetization.toFixed(5)}, <e> = ${result.energy.toFixed(5)} per site`);
    console.log(`${seconds.toFixed(3)} s, ${(result.siteUpdatesPerSecond / 1e6).toFixed(1)} M site-updates/s`);
    console.log(`field sha256: ${fieldHash}${opt.png ? `; picture: ${opt.png}` : ""}`);
  }
}
await finalize();
