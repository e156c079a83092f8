/**
 * Process-wide state of a rank: init, finalize, abort and wtime.
 * A script started without the launcher is a singleton: a world of size 1, as in MPI.
 */
import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import { Communicator, describeWaits } from "./comm.js";
import { ControlChannel } from "./control.js";
import { MpiError } from "./errors.js";
import { PointToPoint } from "./p2p.js";
import { COMMUNICATOR_CALLS, instrument } from "./instrument.js";
import { activity } from "./report.js";
import { trace, type TracePart } from "./trace.js";
import { isTransportChoice, Router, TRANSPORT_CHOICES, type TransportChoice } from "./transport/index.js";

interface RankState {
  world: Communicator;
  p2p: PointToPoint;
  control: ControlChannel | null;
  transport: Router | null;
}

let started: Promise<RankState> | null = null;
let finalizing: Promise<void> | null = null;

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new MpiError(`init: environment variable ${name}=${JSON.stringify(v)} is not a valid number`);
  return n;
}

function transportChoice(): TransportChoice {
  const v = process.env.TSMPI_TRANSPORT ?? "auto";
  if (!isTransportChoice(v)) throw new MpiError(`init: TSMPI_TRANSPORT=${JSON.stringify(v)} is not one of ${TRANSPORT_CHOICES.join(", ")}`);
  return v;
}

async function start(): Promise<RankState> {
  const control = ControlChannel.connect();
  const rank = control ? envInt("TSMPI_RANK", 0) : 0;
  const size = control ? envInt("TSMPI_SIZE", 1) : 1;
  const p2p = new PointToPoint(rank, size);
  const host = process.env.TSMPI_HOST_ID ?? hostname();
  let transport: Router | null = null;
  if (control) {
    if (size > 1) {
      transport = await Router.open(
        {
          rank,
          host,
          choice: transportChoice(),
          localSize: envInt("TSMPI_LOCAL_SIZE", 1),
          localRank: envInt("TSMPI_LOCAL_RANK", 0),
          jobDir: process.env.TSMPI_JOB_DIR,
          tcpAddress: process.env.TSMPI_TCP_ADDRESS,
          insecure: process.env.TSMPI_INSECURE === "1",
          timeWaits: activity !== null,
        },
        { message: p2p.message, landing: p2p.landing, broken: p2p.broken, refused: p2p.refused },
      );
      p2p.attach(transport);
      const router = transport;
      activity?.countWaits(() => router.waitedMs(), () => router.sleeps());
    }
    const table = await control.rendezvous({ t: "hello", rank, address: transport ? { host, ...transport.address } : null });
    transport?.setPeers(table.map((a, r) => a ?? { host: `missing-${r}` }));
    control.onGone((g) => p2p.peerGone(g.rank, g.sentTo, g.how));
    // Warmed only now, with the transport up: opening it broke what V8 had assumed of the code
    // warmed at import (mapping a segment makes a Buffer over external memory, and all code that
    // assumed no Uint8Array ever changes prototype was thrown away; see Trace.kind). 16-rank heat
    // traced: 10 % slower than plain when warmed at import, 3 % when warmed here.
    trace?.warmUp();
    trace?.start(rank, size);
    // What else is pending tells a rank stuck in tsmpi from one whose own timer or I/O will go on.
    // The user's lines are looked up only when the launcher is about to print them.
    control.onStateRequest(async (where) => {
      const { moved } = p2p;
      const resources = process.getActiveResourcesInfo();
      return { t: "state", rank, ...(await describeWaits(p2p, where)), moved, resources };
    });
  }
  instrument(Communicator.prototype, COMMUNICATOR_CALLS, (c) => (c as Communicator).contextId, (c) => (c as Communicator).group);
  const world = new Communicator(
    p2p,
    Array.from({ length: size }, (_, r) => r),
    0,
  );
  // Like mpi4py, finalize when the script is done, so forgetting finalize() cannot hang a job.
  process.once("beforeExit", () => void finalize());
  return { world, p2p, control, transport };
}

/** Starts this rank's part of the job and returns the world communicator. Idempotent. */
export function init(): Promise<Communicator> {
  if (finalizing) return Promise.reject(new MpiError("init: called after finalize()"));
  started ??= start();
  return started.then((s) => s.world);
}

/**
 * Ends this rank's communication: waits for its sends to be delivered, tells its peers, and
 * closes its sockets, so the process can exit by itself. Idempotent.
 */
export function finalize(): Promise<void> {
  finalizing ??= (async () => {
    if (!started) return;
    const s = await started;
    s.p2p.finalized = true;
    // close() puts a FIN behind every pending send and waits for its acknowledgement, so it is
    // also the flush. The launcher is told only afterwards: peers that know we are gone stop
    // acknowledging us, so announcing first could leave close() waiting for a FIN-ACK forever.
    // The report is sent before close(): the wait for peers' FIN-ACKs is the launcher's, not the rank's.
    const host = process.env.TSMPI_HOST_ID ?? hostname();
    if (activity) await s.control?.sendAndWait({ t: "report", rank: s.world.rank, report: activity.report(s.world.rank, host) });
    if (trace && s.control) await sendTrace(s.control, s.world.rank, trace.export(host));
    await s.p2p.close();
    await s.control?.send({ t: "fin", rank: s.world.rank, sentTo: s.p2p.sentTo });
  })();
  return finalizing;
}

/** Events per control message: a trace of 10⁶ events goes in pieces, not as one huge message. */
const TRACE_CHUNK = 20_000;

/** Sends this rank's trace to the launcher in pieces; the last is acknowledged. */
async function sendTrace(control: ControlChannel, rank: number, part: TracePart): Promise<void> {
  const pieces = Math.max(Math.ceil(part.events.length / TRACE_CHUNK), Math.ceil(part.flows.length / (4 * TRACE_CHUNK)), 1);
  for (let i = 0; i < pieces; i++) {
    const piece: TracePart = {
      events: part.events.slice(i * TRACE_CHUNK, (i + 1) * TRACE_CHUNK),
      flows: part.flows.slice(i * 4 * TRACE_CHUNK, (i + 1) * 4 * TRACE_CHUNK),
      dropped: part.dropped,
    };
    const msg = { t: "trace", rank, part: piece, last: i === pieces - 1 } as const;
    await (msg.last ? control.sendAndWait(msg, 30_000) : control.send(msg));
  }
}

/**
 * Ends the whole job: the launcher stops every rank and exits with `code`.
 * Without a launcher, exits this process with `code`.
 */
export function abort(code = 1, reason?: string): never {
  const rank = Number(process.env.TSMPI_RANK ?? 0);
  const text = reason ?? "abort() called";
  process.stderr.write(`tsmpi: rank ${rank} called abort(${code}): ${text}\n`);
  // A small IPC message is written at once when nothing else is queued on the channel; should it
  // be lost, the launcher still sees this rank exit with `code` and stops the job for that.
  if (typeof process.send === "function") process.send({ t: "abort", rank, code, reason: text });
  process.exit(code);
}

/** Seconds since an arbitrary point in this process, high resolution and monotonic (MPI_Wtime). */
export function wtime(): number {
  return performance.now() / 1000;
}
