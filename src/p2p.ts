/**
 * Point-to-point engine of one rank, in world ranks: encodes values, hands them to the transport
 * (or straight to the matcher for a message to itself), and turns arriving messages into
 * completed receives. Communicators add rank translation, validation and contexts on top.
 */
import { ANY_SOURCE } from "./constants.js";
import type { GoneHow } from "./control.js";
import { RankFailedError } from "./errors.js";
import { Matcher, type Incoming, type Waiter } from "./matching.js";
import type { Envelope, Transport } from "./transport.js";
import { encode } from "./wire.js";

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
  /** finalize() has been called: communicators refuse new calls. */
  finalized = false;

  constructor(
    readonly rank: number,
    readonly size: number,
  ) {}

  attach(transport: Transport): void {
    this.transport = transport;
  }

  /** Transport callback: a message arrived. */
  readonly arrive = (env: Envelope, frames: Buffer[]): void => {
    this.matcher.arrive({ ...env, frames });
  };

  /** Transport callback: everything `peer` sent us has arrived. */
  readonly fin = (peer: number): void => {
    this.fins.add(peer);
    this.failIfDrained(peer);
  };

  /** Control callback: `peer` finalized or exited; `sentTo` are the ranks it had sent data to. */
  peerGone(peer: number, sentTo: readonly number[], how: GoneHow): void {
    this.gone.set(peer, { sentTo: new Set(sentTo), how });
    this.transport?.peerGone(peer);
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
    return this.transport!.send(dest, env, enc.frames, enc.borrowedFrom);
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
