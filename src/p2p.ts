/**
 * Point-to-point engine of one rank, in world ranks: encodes values, runs the message protocol
 * over the transport (header, acknowledgement of large borrowed frames, FIN at finalize) or hands
 * a message to itself straight to the matcher, and turns arriving messages into completed
 * receives. Communicators add rank translation, validation and contexts on top.
 */
import { Buffer } from "node:buffer"; // not the global, which is a getter: a call on every use
import { ANY_SOURCE } from "./constants.js";
import type { GoneHow } from "./control.js";
import { MpiError, RankFailedError } from "./errors.js";
import { MAX_MESSAGE_BYTES, STRAY_LIMIT_BYTES, sizeText } from "./limits.js";
import { Matcher, type Incoming, type Waiter } from "./matching.js";
import { KIND_ACK, KIND_FIN, KIND_FIN_ACK, MAX_INLINE_FRAMES, peekEnvelope, readMessage, writeHeader, type Envelope, type Received } from "./protocol.js";
import { SENT, type SharedBoards, type Transport } from "./transport/index.js";
import { ended, marked, traceOnly } from "./instrument.js";
import { awaitedAt, Awaited } from "./where.js";
import { activity } from "./report.js";
import { now, trace } from "./trace.js";
import { binaryCode, bytesOf, elementsIn, encode, Kind, payloadBytes } from "./wire.js";

export type { Incoming } from "./matching.js";

/**
 * A receive or probe waiting for its message. A class rather than closures: one is made for every
 * receive that has to wait, and the message path should allocate little. `finish` turns the
 * message into what the caller's promise resolves with (a status, the decoded value), so the
 * caller needs no promise of its own on top: each layer of promises is a turn of the microtask
 * queue on every message.
 */
class Pending<T> extends Awaited<T> implements Waiter {
  constructor(
    private readonly transport: Transport | null,
    readonly ctx: number,
    readonly src: number,
    readonly tag: number,
    /** World ranks of the communicator the call was made on (for ANY_SOURCE failure detection). */
    readonly group: readonly number[],
    readonly call: "recv" | "probe",
    readonly into: ArrayBufferView | undefined,
    private readonly finish: (m: Incoming) => T,
    /** For --report and --trace: the call's span (see SpanOf), ended when this settles. */
    private readonly span: SpanOf | null,
  ) {
    super();
  }

  resolve(m: Incoming): void {
    if ((this.span || trace) && this.call === "recv") received(this.span, m, this.into, this.ctx, this.src, this.tag);
    this.transport?.release();
    let v: T;
    try {
      v = this.finish(m);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    this.done(v);
  }

  reject(e: Error): void {
    if (this.span) endSpan(this.span, this.ctx, this.src, this.tag);
    this.transport?.release();
    this.fail(e);
  }
}

/** A large send waiting for its receiver's acknowledgement. */
class AckWait {
  private where: Promise<string | undefined> | undefined;
  constructor(
    readonly peer: number,
    private ended: (v: void | PromiseLike<void>) => void,
  ) {}

  done(): void {
    this.ended();
  }

  /** The user's file:line that awaits the send (see Pending.locate). */
  locate(): Promise<string | undefined> {
    this.where ??= awaitedAt(this.ended, (next) => (this.ended = next.done));
    return this.where;
  }
}

const asIs = (m: Incoming): Incoming => m;

/**
 * A receive call being timed (--report, --trace): its name, the source as the caller gave it (a
 * rank of its communicator) and when it began. The call times itself rather than being wrapped:
 * a wrapper's closure and promise per call, on every message, cost far more than this record.
 */
export interface SpanOf {
  name: string;
  peer: number;
  t0: number;
}

function endSpan(s: SpanOf, ctx: number, src: number, tag: number): void {
  ended(s.name, s.peer, src, tag, ctx >> 1, s.t0);
}

/**
 * A receive takes `m` now, with --trace or --report (callers check, so that a plain job makes no
 * call): the trace records the message; a timed receive (`s`) then ends its span, which becomes
 * one record with the message (see Trace.end), at one reading of the clock.
 */
function received(s: SpanOf | null, m: Incoming, into: ArrayBufferView | undefined, ctx: number, src: number, tag: number): void {
  if (!s) return taken(m, into);
  if (traceOnly) return traceOnly.received(s.name, s.peer, src, tag, ctx, s.t0, m.flow, m.src, m.ctx, m.tag, bytesTaken(m, into));
  const t1 = now();
  const mark = marked();
  if (trace) taken(m, into, t1);
  ended(s.name, s.peer, src, tag, ctx >> 1, s.t0, mark, t1);
}

const tooLarge = (bytes: number) =>
  new MpiError(`a message of ${sizeText(bytes)} is above the limit of ${sizeText(MAX_MESSAGE_BYTES)} (TSMPI_MAX_MESSAGE; the default is half of this machine's memory): send it in parts`);

/** For --trace: a receive takes `m` now. */
function taken(m: Incoming, into: ArrayBufferView | undefined, at = now()): void {
  if (m.flow === undefined) return;
  trace!.taken(m.flow, m.src, m.ctx, m.tag, bytesTaken(m, into), at);
}

/** The payload's bytes of `m`, taken into `into` (or a new buffer). */
function bytesTaken(m: Incoming, into: ArrayBufferView | undefined): number {
  return m.landed !== undefined ? m.landed * ((into as { BYTES_PER_ELEMENT?: number } | undefined)?.BYTES_PER_ELEMENT ?? 1) : payloadBytes(m.frames);
}

/** `finish(m)` as a promise: resolved, or rejected if it throws. */
function settled<T>(finish: (m: Incoming) => T, m: Incoming): Promise<T> {
  try {
    return Promise.resolve(finish(m));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** A receive that took a message whose payload is still being copied into it by the transport. */
interface Landing {
  w: Waiter;
  /** Elements the payload fills in `w.into`, or undefined when it goes to a new buffer. */
  count: number | undefined;
}

export class PointToPoint {
  private readonly matcher = new Matcher();
  private transport: Transport | null = null;
  /** Peers that have finalized or exited, with the ranks each had sent data to. */
  private readonly gone = new Map<number, { sentTo: ReadonlySet<number>; how: GoneHow }>();
  private readonly fins = new Set<number>();
  /** Peers we sent data to: the ones that get a FIN. */
  private readonly dataPeers = new Set<number>();
  /** Sends waiting for the receiver's ACK, and FINs waiting for theirs, by ack id / peer. */
  private readonly acks = new Map<number, AckWait>();
  private readonly finAcks = new Map<number, () => void>();
  private nextAck = 1;
  /** Receives matched at a message's header, by source, until the rest of the message arrives. */
  private readonly landings = new Map<number, Landing>();
  /** close() has run: no more replies. */
  private closed = false;
  /** finalize() has been called: communicators refuse new calls. */
  finalized = false;

  constructor(
    readonly rank: number,
    readonly size: number,
  ) {}

  attach(transport: Transport): void {
    this.transport = transport;
  }

  /** Ranks this one has sent data to (they will receive our FIN). */
  get sentTo(): number[] {
    return [...this.dataPeers];
  }

  /** Messages and acknowledgements that have arrived: unchanged over a while means nothing moves. */
  moved = 0;

  /** What this rank waits for now: the receives and probes posted, and the peers whose acknowledgement a send awaits. */
  waits(): { receives: readonly Waiter[]; acks: readonly AckWait[] } {
    return { receives: this.matcher.waiting(), acks: [...this.acks.values()] };
  }

  /**
   * The shared-memory boards of a communicator (see board.ts), when the transport reaches every
   * member through memory it shares with them; null otherwise.
   */
  boards(contextId: number, group: readonly number[]): SharedBoards | null {
    return this.transport?.boards?.(contextId, group) ?? null;
  }

  /** Whether any peer has finalized or exited. */
  anyGone(): boolean {
    return this.gone.size > 0;
  }

  /** How world rank `peer` has gone ("finalized", "exited"), or undefined while it is there. */
  goneHow(peer: number): string | undefined {
    return this.gone.get(peer)?.how;
  }

  /** Set by the communicators: told when a peer has gone, for the waits that are not receives (boards). */
  peerLeft: ((peer: number) => void) | null = null;

  /** Set by the communicators: sees every collective message as it arrives; true = consumed. */
  collectiveArrival: ((m: Incoming) => boolean) | null = null;

  /** Rejects every receive waiting on context `ctx` with `error` (a collective that cannot go on). */
  failReceives(ctx: number, error: Error): void {
    this.matcher.failWhere((w) => (w.ctx === ctx ? error : undefined));
  }

  /**
   * Set by the communicators (their registry by context id): whether this rank has made the
   * communicator of context id `id`. Until the first is made, every message counts as expected.
   */
  contextKnown: ((id: number) => boolean) | null = null;
  /** Bytes waiting for communicators not made yet, by context id, and in all. */
  private readonly strays = new Map<number, number>();
  private strayBytes = 0;

  /** A communicator with context id `id` exists here now: what waited for it is no longer stray. */
  contextMade(id: number): void {
    const waited = this.strays.get(id);
    if (waited !== undefined) {
      this.strays.delete(id);
      this.strayBytes -= waited;
    }
  }

  /**
   * A message for a communicator this rank has not made: kept (its communicator may be made in a
   * moment), up to TSMPI_STRAY_LIMIT in all. Beyond that the rank stops with a message saying
   * so: going on would let memory fill up with messages nobody will take.
   */
  private stray(m: Incoming): void {
    const id = m.ctx >> 1;
    const bytes = 24 + payloadBytes(m.frames);
    this.strays.set(id, (this.strays.get(id) ?? 0) + bytes);
    this.strayBytes += bytes;
    if (this.strayBytes <= STRAY_LIMIT_BYTES) return;
    const top = [...this.strays].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([c, b]) => `context ${c}: ${sizeText(b)}`);
    this.fatal(
      `${sizeText(this.strayBytes)} of messages arrived for communicators this rank has not made (${top.join(", ")}), above the limit of ${sizeText(STRAY_LIMIT_BYTES)} (TSMPI_STRAY_LIMIT). ` +
        "Do all ranks make their communicators (split, dup, cart) in the same order? Or does a program outside the job send to this rank?",
    );
  }

  /** Transport callback: the link from `src` cannot be read any more. */
  readonly broken = (src: number, reason: string): void => this.fatal(reason);

  /** Ends this rank with `reason`: the launcher sees it fail and stops the job. */
  private fatal(reason: string): void {
    process.stderr.write(`tsmpi: rank ${this.rank}: ${reason}\n`);
    process.exit(1);
  }

  /** Malformed messages dropped so far (see dropped()). */
  malformed = 0;

  /**
   * A message that no rank of this job could have sent is dropped, not allowed to end this rank:
   * one warning line for the first, a count for the rest (in the warning at finalize).
   */
  private dropped(reason: string, from: number | undefined): void {
    if (this.malformed++ > 0) return;
    const link = from === undefined ? "its ZeroMQ socket" : `the link from rank ${from}`;
    process.stderr.write(`tsmpi: rank ${this.rank}: dropped a malformed message on ${link} (${reason}); later ones are counted\n`);
  }

  /** Transport callback: a message that the transport would not deliver. */
  readonly refused = (reason: string): void => this.dropped(reason, undefined);

  /** Transport callback: a message arrived (`from`: the sender, when the transport knows it). */
  readonly message = (msg: Buffer[], from?: number): void => {
    let m: ReturnType<typeof readMessage>;
    try {
      m = readMessage(msg, this.size, from);
    } catch (e) {
      this.dropped((e as Error).message, from);
      return;
    }
    switch (m.kind) {
      case KIND_ACK: {
        this.moved++;
        // Only the rank a message went to may say it has it: a forged or stray acknowledgement
        // would free the sender's buffers while the bytes are still being read.
        const a = this.acks.get(m.meta);
        if (!a || a.peer !== m.src) return this.dropped(`an acknowledgement from rank ${m.src} for no message sent to it`, from);
        this.acks.delete(m.meta);
        a.done();
        return;
      }
      case KIND_FIN:
        // Everything `peer` sent us has arrived: the transport keeps each peer's messages in order.
        this.fins.add(m.src);
        this.failIfDrained(m.src);
        this.reply(m.src, KIND_FIN_ACK, 0);
        return;
      case KIND_FIN_ACK:
        this.finAcks.get(m.src)?.();
        return;
    }
    // The whole message is here, so the sender's transport no longer reads its buffers.
    if (m.ackId) this.reply(m.src, KIND_ACK, m.ackId);
    this.moved++;
    activity?.received(payloadBytes(m.frames));
    if (trace) (m as Incoming).flow = trace.arrived(m.src);
    if (this.contextKnown && !this.contextKnown(m.ctx >> 1)) this.stray(m);
    // Collective traffic (odd contexts) is checked against this rank's own calls on arrival;
    // the hook keeps the messages that are for it alone (a collective's abort notice).
    if ((m.ctx & 1) === 1 && this.collectiveArrival?.(m)) return;
    const landing = this.landings.size > 0 ? this.landings.get(m.src) : undefined;
    if (landing) {
      this.landings.delete(m.src);
      const done: Incoming = m;
      if (landing.count !== undefined) {
        done.landed = landing.count;
        done.frames = [];
      }
      landing.w.resolve(done);
      return;
    }
    this.matcher.arrive(m);
  };

  /**
   * Transport callback: the header of a raw message has arrived and its payload has not. If a
   * receive is waiting for it, the message is matched now (the transport delivers each source's
   * messages in order, so nothing from that source can overtake it), and a recvInto's array is
   * where the payload goes when it fits.
   */
  readonly landing = (src: number, header: Buffer, bytes: number): Uint8Array | undefined => {
    const env = peekEnvelope(header);
    if (!env || env.kind !== Kind.Raw || env.src !== src) return undefined;
    const w = this.matcher.claim(env.ctx, env.src, env.tag);
    if (!w) return undefined;
    const into = w.into;
    const count = into && elementsIn(bytes, into);
    this.landings.set(src, { w, count });
    return count === undefined ? undefined : new Uint8Array(into!.buffer, into!.byteOffset, bytes);
  };

  /** Control callback: `peer` finalized or exited; `sentTo` are the ranks it had sent data to. */
  peerGone(peer: number, sentTo: readonly number[], how: GoneHow): void {
    this.gone.set(peer, { sentTo: new Set(sentTo), how });
    // Nothing more will come from it: stop waiting for its acknowledgements.
    for (const [id, a] of this.acks) {
      if (a.peer === peer) {
        this.acks.delete(id);
        a.done();
      }
    }
    this.finAcks.get(peer)?.();
    // A message it was in the middle of sending will not be completed.
    const landing = this.landings.get(peer);
    if (landing && how === "exited") {
      this.landings.delete(peer);
      landing.w.reject(new RankFailedError(`recv from world rank ${peer} cannot complete: that rank exited while sending the message`, peer));
    }
    this.failIfDrained(peer);
    this.peerLeft?.(peer);
  }

  /**
   * Throws MpiError when `value` cannot be encoded. A typed array or other binary value skips the
   * encoder: it is the common case of numerical codes, and each object made here shows at 8 bytes.
   * `at`: for --trace, when the timed call that sends began (−1: read the clock; see Trace.sent).
   */
  send(ctx: number, dest: number, tag: number, value: unknown, sig = 0, at = -1): Promise<void> {
    // A rank that has finalized or exited reads nothing more: the message would be lost, and a
    // large one would wait forever for its acknowledgement.
    const gone = this.gone.size > 0 ? this.gone.get(dest) : undefined;
    if (gone) return Promise.reject(new RankFailedError(`send to world rank ${dest} cannot complete: that rank has ${gone.how}`, dest));
    const code = binaryCode(value);
    if (code >= 0) {
      const bytes = bytesOf(value as ArrayBufferView);
      if (bytes.length > MAX_MESSAGE_BYTES) throw tooLarge(bytes.length);
      if (activity) this.count(dest, bytes.length);
      if (trace) trace.sent(dest, ctx, tag, bytes.length, at);
      // A collective's signature rides above the type code (see collectives.signature).
      const meta = code + sig * 256;
      if (dest === this.rank) {
        this.toSelfRaw(ctx, tag, meta, bytes, trace?.arrived(dest));
        return SENT;
      }
      return this.transmit(dest, { kind: Kind.Raw, ctx, src: this.rank, tag, meta }, [bytes], 0);
    }
    const enc = encode(value);
    const size = payloadBytes(enc.frames);
    if (size > MAX_MESSAGE_BYTES) throw tooLarge(size);
    if (activity) this.count(dest, size);
    if (trace) trace.sent(dest, ctx, tag, size, at);
    const env: Envelope = { kind: enc.kind, ctx, src: this.rank, tag, meta: enc.meta + sig * 256 };
    if (dest !== this.rank) return this.transmit(dest, env, enc.frames, enc.borrowedFrom);
    // Own the bytes now: the caller may overwrite its arrays as soon as send resolves.
    const frames = enc.frames.map((f, i) => (i >= enc.borrowedFrom ? Buffer.from(f) : f));
    this.matcher.arrive(this.own(env.kind, ctx, tag, env.meta, frames, undefined, trace?.arrived(dest)));
    return SENT;
  }

  /** For --report: a message of `bytes` to `dest` (one to this rank is received at once, too). */
  private count(dest: number, bytes: number): void {
    activity!.sent(dest, bytes);
    if (dest === this.rank) activity!.received(bytes);
  }

  /** A message from this rank to itself, made as the transport's messages are (see Received). */
  private own(kind: number, ctx: number, tag: number, meta: number, frames: Buffer[], landed: number | undefined, flow: number | undefined): Received {
    return { kind, ctx, src: this.rank, tag, meta, ackId: 0, frames, landed, flow };
  }

  /** A binary message to this rank: into a waiting recvInto's array, or a copy to the matcher. */
  private toSelfRaw(ctx: number, tag: number, meta: number, bytes: Buffer, flow: number | undefined): void {
    const w = this.matcher.claim(ctx, this.rank, tag);
    const into = w?.into;
    const landed = into && elementsIn(bytes.length, into);
    if (landed !== undefined) {
      new Uint8Array(into!.buffer, into!.byteOffset, bytes.length).set(bytes);
      w!.resolve(this.own(Kind.Raw, ctx, tag, meta, [], landed, flow));
      return;
    }
    const copy = Buffer.allocUnsafe(bytes.length);
    copy.set(bytes);
    const m = this.own(Kind.Raw, ctx, tag, meta, [copy], undefined, flow);
    if (w) w.resolve(m);
    else this.matcher.arrive(m);
  }

  /** Sends one message through the transport; resolves when the caller's frames are free. */
  private transmit(dest: number, env: Envelope, frames: Buffer[], borrowedFrom: number): Promise<void> {
    const t = this.transport!;
    this.dataPeers.add(dest);
    // Small payloads are copied into the header frame, which also frees the caller's memory.
    const bytes = payloadBytes(frames);
    if (bytes <= t.inlineLimit(dest) && frames.length <= MAX_INLINE_FRAMES) return t.send(dest, [writeHeader(env, 0, frames)], 1);
    let needsAck = false;
    for (let i = borrowedFrom; i < frames.length; i++) if (frames[i]!.length > t.copyLimit(dest)) needsAck = true;
    if (!needsAck) return t.send(dest, [writeHeader(env, 0), ...frames], borrowedFrom + 1);
    const ackId = this.nextAck++;
    const acked = new Promise<void>((done) => this.acks.set(ackId, new AckWait(dest, done)));
    t.hold(); // the ack has to be read
    const queued = t.send(dest, [writeHeader(env, ackId), ...frames], borrowedFrom + 1);
    return Promise.all([queued, acked]).then(
      () => t.release(),
      (e: unknown) => {
        this.acks.delete(ackId);
        t.release();
        throw e;
      },
    );
  }

  /** A protocol message of this rank (ACK, FIN, FIN-ACK): a header alone. */
  private control(kind: number, meta: number): Buffer[] {
    return [writeHeader({ kind, ctx: 0, src: this.rank, tag: 0, meta }, 0)];
  }

  private reply(peer: number, kind: number, meta: number): void {
    if (this.gone.has(peer) || this.closed || !this.transport) return;
    this.transport.send(peer, this.control(kind, meta), 1).catch(() => {});
  }

  /**
   * Sends FIN after the data to every peer this rank sent to and waits until each has read it (or
   * has finalized itself), then closes the transport. Nothing this rank sent is lost by exiting
   * afterwards.
   */
  async close(): Promise<void> {
    const t = this.transport;
    if (this.closed || !t) return;
    const peers = [...this.dataPeers].filter((p) => !this.gone.has(p));
    t.hold(); // FIN acknowledgements have to be read
    try {
      await Promise.all(
        peers.map((peer) => {
          const acked = new Promise<void>((done) => this.finAcks.set(peer, done));
          void t.send(peer, this.control(KIND_FIN, 0), 1).catch(() => this.finAcks.get(peer)?.());
          return acked;
        }),
      );
    } finally {
      t.release();
    }
    this.closed = true;
    t.close();
    if (this.malformed > 1) process.stderr.write(`tsmpi: rank ${this.rank}: dropped ${this.malformed} malformed messages in all\n`);
  }

  /**
   * A receive whose promise resolves with `finish(message)` (or rejects with what it throws):
   * what the communicator's calls return, without a promise of their own around this one.
   * `into`: a recvInto's array, where a raw payload may be copied straight from the transport.
   */
  receive<T>(ctx: number, src: number, tag: number, group: readonly number[], into: ArrayBufferView | undefined, finish: (m: Incoming) => T, span: SpanOf | null = null): Promise<T> {
    const m = this.matcher.take(ctx, src, tag);
    if (m) {
      if (span || trace) received(span, m, into, ctx, src, tag);
      return settled(finish, m);
    }
    return this.wait(ctx, src, tag, group, "recv", into, finish, span);
  }

  probe(ctx: number, src: number, tag: number, group: readonly number[]): Promise<Incoming> {
    const m = this.matcher.peek(ctx, src, tag);
    if (m) return Promise.resolve(m);
    return this.wait(ctx, src, tag, group, "probe", undefined, asIs, null);
  }

  iprobe(ctx: number, src: number, tag: number): Incoming | undefined {
    const m = this.matcher.peek(ctx, src, tag);
    if (!m) this.transport?.poke();
    return m;
  }

  private wait<T>(ctx: number, src: number, tag: number, group: readonly number[], call: "recv" | "probe", into: ArrayBufferView | undefined, finish: (m: Incoming) => T, span: SpanOf | null): Promise<T> {
    const w = new Pending(this.transport, ctx, src, tag, group, call, into, finish, span);
    const failure = this.failureFor(w);
    if (failure) {
      if (span) endSpan(span, ctx, src, tag);
      return Promise.reject(failure);
    }
    this.transport?.hold();
    if (call === "recv") this.matcher.postRecv(w);
    else this.matcher.postProbe(w);
    return w.promise;
  }

  /** A peer is drained when it has finalized and all it sent us has arrived. */
  private drained(peer: number): boolean {
    const g = this.gone.get(peer);
    return g !== undefined && (!g.sentTo.has(this.rank) || this.fins.has(peer));
  }

  private failureFor(w: { src: number; group: readonly number[]; call: "recv" | "probe" }): RankFailedError | undefined {
    const call = w.call;
    if (w.src !== ANY_SOURCE) {
      if (w.src !== this.rank && this.drained(w.src)) {
        return new RankFailedError(`${call} from world rank ${w.src} cannot complete: that rank has ${this.gone.get(w.src)!.how} and sent nothing that matches`, w.src);
      }
      return undefined;
    }
    const others = w.group.filter((r) => r !== this.rank);
    if (others.length > 0 && others.every((r) => this.drained(r))) {
      const who = others.length === 1 ? `world rank ${others[0]}` : "every other rank";
      return new RankFailedError(`${call} from ANY_SOURCE cannot complete: ${who} has finalized or exited and sent nothing that matches`, others[0]!);
    }
    return undefined;
  }

  private failIfDrained(peer: number): void {
    if (!this.drained(peer)) return;
    this.matcher.failWhere((w) => this.failureFor(w as Pending<unknown>));
  }
}
