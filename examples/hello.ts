/**
 * The smallest tsmpi program: every rank says hello, in rank order.
 *   npx tsmpirun -n 4 examples/hello.ts
 */
import { finalize, init } from "tsmpi";

const world = await init();
// Take turns so the lines come out in rank order: wait for the previous rank's token.
if (world.rank > 0) await world.recv(world.rank - 1);
console.log(`hello from rank ${world.rank} of ${world.size} (pid ${process.pid})`);
if (world.rank < world.size - 1) await world.send(null, world.rank + 1);
await world.barrier();
await finalize();
