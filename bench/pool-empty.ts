// Empty tasks through a task pool: the pool's own cost per task. Run by bench/pool.ts as
// `tsmpirun -n 2|4 bench/pool-empty.ts TASKS CHUNKSIZE`; rank 0 prints one JSON line.
import { finalize, init, taskPool, wtime } from "tsmpi";

const tasks = Number(process.argv[2] ?? 20000), chunksize = Number(process.argv[3] ?? 1);
const world = await init();
const empty = (x: number) => x;
const seconds = await taskPool(world, { empty }, async (pool) => {
  await pool.map(empty, Array.from({ length: 500 }, (_, i) => i)); // warm-up
  const t0 = wtime();
  await pool.map(empty, Array.from({ length: tasks }, (_, i) => i), { chunksize });
  return wtime() - t0;
});
if (seconds !== undefined) console.log(JSON.stringify({ impl: "tsmpi", workers: world.size - 1, tasks, chunksize, seconds, tasksPerSecond: tasks / seconds }));
await finalize();
