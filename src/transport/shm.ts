/**
 * The shared-memory transport, for ranks on one host (Open MPI's btl/sm is the model).
 *
 * Each rank creates one segment before the rendezvous: a header, its doorbell, and one incoming
 * ring per local rank. A rank sends to a peer by copying into its ring in the peer's segment and
 * ringing the peer's doorbell; the peer copies out. Once every local peer has mapped a segment, the
 * last of them unlinks its name, so the memory goes away with the job's processes.
 *
 * A message in a ring is `u32 frame count`, one `u32 length` per frame, then the frames' bytes.
 * Frames are copied in, so the caller's memory is free when `send` resolves (no acknowledgement
 * needed for any size). A full ring never blocks `send`: the rest waits in a queue, and this rank's
 * waiting loop pushes it as the receiver makes room (two ranks sending large messages to each other
 * would deadlock otherwise). While such a send waits, incoming messages are read too, for the same
 * reason.
 */
import { Buffer } from "node:buffer"; // not the global, which is a getter: a call on every use
import { basename } from "node:path";
import { MpiError } from "../errors.js";
import { MAX_MESSAGE_BYTES, sizeText } from "../limits.js";
import { readU32, writeU32 } from "../wire.js";
import { Bell, Crowd, Doorbell, DOORBELL_BYTES, type DoorbellClient, type SpinPolicy } from "./doorbell.js";
import { BOARD_BYTES, BOARD_CONTEXTS, SENT, type BoardWatch, type PeerAddress, type SharedBoards, type SharedStages, type StageHolder, type Transport, type TransportHandlers } from "./index.js";
import type { ShmAddon } from "./native.js";
import { Ring } from "./ring.js";

/** This transport's entry of a rank's address. */
export interface ShmAddress {
  /** The segment's POSIX name. */
  name: string;
  /** Data bytes of each ring in it. */
  capacity: number;
  /** Rings in it: one per rank of the host, in world-rank order. */
  slots: number;
}

/**
 * Segment layout: a header line (word 0 counts the peers that have mapped it; word 1, in the
 * segment of the host's first rank, the host's sleeping ranks: see Crowd), the doorbell, the
 * rings, then this rank's boards (one per context id below BOARD_CONTEXTS; see src/board.ts), then
 * its stage for large reductions (stageBytes).
 */
const ATTACHED = 0;
const SLEEPERS_AT = 4;
const HEADER_BYTES = 64;
const DOORBELL_AT = HEADER_BYTES;
const RINGS_AT = DOORBELL_AT + DOORBELL_BYTES;
/**
 * Payloads up to this size ride in the header frame. Larger ones get a frame of their own, which
 * costs a ring nothing and lets them land straight in a waiting recvInto: one copy on each side
 * instead of two.
 */
const INLINE_LIMIT = 1024;
/** Bytes published at a time, so the receiver copies out while the sender still copies in. */
const CHUNK = 64 * 1024;

/**
 * Start of the /dev/shm file names of a job's segments on one host: `<job dir name>-`, then the
 * rank. The launcher removes whatever still carries it when the job ends there.
 */
export function segmentPrefix(jobDir: string): string {
  return `${basename(jobDir)}-`;
}

/** Writes a message's frame count and lengths into `prefix` (4 + 4 · frames bytes) and returns it. */
function writePrefix(prefix: Buffer, frames: readonly Buffer[]): Buffer {
  writeU32(prefix, 0, frames.length);
  for (let i = 0; i < frames.length; i++) writeU32(prefix, 4 + 4 * i, frames[i]!.length);
  return prefix;
}

/** Resolves an Outgoing that went in at once (no caller waits on it). */
const noop = (): void => {};


/**
 * Ring size for `localRanks` ranks on a host: about 32 MiB in all (Docker gives /dev/shm 64 MiB by
 * default), between 64 KiB (a chunk) and 1 MiB (larger rings measured no faster).
 */
export function ringCapacity(localRanks: number): number {
  return shareOf(32 * 1024 * 1024, Math.max(1, localRanks * (localRanks - 1)), 64 * 1024, 1024 * 1024);
}

/**
 * Stage size for `localRanks` ranks on a host: about 8 MiB in all beside the rings' 32 (Docker's
 * /dev/shm is 64 MiB), between 128 KiB and 2 MiB. A large allreduce moves through it in halves:
 * on 4 ranks sharing 2 cores an 8 MiB one took about as long in blocks of 512 KiB as of 1 MiB
 * (~4 ms), longer in blocks of 2 MiB (~4.6 ms) or 256 KiB (~5.5 ms).
 */
export function stageBytes(localRanks: number): number {
  return shareOf(8 * 1024 * 1024, Math.max(1, localRanks), 128 * 1024, 2 * 1024 * 1024);
}

/** `total` ÷ `parts`, rounded down to a power of two, within [min, max]. */
function shareOf(total: number, parts: number, min: number, max: number): number {
  const pow2 = 2 ** Math.floor(Math.log2(Math.max(1, Math.floor(total / parts))));
  return Math.min(max, Math.max(min, pow2));
}

function segmentBytes(capacity: number, slots: number): number {
  return stageAt(capacity, slots) + stageBytes(slots);
}

function stageAt(capacity: number, slots: number): number {
  return boardAt(capacity, slots, BOARD_CONTEXTS);
}

function boardAt(capacity: number, slots: number, contextId: number): number {
  return RINGS_AT + slots * Ring.bytes(capacity) + contextId * BOARD_BYTES;
}

function ringAt(capacity: number, slot: number): number {
  return RINGS_AT + slot * Ring.bytes(capacity);
}

/** A message being copied into a peer's ring. */
interface Outgoing {
  parts: Buffer[];
  part: number;
  offset: number;
  resolve(): void;
  reject(e: unknown): void;
}

/** The sending side of one peer: our ring in its segment, its doorbell, what waits for room. */
class Outbox {
  readonly queue: Outgoing[] = [];
  constructor(
    readonly ring: Ring,
    readonly bell: Bell,
  ) {}

  /** Copies as much of `m` as fits; true when all of it is in. Rings the bell for what it published. */
  push(m: Outgoing): boolean {
    let published = 0;
    try {
      while (m.part < m.parts.length) {
        const part = m.parts[m.part]!;
        while (m.offset < part.length) {
          const n = this.ring.push(part.subarray(m.offset, m.offset + CHUNK));
          if (n === 0) {
            // Full: let the receiver see what is in, and ask it for room (unless room appeared).
            if (published > 0) this.bell.published();
            published = 0;
            if (!this.ring.wantRoom()) return false;
            continue;
          }
          m.offset += n;
          published += n;
          if (published >= CHUNK) {
            this.bell.published();
            published = 0;
          }
        }
        m.part++;
        m.offset = 0;
      }
      return true;
    } finally {
      if (published > 0) this.bell.published();
    }
  }
}

const COUNT = 0;
const LENGTHS = 1;
const BODY = 2;
/** After a message no rank writes: nothing more is read from this ring. */
const BROKEN = 3;
/** More frames than any message of the protocol has (each typed array in an object is one). */
const MAX_FRAMES = 1 << 20;

/** The receiving side of one peer: its ring in our segment, read as a stream of messages. */
class Inbox {
  private stage = COUNT;
  private readonly countBuf = Buffer.alloc(4);
  /** The lengths of the message being read; reused while big enough (one per message otherwise). */
  private lengths = Buffer.alloc(64);
  private count = 0;
  private buf: Uint8Array = this.countBuf;
  private got = 0;
  private frames: Buffer[] = [];
  private frame = 0;

  constructor(
    private readonly ring: Ring,
    /** The peer's doorbell: rung when it asked for room and we made some. */
    private readonly peerBell: Bell,
    /** The peer's world rank. */
    private readonly src: number,
    private readonly handlers: TransportHandlers,
  ) {}

  /** Bytes wait that drain() has not read (never once the link is broken: nothing more is read). See DoorbellClient.arrived. */
  arrived(sure: boolean): boolean {
    return (sure ? this.ring.available() > 0 : this.ring.seemsNonEmpty()) && this.stage !== BROKEN;
  }

  /** Reads every complete message waiting in the ring, handing each to the handlers; true if any. */
  drain(): boolean {
    let delivered = false;
    if (this.stage === BROKEN) return false;
    // Messages that are in the ring whole (small ones nearly always are) are read in one step.
    while (this.stage === COUNT && this.got === 0 && this.readWhole()) delivered = true;
    for (;;) {
      if (this.got < this.buf.length) {
        const n = this.ring.pull(this.got === 0 ? this.buf : this.buf.subarray(this.got));
        if (n > 0 && this.ring.takeRoomRequest()) this.peerBell.ring();
        this.got += n;
        if (this.got < this.buf.length) return delivered;
      }
      if (this.stage === COUNT) {
        this.count = readU32(this.countBuf, 0);
        if (this.count > MAX_FRAMES) return this.broken(`a message of ${this.count} frames`), delivered;
        if (this.lengths.length < 4 * this.count) this.lengths = Buffer.alloc(4 * this.count);
        this.stage = LENGTHS;
        this.next(this.lengths.subarray(0, 4 * this.count));
      } else if (this.stage === LENGTHS) {
        let bytes = 0;
        for (let i = 0; i < this.count; i++) bytes += readU32(this.lengths, 4 * i);
        if (bytes > MAX_MESSAGE_BYTES) return this.broken(`a message of ${sizeText(bytes)}, above the limit of ${sizeText(MAX_MESSAGE_BYTES)} (TSMPI_MAX_MESSAGE)`), delivered;
        this.frames = [];
        this.stage = BODY;
        this.frame = 0;
        this.next(this.frameBuffer(0));
      } else if (++this.frame < this.count) {
        this.next(this.frameBuffer(this.frame));
      } else {
        const frames = this.frames;
        this.frames = [];
        this.stage = COUNT;
        this.next(this.countBuf);
        this.handlers.message(frames, this.src);
        delivered = true;
      }
    }
  }

  /**
   * Reads the next message if all of it is in the ring: its frames are copied out and consumed
   * with one update of the ring's head. False (nothing read) otherwise.
   */
  private readWhole(): boolean {
    const ring = this.ring;
    const avail = ring.available();
    if (avail < 4) return false;
    const count = ring.peekU32(0);
    let total = 4 + 4 * count;
    // Up to 16 frames: their lengths fit the 64 bytes `lengths` always has.
    if (count > 16 || avail < total) return false;
    for (let i = 0; i < count; i++) {
      const len = ring.peekU32(4 + 4 * i);
      writeU32(this.lengths, 4 * i, len);
      total += len;
    }
    if (avail < total) return false;
    this.count = count;
    // Made whole for one frame (the common case; see frameBuffer).
    this.frames = count === 1 ? [EMPTY] : [];
    let at = 4 + 4 * count;
    for (let i = 0; i < count; i++) {
      const b = this.frameBuffer(i);
      ring.peekInto(b, at);
      at += b.length;
    }
    ring.skip(total);
    if (ring.takeRoomRequest()) this.peerBell.ring();
    const frames = this.frames;
    this.frames = [];
    this.handlers.message(frames, this.src);
    return true;
  }

  /**
   * Where frame `i` of the message goes: a new buffer, or for the payload of a header-and-payload
   * message, the memory of the receive already waiting for it (one copy instead of two).
   */
  private frameBuffer(i: number): Buffer {
    if (i >= this.count) return EMPTY; // a message of no frames: deliver it as it is
    const len = readU32(this.lengths, 4 * i);
    const target = i === 1 && this.count === 2 ? this.handlers.landing?.(this.src, this.frames[0]!, len) : undefined;
    const b = target ? Buffer.from(target.buffer, target.byteOffset, len) : Buffer.allocUnsafe(len);
    if (i < this.frames.length) this.frames[i] = b;
    else this.frames.push(b);
    return b;
  }

  /** The peer wrote what no rank of this job writes: reading on would misread everything after it. */
  private broken(what: string): void {
    this.stage = BROKEN;
    this.next(EMPTY);
    this.handlers.broken(this.src, `the shared-memory link from rank ${this.src} carries ${what}`);
  }

  private next(buf: Uint8Array): void {
    this.buf = buf;
    this.got = 0;
  }
}

const EMPTY = Buffer.alloc(0);

export interface ShmTransportOptions {
  rank: number;
  host: string;
  /** Ranks on this host (TSMPI_LOCAL_SIZE): the segment has a ring for each. */
  localSize: number;
  /** This job's directory on this host: segment names derive from it (segmentPrefix). */
  jobDir: string;
  policy: SpinPolicy;
}

export class ShmTransport implements Transport, DoorbellClient {
  private readonly outs = new Map<number, Outbox>();
  /** Each local peer's segment and address, for its boards. */
  private readonly segments = new Map<number, { seg: ArrayBuffer; address: ShmAddress }>();
  /** What waits on boards (see boards()): served by the waiting loop along with the rings. */
  private readonly watches: BoardWatch[] = [];
  /** What has this rank's stage (see SharedStages). */
  private stageHolder: StageHolder | null = null;
  private readonly ins: Inbox[] = [];
  private readonly door: Doorbell;
  private holds = 0;
  /** Messages waiting in an outbox queue for room. */
  private blocked = 0;
  private closed = false;
  /** Frame-count-and-lengths prefixes of messages of 0..7 frames, reused by send. */
  private readonly prefixes = Array.from({ length: 8 }, (_, n) => Buffer.alloc(4 + 4 * n));

  private constructor(
    private readonly addon: ShmAddon,
    private readonly opts: ShmTransportOptions,
    private readonly segment: ArrayBuffer,
    readonly address: ShmAddress,
    private readonly handlers: TransportHandlers,
  ) {
    this.door = new Doorbell(addon, segment, DOORBELL_AT, opts.policy, this);
  }

  /** Creates this rank's segment; peers map it once the rendezvous has told them its name. */
  static open(addon: ShmAddon, opts: ShmTransportOptions, handlers: TransportHandlers): ShmTransport {
    const capacity = ringCapacity(opts.localSize);
    const address: ShmAddress = { name: `/${segmentPrefix(opts.jobDir)}${opts.rank}`, capacity, slots: opts.localSize };
    const segment = addon.map(address.name, segmentBytes(capacity, opts.localSize), true);
    return new ShmTransport(addon, opts, segment, address, handlers);
  }

  copyLimit(): number {
    return Infinity;
  }

  inlineLimit(): number {
    return INLINE_LIMIT;
  }

  /**
   * Maps the segment of every other rank on this host. Every rank computes the same set from the
   * same table, so two ranks always agree on whether they talk through shared memory.
   */
  setPeers(table: readonly PeerAddress[]): void {
    const local = sharedMemoryPeers(table, this.opts.host);
    const me = local.indexOf(this.opts.rank);
    if (me < 0 || local.length !== this.address.slots) {
      throw new MpiError(
        `shared memory: rank ${this.opts.rank} expected ${this.address.slots} ranks on host ${this.opts.host} with shared memory, the job's table has ${local.length} (${local.join(", ")})`,
      );
    }
    /** The segment of the host's first rank, where its count of sleeping ranks lives. */
    let first = this.segment;
    for (const [slot, peer] of local.entries()) {
      if (peer === this.opts.rank) continue;
      const a = table[peer]!.shm as ShmAddress;
      let seg: ArrayBuffer;
      try {
        seg = this.addon.map(a.name, segmentBytes(a.capacity, a.slots), false);
      } catch (e) {
        throw new MpiError(`shared memory: rank ${this.opts.rank} cannot map rank ${peer}'s segment ${a.name}: ${(e as Error).message}`);
      }
      // The last rank to map a segment removes its name: the mappings keep the memory.
      if (Atomics.add(new Int32Array(seg, 0, 1), ATTACHED, 1) + 1 === a.slots - 1) this.addon.unlink(a.name);
      if (slot === 0) first = seg;
      this.segments.set(peer, { seg, address: a });
      // Where every rank has a core, peers poll their rings (see Doorbell.poll).
      const peerBell = new Bell(this.addon, seg, DOORBELL_AT, local.length <= this.opts.policy.cores);
      this.outs.set(peer, new Outbox(new Ring(seg, ringAt(a.capacity, me), a.capacity, "producer"), peerBell));
      this.ins.push(new Inbox(new Ring(this.segment, ringAt(this.address.capacity, slot), this.address.capacity, "consumer"), peerBell, peer, this.handlers));
    }
    // Only a host with more ranks than cores needs the count (see Crowd).
    if (local.length > this.opts.policy.cores) this.door.crowd = new Crowd(first, SLEEPERS_AT, local.length);
  }

  reaches(dest: number): boolean {
    return this.outs.has(dest);
  }

  boards(contextId: number, members: readonly number[]): SharedBoards | null {
    if (contextId >= BOARD_CONTEXTS) return null;
    const areas: Int32Array[] = [];
    const stageAreas: Uint8Array[] = [];
    const bells: (Bell | null)[] = [];
    for (const m of members) {
      const peer = m === this.opts.rank ? { seg: this.segment, address: this.address } : this.segments.get(m);
      if (!peer) return null;
      const { capacity, slots } = peer.address;
      areas.push(new Int32Array(peer.seg, boardAt(capacity, slots, contextId), BOARD_BYTES / 4));
      stageAreas.push(new Uint8Array(peer.seg, stageAt(capacity, slots), stageBytes(slots)));
      bells.push(m === this.opts.rank ? null : this.outs.get(m)!.bell);
    }
    const stages: SharedStages = {
      areas: stageAreas,
      take: (h) => {
        if (this.stageHolder !== null && this.stageHolder !== h && !this.stageHolder.release()) return false;
        this.stageHolder = h;
        return true;
      },
    };
    return {
      areas,
      stages,
      notify: () => {
        this.door.touch();
        for (let i = 0; i < bells.length; i++) bells[i]?.published();
        // Where ranks share cores, the one that shares this core needs it now: to post its own
        // part, or to see that the call this rank just completed is done (4-rank 8 B allreduce
        // on 2 cores: ~10 → ~8.8 µs; yielding only when this rank's call still waits gained nothing).
        if (this.door.crowded()) this.addon.yieldCpu();
      },
      watch: (w) => {
        this.watches.push(w);
        this.hold();
      },
      unwatch: (w) => {
        const i = this.watches.indexOf(w);
        if (i < 0) return;
        this.watches.splice(i, 1);
        this.release();
      },
    };
  }

  send(dest: number, frames: Buffer[]): Promise<void> {
    if (this.closed) return Promise.reject(new MpiError("transport is closed (finalize() was called)"));
    const out = this.outs.get(dest);
    if (!out) return Promise.reject(new MpiError(`shared memory: rank ${dest} is not on this host`));
    const n = frames.length;
    this.door.touch();
    // The common case, a message that fits now: written whole from a reused prefix, no queue entry.
    if (out.queue.length === 0 && n < this.prefixes.length) {
      let total = 4 + 4 * n;
      for (let i = 0; i < n; i++) total += frames[i]!.length;
      if (total <= out.ring.roomFor(total)) {
        out.ring.pushAll(writePrefix(this.prefixes[n]!, frames), frames);
        out.bell.published();
        return SENT;
      }
    }
    const prefix = writePrefix(Buffer.allocUnsafe(4 + 4 * n), frames);
    const m: Outgoing = { parts: [prefix, ...frames], part: 0, offset: 0, resolve: noop, reject: noop };
    if (out.queue.length === 0 && out.push(m)) return SENT;
    return new Promise<void>((resolve, reject) => {
      m.resolve = resolve;
      m.reject = reject;
      out.queue.push(m);
      this.blocked++;
      this.door.start();
    });
  }

  hold(): void {
    this.holds++;
    this.door.start();
  }

  release(): void {
    this.holds--;
    // A loop asleep for a wait that was just given up would keep the process alive: wake it.
    if (!this.active()) this.door.interrupt();
  }

  poke(): void {
    if (!this.closed) this.progress();
  }

  waitedMs(): number {
    return this.door.waitedMs;
  }

  sleeps(): number {
    return this.door.sleeps;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const out of this.outs.values()) {
      for (const m of out.queue.splice(0)) m.reject(new MpiError("transport is closed (finalize() was called)"));
    }
    this.blocked = 0;
    this.door.interrupt();
    this.door.close();
  }

  /** Doorbell client: a receive or a held-up send waits. */
  active(): boolean {
    return !this.closed && (this.holds > 0 || this.blocked > 0);
  }

  /** Doorbell client: bytes wait in an incoming ring, or a board shows what a watch waits for. */
  arrived(sure: boolean): boolean {
    const ins = this.ins;
    for (let i = 0; i < ins.length; i++) if (ins[i]!.arrived(sure)) return true;
    const ws = this.watches;
    for (let i = 0; i < ws.length; i++) if (ws[i]!.ready()) return true;
    return false;
  }

  /** Doorbell client: reads what has arrived and pushes what waits for room; true if either happened. */
  progress(): boolean {
    let woke = false;
    for (const inbox of this.ins) if (inbox.drain()) woke = true;
    // Walked from the end: a watch that fires may unwatch itself (a board adds none while firing).
    const ws = this.watches;
    for (let i = ws.length - 1; i >= 0; i--) {
      const w = ws[i];
      if (w !== undefined && w.ready()) {
        w.fire();
        woke = true;
      }
    }
    if (this.blocked === 0) return woke;
    for (const out of this.outs.values()) {
      while (out.queue.length > 0 && out.push(out.queue[0]!)) {
        out.queue.shift()!.resolve();
        this.blocked--;
        woke = true;
      }
    }
    return woke;
  }

}

/** World ranks on `host` that offer shared memory, ascending: slot i of every segment is the i-th. */
export function sharedMemoryPeers(table: readonly PeerAddress[], host: string): number[] {
  const local: number[] = [];
  table.forEach((a, r) => {
    if (a.host === host && a.shm) local.push(r);
  });
  return local;
}
