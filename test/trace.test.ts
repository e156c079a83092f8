// tsmpirun --trace: how a rank lays out its calls and messages (the Trace class on its own), then
// real jobs whose trace files are read back as a viewer reads them (test/trace-check.ts).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ANY_SOURCE, ANY_TAG } from "../src/constants.js";
import type { RankReport } from "../src/report.js";
import { NONE, Trace } from "../src/trace.js";
import { checkTrace, type TraceEvent } from "./trace-check.js";
import { fixture, run } from "./helpers.js";

/** The spans of an export, parsed, by name + peer. */
function spansOf(t: Trace) {
  const part = t.export("h");
  const events = part.events.map((e) => JSON.parse(e) as TraceEvent);
  return { part, spans: events.filter((e) => e.ph === "X"), events };
}

describe("a rank's trace", () => {
  it("a call nests inside the call that made it; calls pending at once go side by side on lanes", () => {
    const t = new Trace(100);
    t.start(0, 4);
    // exchange [0, 10] ms holds two receives that overlap each other and a send inside both.
    t.span("recvInto", 1, 1, 5, 0, 1, 5);
    t.span("send", 2, 2, 5, 0, 3, 4);
    t.span("recvInto", 2, 2, 5, 0, 2, 8);
    t.span("exchange", NONE, NONE, NONE, 0, 0, 10);
    const lane = Object.fromEntries(spansOf(t).spans.map((s) => [`${s.name}@${s.ts}`, s.tid]));
    expect(lane).toEqual({ "exchange@0": 0, "recvInto@1000": 0, "recvInto@2000": 1, "send@3000": 2 });
  });

  it("a message binds to the call that sent or took it (peer, tag and communicator), and its bytes count there", () => {
    const t = new Trace(100);
    t.start(0, 4);
    t.span("recv", 1, 1, 7, 0, 0, 10);
    t.span("recv", ANY_SOURCE, ANY_SOURCE, 9, 0, 0, 10);
    t.span("send", 3, 3, 0, 0, 4, 6);
    t.sent(3, 0, 0, 64, 5);
    t.taken(t.arrived(2), 2, 0, 9, 16, 6); // not from 1: the ANY_SOURCE receive with tag 9 took it
    t.taken(t.arrived(1), 1, 0, 7, 8, 8);
    const { part, spans } = spansOf(t);
    const at = (name: string, source: unknown) => spans.find((s) => s.name === name && (s.args!.source ?? s.args!.dest) === source)!;
    expect(at("send", 3).args).toMatchObject({ dest: 3, tag: 0, communicator: 0, bytesSent: 64 });
    expect(at("recv", "ANY_SOURCE").args).toMatchObject({ tag: 9, bytesReceived: 16 });
    expect(at("recv", 1).args).toMatchObject({ tag: 7, bytesReceived: 8 });
    // Four numbers per message event: kind, µs, lane, id; each inside its span's time.
    expect(part.flows.length).toBe(12);
    for (let i = 0; i < part.flows.length; i += 4) {
      const s = spans.find((x) => x.tid === part.flows[i + 2] && x.ts < part.flows[i + 1]! && part.flows[i + 1]! < x.ts + x.dur!);
      expect(s).toBeDefined();
    }
  });

  it("a send or receive and its one message are one record: the message stays with its own call", () => {
    const t = new Trace(100);
    t.start(0, 4);
    let mark = t.records;
    t.sent(3, 0, 5, 64, 1);
    t.end("send", 3, 3, 5, 0, 0, 10, mark);
    // A shorter send to the same rank and tag around the same time, without a message: binding
    // by time alone would hand it the message above.
    t.span("send", 3, 3, 5, 0, 0.5, 1.5);
    mark = t.records;
    t.taken(t.arrived(2), 2, 0, 7, 16, 12);
    t.end("recvInto", 2, 2, 7, 0, 11, 12, mark);
    const { part, spans } = spansOf(t);
    const long = spans.find((s) => s.name === "send" && s.dur === 10_000)!;
    const short = spans.find((s) => s.name === "send" && s.dur === 1000)!;
    const recv = spans.find((s) => s.name === "recvInto")!;
    expect(long.args).toMatchObject({ dest: 3, tag: 5, bytesSent: 64 });
    expect(short.args!.bytesSent).toBeUndefined();
    expect(recv.args).toMatchObject({ source: 2, tag: 7, bytesReceived: 16 });
    // Each arrow inside its own call: kind, µs, lane, id.
    expect(part.flows.length).toBe(8);
    const [k0, at0, lane0] = part.flows, [k1, at1, lane1] = part.flows.slice(4);
    expect([k0, lane0]).toEqual([1, long.tid]);
    expect(at0).toBeGreaterThan(long.ts!);
    expect(at0).toBeLessThan(long.ts! + long.dur!);
    expect([k1, lane1]).toEqual([2, recv.tid]);
    expect(at1).toBeGreaterThan(recv.ts!);
    expect(at1).toBeLessThan(recv.ts! + recv.dur!);
  });

  it("the point-to-point calls' own endings (sendEnded, received) record what end and taken do", () => {
    const t = new Trace(100);
    t.start(0, 4);
    const mark = t.records;
    t.sent(3, 2, 5, 64, 1);
    t.sendEnded(3, 3, 5, 1, 0.5, mark);
    // A receive on communicator 1 (wire context 2) from any source and tag takes rank 2's message.
    t.received("recv", ANY_SOURCE, ANY_SOURCE, ANY_TAG, 2, 0.2, t.arrived(2), 2, 2, 7, 16);
    const { part, spans } = spansOf(t);
    expect(spans.map((s) => [s.name, s.args])).toEqual([
      ["recv", { source: "ANY_SOURCE", tag: "ANY_TAG", communicator: 1, bytesReceived: 16 }],
      ["send", { dest: 3, tag: 5, communicator: 1, bytesSent: 64 }],
    ]);
    // Two arrows (kind, µs, lane, id), each inside its own call.
    expect(part.flows.length).toBe(8);
    for (let i = 0; i < 8; i += 4) {
      const s = spans.find((x) => x.name === (part.flows[i] === 1 ? "send" : "recv"))!;
      expect(part.flows[i + 1]).toBeGreaterThan(s.ts!);
      expect(part.flows[i + 1]).toBeLessThan(s.ts! + s.dur!);
    }
  });

  it("a call whose message is not the latest record still gets it, by binding", () => {
    const t = new Trace(100);
    t.start(0, 4);
    const mark = t.records;
    t.sent(3, 0, 5, 64, 2);
    t.sent(1, 2, 0, 8, 3); // a message of another call (a collective's, say) in between
    t.end("send", 3, 3, 5, 0, 1, 4, mark);
    const { spans } = spansOf(t);
    expect(spans.find((s) => s.name === "send")!.args).toMatchObject({ dest: 3, bytesSent: 64 });
    expect(spans.find((s) => s.name === "send (internal)")!.args).toMatchObject({ bytesSent: 8 });
  });

  it("the n-th message between two ranks has the same id at both ends, and ids differ between pairs", () => {
    const a = new Trace(100);
    a.start(0, 3);
    const b = new Trace(100);
    b.start(1, 3);
    a.sent(1, 0, 0, 1, 0);
    a.sent(1, 0, 0, 1, 1);
    a.sent(2, 0, 0, 1, 2);
    const ids = (t: Trace) => { const f = t.export("h").flows; return Array.from({ length: f.length / 4 }, (_, i) => f[4 * i + 3]); };
    expect([b.arrived(0), b.arrived(0)]).toEqual(ids(a).slice(0, 2));
    expect(new Set(ids(a)).size).toBe(3);
    expect(Number.isSafeInteger(ids(a)[2])).toBe(true);
  });

  it("a message no call holds gets a short span of its own", () => {
    const t = new Trace(100);
    t.start(0, 2);
    t.sent(1, 2, 3, 100, 5);
    const { spans } = spansOf(t);
    expect(spans.map((s) => [s.name, s.args!.bytesSent])).toEqual([["send (internal)", 100]]);
  });

  it("after the warm-up a trace holds nothing of it: it records a job as a fresh one does", () => {
    const job = (t: Trace) => {
      t.start(1, 3);
      const mark = t.records;
      t.sent(2, 0, 5, 64, 1);
      t.end("send", 2, 2, 5, 0, 0.5, 1.5, mark);
      t.taken(t.arrived(0), 0, 0, 9, 16, 3); // a message taken inside the task below
      t.span("task sweep", NONE, NONE, NONE, -1, 2, 4);
      return t.export("h");
    };
    const warmed = new Trace(100);
    warmed.warmUp(3000);
    const a = job(warmed);
    expect(a).toEqual(job(new Trace(100)));
    expect(a.dropped).toBe(0);
    const spans = a.events.map((e) => JSON.parse(e) as TraceEvent).filter((e) => e.ph === "X");
    expect(spans.map((e) => [e.name, e.args])).toEqual([
      ["send", { dest: 2, tag: 5, communicator: 0, bytesSent: 64 }],
      ["task sweep", { bytesReceived: 16 }],
    ]);
  });

  it("after the warm-up a small ring is as small as it was asked to be", () => {
    const t = new Trace(16);
    t.warmUp(3000);
    t.start(0, 1);
    for (let i = 0; i < 40; i++) t.span("barrier", NONE, NONE, NONE, 0, i, i + 0.5);
    expect(t.export("h").dropped).toBe(24);
  });

  it("a full ring keeps the last events and says how many it dropped", () => {
    const t = new Trace(16);
    t.start(0, 1);
    for (let i = 0; i < 40; i++) t.span("barrier", NONE, NONE, NONE, 0, i, i + 0.5);
    const { part, spans, events } = spansOf(t);
    expect(part.dropped).toBe(24);
    expect(spans.map((s) => s.ts)).toEqual(Array.from({ length: 16 }, (_, i) => (24 + i) * 1000));
    expect(events.some((e) => e.ph === "i" && /24 earlier events were dropped/.test(e.name))).toBe(true);
  });
});

const tmp = () => mkdtempSync(join(tmpdir(), "tsmpi-trace-"));

describe("tsmpirun --trace", () => {
  // With --report the calls end through the generic observers; alone, through the trace's own
  // calls (Trace.sendEnded, Trace.received): both must give the same file. Alone, the
  // collectives go by messages (TSMPI_BOARDS=off), whose arrows are checked too.
  it.each([
    ["with --report (as many arrows as it counts messages)", true],
    ["alone, collectives by messages", false],
  ])("heat on 4 ranks, %s: a track per rank, spans nested, an arrow for every message sent", async (_, withReport) => {
    const file = join(tmp(), "heat.json");
    const r = await run(["-n", "4", "--trace", file, ...(withReport ? ["--report", "json"] : ["-x", "TSMPI_BOARDS=off"]), "examples/heat.ts", "--n", "64", "--steps", "200", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const t = checkTrace(file);
    expect([...t.processes].sort((a, b) => a[0] - b[0]).map(([pid, name]) => [pid, name.replace(/\(.*\)/, "(host)")])).toEqual([0, 1, 2, 3].map((k) => [k, `rank ${k} (host)`]));
    expect(t.otherData).toMatchObject({ tsmpi: 1, size: 4, ranksTraced: 4 });
    if (withReport) {
      const report = JSON.parse(r.stdout.trim().split("\n").pop()!) as { ranks: RankReport[] };
      expect(t.messages.length).toBe(report.ranks.reduce((a, x) => a + x.messagesSent, 0));
    }
    // Every halo: 200 steps × 2 neighbours on a 2 × 2 grid, a send and a receive each, each with its arrow.
    const halo = (name: string) => t.spans.filter((s) => s.name === name);
    expect(halo("exchange")).toHaveLength(4 * 200);
    for (const name of ["send", "recvInto"]) expect(halo(name)).toHaveLength(4 * 200 * 2);
    const sendsWithArrow = new Set(t.messages.map((m) => m.from));
    const recvsWithArrow = new Set(t.messages.map((m) => m.to));
    expect(halo("send").every((s) => sendsWithArrow.has(s))).toBe(true);
    expect(halo("recvInto").every((s) => recvsWithArrow.has(s))).toBe(true);
    for (const m of t.messages.filter((x) => x.from.name === "send")) {
      expect(m.to.name).toBe("recvInto");
      expect(m.to.args!.source).toBe(m.from.pid); // a 2 × 2 grid: ranks are their own world ranks
      expect(m.to.args!.bytesReceived).toBe(m.from.args!.bytesSent);
      // One clock on one machine: a receive never ends before its send began.
      expect(m.to.ts + m.to.dur!).toBeGreaterThanOrEqual(m.from.ts);
    }
    // Collectives are spans too, on every rank; by messages, their messages are arrows between
    // them, and on shared-memory boards (see board.ts) they send none.
    for (const k of [0, 1, 2, 3]) expect(t.spans.some((s) => s.name === "allreduce" && s.pid === k)).toBe(true);
    expect(t.messages.some((m) => m.from.name === "allreduce" && m.to.name === "allreduce")).toBe(!withReport);
  });

  it("a task pool: tasks are spans on the workers, and the root's imapUnordered call holds the arrows of its chunks", async () => {
    const file = join(tmp(), "sweep.json");
    const r = await run(["-n", "3", "--trace", file, "examples/sweep.ts", "--points", "6", "--L", "8", "--sweeps", "20", "--therm", "0", "--json"]);
    expect(r.exitCode).toBe(0);
    const t = checkTrace(file);
    const tasks = t.spans.filter((s) => s.name === "task simulate");
    expect(tasks).toHaveLength(6);
    expect(new Set(tasks.map((s) => s.pid))).toEqual(new Set([1, 2]));
    expect(t.messages.filter((m) => m.from.name === "pool.imapUnordered simulate").length).toBeGreaterThanOrEqual(6);
  });

  it("a file that cannot be written is an error before any rank starts", async () => {
    const r = await run(["-n", "2", "--trace", "/nonexistent-dir/x.json", fixture("plain.mjs")]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--trace \/nonexistent-dir\/x\.json: cannot write the trace there: ENOENT/);
    expect(r.stdout).toBe("");
    const twice = await run(["-n", "1", "--trace", "a.json", "--trace", "b.json", fixture("plain.mjs")]);
    expect(twice.stderr).toMatch(/--trace was given more than once/);
  });

  it("a rank that fails sends no trace: the file is still whole, with the others, and the note names it", async () => {
    const file = join(tmp(), "fail.json");
    const r = await run(["-n", "3", "--trace", file, fixture("fail-exit.ts"), "1", "3"]);
    expect(r.exitCode).toBe(3);
    const t = checkTrace(file);
    expect(r.stderr).toMatch(/--trace: ranks 0, 1, 2 sent no trace \(a rank sends its trace at finalize\)/);
    expect(t.otherData.size).toBe(3);
  });

  it("a small ring (TSMPI_TRACE_EVENTS) keeps each rank's last events and says so; the file stays valid", async () => {
    const file = join(tmp(), "cut.json");
    const r = await run(["-n", "2", "--trace", file, "examples/heat.ts", "--n", "32", "--steps", "300"], { env: { TSMPI_TRACE_EVENTS: "500" } });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toMatch(/--trace: rank 0 kept only its last events: \d+ earlier ones were dropped/);
    const t = checkTrace(file);
    expect(t.spans.length).toBeLessThanOrEqual(2 * 500);
    expect(t.messages.length).toBeGreaterThan(50);
  });
});
