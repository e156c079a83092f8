/**
 * Checkpoint files on disk: a `.npy` array and its sidecar `FILE.json`, written so that a job
 * killed at any moment leaves a complete checkpoint behind, either the new one or the previous.
 *
 * The data goes to `FILE.partial` first. The sidecar, which records the data's sha256, is the
 * commit point: it is written to `FILE.json.partial` and renamed over `FILE.json`; only then is
 * `FILE.partial` renamed over `FILE`. A job killed before the sidecar's rename leaves the old
 * pair; one killed between the two renames leaves a sidecar whose hash matches `FILE.partial`,
 * and `settle()` finishes the rename the next time the checkpoint is opened.
 *
 * These are rank 0's (or one rank's) file operations; the collective choreography is in grid.ts.
 */
import { createRequire } from "node:module";
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync, ftruncateSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { MpiError } from "./errors.js";
import { decodeNpyHeader, type NpyDescr, type NpyHeader } from "./npy.js";

/** What `FILE.json` holds: the caller's metadata and what it takes to trust the data beside it. */
export interface Sidecar {
  format: "tsmpi-checkpoint";
  version: 1;
  dtype: NpyDescr;
  shape: number[];
  /** sha256 (hex) of the array's bytes: the data after the .npy header. */
  sha256: string;
  savedAt: string;
  meta: Record<string, unknown>;
}

export const sidecarPath = (file: string) => `${file}.json`;
const partialPath = (file: string) => `${file}.partial`;

/** A failure of the file system, as one line naming the file and the system's reason. */
export function ioMessage(what: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return `${what}: ${err.code ? `${err.code} (${err.message.replace(/^\w+: /, "").replace(/, \w+ '.*'$/, "")})` : err.message}`;
}

/**
 * Throws unless `meta` survives JSON exactly: a checkpoint that silently turned NaN into null or
 * dropped an undefined field would restart a different run.
 */
export function checkMeta(meta: unknown, where: string): asserts meta is Record<string, unknown> {
  const walk = (v: unknown, path: string): void => {
    if (v === null || typeof v === "string" || typeof v === "boolean") return;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new MpiError(`${where}: ${path} is ${v}; metadata must be JSON (finite numbers, strings, booleans, null, arrays, plain objects)`);
      return;
    }
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`));
    if (typeof v === "object" && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
      for (const [k, x] of Object.entries(v as object)) walk(x, `${path}.${k}`);
      return;
    }
    const what = typeof v === "object" ? `a ${(v as object).constructor?.name ?? "object"}` : `a ${typeof v}`;
    throw new MpiError(`${where}: ${path} is ${what}; metadata must be JSON (finite numbers, strings, booleans, null, arrays, plain objects)`);
  };
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw new MpiError(`${where}: meta must be a plain object`);
  walk(meta, "meta");
}

/** Rank 0's first step of a save: makes `FILE.partial` with the header and room for the data. Returns its path and identity. */
export function prepare(file: string, header: Uint8Array, dataBytes: number): { partial: string; identity: string } {
  const path = resolve(file);
  const dir = dirname(path);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new MpiError(`${file}: directory ${dir} does not exist`);
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new MpiError(`${file} is a directory`);
  const partial = partialPath(path);
  if (existsSync(partial)) {
    // An earlier save stopped: finish it if it had committed, so that were this one to stop too,
    // the last complete checkpoint is still there. A pair that does not match is overwritten anyway.
    try {
      settle(file);
    } catch {
      // nothing to keep
    }
  }
  const fd = openFile(partial, "w");
  try {
    writeAll(fd, header, 0);
    ftruncateSync(fd, header.length + dataBytes);
  } catch (e) {
    throw new MpiError(ioMessage(partial, e));
  } finally {
    closeSync(fd);
  }
  return { partial, identity: fileIdentity(partial) };
}

/**
 * Who a file is on this host: inode, size and modification time. A rank whose view of a path
 * matches rank 0's shares its file system (the same disk, or NFS); a copy on another host's own
 * disk would need the same inode and mtime to the nanosecond.
 */
export function fileIdentity(path: string): string {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}` : "";
}

/** Rank 0's last step of a save: hashes the data, writes the sidecar (the commit) and renames the data into place. */
export function commit(file: string, header: NpyHeader, dataBytes: number, meta: Record<string, unknown>): void {
  const path = resolve(file);
  const partial = partialPath(path);
  const sidecar: Sidecar = { format: "tsmpi-checkpoint", version: 1, dtype: header.descr, shape: header.shape, sha256: hashData(partial, header.dataOffset, dataBytes), savedAt: new Date().toISOString(), meta };
  const json = sidecarPath(path), jsonPartial = `${json}.partial`;
  const fd = openFile(jsonPartial, "w");
  try {
    writeAll(fd, new TextEncoder().encode(`${JSON.stringify(sidecar, null, 2)}\n`), 0);
    fsyncSync(fd);
  } catch (e) {
    throw new MpiError(ioMessage(jsonPartial, e));
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(jsonPartial, json);
    renameSync(partial, path);
    syncDirectory(dirname(path));
  } catch (e) {
    throw new MpiError(ioMessage(path, e));
  }
}

/** Removes what an unfinished save left (after a write failed on some rank). */
export function abandon(file: string): void {
  rmSync(partialPath(resolve(file)), { force: true });
}

/**
 * Makes `FILE` agree with `FILE.json` and returns the sidecar (undefined for a plain .npy file
 * without one). Finishes a save that stopped between its two renames; throws when the data does
 * not match the sidecar at all.
 */
export function settle(file: string): Sidecar | undefined {
  const path = resolve(file);
  const json = sidecarPath(path);
  if (!existsSync(json)) return undefined;
  let sidecar: Sidecar;
  try {
    sidecar = JSON.parse(readFileSync(json, "utf8")) as Sidecar;
  } catch (e) {
    throw new MpiError(ioMessage(`${file}.json (the checkpoint's sidecar)`, e));
  }
  if (sidecar?.format !== "tsmpi-checkpoint" || typeof sidecar.sha256 !== "string") throw new MpiError(`${file}.json is not a tsmpi checkpoint sidecar (no "format": "tsmpi-checkpoint" and "sha256")`);
  const matches = (p: string) => {
    if (!existsSync(p)) return false;
    const h = readHeader(p, p);
    return hashData(p, h.dataOffset, statSync(p).size - h.dataOffset) === sidecar.sha256;
  };
  if (matches(path)) return sidecar;
  const partial = partialPath(path);
  if (matches(partial)) {
    renameSync(partial, path);
    syncDirectory(dirname(path));
    return sidecar;
  }
  throw new MpiError(`${file}: its data does not match ${file}.json (sha256 ${sidecar.sha256.slice(0, 12)}…, saved ${sidecar.savedAt}): the file was changed or replaced after the checkpoint was written`);
}

/** Reads and decodes the .npy header of `path` (`name` is how errors call it). */
export function readHeader(path: string, name: string): NpyHeader {
  const fd = openFile(path, "r");
  try {
    let head = new Uint8Array(128);
    for (;;) {
      const got = readSync(fd, head, 0, head.length, 0);
      const h = decodeNpyHeader(head.subarray(0, got), name);
      if (!("needed" in h)) return h;
      if (got < head.length) throw new MpiError(`${name}: not a .npy file tsmpi can read: it ends inside its header`);
      head = new Uint8Array(h.needed);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * node:crypto, loaded at the first checkpoint rather than when tsmpi is imported: loading it
 * takes every rank ~4 ms of start-up, and most jobs never save.
 */
const crypto = (): typeof import("node:crypto") => createRequire(import.meta.url)("node:crypto") as typeof import("node:crypto");

/** sha256 (hex) of `length` bytes of `path` from `offset`. */
export function hashData(path: string, offset: number, length: number): string {
  const hash = crypto().createHash("sha256");
  const fd = openFile(path, "r");
  try {
    const chunk = new Uint8Array(Math.min(8 << 20, Math.max(length, 1)));
    for (let done = 0; done < length; ) {
      const got = readSync(fd, chunk, 0, Math.min(chunk.length, length - done), offset + done);
      if (got === 0) break; // shorter than the header says: the hash will not match
      hash.update(chunk.subarray(0, got));
      done += got;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

export function openFile(path: string, flags: "r" | "r+" | "w"): number {
  try {
    return openSync(path, flags);
  } catch (e) {
    throw new MpiError(ioMessage(path, e));
  }
}

/** At most this many bytes per read or write call (Node refuses 2 GiB and more in one). */
const IO_CHUNK = 1 << 30;

/** Writes all of `bytes` at `position` (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done), position + done);
}

/** Reads exactly `bytes.length` bytes at `position`; false when the file ends first. */
export function readAll(fd: number, bytes: Uint8Array, position: number): boolean {
  for (let done = 0; done < bytes.length; ) {
    const got = readSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.length - done), position + done);
    if (got === 0) return false;
    done += got;
  }
  return true;
}

/** Makes the renames in `dir` durable (a rename is only on disk once its directory is). */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some file systems cannot fsync a directory; the rename itself is still atomic.
  }
}
