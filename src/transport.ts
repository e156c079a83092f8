/**
 * Transport: moves framed messages between ranks. It knows nothing about matching or values,
 * only "deliver these frames to rank d, in order, and tell me when the caller's buffers are free".
 * A shared-memory transport for ranks on one host can implement the same interface.
 */
import * as zmq from "zeromq";
import { MpiError } from "./errors.js";
import { payloadBytes } from "./wire.js";

/** What a message carries besides its payload frames. */
export interface Envelope {
  /** Payload encoding (wire.Kind). */
  kind: number;
  /** Context id: which communicator (and whether point-to-point or collective traffic). */
  ctx: number;
  /** Sender's world rank. */
  src: number;
  tag: number;
  /** Encoding detail, e.g. the typed-array class of a raw payload. */
  meta: number;
}

/** How other ranks reach this one. */
export interface PeerAddress {
  /** Ranks with the same host id use `ipc`; others use `tcp`. */
  host: string;
  ipc?: string;
  tcp?: string;
}

export interface TransportHandlers {
  message(env: Envelope, frames: Buffer[]): void;
  /** `peer` has finalized: everything it sent to us has been delivered before this. */
  fin(peer: number): void;
}

export interface Transport {
  readonly address: PeerAddress;
  setPeers(table: readonly PeerAddress[]): void;
  /**
   * Queues a message for `dest`. Frames from index `borrowedFrom` on are views of the caller's
   * memory; the returned promise resolves once the caller may overwrite them.
   */
  send(dest: number, env: Envelope, frames: Buffer[], borrowedFrom: number): Promise<void>;
  /** Keeps messages flowing in while something waits for one; pair every hold with a release. */
  hold(): void;
  release(): void;
  /** Reads whatever has arrived without holding the receive path open (for iprobe). */
  poke(): void;
  /** Ranks this one has sent data to (they will receive our FIN). */
  readonly sentTo: number[];
  /** `peer` has finalized: stop waiting for anything from it. */
  peerGone(peer: number): void;
  /**
   * Sends FIN after the data on every connection and waits until each peer has read it (or has
   * finalized itself), then closes. Nothing this rank sent is lost by exiting afterwards.
   */
  close(): Promise<void>;
}

// Transport-level message kinds, above the wire kinds.
const KIND_ACK = 16;
const KIND_FIN = 17;
const KIND_FIN_ACK = 18;

/**
 * zeromq.js sends frames over 128 bytes without copying and resolves send() when the message is
 * queued, not sent. A borrowed frame up to this size is copied (cheap next to a ~55 µs message);
 * a larger one goes zero-copy and the send completes when the receiver acknowledges it.
 */
export const COPY_LIMIT = 256 * 1024;
const ZMQ_COPIES_BELOW = 128;
/**
 * Payloads up to this size travel inside the header frame: each extra ZeroMQ frame costs the
 * sender and the receiver a few µs, which is a visible share of a small message's ~55 µs.
 */
export const INLINE_LIMIT = 8 * 1024;
/**
 * The header counts inline frames in 16 bits. (A value with that many binary parts packs to more
 * than INLINE_LIMIT anyway, since each part leaves a reference in the packed frame.)
 */
const MAX_INLINE_FRAMES = 0xffff;
/** A tcp connection to a peer not up after this long gets a warning (a wrong address hangs otherwise). */
const CONNECT_WARN_MS = Number(process.env.TSMPI_CONNECT_WARN ?? 5) * 1000;
/** How long an idle reader waits before it lets the event loop go (so a finished rank can exit). */
const READER_IDLE_MS = 200;
interface QueuedSend {
  msg: Buffer[];
  resolve(): void;
  reject(e: unknown): void;
}

interface Link {
  sock: zmq.Push;
  queue: QueuedSend[];
  busy: boolean;
  dest: number;
  endpoint: string;
  host: string;
  /** A send has gone through: the connection is up. */
  up: boolean;
}

/**
 * Header frame: kind u8, unused u8, number of inline payload frames u16, then ctx, src, tag,
 * meta and ack id as u32 (little-endian), then one u32 length per inline frame and their bytes.
 * A fixed layout rather than msgpack: it is read and written on every message.
 */
const HEADER_BYTES = 24;

/** `inlineBytes`: the inline frames' total size (the caller has it already). */
function writeHeader(env: Envelope, ackId: number, inline: readonly Buffer[] = [], inlineBytes = 0): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES + 4 * inline.length + inlineBytes);
  h.writeUInt8(env.kind, 0);
  h.writeUInt8(0, 1);
  h.writeUInt16LE(inline.length, 2);
  h.writeUInt32LE(env.ctx, 4);
  h.writeUInt32LE(env.src, 8);
  h.writeUInt32LE(env.tag, 12);
  h.writeUInt32LE(env.meta, 16);
  h.writeUInt32LE(ackId, 20);
  let at = HEADER_BYTES + 4 * inline.length;
  for (let i = 0; i < inline.length; i++) {
    const f = inline[i]!;
    h.writeUInt32LE(f.byteLength, HEADER_BYTES + 4 * i);
    h.set(f, at);
    at += f.byteLength;
  }
  return h;
}

/** The envelope, ack id and payload frames of a received message. */
function readMessage(msg: Buffer[]): { env: Envelope; ackId: number; frames: Buffer[] } {
  const h = msg[0]!;
  if (h.byteLength < HEADER_BYTES) throw new MpiError(`corrupt message: header of ${h.byteLength} bytes`);
  const env: Envelope = { kind: h.readUInt8(0), ctx: h.readUInt32LE(4), src: h.readUInt32LE(8), tag: h.readUInt32LE(12), meta: h.readUInt32LE(16) };
  const n = h.readUInt16LE(2);
  if (n === 0) return { env, ackId: h.readUInt32LE(20), frames: msg.slice(1) };
  const frames: Buffer[] = [];
  let at = HEADER_BYTES + 4 * n;
  for (let i = 0; i < n; i++) {
    const len = h.readUInt32LE(HEADER_BYTES + 4 * i);
    frames.push(h.subarray(at, at + len));
    at += len;
  }
  if (at !== h.byteLength) throw new MpiError(`corrupt message: inline frames of ${at} bytes in a header of ${h.byteLength}`);
  return { env, ackId: h.readUInt32LE(20), frames };
}

function isTimeout(e: unknown): boolean {
  return (e as { code?: string }).code === "EAGAIN";
}

export interface ZmqTransportOptions {
  rank: number;
  host: string;
  /** Directory for this job's ipc sockets (unique per job, short enough for the 107-byte limit). */
  ipcDir?: string;
  /** Address to listen on for ranks on other hosts; omit when the job has one host. */
  tcpAddress?: string;
}

export class ZmqTransport implements Transport {
  private peers: readonly PeerAddress[] = [];
  private readonly links = new Map<number, Link>();
  /** Peers we sent data to: the ones that get a FIN. */
  private readonly dataPeers = new Set<number>();
  private readonly gone = new Set<number>();
  /** Sends waiting for the receiver's ACK, and FINs waiting for theirs, by id / peer. */
  private readonly acks = new Map<number, { peer: number; done(): void }>();
  private readonly finAcks = new Map<number, () => void>();
  private nextAck = 1;
  private holds = 0;
  private reading = false;
  private closed = false;

  private constructor(
    private readonly rank: number,
    private readonly pull: zmq.Pull,
    readonly address: PeerAddress,
    private readonly handlers: TransportHandlers,
  ) {}

  static async open(opts: ZmqTransportOptions, handlers: TransportHandlers): Promise<ZmqTransport> {
    const pull = new zmq.Pull({ receiveTimeout: READER_IDLE_MS, linger: 0 });
    const address: PeerAddress = { host: opts.host };
    if (opts.ipcDir) {
      address.ipc = `ipc://${opts.ipcDir}/${opts.rank}`;
      await pull.bind(address.ipc);
    }
    if (opts.tcpAddress) {
      if (["0.0.0.0", "*", "::", ""].includes(opts.tcpAddress)) {
        throw new MpiError(`transport: ${JSON.stringify(opts.tcpAddress)} is not an address other hosts can connect to; name this host's address (--tcp-if)`);
      }
      await pull.bind(`tcp://${opts.tcpAddress}:0`);
      address.tcp = pull.lastEndpoint ?? undefined;
    }
    if (!address.ipc && !address.tcp) throw new MpiError("transport: neither an ipc directory nor a tcp address was given");
    return new ZmqTransport(opts.rank, pull, address, handlers);
  }

  setPeers(table: readonly PeerAddress[]): void {
    this.peers = table;
  }

  get sentTo(): number[] {
    return [...this.dataPeers];
  }

  peerGone(peer: number): void {
    this.gone.add(peer);
    for (const [id, a] of this.acks) {
      if (a.peer === peer) {
        this.acks.delete(id);
        a.done();
      }
    }
    this.finAcks.get(peer)?.();
  }

  send(dest: number, env: Envelope, frames: Buffer[], borrowedFrom: number): Promise<void> {
    this.dataPeers.add(dest);
    // Small payloads are copied into the header frame, which also frees the caller's memory.
    const bytes = payloadBytes(frames);
    if (bytes <= INLINE_LIMIT && frames.length <= MAX_INLINE_FRAMES) return this.enqueue(dest, [writeHeader(env, 0, frames, bytes)]);
    let needsAck = false;
    for (let i = borrowedFrom; i < frames.length; i++) {
      const f = frames[i]!;
      if (f.byteLength > COPY_LIMIT) needsAck = true;
      else if (f.byteLength > ZMQ_COPIES_BELOW) frames[i] = Buffer.from(f);
    }
    if (!needsAck) return this.enqueue(dest, [writeHeader(env, 0), ...frames]);
    const ackId = this.nextAck++;
    const acked = new Promise<void>((done) => this.acks.set(ackId, { peer: dest, done }));
    this.hold(); // the ack has to be read
    const queued = this.enqueue(dest, [writeHeader(env, ackId), ...frames]);
    return Promise.all([queued, acked]).then(
      () => this.release(),
      (e: unknown) => {
        this.acks.delete(ackId);
        this.release();
        throw e;
      },
    );
  }

  hold(): void {
    this.holds++;
    if (!this.reading) void this.readLoop();
  }

  release(): void {
    this.holds--;
  }

  poke(): void {
    if (!this.reading && !this.closed) void this.readLoop();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const peers = [...this.dataPeers].filter((p) => !this.gone.has(p));
    this.hold(); // FIN acknowledgements have to be read
    try {
      await Promise.all(
        peers.map((peer) => {
          const acked = new Promise<void>((done) => this.finAcks.set(peer, done));
          void this.enqueue(peer, [this.control(KIND_FIN, 0)]).catch(() => this.finAcks.get(peer)?.());
          return acked;
        }),
      );
    } finally {
      this.release();
    }
    this.closed = true;
    // Everything that matters has been acknowledged; what may still be queued are replies to peers
    // that are leaving too, and waiting to deliver those would only delay the exit.
    for (const link of this.links.values()) {
      link.sock.linger = 0;
      link.sock.close();
    }
    this.pull.close();
  }

  private control(kind: number, meta: number): Buffer {
    return writeHeader({ kind, ctx: 0, src: this.rank, tag: 0, meta }, 0);
  }

  private link(dest: number): Link {
    let link = this.links.get(dest);
    if (link) return link;
    const peer = this.peers[dest];
    if (!peer) throw new MpiError(`transport: no address known for rank ${dest}`);
    const endpoint = peer.host === this.address.host && peer.ipc ? peer.ipc : peer.tcp;
    if (!endpoint) throw new MpiError(`transport: rank ${dest} on host ${peer.host} has no address reachable from host ${this.address.host}`);
    // PUSH blocks at the high-water mark instead of dropping, and one socket per peer gives each
    // peer its own send queue (zeromq.js allows one pending send per socket). Over tcp,
    // `immediate` makes a send wait for the connection instead of queueing behind one that may
    // never come up, which is what lets pump() notice an unreachable address.
    const tcp = endpoint.startsWith("tcp://");
    const sock = new zmq.Push(tcp ? { immediate: true } : {});
    sock.connect(endpoint);
    link = { sock, queue: [], busy: false, dest, endpoint, host: peer.host, up: !tcp };
    this.links.set(dest, link);
    return link;
  }

  private warnUnreached(link: Link): void {
    if (this.closed || link.up) return;
    process.stderr.write(
      `tsmpi: rank ${this.rank} (host ${this.address.host}) has not reached rank ${link.dest} at ${link.endpoint} (host ${link.host}) in ${CONNECT_WARN_MS / 1000} s and keeps trying; ` +
        `if host ${link.host} cannot be reached at that address, choose the network with --tcp-if\n`,
    );
  }

  private enqueue(dest: number, msg: Buffer[]): Promise<void> {
    if (this.closed) return Promise.reject(new MpiError("transport is closed (finalize() was called)"));
    const link = this.link(dest);
    return new Promise<void>((resolve, reject) => {
      link.queue.push({ msg, resolve, reject });
      if (!link.busy) void this.pump(link);
    });
  }

  private async pump(link: Link): Promise<void> {
    link.busy = true;
    while (link.queue.length > 0) {
      const item = link.queue[0]!;
      // ZeroMQ retries a connection forever without a word, so a peer address that cannot be
      // reached from here would look like a hang: say so if the first send does not go through.
      const timer = link.up ? undefined : setTimeout(() => this.warnUnreached(link), CONNECT_WARN_MS);
      timer?.unref();
      try {
        await link.sock.send(item.msg);
        link.up = true;
        item.resolve();
      } catch (e) {
        item.reject(e);
      } finally {
        clearTimeout(timer);
      }
      link.queue.shift();
    }
    link.busy = false;
  }

  private async readLoop(): Promise<void> {
    this.reading = true;
    try {
      while (!this.closed) {
        let msg: Buffer[];
        try {
          msg = await this.pull.receive();
        } catch (e) {
          if (this.closed) break;
          if (isTimeout(e)) {
            if (this.holds > 0) continue;
            break;
          }
          throw e;
        }
        this.dispatch(msg);
      }
    } finally {
      this.reading = false;
    }
  }

  private dispatch(msg: Buffer[]): void {
    const { env, ackId, frames } = readMessage(msg);
    switch (env.kind) {
      case KIND_ACK: {
        const a = this.acks.get(env.meta);
        this.acks.delete(env.meta);
        a?.done();
        return;
      }
      case KIND_FIN:
        this.handlers.fin(env.src);
        this.reply(env.src, KIND_FIN_ACK, 0);
        return;
      case KIND_FIN_ACK:
        this.finAcks.get(env.src)?.();
        return;
    }
    // The whole message is here, so the sender's libzmq no longer reads its buffer.
    if (ackId) this.reply(env.src, KIND_ACK, ackId);
    this.handlers.message(env, frames);
  }

  private reply(peer: number, kind: number, meta: number): void {
    if (this.gone.has(peer) || this.closed) return;
    this.enqueue(peer, [this.control(kind, meta)]).catch(() => {});
  }
}
