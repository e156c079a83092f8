/**
 * The ZeroMQ transport: one PULL socket per rank, one PUSH socket per peer it sends to, over ipc
 * between ranks of one host and tcp between hosts. It moves frames and nothing else.
 */
import { Buffer } from "node:buffer"; // not the global, which is a getter: a call on every use
import * as zmq from "zeromq";
import { MpiError } from "../errors.js";
import { MAX_MESSAGE_BYTES } from "../limits.js";
import { gate, keyPair, SenderTokens, TOKEN_BYTES, type KeyPair } from "./curve.js";
import type { PeerAddress, Transport, TransportHandlers } from "./index.js";

/** This transport's entry of a rank's address. */
export interface ZmqAddress {
  ipc?: string;
  tcp?: string;
  /** The rank's CURVE public key (Z85) when its socket takes only the job's ranks. */
  key?: string;
}

/**
 * zeromq.js sends frames over 128 bytes without copying and resolves send() when the message is
 * queued, not sent. A borrowed frame up to this size is copied (cheap next to a ~55 µs message);
 * a larger one goes zero-copy and the send completes when the receiver acknowledges it.
 */
export const COPY_LIMIT = 256 * 1024;
/** Payloads up to this size ride in the header frame: each extra ZeroMQ frame costs both sides a few µs. */
const INLINE_LIMIT = 8 * 1024;
const ZMQ_COPIES_BELOW = 128;
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
  /** What starts each message's first frame to this peer on a secured socket: who sent it (see SenderTokens). */
  token: Buffer | undefined;
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
  /**
   * Take only the job's ranks, over CURVE (see curve.ts). Meant for jobs that span hosts: on one
   * host the ipc socket is inside the job's own directory, which only its user can enter.
   */
  secure?: boolean;
}

export class ZmqTransport implements Transport {
  private peers: readonly PeerAddress[] = [];
  private readonly links = new Map<number, Link>();
  private holds = 0;
  private reading = false;
  private closed = false;

  private constructor(
    private readonly rank: number,
    private readonly host: string,
    private readonly pull: zmq.Pull,
    readonly address: ZmqAddress,
    private readonly handlers: TransportHandlers,
    /** This rank's CURVE keys, its senders' tokens, and the process's ZAP handler, when the socket is secured. */
    private readonly curve: { keys: KeyPair; tokens: SenderTokens; gate: Awaited<ReturnType<typeof gate>> } | null,
  ) {}

  static async open(opts: ZmqTransportOptions, handlers: TransportHandlers): Promise<ZmqTransport> {
    // The CURVE options must be on the socket before it binds: a connection accepted earlier
    // would be an unauthenticated one.
    const keys = opts.secure ? keyPair() : null;
    const curve = keys ? { keys, tokens: new SenderTokens(opts.rank, keys), gate: await gate() } : null;
    const security = curve ? { curveServer: true, curveSecretKey: curve.keys.secretKey, curvePublicKey: curve.keys.publicKey } : {};
    // libzmq drops a connection that sends a message part above this, before it is in memory.
    const pull = new zmq.Pull({ receiveTimeout: READER_IDLE_MS, linger: 0, maxMessageSize: MAX_MESSAGE_BYTES + 65536, ...security });
    const address: ZmqAddress = curve ? { key: curve.keys.publicKey } : {};
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
    return new ZmqTransport(opts.rank, opts.host, pull, address, handlers, curve);
  }

  copyLimit(): number {
    return COPY_LIMIT;
  }

  inlineLimit(): number {
    return INLINE_LIMIT;
  }

  setPeers(table: readonly PeerAddress[]): void {
    this.peers = table;
    const keys = table.map((p) => ((p.zmq ?? {}) as ZmqAddress).key);
    this.curve?.tokens.setPeers(keys);
    // From now on the job's ranks may connect; nobody else ever may.
    this.curve?.gate.allow(keys.filter((k): k is string => k !== undefined));
  }

  reaches(dest: number): boolean {
    const peer = this.peers[dest];
    const a = (peer?.zmq ?? {}) as ZmqAddress;
    return peer !== undefined && ((peer.host === this.host && a.ipc !== undefined) || a.tcp !== undefined);
  }

  send(dest: number, frames: Buffer[], borrowedFrom: number): Promise<void> {
    // zeromq.js keeps a reference to frames over 128 bytes: copy the borrowed ones it may keep,
    // up to the copy limit; the protocol waits for an acknowledgement of anything larger.
    for (let i = borrowedFrom; i < frames.length; i++) {
      const f = frames[i]!;
      if (f.byteLength > ZMQ_COPIES_BELOW && f.byteLength <= COPY_LIMIT) frames[i] = Buffer.from(f);
    }
    return this.enqueue(dest, frames);
  }

  hold(): void {
    this.holds++;
    if (!this.reading) void this.readLoop();
    this.curve?.gate.serveWhile(this.busy);
  }

  private readonly busy = () => this.holds > 0 && !this.closed;

  release(): void {
    this.holds--;
  }

  poke(): void {
    if (!this.reading && !this.closed) void this.readLoop();
    if (!this.closed) this.curve?.gate.serveWhile(this.busy);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The protocol has had everything that matters acknowledged; what may still be queued are
    // replies to peers that are leaving too, and waiting to deliver those would only delay the exit.
    for (const link of this.links.values()) {
      link.sock.linger = 0;
      link.sock.close();
    }
    this.pull.close();
    this.curve?.gate.close();
  }

  private link(dest: number): Link {
    let link = this.links.get(dest);
    if (link) return link;
    const peer = this.peers[dest];
    if (!peer) throw new MpiError(`transport: no address known for rank ${dest}`);
    const zmqAddr = (peer.zmq ?? {}) as ZmqAddress;
    const endpoint = peer.host === this.host && zmqAddr.ipc ? zmqAddr.ipc : zmqAddr.tcp;
    if (!endpoint) throw new MpiError(`transport: rank ${dest} on host ${peer.host} has no address reachable from host ${this.host}`);
    // PUSH blocks at the high-water mark instead of dropping, and one socket per peer gives each
    // peer its own send queue (zeromq.js allows one pending send per socket). Over tcp,
    // `immediate` makes a send wait for the connection instead of queueing behind one that may
    // never come up, which is what lets pump() notice an unreachable address.
    const tcp = endpoint.startsWith("tcp://");
    // A secured peer takes only CURVE clients with a key of the job: this rank's own.
    if (this.curve && !zmqAddr.key) throw new MpiError(`transport: rank ${dest} on host ${peer.host} has no CURVE key while this rank's connections are secured (are both started by the same tsmpirun, without --insecure?)`);
    const security = zmqAddr.key && this.curve ? { curveServerKey: zmqAddr.key, curvePublicKey: this.curve.keys.publicKey, curveSecretKey: this.curve.keys.secretKey } : {};
    const sock = new zmq.Push({ ...(tcp ? { immediate: true } : {}), ...security });
    sock.connect(endpoint);
    link = { sock, queue: [], busy: false, dest, endpoint, host: peer.host, up: !tcp, token: this.curve?.tokens.to(dest) };
    this.links.set(dest, link);
    return link;
  }

  private warnUnreached(link: Link): void {
    if (this.closed || link.up) return;
    process.stderr.write(
      `tsmpi: rank ${this.rank} (host ${this.host}) has not reached rank ${link.dest} at ${link.endpoint} (host ${link.host}) in ${CONNECT_WARN_MS / 1000} s and keeps trying; ` +
        `if host ${link.host} cannot be reached at that address, choose the network with --tcp-if\n`,
    );
  }

  private enqueue(dest: number, msg: Buffer[]): Promise<void> {
    if (this.closed) return Promise.reject(new MpiError("transport is closed (finalize() was called)"));
    const link = this.link(dest);
    // In the header's frame, not one of its own: each ZeroMQ frame costs a few µs.
    if (link.token) msg[0] = Buffer.concat([link.token, msg[0]!]);
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
        if (!this.curve) this.handlers.message(msg);
        else {
          // The sender is the rank whose token the message carries, whatever its header says.
          const from = this.curve.tokens.sender(msg[0]!);
          if (from === undefined) this.handlers.refused?.("no rank of this job's sender token");
          else {
            msg[0] = msg[0]!.subarray(TOKEN_BYTES);
            this.handlers.message(msg, from);
          }
        }
      }
    } finally {
      this.reading = false;
    }
  }
}
