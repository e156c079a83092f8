/**
 * Preloaded (node --import) into every rank the launcher starts, before the user's script.
 * It ties the rank's life to the launcher's and makes failures name the rank.
 */
const rank = process.env.TSMPI_RANK ?? "?";

// The control channel must not keep a finished rank alive (tsmpi refs it while it waits on it).
process.channel?.unref();

// The launcher is gone (killed, or its host agent lost its connection): nobody will ever stop
// this rank or read its output, so it stops itself.
process.on("disconnect", () => process.exit(1));

// A monitor only observes: Node still prints the error and exits 1 unless the script handles it.
process.on("uncaughtExceptionMonitor", (_err, origin) => {
  const what = origin === "unhandledRejection" ? "an unhandled promise rejection" : "an uncaught exception";
  process.stderr.write(`tsmpi: rank ${rank} failed with ${what}:\n`);
});

export {};
