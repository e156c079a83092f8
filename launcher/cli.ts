#!/usr/bin/env node
/** tsmpirun / tsmpiexec: the command-line entry point. */
import { HelpShown, parseArgs, UsageError } from "./args.js";
import { CompileError } from "./compile.js";
import { runJob } from "./job.js";
import { JobDirError } from "./jobdir.js";

/** Exit status for a mistake in the command line (the job never started). */
const USAGE_EXIT = 2;

try {
  process.exitCode = await runJob(parseArgs(process.argv.slice(2)));
} catch (e) {
  if (e instanceof HelpShown) {
    process.exitCode = 0;
  } else if (e instanceof UsageError) {
    process.stderr.write(`tsmpirun: ${e.message}\nRun 'tsmpirun --help' for the options.\n`);
    process.exitCode = USAGE_EXIT;
  } else if (e instanceof CompileError || e instanceof JobDirError) {
    process.stderr.write(`tsmpirun: ${e.message}\n`);
    process.exitCode = 1;
  } else {
    throw e;
  }
}
