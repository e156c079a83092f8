/**
 * Point-to-point engine of one rank, in world ranks: encodes values, runs the message protocol
 * over the transport (header, acknowledgement of large borrowed frames, FIN at finalize) or hands
 * a message to itself straight to the matcher, and turns arriving messages into completed
 * receives. Communicators add rank translation, validation and contexts on top.
 */
import { ANY_SOURCE } from "./constants.js";
import type { GoneHow } from "./control.js";
import { RankFailedError } from "./errors.js";
import { Matcher, type Incoming, type Waiter } from "./matching.js";
import { INLINE_LIMIT, KIND_ACK, KIND_FIN, KIND_FIN_ACK, MAX_INLINE_FRAMES, readMessage, writeHeader, type Envelope } from "./protocol.js";
import type { Transport } from "./transport/index.js";
import { encode, payloadBytes } from "./wire.js";

export type { Incoming } from "./matching.js";

interface GroupWaiter extends Waiter {
  /** World ranks of the communicator the call was made on (for ANY_SOURCE failure detection). */
  group: readonly number[];
  call: "recv" | "probe";
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
  private readonly acks = new Map<number, { peer: number; done(): void }>();
  private readonly finAcks = new Map<number, () => void>();
  private nextAck = 1;
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

  /** Transport callback: a message arrived. */
  readonly message = (msg: Buffer[]): void => {
    const { env, ackId, frames } = readMessage(msg);
    switch (env.kind) {
      case KIND_ACK: {
        const a = this.acks.get(env.meta);
        this.acks.delete(env.meta);
        a?.done();
        return;
      }
      case KIND_FIN:
        // Everything `peer` sent us has arrived: the transport keeps each peer's messages in order.
        this.fins.add(env.src);
        this.failIfDrained(env.src);
        this.reply(env.src, KIND_FIN_ACK, 0);
        return;
      case KIND_FIN_ACK:
        this.finAcks.get(env.src)?.();
        return;
    }
    // The whole message is here, so the sender's transport no longer reads its buffers.
    if (ackId) this.reply(env.src, KIND_ACK, ackId);
    this.matcher.arrive({ ...env, frames });
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
    this.failIfDrained(peer);
  }

  /** Throws MpiError when `value` cannot be encoded. */
  send(ctx: number, dest: number, tag: number, value: unknown): Promise<void> {
    const enc = encode(value);
    const env: Envelope = { kind: enc.kind, ctx, src: this.rank, tag, meta: enc.meta };
    if (dest === this.rank) {
      // Own the bytes now: the caller may overwrite its arrays as soon as send resolves.
      const frames = enc.frames.map((f, i) => (i >= enc.borrowedFrom ? Buffer.from(f) : f));
      this.matcher.arrive({ ...env, frames });
      return Promise.resolve();
    }
    return this.transmit(dest, env, enc.frames, enc.borrowedFrom);
  }

  /** Sends one message through the transport; resolves when the caller's frames are free. */
  private transmit(dest: number, env: Envelope, frames: Buffer[], borrowedFrom: number): Promise<void> {
    const t = this.transport!;
    this.dataPeers.add(dest);
    // Small payloads are copied into the header frame, which also frees the caller's memory.
    const bytes = payloadBytes(frames);
    if (bytes <= INLINE_LIMIT && frames.length <= MAX_INLINE_FRAMES) return t.send(dest, [writeHeader(env, 0, frames, bytes)], 1);
    let needsAck = false;
    for (let i = borrowedFrom; i < frames.length; i++) if (frames[i]!.byteLength > t.copyLimit(dest)) needsAck = true;
    if (!needsAck) return t.send(dest, [writeHeader(env, 0), ...frames], borrowedFrom + 1);
    const ackId = this.nextAck++;
    const acked = new Promise<void>((done) => this.acks.set(ackId, { peer: dest, done }));
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
  }

  recv(ctx: number, src: number, tag: number, group: readonly number[]): Promise<Incoming> {
    const m = this.matcher.take(ctx, src, tag);
    if (m) return Promise.resolve(m);
    return this.wait(ctx, src, tag, group, "recv");
  }

  probe(ctx: number, src: number, tag: number, group: readonly number[]): Promise<Incoming> {
    const m = this.matcher.peek(ctx, src, tag);
    if (m) return Promise.resolve(m);
    return this.wait(ctx, src, tag, group, "probe");
  }

  iprobe(ctx: number, src: number, tag: number): Incoming | undefined {
    const m = this.matcher.peek(ctx, src, tag);
    if (!m) this.transport?.poke();
    return m;
  }

  private wait(ctx: number, src: number, tag: number, group: readonly number[], call: "recv" | "probe"): Promise<Incoming> {
    return new Promise<Incoming>((resolve, reject) => {
      const w: GroupWaiter = { ctx, src, tag, group, call, resolve, reject };
      const failure = this.failureFor(w);
      if (failure) return reject(failure);
      this.transport?.hold();
      const release = () => this.transport?.release();
      w.resolve = (m) => {
        release();
        resolve(m);
      };
      w.reject = (e) => {
        release();
        reject(e);
      };
      if (call === "recv") this.matcher.postRecv(w);
      else this.matcher.postProbe(w);
    });
  }

  /** A peer is drained when it has finalized and all it sent us has arrived. */
  private drained(peer: number): boolean {
    const g = this.gone.get(peer);
    return g !== undefined && (!g.sentTo.has(this.rank) || this.fins.has(peer));
  }

  private failureFor(w: GroupWaiter): RankFailedError | undefined {
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
    let failure: RankFailedError | undefined;
    this.matcher.failWhere(
      (w) => (failure = this.failureFor(w as GroupWaiter)) !== undefined,
      () => failure!,
    );
  }
}
