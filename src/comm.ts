/**
 * Communicator: a group of ranks with its own message space (MPI_Comm). Point-to-point calls
 * validate their arguments, translate ranks to world ranks and go to the point-to-point engine
 * on this communicator's context; collectives run on a second context, so the two kinds of
 * traffic never match each other.
 */
import * as coll from "./collectives.js";
import { ANY_SOURCE, ANY_TAG, PROC_NULL, TAG_UB } from "./constants.js";
import { MpiError } from "./errors.js";
import type { Incoming, PointToPoint } from "./p2p.js";
import { decode, decodeInto, payloadBytes, type TypedArray } from "./wire.js";

/** What `probe`/`iprobe` report about a message that has arrived. */
export interface Status {
  source: number;
  tag: number;
  /** Payload size in bytes. */
  bytes: number;
}

export interface Message<T = unknown> {
  data: T;
  source: number;
  tag: number;
}

export interface RecvIntoStatus {
  source: number;
  tag: number;
  /** Elements written into the array. */
  count: number;
}

export interface SendRecvTags {
  sendTag?: number;
  recvTag?: number;
}

function describe(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

export class Communicator {
  readonly rank: number;
  readonly size: number;
  private readonly ptpCtx: number;
  private readonly collCtx: number;
  private collSeq = 0;
  /** World rank → rank in this communicator; null for the world itself (identity). */
  private readonly local: Map<number, number> | null;

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
  }

  // ---- point to point -------------------------------------------------------------------------

  /** Sends `data` to `dest`; resolves when `data` may be reused. */
  async send(data: unknown, dest: number, tag = 0): Promise<void> {
    this.checkRank("send", "dest", dest, false);
    this.checkTag("send", tag, false);
    if (dest === PROC_NULL) return;
    try {
      await this.p2p.send(this.ptpCtx, this.group[dest]!, tag, data);
    } catch (e) {
      throw this.wrap("send", e);
    }
  }

  /** Receives the next matching message and returns its data. */
  async recv<T = unknown>(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<T> {
    return (await this.recvMessage<T>(source, tag)).data;
  }

  /** Receives the next matching message with its source and tag. */
  async recvMessage<T = unknown>(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Message<T>> {
    this.checkRank("recvMessage", "source", source, true);
    this.checkTag("recvMessage", tag, true);
    if (source === PROC_NULL) return { data: undefined as T, source: PROC_NULL, tag: ANY_TAG };
    const m = await this.p2p.recv(this.ptpCtx, this.worldOf(source), tag, this.group);
    return { data: this.decode(m, "recv") as T, source: this.localOf(m.src), tag: m.tag };
  }

  /** Receives a binary message into `buffer`; rejects with TruncateError if it does not fit. */
  async recvInto(buffer: TypedArray, source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<RecvIntoStatus> {
    this.checkArray("recvInto", buffer);
    this.checkRank("recvInto", "source", source, true);
    this.checkTag("recvInto", tag, true);
    if (source === PROC_NULL) return { source: PROC_NULL, tag: ANY_TAG, count: 0 };
    const m = await this.p2p.recv(this.ptpCtx, this.worldOf(source), tag, this.group);
    return { source: this.localOf(m.src), tag: m.tag, count: decodeInto(m.kind, m.frames, buffer, "recvInto") };
  }

  /** Sends to `dest` and receives from `source` at the same time (no deadlock between pairs). */
  async sendrecv<T = unknown>(data: unknown, dest: number, source: number = dest, tags: SendRecvTags = {}): Promise<T> {
    const { sendTag = 0, recvTag = ANY_TAG } = tags;
    const [, got] = await Promise.all([this.send(data, dest, sendTag), this.recv<T>(source, recvTag)]);
    return got;
  }

  /** `sendrecv` for typed arrays, receiving into `recvBuffer`. */
  async sendrecvInto(sendBuffer: TypedArray, dest: number, recvBuffer: TypedArray, source: number = dest, tags: SendRecvTags = {}): Promise<RecvIntoStatus> {
    const { sendTag = 0, recvTag = ANY_TAG } = tags;
    const [, st] = await Promise.all([this.send(sendBuffer, dest, sendTag), this.recvInto(recvBuffer, source, recvTag)]);
    return st;
  }

  /** Waits until a matching message has arrived, without receiving it. */
  async probe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Promise<Status> {
    this.checkRank("probe", "source", source, true);
    this.checkTag("probe", tag, true);
    if (source === PROC_NULL) return { source: PROC_NULL, tag: ANY_TAG, bytes: 0 };
    return this.status(await this.p2p.probe(this.ptpCtx, this.worldOf(source), tag, this.group));
  }

  /** The status of a matching message that has already arrived, or undefined; never waits. */
  iprobe(source: number = ANY_SOURCE, tag: number = ANY_TAG): Status | undefined {
    this.checkRank("iprobe", "source", source, true);
    this.checkTag("iprobe", tag, true);
    if (source === PROC_NULL) return { source: PROC_NULL, tag: ANY_TAG, bytes: 0 };
    const m = this.p2p.iprobe(this.ptpCtx, this.worldOf(source), tag);
    return m && this.status(m);
  }

  // ---- collectives ----------------------------------------------------------------------------

  /** Resolves once every rank of the communicator has called barrier. */
  barrier(): Promise<void> {
    return coll.barrier(this.collective());
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * @internal A private channel for one collective call: its own tag (every rank numbers its
   * collective calls identically), on the collective context.
   */
  collective(): coll.Channel {
    const tag = this.collSeq;
    this.collSeq = (this.collSeq + 1) % (TAG_UB + 1);
    const { p2p, collCtx, group } = this;
    return {
      rank: this.rank,
      size: this.size,
      send: (dest, value) => p2p.send(collCtx, group[dest]!, tag, value),
      recv: async (source) => {
        const m = await p2p.recv(collCtx, group[source]!, tag, group);
        return decode(m.kind, m.meta, m.frames);
      },
    };
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
