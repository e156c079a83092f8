/**
 * Draws a window of a `tsmpirun --trace` file as a timeline picture: a row per rank (and per lane
 * where calls overlap), a bar per tsmpi call coloured by call, a line per message from its send
 * to the receive that took it. For a quick look, or a README; Perfetto (https://ui.perfetto.dev)
 * is the place to explore a whole trace.
 *
 *   npx tsmpirun -n 4 --trace heat.json examples/heat.ts --steps 200
 *   npx tsx examples/timeline.ts heat.json --png timeline.png --from 300 --ms 2
 *
 * A plain script, not a job: run it with tsx (or node), not tsmpirun.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import yargs from "yargs";
import { render, timeline, type TimelineArrow, type TimelineSpan } from "./lib/plot.js";

const opt = yargs(process.argv.slice(2))
  .usage("$0 TRACE.json --png OUT.png|OUT.svg [--from MS] [--ms MS]")
  .demandCommand(1, 1, "give the trace file (written by tsmpirun --trace)")
  .option("png", { type: "string", demandOption: true, describe: "picture to write (.png, or .svg)" })
  .option("from", { type: "number", describe: "start of the window, ms since the job started (default: the middle of the run)" })
  .option("ms", { type: "number", default: 2, describe: "length of the window in ms" })
  .strict()
  .parseSync();

interface Event { ph: string; name: string; pid: number; tid: number; ts: number; dur?: number; id?: number }
const file = String(opt._[0]);
let events: Event[];
try {
  events = (JSON.parse(readFileSync(file, "utf8")) as { traceEvents: Event[] }).traceEvents;
  if (!Array.isArray(events)) throw new Error("it has no traceEvents array");
} catch (e) {
  console.error(`timeline: ${file}: not a trace file tsmpirun --trace wrote (${(e as Error).message})`);
  process.exit(2);
}
const spans = events.filter((e) => e.ph === "X");
if (spans.length === 0) {
  console.error(`timeline: ${file} has no spans`);
  process.exit(2);
}
const first = Math.min(...spans.map((s) => s.ts)) / 1000, last = Math.max(...spans.map((s) => s.ts + s.dur!)) / 1000;
const from = opt.from ?? (first + last) / 2 - opt.ms / 2;
const to = from + opt.ms;
const shown: TimelineSpan[] = spans
  .filter((s) => s.ts / 1000 < to && (s.ts + s.dur!) / 1000 > from)
  .map((s) => ({ rank: s.pid, lane: s.tid, call: s.name, start: Math.max(from, s.ts / 1000), end: Math.min(to, (s.ts + s.dur!) / 1000) }));
const starts = new Map(events.filter((e) => e.ph === "s").map((e) => [e.id!, e]));
const arrows: TimelineArrow[] = [];
for (const f of events) {
  const s = f.ph === "f" ? starts.get(f.id!) : undefined;
  if (!s || s.ts / 1000 < from || f.ts / 1000 > to) continue;
  arrows.push({ from: { rank: s.pid, lane: s.tid, t: s.ts / 1000 }, to: { rank: f.pid, lane: f.tid, t: f.ts / 1000 } });
}
await render(timeline(`${basename(file)}: ${from.toFixed(1)}–${to.toFixed(1)} ms (${shown.length} calls, ${arrows.length} messages)`, shown, arrows), opt.png);
console.log(`timeline: ${opt.png}: ${shown.length} calls and ${arrows.length} messages between ${from.toFixed(3)} and ${to.toFixed(3)} ms`);
