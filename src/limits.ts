/**
 * Memory guards of a rank, from the environment (bytes; a K, M or G suffix is allowed):
 * - TSMPI_MAX_MESSAGE: the largest message a rank sends or takes in (default: half of this
 *   machine's memory). A send above it rejects at once; a transport refuses to read one.
 * - TSMPI_STRAY_LIMIT: how much may wait for communicators this rank has not made (yet): a
 *   faster rank may use a new communicator before this one has finished making it, but messages
 *   that pile up for one that never comes (ranks making communicators in different orders, or a
 *   program outside the job) would hold memory until exit. Default: a quarter of this machine's
 *   memory, at most 1 GiB.
 */
import { totalmem } from "node:os";

function bytesFrom(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$/i.exec(v);
  if (!m) {
    process.stderr.write(`tsmpi: ${name}=${JSON.stringify(v)} is not a size in bytes (e.g. 512M); using ${fallback}\n`);
    return fallback;
  }
  const scale = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Math.floor(Number(m[1]) * scale);
}

export const MAX_MESSAGE_BYTES = bytesFrom("TSMPI_MAX_MESSAGE", Math.floor(totalmem() / 2));
export const STRAY_LIMIT_BYTES = bytesFrom("TSMPI_STRAY_LIMIT", Math.min(2 ** 30, Math.floor(totalmem() / 4)));

/** A size for people: 1.5 GiB, 300 MiB, 12 KiB, 80 B. */
export function sizeText(n: number): string {
  for (const [unit, s] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const) if (n >= s) return `${(n / s).toFixed(n % s === 0 ? 0 : 1)} ${unit}`;
  return `${n} B`;
}
