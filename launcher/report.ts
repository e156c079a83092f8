/**
 * `tsmpirun --report`: the ranks' activity records (src/report.ts), collected at finalize, as a
 * table per rank with the slowest calls and a one-line verdict, or as one JSON line.
 */
import type { RankReport } from "../src/report.js";

export type ReportFormat = "text" | "json";

/** The one-line reading of the whole job, e.g. "ranks spend 62 % of their time waiting, most of it in recv". */
export function verdict(reports: readonly RankReport[]): string {
  if (reports.length === 0) return "no rank reported (none reached finalize)";
  const wall = reports.reduce((a, r) => a + r.wallSeconds, 0);
  const wait = reports.reduce((a, r) => a + r.waitSeconds, 0);
  const share = wall > 0 ? (100 * wait) / wall : 0;
  const byCall = new Map<string, number>();
  for (const r of reports) for (const [call, c] of Object.entries(r.calls)) byCall.set(call, (byCall.get(call) ?? 0) + c.waitSeconds);
  const top = [...byCall].sort((a, b) => b[1] - a[1])[0];
  const where = top && top[1] > 0 ? `, most of it in ${top[0]}` : "";
  const what = share >= 50 ? "mostly waiting" : share >= 10 ? "waiting for a good part of the time" : "mostly computing";
  return `ranks spend ${share.toFixed(0)} % of their time waiting in tsmpi calls${where}: ${what}`;
}

const bytes = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1 << 10 ? `${(n / (1 << 10)).toFixed(1)} KiB` : `${n} B`);
const peerName = (call: string, peer: number) => (peer === -1 ? call : peer === -2 ? `${call} (any source)` : `${call} ${/^(bcast|reduce|gather|scatter)$/.test(call) ? "root" : call.startsWith("send") ? "to" : "from"} ${peer}`);

/** The report as text: one row per rank, then the slowest calls and the verdict. */
export function formatTable(reports: readonly RankReport[], size: number): string {
  const rows = [["rank", "host", "wall s", "wait s", "wait %", "sleeps", "sent", "bytes sent", "received", "bytes recv", "top peer (bytes sent)"]];
  for (const r of reports) {
    const peer = r.topPeers[0];
    rows.push([
      String(r.rank), r.host, r.wallSeconds.toFixed(3), r.waitSeconds.toFixed(3),
      r.wallSeconds > 0 ? ((100 * r.waitSeconds) / r.wallSeconds).toFixed(0) : "0",
      String(r.sleeps), String(r.messagesSent), bytes(r.bytesSent), String(r.messagesReceived), bytes(r.bytesReceived),
      peer ? `${peer[0]} (${bytes(peer[2])})` : "-",
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  // Text to the left (rank, host, and the top peer in the last column), numbers to the right.
  const last = rows[0]!.length - 1;
  const lines = rows.map((row) => row.map((cell, c) => (c <= 1 || c === last ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd());
  const slowest = reports
    .flatMap((r) => r.slowest.map((s) => ({ ...s, rank: r.rank })))
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, 5)
    .map((s) => `  rank ${s.rank}: ${peerName(s.call, s.peer)}, ${(s.seconds * 1000).toFixed(1)} ms`);
  const missing = size - reports.length;
  return [
    "tsmpirun --report:",
    ...lines.map((l) => `  ${l}`),
    ...(slowest.length > 0 ? ["slowest calls:", ...slowest] : []),
    ...(missing > 0 ? [`(${missing} rank${missing === 1 ? "" : "s"} did not reach finalize and sent no report)`] : []),
    `verdict: ${verdict(reports)}`,
    "",
  ].join("\n");
}

/** The report as one JSON line. */
export function formatJson(reports: readonly RankReport[], size: number): string {
  return `${JSON.stringify({ tsmpiReport: 1, size, ranks: reports, verdict: verdict(reports) })}\n`;
}
