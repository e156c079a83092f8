/**
 * A job's directory on one host (ipc sockets, the compiled script) and the shared-memory segments
 * named after it, removed when the job ends on that host, even when the process that made them is
 * killed with SIGKILL and runs no cleanup of its own.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "node:net";
import { segmentPrefix } from "../src/transport/shm.js";

const SHM_DIR = "/dev/shm";

export interface JobDir {
  readonly path: string;
  /**
   * A rank's process group: when the job ends, however it ends, whatever is left in it (the
   * rank's own children) is killed.
   */
  track(pgid: number): void;
  /**
   * Kills what is left in the tracked process groups, removes the directory and any segment of
   * the job still named in /dev/shm. Idempotent.
   */
  remove(): void;
}

/** The job's directory could not be made (TMPDIR missing, not writable, or full). */
export class JobDirError extends Error {
  override name = "JobDirError";
}

/** Longest ipc socket path (sun_path holds 108 bytes with the NUL), less room for "/<rank>". */
const MAX_DIR_LENGTH = 107 - 8;

/**
 * A fresh directory under TMPDIR, or under /tmp when TMPDIR's path is too long for the ipc
 * sockets that go in it (ZeroMQ would fail with ENAMETOOLONG in every rank).
 */
function makeDirectory(): string {
  const base = tmpdir();
  const where = base.length + "/tsmpi-XXXXXX".length <= MAX_DIR_LENGTH ? base : "/tmp";
  try {
    return mkdtempSync(join(where, "tsmpi-"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    const hint = code === "ENOENT" ? "it does not exist" : code === "EACCES" || code === "EROFS" ? "it is not writable" : code === "ENOSPC" ? "it is full" : code;
    throw new JobDirError(`cannot make the job's directory in ${where}${where === base && process.env.TMPDIR ? " (TMPDIR)" : ""}: ${hint}; set TMPDIR to a writable directory`);
  }
}

/**
 * Makes the directory and starts its reaper: a shell, in a session of its own, that waits for the
 * end of its standard input (a pipe from this process, which closes however this process ends)
 * and then removes what remove() would. On a normal exit remove() has already done it.
 */
export function createJobDir(): JobDir {
  const path = makeDirectory();
  const prefix = segmentPrefix(path);
  // The reaper also learns each rank's process group (a line per group; "clear" once the
  // launcher has dealt with them itself) and kills what is left in them.
  const script = `trap '' INT TERM HUP; pgs=; while read -r pg; do if [ "$pg" = clear ]; then pgs=; else pgs="$pgs $pg"; fi; done; for pg in $pgs; do kill -KILL "-$pg" 2>/dev/null; done; rm -rf -- "$1"; rm -f -- "${SHM_DIR}/$2"*`;
  let stdin: Socket | null = null;
  try {
    const reaper = spawn("/bin/sh", ["-c", script, "tsmpi-reaper", path, prefix], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
    reaper.on("error", () => {}); // without a shell the job still runs; only SIGKILL leaves files then
    reaper.unref();
    stdin = reaper.stdin as Socket | null;
    stdin?.on("error", () => {});
    stdin?.unref();
  } catch {
    // as above
  }
  const groups: number[] = [];
  return {
    path,
    track(pgid) {
      groups.push(pgid);
      stdin?.write(`${pgid}\n`);
    },
    remove() {
      for (const pg of groups.splice(0)) {
        try {
          process.kill(-pg, "SIGKILL");
        } catch {
          // the group is empty: nothing left of that rank
        }
      }
      stdin?.write("clear\n");
      rmSync(path, { recursive: true, force: true });
      let names: string[] = [];
      try {
        names = readdirSync(SHM_DIR).filter((n) => n.startsWith(prefix));
      } catch {
        return; // no /dev/shm: no segments either
      }
      for (const n of names) rmSync(join(SHM_DIR, n), { force: true });
    },
  };
}
