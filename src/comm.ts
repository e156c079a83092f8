/**
 * Communicator: a group of ranks with its own message space (MPI_Comm). Point-to-point calls
 * validate their arguments, translate ranks to world ranks and go to the point-to-point engine
 * on this communicator's context; collectives run on a second context, so the two kinds of
 * traffic never match each other.
 */
import { Board } from "./board.js";
import * as coll from "./collectives.js";
import { ANY_SOURCE, ANY_TAG, PROC_NULL, TAG_UB } from "./constants.js";
import { MpiError } from "./errors.js";
import { checkOp, type Op } from "./op.js";
import { began, ended, marked, observed, traceOnly } from "./instrument.js";
import type { Incoming, PointToPoint, SpanOf } from "./p2p.js";
import { NONE } from "./trace.js";
import { SENT } from "./transport/index.js";
import { CartGeometry, fillDims, type CartOptions, type Shift } from "./topology.js";
import { decode, decodeInto, payloadBytes, type TypedArray } from "./wire.js";

/** What `probe`/`iprobe` report about a message that has arrived. */
export interface Status {
  /** Rank of the sender in this communicator. */
  source: number;
  /** The message's tag. */
  tag: number;
  /** Payload size in bytes. */
  bytes: number;
}

/** What `recvMessage` resolves with: the value and where it came from. */
export interface Message<T = unknown> {
  /** The value sent, with its class (see "What can be sent" in the README). */
  data: T;
  /** Rank of the sender in this communicator. */
  source: number;
  /** The message's tag. */
  tag: number;
}

/** What `recvInto`/`sendrecvInto` resolve with. */
export interface RecvIntoStatus {
  /** Rank of the sender in this communicator. */
  source: number;
  /** The message's tag. */
  tag: number;
  /** Elements written into the array. */
  count: number;
}

/** Tags of `sendrecv`/`sendrecvInto`'s two halves. */
export interface SendRecvTags {
  /** Tag of the message sent. Default 0. */
  sendTag?: number;
  /** Tag to receive, or ANY_TAG (the default). */
  recvTag?: number;
}

// What a receive from PROC_NULL returns (a fresh object each time: it is the caller's).
const noData = (): undefined => undefined;
const noMessage = (): Message => ({ data: undefined, source: PROC_NULL, tag: ANY_TAG });
const noStatus = (): RecvIntoStatus => ({ source: PROC_NULL, tag: ANY_TAG, count: 0 });

function describe(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/**
 * Context ids this process uses or has reserved. A new communicator's id is agreed among its
 * parent's ranks: the largest of their proposals, accepted only if it is free on every one of
 * them (otherwise they retry higher). So no rank is ever in two communicators with one id, even
 * when several are being created at once (MPICH does the same with a bit mask).
 */
const usedContexts = new Set<number>([0]);

/**
 * Communicators by context id (a message's context is 2·id, or 2·id + 1 for collectives): to
 * check collective messages as they arrive, and to describe what a rank waits for.
 */
const byContextId = new Map<number, Communicator>();

/**
 * @internal What this rank waits for, in words ("recv from rank 1, tag any, on the world";
 * "allreduce (op sum), for rank 2's part, on communicator #3"), with the world ranks it waits on
 * (for a wait-for graph): what `tsmpirun` prints when a job hangs or times out. With `where`,
 * each call also says the user's line that awaits it (" at heat.ts:42"); finding it delays the
 * call's completion by a few turns of the microtask queue, once per call.
 */
export async function describeWaits(p2p: PointToPoint, where: boolean): Promise<{ waits: string[]; on: number[] }> {
  const { receives, acks } = p2p.waits();
  const waits: string[] = [];
  const on = new Set<number>();
  // Collectives waiting on shared-memory boards are waits for another rank's part too.
  const boardWaits: BoardWaitOn[] = [];
  for (const comm of byContextId.values()) for (const w of comm.boardWaits()) boardWaits.push(w);
  const all = [...receives, ...boardWaits];
  const lines = where ? await Promise.all([...all, ...acks].map((w) => w.locate?.())) : [];
  const at = (i: number) => (lines[i] ? ` at ${lines[i]}` : "");
  all.forEach((w, i) => {
    const comm = byContextId.get(w.ctx >> 1);
    if (w.src !== ANY_SOURCE) on.add(w.src);
    waits.push((comm ? comm.describeWait(w) : `a receive on context ${w.ctx}`) + at(i));
  });
  acks.forEach(({ peer }, i) => {
    on.add(peer);
    waits.push(`send to world rank ${peer} (a large message, until that rank takes it)${at(all.length + i)}`);
  });
  return { waits, on: [...on] };
}

const knownContext = (id: number): boolean => byContextId.has(id);

/** A collective waiting on a board for a rank's part, in the terms of a receive (see describeWait). */
type BoardWaitOn = { ctx: number; src: number; tag: number; locate(): Promise<string | undefined> };

/** A peer has gone: collectives waiting on its board part cannot complete. */
function peerLeft(): void {
  for (const comm of byContextId.values()) comm.boardPeerGone();
}

/** TSMPI_BOARDS=off: collectives always go by messages (for comparisons and tests). */
const boardsOn = process.env.TSMPI_BOARDS !== "off";

/** Collective messages for communicators this rank has not made yet (the first few of each). */
const unclaimed = new Map<number, Incoming[]>();
const UNCLAIMED_KEPT = 64;

function collectiveArrival(m: Incoming): boolean {
  const comm = byContextId.get(m.ctx >> 1);
  if (comm) return comm.arrival(m);
  let list = unclaimed.get(m.ctx);
  if (!list) unclaimed.set(m.ctx, (list = []));
  if (list.length < UNCLAIMED_KEPT) list.push(m);
  return m.tag === ABORT_TAG; // kept here, not for any receive
}

/** Tag of the notice that ends a communicator's collectives (beyond every sequence number). */
const ABORT_TAG = 0xffffffff;
/** How many recent collective calls a rank remembers the signature of. */
const SIGS_KEPT = 4096;

/**
 * The signatures of a communicator's last SIGS_KEPT collective calls, by sequence number: two
 * arrays indexed by the number's low bits rather than a Map, whose set and delete on every call
 * showed in a profile of small collectives (~7 % of an 8-byte allreduce on boards).
 */
class RecentSignatures {
  private readonly seqs = new Int32Array(SIGS_KEPT).fill(-1);
  private readonly sigs = new Int32Array(SIGS_KEPT);

  set(seq: number, sig: number): void {
    const i = seq & (SIGS_KEPT - 1);
    this.seqs[i] = seq;
    this.sigs[i] = sig;
  }

  get(seq: number): number | undefined {
    const i = seq & (SIGS_KEPT - 1);
    return this.seqs[i] === seq ? this.sigs[i] : undefined;
  }
}
let nextContext = 1;

/**
 * A group of ranks with its own message space (MPI_Comm): `init()` gives the world, and `split`,
 * `dup` and `cart` make others. Every call returns a Promise; any number may be in flight at
 * once (`Promise.all` is MPI's waitall), except that collectives must be called by every rank of
 * the communicator in the same order. Calls reject with `MpiError` (or a subclass) for bad
 * arguments, values that cannot be sent, and peers that have gone; every call after
 * `finalize()` rejects too.
 */
export class Communicator {
  /** This rank's number in the communicator, 0 … size − 1. */
  readonly rank: number;
  /** How many ranks the communicator has. */
  readonly size: number;
  private readonly ptpCtx: number;
  private readonly collCtx: number;
  private collSeq = 0;
  /** Signature of this rank's recent collective calls, by sequence number (see collectives.signature). */
  private readonly sigs = new RecentSignatures();
  /** Collective messages that arrived before this rank reached their call. */
  private readonly early = new Map<number, { sig: number; src: number }>();
  /** Set once the ranks called different collectives: every collective after rejects with it. */
  private collFailure: string | null = null;
  /** World rank → rank in this communicator; null for the world itself (identity). */
  private readonly local: Map<number, number> | null;
  /** Shared-memory boards for small collectives (see board.ts); undefined until first wanted. */
  private board: Board | null | undefined;

  /** @internal Communicators are made by init(), split(), dup() and cart(). */
  constructor(
    private readonly p2p: PointToPoint,
    /** World ranks of the members, indexed by rank in this communicator. */
    readonly group: readonly number[],
    /** Context id, unique per communicator and the same on every member. */
    readonly contextId: number,
  ) {
    this.size = group.length;
    this.rank = group.indexOf(p2p.rank);
    this.ptpCtx = 2 * contextId;
    this.collCtx = 2 * contextId + 1;
    const isWorld = contextId === 0;
    this.local = isWorld ? null : new Map(group.map((w, r) => [w, r]));
    byContextId.set(contextId, this);
    p2p.contextMade(contextId);
    p2p.contextKnown ??= knownContext;
    p2p.collectiveArrival ??= collectiveArrival;
    p2p.peerLeft ??= peerLeft;
    // Collective messages can come before this rank has finished making the communicator (a
    // faster rank already uses it): look at them now.
    const early = unclaimed.get(this.collCtx);
    unclaimed.delete(this.collCtx);
    for (const m of early ?? []) this.arrival(m);
  }

  // ---- point to point -------------------------------------------------------------------------

  /**
   * Sends `data` (anything structured clone accepts; typed arrays travel as raw bytes) to `dest`
   * with `tag`; resolves when `data` may be reused (at once for small messages, once the receiver
   * has the bytes for large arrays). Sends to one rank on one tag arrive in order.
   * @throws MpiError for a `dest` or `tag` out of range or a value that cannot be sent;
   *   RankFailedError when `dest` has finalized or exited.
   */
  send(data: unknown, dest: number, tag = 0): Promise<void> {
    // Not an async function: a send that completes at once returns the engine's own resolved
    // promise instead of wrapping it in another (a visible share of an 8-byte message).
    const t0 = observed ? began("send") : 0;
    const mark = observed ? marked() : -1;
    let sent: Promise<void>;
    try {
      sent = this.startSend("send", data, dest, tag, t0);
    } catch (e) {
      sent = Promise.reject(e);
    }
    if (observed) this.sendEnded(sent, dest, tag, t0, mark);
    return sent;
  }

  /** For --report and --trace: a send's span ends now, or when its receiver has the bytes. */
  private sendEnded(sent: Promise<void>, dest: unknown, tag: unknown, t0: number, mark: number): void {
    const t = typeof tag === "number" ? tag : 0;
    // A send that completed at once (nearly all) ends here, with no closure made for it; its
    // `dest` passed the checks, so it is a number.
    if (sent === SENT) {
      if (!traceOnly) return this.spanEnded("send", dest, t, t0, mark);
      const d = dest as number;
      return traceOnly.sendEnded(d, d >= 0 ? (this.group[d] ?? d) : d, t, this.contextId, t0, mark);
    }
    const end = () => this.spanEnded("send", dest, t, t0, mark);
    void sent.then(end, end);
  }

  /**
   * For --report and --trace: the span of a point-to-point call with peer `peer` (as the caller
   * gave it) ends. `mark`: see `marked`.
   */
  private spanEnded(call: string, peer: unknown, tag: number, t0: number, mark = -1): void {
    const p = typeof peer === "number" ? peer : NONE;
    ended(call, p, p >= 0 ? (this.group[p] ?? p) : p, tag, this.contextId, t0, mark);
  }

  /**
   * @internal A send that throws at once what can be known at once (arguments, a value that
   * cannot be encoded), for callers that must not post anything else when it fails. `at`: when
   * the timed call began, for the trace's record of its message (see PointToPoint.send).
   */
  startSend(call: string, data: unknown, dest: number, tag: number, at = -1): Promise<void> {
    this.live(call);
    this.checkRank(call, "dest", dest, false);
    this.checkTag(call, tag, false);
    if (dest === PROC_NULL) return SENT;
    let sent: Promise<void>;
    try {
      sent = this.p2p.send(this.ptpCtx, this.group[dest]!, tag, data, 0, at);
    } catch (e) {
      throw this.wrap(call, e);
    }
    return sent === SENT ? sent : sent.catch((e: unknown) => Promise.reject(this.wrap(call, e)));
  }

  // The receives below are not async functions: each resolves with the engine's own promise
  // (see PointToPoint.receive), one turn of the microtask queue per layer saved.

  /**
   * Receives the next message from `source` (or ANY_SOURCE) with `tag` (or ANY_TAG) and returns
   * its value. Several receives may be posted at once; they match in the order they were posted.
   * @throws MpiError for a bad `source` or `tag`; RankFailedError when `source` has finalized or
   *   exited and sent nothing that matches.
   */
  recv<T = unknown>(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<T> {
    return this.receive("recv", source, tag, undefined, (m) => this.decode(m, "recv") as T, noData as () => T);
  }

  /**
   * As `recv`, with the sender and the tag (useful with ANY_SOURCE/ANY_TAG).
   * @throws as `recv`.
   */
  recvMessage<T = unknown>(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Message<T>> {
    return this.receive("recvMessage", source, tag, undefined, (m) => ({ data: this.decode(m, "recv") as T, source: this.localOf(m.src), tag: m.tag }), noMessage as () => Message<T>);
  }

  /**
   * Receives a typed-array or binary message straight into `buffer` (no new array); `count` is
   * the number of elements written.
   * @throws TruncateError when the message is larger than `buffer` or not a whole number of its
   *   elements; MpiError when it is not binary; otherwise as `recv`.
   */
  recvInto(buffer: TypedArray, source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<RecvIntoStatus> {
    return this.receive(
      "recvInto",
      source,
      tag,
      buffer,
      (m) => ({ source: this.localOf(m.src), tag: m.tag, count: m.landed ?? decodeInto(m.kind, m.frames, buffer, "recvInto") }),
      noStatus,
    );
  }

  /**
   * A point-to-point receive: checks the arguments (rejecting, as the async calls did), answers
   * PROC_NULL with `none()`, and otherwise resolves with `finish(message)`. `into`: recvInto's array.
   */
  private receive<T>(call: "recv" | "recvMessage" | "recvInto", source: number, tag: number, into: TypedArray | undefined, finish: (m: Incoming) => T, none: () => T): Promise<T> {
    const span: SpanOf | null = observed ? { name: call, peer: source, t0: began(call) } : null;
    // recv and recvMessage name themselves "recvMessage" in argument errors, as they always have.
    const named = call === "recvInto" ? call : "recvMessage";
    try {
      this.live(call === "recvMessage" ? "recv" : call);
      if (call === "recvInto") this.checkArray(call, into);
      this.checkRank(named, "source", source, true);
      this.checkTag(named, tag, true);
    } catch (e) {
      if (span) this.spanEnded(call, source, typeof tag === "number" ? tag : ANY_TAG, span.t0);
      return Promise.reject(e);
    }
    if (source === PROC_NULL) {
      if (span) this.spanEnded(call, source, tag, span.t0);
      return Promise.resolve(none());
    }
    return this.p2p.receive(this.ptpCtx, this.worldOf(source), tag, this.group, into, finish, span);
  }

  /**
   * Sends to `dest` and receives from `source` at the same time, so pairs of ranks exchanging
   * with each other never deadlock. The send starts first; if it cannot start, no receive is posted.
   * @throws as `send` and `recv`.
   */
  async sendrecv<T = unknown>(data: unknown, dest: number, source: number = dest, tags: SendRecvTags = {}): Promise<T> {
    const { sendTag = 0, recvTag = ANY_TAG } = tags;
    // Everything that can fail at once fails before the receive is posted: a receive left
    // behind would take the next matching message (any tag, by default) from the caller.
    this.checkRank("sendrecv", "source", source, true);
    this.checkTag("sendrecv", recvTag, true);
    const sent = this.startSend("sendrecv", data, dest, sendTag);
    const [, got] = await Promise.all([sent, this.recv<T>(source, recvTag)]);
    return got;
  }

  /**
   * `sendrecv` for typed arrays, receiving into `recvBuffer`.
   * @throws as `send` and `recvInto`.
   */
  async sendrecvInto(sendBuffer: TypedArray, dest: number, recvBuffer: TypedArray, source: number = dest, tags: SendRecvTags = {}): Promise<RecvIntoStatus> {
    const { sendTag = 0, recvTag = ANY_TAG } = tags;
    this.checkArray("sendrecvInto", recvBuffer);
    this.checkRank("sendrecvInto", "source", source, true);
    this.checkTag("sendrecvInto", recvTag, true);
    const sent = this.startSend("sendrecvInto", sendBuffer, dest, sendTag);
    const [, st] = await Promise.all([sent, this.recvInto(recvBuffer, source, recvTag)]);
    return st;
  }

  /**
   * Waits until a matching message has arrived, without receiving it (the next matching receive
   * gets it).
   * @throws as `recv`.
   */
  async probe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Status> {
    this.live("probe");
    this.checkRank("probe", "source", source, true);
    this.checkTag("probe", tag, true);
    if (source === PROC_NULL) return { source: PROC_NULL, tag: ANY_TAG, bytes: 0 };
    return this.status(await this.p2p.probe(this.ptpCtx, this.worldOf(source), tag, this.group));
  }

  /** The status of a matching message that has already arrived, or undefined; never waits. */
  iprobe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Status | undefined {
    this.live("iprobe");
    this.checkRank("iprobe", "source", source, true);
    this.checkTag("iprobe", tag, true);
    if (source === PROC_NULL) return { source: PROC_NULL, tag: ANY_TAG, bytes: 0 };
    const m = this.p2p.iprobe(this.ptpCtx, this.worldOf(source), tag);
    return m && this.status(m);
  }

  // ---- collectives ----------------------------------------------------------------------------
  // Every rank of the communicator calls these in the same order. Arguments that every rank
  // passes alike (root, op) are checked before the call takes its place in that order, so a
  // mistake rejects on every rank and the calls after it still line up.

  /**
   * Resolves once every rank of the communicator has called barrier. Where all its ranks share
   * one host's memory, one round on shared-memory boards, without a message (README:
   * Collectives).
   * @throws RankFailedError when a rank of the communicator has gone.
   */
  async barrier(): Promise<void> {
    const ch = this.collective("barrier");
    return this.settle(ch, await coll.barrier(ch));
  }

  /**
   * The root's `value` on every rank (`value` is ignored elsewhere). Collective.
   * @throws MpiError for a bad root, or on every rank when the root's value cannot be sent.
   */
  async bcast<T>(value: T, root = 0): Promise<T> {
    this.checkRoot("bcast", root);
    const ch = this.collective("bcast", root);
    return this.settle(ch, await coll.bcast(ch, value, root));
  }

  /**
   * `op` over every rank's value, combined in rank order, on `root`; undefined on the other
   * ranks. Collective. Where all the communicator's ranks share one host's memory, the values
   * `allreduce` takes there go the same way, only the root combining or gathering the result.
   * @throws MpiError for a bad root or op, or values that do not reduce together.
   */
  async reduce<T>(value: T, op: Op<T> = "sum", root = 0): Promise<T | undefined> {
    this.checkRoot("reduce", root);
    checkOp("reduce", op);
    const ch = this.collective("reduce", root, op as Op);
    return this.settle(ch, await coll.reduce(ch, value, op as Op, root));
  }

  /**
   * `op` over every rank's value, on every rank, with the same bits everywhere. Collective.
   * Where all the communicator's ranks share one host's memory, a number, a boolean or a typed
   * array of up to 96 bytes with a built-in op takes one round on shared-memory boards, and a
   * larger typed array goes through each rank's shared-memory stage (in blocks when large):
   * without a message, combined in rank order (README: Collectives).
   * @throws MpiError on every rank for a bad op, values that do not reduce together, or a user
   *   op that throws on any rank; RankFailedError when a rank of the communicator has gone.
   */
  async allreduce<T>(value: T, op: Op<T> = "sum"): Promise<T> {
    checkOp("allreduce", op);
    const ch = this.collective("allreduce", undefined, op as Op);
    return this.settle(ch, await coll.allreduce(ch, value, op as Op));
  }

  /**
   * `allreduce` of a typed array with the result written into `into`, as MPI_Allreduce writes its
   * receive buffer: an array of the value's class and length, or the value itself to reduce in
   * place (MPI_IN_PLACE). Same bits as `allreduce`, and ranks may mix the two in one call. A loop
   * that reuses `into` allocates nothing per call: a new 8 MiB result costs as much in fresh
   * memory (page faults) as the rest of the call on 2 ranks. Resolves with `into`. Collective.
   * @throws MpiError on every rank when some rank's `into` does not fit its value (another class
   *   or length, or memory overlapping the value without being it), and as `allreduce`.
   */
  async allreduceInto<A extends TypedArray>(value: A, into: A, op: Op<A> = "sum"): Promise<A> {
    checkOp("allreduce", op);
    const ch = this.collective("allreduce", undefined, op as Op);
    return this.settle(ch, await coll.allreduce(ch, value, op as Op, into));
  }

  /**
   * Every rank's value in rank order, on `root`; undefined on the other ranks. Collective.
   * @throws MpiError for a bad root; on the root when some rank's value cannot be sent.
   */
  async gather<T>(value: T, root = 0): Promise<T[] | undefined> {
    this.checkRoot("gather", root);
    const ch = this.collective("gather", root);
    return this.settle(ch, await coll.gather(ch, value, root));
  }

  /**
   * Every rank's value in rank order, on every rank: this rank's own value itself, copies of the
   * others'. Collective. Where all the communicator's ranks share one host's memory and every
   * rank passes a number, a boolean, null or a typed array of one class and length, the values
   * go through shared-memory boards and stages, without a message (README: Collectives).
   * @throws MpiError on every rank when some rank's value cannot be sent.
   */
  async allgather<T>(value: T): Promise<T[]> {
    const ch = this.collective("allgather");
    return this.settle(ch, await coll.allgather(ch, value));
  }

  /**
   * `values[r]` of the root to rank r (`values` is read on the root only). Collective.
   * @throws MpiError on every rank when the root's `values` is not an array of `size`.
   */
  async scatter<T>(values: readonly T[] | null | undefined, root = 0): Promise<T> {
    this.checkRoot("scatter", root);
    const ch = this.collective("scatter", root);
    return this.settle(ch, await coll.scatter(ch, values, root));
  }

  /**
   * Sends `values[r]` to rank r and returns, in rank order, what every rank sent to this one.
   * Collective.
   * @throws MpiError when some rank's `values` is not an array of `size`.
   */
  async alltoall<T>(values: readonly T[]): Promise<T[]> {
    const ch = this.collective("alltoall");
    return this.settle(ch, await coll.alltoall(ch, values));
  }

  /**
   * Inclusive prefix reduction: rank r gets v0 op … op vr. Collective.
   * @throws as `allreduce`.
   */
  async scan<T>(value: T, op: Op<T> = "sum"): Promise<T> {
    checkOp("scan", op);
    const ch = this.collective("scan", undefined, op as Op);
    return this.settle(ch, await coll.scan(ch, value, op as Op));
  }

  /**
   * Exclusive prefix reduction: rank r gets v0 op … op v(r−1); undefined on rank 0. Collective.
   * @throws as `allreduce`.
   */
  async exscan<T>(value: T, op: Op<T> = "sum"): Promise<T | undefined> {
    checkOp("exscan", op);
    const ch = this.collective("exscan", undefined, op as Op);
    return this.settle(ch, await coll.exscan(ch, value, op as Op));
  }

  // ---- communicators --------------------------------------------------------------------------

  /**
   * Splits into one communicator per `color`, ranks ordered by (`key`, old rank). A negative
   * color (UNDEFINED) takes no part and gets null. Collective.
   */
  async split(color: number, key: number = this.rank): Promise<Communicator | null> {
    if (!Number.isInteger(color)) throw new MpiError(`split: color ${describe(color)} must be an integer (negative, e.g. UNDEFINED, for none)`);
    if (!Number.isInteger(key)) throw new MpiError(`split: key ${describe(key)} must be an integer`);
    const { ctx, extras } = await this.agreeContext("split", [color, key]);
    if (color < 0) return null;
    const members = extras
      .map(([c, k], r) => ({ c, k, r }))
      .filter((m) => m.c === color)
      .sort((a, b) => a.k - b.k || a.r - b.r)
      .map((m) => this.group[m.r]!);
    return new Communicator(this.p2p, members, ctx);
  }

  /**
   * The same group with a message space of its own (for a library's messages, say). Collective.
   */
  async dup(): Promise<Communicator> {
    const { ctx } = await this.agreeContext("dup", null);
    return new Communicator(this.p2p, this.group, ctx);
  }

  /**
   * A Cartesian topology over this communicator's ranks. Zero entries of `dims` are filled as
   * dimsCreate does; the product must equal `size`. Ranks keep their numbers. Collective.
   */
  async cart(dims: readonly number[], options: CartOptions = {}): Promise<CartComm> {
    if (!Array.isArray(dims) || dims.length === 0) throw new MpiError(`cart: dims must be a non-empty array of integers, got ${describe(dims)}`);
    const filled = fillDims(this.size, dims, "cart");
    const periodic = options.periodic ?? dims.map(() => false);
    if (!Array.isArray(periodic) || periodic.length !== dims.length) {
      throw new MpiError(`cart: periodic must have one flag per dimension (${dims.length}), got ${describe(periodic)}`);
    }
    const { ctx } = await this.agreeContext("cart", null);
    return new CartComm(this.p2p, this.group, ctx, new CartGeometry(filled, periodic.map(Boolean)));
  }

  /**
   * Agrees with every rank on a context id for a communicator created from this one, and shares
   * each rank's `extra` on the way (split's color and key).
   */
  private async agreeContext<E>(call: string, extra: E): Promise<{ ctx: number; extras: E[] }> {
    // One channel, taken now (in call order, like every collective), for all the rounds below:
    // taking a new one per round after an await would let concurrent creations on this
    // communicator take their tags in different orders on different ranks.
    const ch = this.collective(call);
    // The proposals are pairs, which no board carries: their allgather goes straight to messages.
    // (A board round would only say so, and concurrent creations, whose rounds interleave
    // differently on different ranks, would then post their board calls in different orders.)
    const byMessages: coll.Channel = { ...ch, collect: undefined };
    let extras: E[] | undefined;
    for (;;) {
      while (usedContexts.has(nextContext)) nextContext++;
      const proposals = await coll.allgather<[number, E]>(byMessages, [nextContext, extra]);
      extras ??= proposals.map((p) => p[1]);
      const ctx = Math.max(...proposals.map((p) => p[0]));
      const free = !usedContexts.has(ctx);
      if (free) usedContexts.add(ctx); // reserve it now: another creation may be under way
      if (await coll.allreduce(ch, free, "land")) return { ctx, extras };
      if (free) usedContexts.delete(ctx);
      nextContext = Math.max(nextContext, ctx + 1);
    }
  }

  /**
   * @internal A private channel for one collective call: its own tag (every rank numbers its
   * collective calls identically), on the collective context.
   */
  collective(call: string, root?: number, op?: Op): coll.Channel & { failed?: string } {
    this.live(call);
    if (this.collFailure) throw new MpiError(this.collFailure);
    const tag = this.collSeq;
    this.collSeq = (this.collSeq + 1) % (TAG_UB + 1);
    const sig = coll.signature(call, root, op);
    this.sigs.set(tag, sig);
    const early = this.early.get(tag);
    if (early) {
      this.early.delete(tag);
      if (early.sig !== sig) throw this.mismatch(tag, sig, early.sig, early.src);
    }
    const { p2p, collCtx, group, rank } = this;
    /** Checks that a message is of this very call before anything uses it. */
    const same = (m: Incoming) => {
      const theirs = m.meta >>> 8;
      if (theirs !== sig) throw this.mismatch(tag, sig, theirs, this.localOf(m.src));
    };
    const board = this.board === undefined ? this.openBoard() : this.board;
    const ch: coll.Channel & { failed?: string } = {
      rank,
      size: this.size,
      send: (dest, value) => {
        try {
          return p2p.send(collCtx, group[dest]!, tag, value, sig);
        } catch (e) {
          // A value that cannot be encoded: the peer gets a failure marker in its place (so it
          // rejects too, instead of waiting for a message that never comes), and this rank
          // rejects once its part of the algorithm is done (see settle).
          ch.failed = `${call}: rank ${rank}'s value cannot be sent: ${(e as Error).message}`;
          return p2p.send(collCtx, group[dest]!, tag, coll.failure(ch.failed), sig);
        }
      },
      // A receive posted after the collectives here have failed (between two rounds of an
      // algorithm, say) would wait for a message that no rank sends any more.
      recv: (source) =>
        this.collFailure
          ? Promise.reject(new MpiError(this.collFailure))
          : p2p.receive(collCtx, group[source]!, tag, group, undefined, (m) => {
              same(m);
              return decode(m.kind, m.meta, m.frames);
            }),
      recvInto: (source, into) =>
        this.collFailure
          ? Promise.reject(new MpiError(this.collFailure))
          : p2p.receive(collCtx, group[source]!, tag, group, into, (m) => {
              same(m);
              const count = m.landed ?? decodeInto(m.kind, m.frames, into, call);
              if (count !== into.length) throw new MpiError(`${call}: expected ${into.length} elements from rank ${source}, got ${count}`);
            }),
    };
    if (board) {
      ch.exchange = (value, op, into, root) => board.exchange(tag, sig, value, op, into, root);
      ch.collect = (value) => board.collect(tag, sig, value);
    }
    return ch;
  }

  /**
   * This communicator's boards, if its ranks share one host's memory (every rank decides alike,
   * from the job's table). Context ids beyond the transport's boards go by messages.
   */
  private openBoard(): Board | null {
    const shared = boardsOn && this.size > 1 ? this.p2p.boards(this.contextId, this.group) : null;
    this.board = shared
      ? new Board(shared, this.rank, this.group, {
          mismatch: (tag, mine, theirs, member) => this.mismatch(tag, mine ?? this.sigs.get(tag) ?? 0, theirs, member),
          gone: (rank) => this.p2p.goneHow(rank),
          anyGone: () => this.p2p.anyGone(),
          describe: coll.describeSignature,
          moved: () => void this.p2p.moved++,
        })
      : null;
    return this.board;
  }

  /** @internal What collectives of this communicator wait for on boards (see describeWaits). */
  boardWaits(): BoardWaitOn[] {
    return this.board ? this.board.waits().map((w) => ({ ...w, ctx: this.collCtx })) : [];
  }

  /** @internal A peer has gone (see peerLeft). */
  boardPeerGone(): void {
    this.board?.peerGone();
  }

  /**
   * @internal The point-to-point engine shows this communicator every collective message as it
   * arrives: one of another call at a point of the sequence this rank has reached (or reaches
   * later) is a mismatch; an abort notice (consumed: returns true) ends the collectives here.
   */
  arrival(m: Incoming): boolean {
    if (m.tag === ABORT_TAG) {
      this.failCollectives(String(decode(m.kind, m.meta, m.frames)), false);
      return true;
    }
    const theirs = m.meta >>> 8;
    const mine = this.sigs.get(m.tag);
    if (mine !== undefined) {
      if (mine !== theirs) this.mismatch(m.tag, mine, theirs, this.localOf(m.src));
    } else if (m.tag >= this.collSeq && !this.early.has(m.tag)) {
      this.early.set(m.tag, { sig: theirs, src: this.localOf(m.src) });
    }
    return false;
  }

  /**
   * Ranks called different collectives at call `seq`: the collectives of this communicator end
   * here, on every rank (the others are told), and the error says which calls met.
   */
  private mismatch(seq: number, mine: number, theirs: number, src: number): MpiError {
    const reason = `collective mismatch: ${coll.describeSignature(mine)} on rank ${this.rank} met ${coll.describeSignature(theirs)} from rank ${src} (collective call #${seq + 1} of this communicator)`;
    this.failCollectives(reason, true);
    return new MpiError(this.collFailure!);
  }

  /** Rejects the collectives waiting here and every later one with `reason`; tells the other ranks when `tell`. */
  private failCollectives(reason: string, tell: boolean): void {
    if (this.collFailure) return;
    this.collFailure = reason;
    this.p2p.failReceives(this.collCtx, new MpiError(reason));
    this.board?.fail(new MpiError(reason));
    if (!tell) return;
    for (let r = 0; r < this.size; r++) {
      if (r === this.rank) continue;
      try {
        this.p2p.send(this.collCtx, this.group[r]!, ABORT_TAG, reason).catch(() => {});
      } catch {
        // a rank that has gone needs no telling
      }
    }
  }

  /** @internal One waiting receive of this communicator, in words. */
  describeWait(w: { ctx: number; src: number; tag: number; into?: ArrayBufferView; call?: string }): string {
    const where = this.contextId === 0 ? "the world" : `communicator #${this.contextId}${this instanceof CartComm ? " (cart)" : ""}`;
    const from = w.src === ANY_SOURCE ? "any rank" : `rank ${this.localOf(w.src)}`;
    if (w.ctx === this.collCtx) {
      const sig = this.sigs.get(w.tag);
      return `${sig === undefined ? "a collective" : coll.describeSignature(sig)}, for ${from}'s part, on ${where}`;
    }
    const call = w.call === "probe" ? "probe" : w.into ? "recvInto" : "recv";
    return `${call} from ${from}, tag ${w.tag === ANY_TAG ? "any" : w.tag}, on ${where}`;
  }

  /** A collective's result, or the failure to send this rank's part of it (see collective()). */
  private settle<T>(ch: { failed?: string }, result: T): T {
    if (ch.failed) throw new MpiError(ch.failed);
    return result;
  }

  private status(m: Incoming): Status {
    return { source: this.localOf(m.src), tag: m.tag, bytes: payloadBytes(m.frames) };
  }

  private decode(m: Incoming, call: string): unknown {
    try {
      return decode(m.kind, m.meta, m.frames);
    } catch (e) {
      throw this.wrap(call, e);
    }
  }

  private worldOf(rank: number): number {
    return rank === ANY_SOURCE ? ANY_SOURCE : this.group[rank]!;
  }

  private localOf(world: number): number {
    return this.local ? this.local.get(world)! : world;
  }

  private wrap(call: string, e: unknown): Error {
    if (e instanceof MpiError) {
      if (!e.message.startsWith(call)) e.message = `${call}: ${e.message}`;
      return e;
    }
    return new MpiError(`${call}: ${(e as Error).message ?? String(e)}`);
  }

  private checkRoot(call: string, root: number): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw new MpiError(`${call}: root ${describe(root)} is not a rank of this communicator (0..${this.size - 1})`);
    }
  }

  /** As in MPI, nothing may be called after finalize(); say so rather than fail on a closed socket. */
  private live(call: string): void {
    if (this.p2p.finalized) throw new MpiError(`${call}: called after finalize()`);
  }

  private checkRank(call: string, what: string, r: number, wildcard: boolean): void {
    if (r === PROC_NULL || (wildcard && r === ANY_SOURCE)) return;
    if (!Number.isInteger(r) || r < 0 || r >= this.size) {
      const allowed = wildcard ? ", ANY_SOURCE or PROC_NULL" : " or PROC_NULL";
      throw new MpiError(`${call}: ${what} ${describe(r)} is not a rank of this communicator (0..${this.size - 1}${allowed})`);
    }
  }

  private checkTag(call: string, tag: number, wildcard: boolean): void {
    if (wildcard && tag === ANY_TAG) return;
    if (!Number.isInteger(tag) || tag < 0 || tag > TAG_UB) {
      throw new MpiError(`${call}: tag ${describe(tag)} is invalid: tags are integers 0..${TAG_UB}${wildcard ? " or ANY_TAG" : ""}`);
    }
  }

  private checkArray(call: string, a: unknown): void {
    if (!ArrayBuffer.isView(a) || a instanceof DataView) {
      throw new MpiError(`${call}: buffer must be a typed array, got ${a === null ? "null" : typeof a === "object" ? a.constructor.name : typeof a}`);
    }
  }
}

/** A communicator whose ranks sit on a Cartesian grid (MPI_Cart_create). */
export class CartComm extends Communicator {
  /** This rank's coordinates. */
  readonly coords: readonly number[];

  /** @internal Made by Communicator.cart(). */
  constructor(p2p: PointToPoint, group: readonly number[], contextId: number, private readonly geometry: CartGeometry) {
    super(p2p, group, contextId);
    this.coords = geometry.coordsOf(this.rank);
  }

  /** Ranks along each dimension. */
  get dims(): readonly number[] {
    return this.geometry.dims;
  }

  /** Whether each dimension wraps around. */
  get periodic(): readonly boolean[] {
    return this.geometry.periodic;
  }

  /** Number of dimensions. */
  get ndims(): number {
    return this.geometry.ndims;
  }

  /** Neighbours `disp` steps away along `direction`: PROC_NULL off a non-periodic edge. */
  shift(direction: number, disp = 1): Shift {
    return this.geometry.shift(this.rank, direction, disp);
  }

  /** The rank at `coords` (periodic dimensions wrap; PROC_NULL off a non-periodic edge). */
  rankAt(coords: readonly number[]): number {
    return this.geometry.rankAt(coords);
  }

  /** The coordinates of `rank`. */
  coordsOf(rank: number): number[] {
    return this.geometry.coordsOf(rank);
  }
}
