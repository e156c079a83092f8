/**
 * Preloaded (node --import) into every rank the launcher starts, before the user's script.
 * It ties the rank's life to the launcher's and makes failures name the rank.
 */
import { Worker } from "node:worker_threads";

const rank = process.env.TSMPI_RANK ?? "?";

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
