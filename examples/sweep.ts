/**
 * The Ising magnetisation curve as a parameter sweep: one task per temperature, each a serial
 * Ising run (the kernel of examples/ising.ts), handed to whichever rank is free by a task pool.
 *
 *   npx tsmpirun -n 3 examples/sweep.ts --png sweep.png
 *   npx tsmpirun -n 3 examples/sweep.ts --points 41 --L 64 --json
 *
 * Each temperature's seed is derived from --seed and its index, so the results (resultsHash)
 * are the same for any number of ranks, and equal to a one-rank examples/ising.ts run with that
 * seed.
 */
import { createHash } from "node:crypto";
import { finalize, init, taskPool, wtime } from "tsmpi";
import { derivedSeed, runSerial, type IsingRun } from "./lib/ising.js";
import { options } from "./lib/options.js";
import { progress } from "./lib/progress.js";
import { lineChart, render } from "./lib/plot.js";

const opt = options(import.meta.url, "The Ising magnetisation curve: one serial Ising run per temperature, handed out by a task pool.", {
  L: { kind: "int", default: 32, min: 2, help: "lattice side" },
  Tmin: { kind: "number", default: 1.5, help: "lowest temperature" },
  Tmax: { kind: "number", default: 3.5, help: "highest temperature" },
  points: { kind: "int", default: 21, min: 1, help: "temperatures (one task each)" },
  sweeps: { kind: "int", default: 2000, min: 1, help: "measured sweeps per temperature" },
  therm: { kind: "int", default: 1000, min: 0, help: "thermalisation sweeps per temperature" },
  seed: { kind: "int", default: 1, help: "base random seed" },
  png: { kind: "string", output: true, help: "plot |m| and e against T to this PNG file" },
  progress: { kind: "flag", help: "a progress line on stderr while it runs, even when stderr is not a terminal" },
  json: { kind: "flag", help: "print one JSON line (rank 0)" },
});
const { L, Tmin, Tmax, points, sweeps, therm, seed } = opt;
const Tc = 2 / Math.log(1 + Math.SQRT2);

/** The task: one temperature, run serially on whichever rank gets it. */
function simulate(run: IsingRun): { absMagnetization: number; energy: number } {
  const { absMagnetization, energy } = runSerial(run);
  return { absMagnetization, energy };
}

const world = await init();
const T = Array.from({ length: points }, (_, i) => (points === 1 ? Tmin : Tmin + ((Tmax - Tmin) * i) / (points - 1)));
const t0 = wtime();

const results = await taskPool(world, { simulate }, async (pool) => {
  const out = new Array<{ absMagnetization: number; energy: number }>(points);
  const tasks = T.map((t, i): IsingRun => ({ L, T: t, sweeps, therm, seed: derivedSeed(seed, i) }));
  const tick = progress("sweep", points, "temperatures", opt.progress);
  tick(0);
  let done = 0;
  for await (const { index, value } of pool.imapUnordered(simulate, tasks)) {
    out[index] = value;
    tick(++done);
  }
  return out;
});

if (results) {
  const seconds = wtime() - t0;
  const absMagnetization = results.map((r) => r.absMagnetization);
  const energy = results.map((r) => r.energy);
  const resultsHash = createHash("sha256").update(new Uint8Array(Float64Array.from([...absMagnetization, ...energy]).buffer)).digest("hex");
  if (opt.png) {
    const onsager: [number, number][] = [];
    for (let t = Math.min(Tmin, 1); t < Tc; t += 0.005) onsager.push([t, (1 - Math.sinh(2 / t) ** -4) ** 0.125]);
    onsager.push([Tc, 0]);
    await render(
      lineChart({
        title: `Ising magnetisation and energy per site, L = ${L}, ${sweeps} sweeps per temperature`,
        xTitle: "temperature T",
        yTitle: "per site",
        rules: [{ x: Tc, label: "Tc" }],
        curves: [
          { label: "exact |m| (Onsager, L = ∞)", style: "line", points: onsager.filter(([t]) => t >= Tmin) },
          { label: `|m| (L = ${L})`, style: "points", points: T.map((t, i) => [t, absMagnetization[i]!]) },
          { label: "e per site", style: "points", points: T.map((t, i) => [t, energy[i]!]) },
        ],
      }),
      opt.png,
    );
  }
  const result = { L, points, ranks: world.size, T, absMagnetization, energy, resultsHash, seconds, tasksPerSecond: points / seconds };
  if (opt.json) console.log(JSON.stringify(result));
  else {
    console.log(`sweep: L = ${L}, ${points} temperatures from ${Tmin} to ${Tmax}, ${therm} + ${sweeps} sweeps each, on ${world.size} rank(s)`);
    console.log("     T      <|m|>        <e>");
    T.forEach((t, i) => console.log(`${t.toFixed(3).padStart(6)} ${absMagnetization[i]!.toFixed(5).padStart(10)} ${energy[i]!.toFixed(5).padStart(10)}`));
    console.log(`${seconds.toFixed(2)} s; results sha256: ${resultsHash}${opt.png ? `; plot: ${opt.png}` : ""}`);
  }
}
await finalize();
