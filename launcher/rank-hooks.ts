/**
 * Preloaded (node --import) into every rank the launcher starts, before the user's script.
 * It ties the rank's life to the launcher's, makes failures name the rank, and sets when V8
 * optimizes.
 */
import { setFlagsFromString } from "node:v8";

const rank = process.env.TSMPI_RANK ?? "?";

// V8 hands a function to its optimizing compiler after a budget of executed bytecode (66 KB by
// default). Ranks reach it in the first steps of a job, before each call site has seen every
// kind of value it will see, so optimized code deoptimizes and is compiled again, several times
// over, and every rank repeats that compiling while they share the cores: heat spent 0.2–0.5 s
// of CPU per rank in the optimizing compiler. With fifteen times the budget, code is optimized a
// little later, once, with its feedback complete. Heat at 512², 1000 steps (medians of 5): 1.09
// → 1.84 G cell updates/s on 2 ranks, 488 → 911 M on 4 ranks sharing 2 cores. The cost: a short
// run of JavaScript-heavy calls warms up later (20000 empty pool tasks: 38.6k → 31.1k tasks/s;
// the same rate once warm). A budget the user gives (`tsmpirun node --interrupt-budget=N
// script`) is kept; a V8 without the flag ignores it.
if (!process.execArgv.some((a) => /^--interrupt[-_]budget(=|$)/.test(a))) setFlagsFromString("--interrupt-budget=1000000");

// The control channel must not keep a finished rank alive (tsmpi refs it while it waits on it).
process.channel?.unref();

// The launcher is gone (killed, or its host agent lost its connection): nobody will ever stop
// this rank or read its output, so it stops itself.
process.on("disconnect", () => process.exit(1));

// 'disconnect' needs the event loop, and a rank busy in a long synchronous computation (a sweep
// task, say) would not see it for minutes. Where the agent could not start the rank with a
// parent-death signal (agent.ts, setpriv), a small watchdog thread notices that the process that
// started this rank is gone (its parent changes) and ends the rank, busy or not.
if (process.env.TSMPI_PDEATHSIG !== "1") {
  // Loaded only here: most ranks have the parent-death signal and no watchdog.
  const { Worker } = await import("node:worker_threads");
  const watchdog = new Worker(
    `const { workerData: parent } = require("node:worker_threads");
     setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, "SIGKILL"); }, 500);`,
    { eval: true, workerData: process.ppid, stdout: false, stderr: false },
  );
  watchdog.unref();
}

// A monitor only observes: Node still prints the error and exits 1 unless the script handles it.
process.on("uncaughtExceptionMonitor", (_err, origin) => {
  const what = origin === "unhandledRejection" ? "an unhandled promise rejection" : "an uncaught exception";
  process.stderr.write(`tsmpi: rank ${rank} failed with ${what}:\n`);
});

export {};
