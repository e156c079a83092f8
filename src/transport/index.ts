/**
 * The transport layer: byte movers between ranks (Open MPI's BTLs), and the router that picks one
 * per peer (its BML). A transport delivers a message's frames to a rank, in order per peer, and says
 * when the caller's buffers are free; it knows nothing of envelopes, matching or acknowledgements,
 * which are the point-to-point protocol's (src/protocol.ts, src/p2p.ts).
 *
 * Each peer is reached by the best transport that can reach it: shared memory (shm.ts) on the same
 * host, else ZeroMQ (zmq.ts: ipc on the same host, tcp between hosts). A message to oneself never
 * reaches this layer.
 */
import { cpus } from "node:os";
import { MpiError } from "../errors.js";
import { spinPolicy } from "./doorbell.js";
import { loadShm } from "./native.js";

/**
 * How other ranks reach this one: the host, plus one entry per transport in a shape only that
 * transport reads. The launcher passes the table around without looking inside.
 */
export interface PeerAddress {
  host: string;
  [transport: string]: unknown;
}

/**
 * What a transport's `send` returns when the message went out at once: one shared promise, so
 * that callers can tell (`=== SENT`) and skip wrapping it, and no promise is made per message.
 */
export const SENT: Promise<void> = Promise.resolve();

export interface TransportHandlers {
  /**
   * A message arrived: its frames, the protocol's header first; `from` is the sending rank when
   * the transport knows it for sure (a shared-memory ring has one writer), else undefined.
   */
  message(frames: Buffer[], from?: number): void;
  /**
   * Optional, for a transport that copies each payload out of its own memory: a message of a
   * header and one payload frame of `bytes` bytes is arriving from `src`, and its header has been
   * read. Returns where to write the payload if a receive is already waiting for it (the next
   * `message` from `src` then carries a view of that memory), or undefined for a new buffer.
   */
  landing?(src: number, header: Buffer, bytes: number): Uint8Array | undefined;
  /**
   * The link from `src` cannot be read on (it announced a message larger than the limit, say):
   * the rank cannot go on without what that peer sends, and says why.
   */
  broken(src: number, reason: string): void;
  /** A message the transport itself would not deliver (it cannot tell which rank sent it): dropped and counted. */
  refused?(reason: string): void;
}

/**
 * Bytes of shared memory a transport that offers boards keeps per context id (below
 * BOARD_CONTEXTS) in each rank's memory: what one rank posts for a communicator's collectives,
 * laid out by src/board.ts.
 */
export const BOARD_BYTES = 1024;
export const BOARD_CONTEXTS = 64;

/**
 * Something waiting on a board rather than on a message: the transport's waiting loop calls
 * `fire()` once `ready()` holds (and looks again after that while it is watched).
 */
export interface BoardWatch {
  ready(): boolean;
  fire(): void;
}

/**
 * The boards of one communicator's members, for collectives through shared memory (Open MPI's
 * coll/sm): each member writes only its own, and reads the others'.
 */
export interface SharedBoards {
  /** Each member's board (BOARD_BYTES), in the communicator's rank order. */
  readonly areas: readonly Int32Array[];
  /**
   * After this rank wrote its board: members that wait look (as after a publish into their
   * rings: where ranks share cores, their doorbell counters move; elsewhere only sleepers are
   * rung). Where more ranks are awake than there are cores, this rank then yields its core.
   */
  notify(): void;
  /** Serves `w` in the waiting loop until `unwatch(w)`; holds the loop open meanwhile. */
  watch(w: BoardWatch): void;
  unwatch(w: BoardWatch): void;
  /** The members' stages, for reductions too large for a board; null where there are none. */
  readonly stages: SharedStages | null;
}

/**
 * Each member's stage: shared memory that a rank copies a large reduction's array into for the
 * others to read (see src/board.ts). A rank has one stage, whatever the communicator: a board
 * takes it and keeps it until another board asks for it.
 */
export interface SharedStages {
  /** Each member's stage, in the communicator's rank order (all of one size). */
  readonly areas: readonly Uint8Array[];
  /**
   * Makes `holder` this rank's stage's holder: false while another holder has it and will not
   * release it.
   */
  take(holder: StageHolder): boolean;
}

/** What has a rank's stage: a communicator's board, which may keep it after a call (see board.ts). */
export interface StageHolder {
  /** Asked when another wants the stage: gives it up (true) if nobody reads it any more. */
  release(): boolean;
}

export interface Transport {
  /** This transport's entry of the rank's address (see PeerAddress). */
  readonly address: unknown;
  /**
   * Borrowed frames up to this size are copied by `send` to `dest`, so the caller's memory is free
   * when it resolves. Larger ones are still read after that, until the receiver has the message:
   * the protocol then waits for its acknowledgement.
   */
  copyLimit(dest: number): number;
  /**
   * Payloads up to this many bytes to `dest` travel inside the header frame (a transport's eager
   * limit, as each Open MPI BTL has its own): a frame of its own costs a ZeroMQ message a few µs,
   * a shared-memory ring next to nothing, and there a payload in a frame of its own is copied
   * straight into a waiting recvInto.
   */
  inlineLimit(dest: number): number;
  setPeers(table: readonly PeerAddress[]): void;
  /** After setPeers: whether this transport can carry messages to `dest`. */
  reaches(dest: number): boolean;
  /**
   * Queues a message for `dest`. Frames from index `borrowedFrom` on are views of the caller's
   * memory. Resolves once the message is queued and the copied frames are ours.
   */
  send(dest: number, frames: Buffer[], borrowedFrom: number): Promise<void>;
  /** Keeps messages flowing in while something waits for one; pair every hold with a release. */
  hold(): void;
  release(): void;
  /** Reads whatever has arrived without holding the receive path open (for iprobe). */
  poke(): void;
  /**
   * Optional, for a transport that waits on the JS thread (spinning, or asleep in a system call):
   * ms it spent so, when told to count them (`OpenOptions.timeWaits`). Waits in the event loop
   * are not in it: Node counts those (performance.eventLoopUtilization).
   */
  waitedMs?(): number;
  /** Optional, for a transport whose waits sleep in the kernel: how many times they did (see Doorbell.sleeps). */
  sleeps?(): number;
  /**
   * Optional: the boards of the communicator of context id `contextId` whose members are the
   * world ranks `members`, if this transport reaches every one of them through memory it shares
   * with them; null otherwise (the collectives then use messages).
   */
  boards?(contextId: number, members: readonly number[]): SharedBoards | null;
  /** Closes the transport; call after the protocol has flushed what matters. */
  close(): void;
}

/** `--transport` / TSMPI_TRANSPORT: how ranks on one host talk. */
export type TransportChoice = "auto" | "shm" | "zmq";
export const TRANSPORT_CHOICES: readonly TransportChoice[] = ["auto", "shm", "zmq"];

export function isTransportChoice(v: string): v is TransportChoice {
  return (TRANSPORT_CHOICES as readonly string[]).includes(v);
}

export interface OpenOptions {
  rank: number;
  host: string;
  choice: TransportChoice;
  /** Ranks of the job on this host, this one included. */
  localSize: number;
  /** This rank's index among them (the one that prints the fallback warning is 0). */
  localRank: number;
  /** This job's directory on this host: ipc sockets live in it, segment names derive from it. */
  jobDir?: string;
  /** Address other hosts reach this rank at; set only when the job spans hosts. */
  tcpAddress?: string;
  /** tsmpirun --insecure: connections between hosts without CURVE (anyone who reaches a port may send). */
  insecure?: boolean;
  /** Count the time spent waiting on the JS thread (for --report; see Transport.waitedMs). */
  timeWaits?: boolean;
}

/** The transports of one rank, and which one each peer is reached by. */
export class Router implements Transport {
  private routes: Transport[] = [];

  private constructor(
    private readonly rank: number,
    /** In order of preference. */
    private readonly transports: ReadonlyArray<{ name: string; transport: Transport }>,
  ) {}

  /**
   * Opens what this rank needs: shared memory when other ranks share its host (unless `zmq` was
   * chosen), ZeroMQ when the job spans hosts or shared memory is not used. Ranks that talk only
   * through shared memory never load ZeroMQ (a visible share of a rank's start-up).
   */
  static async open(opts: OpenOptions, handlers: TransportHandlers): Promise<Router> {
    const transports: { name: string; transport: Transport }[] = [];
    if (opts.choice !== "zmq" && opts.localSize > 1) {
      const shm = loadShm();
      if (shm.addon) {
        const { ShmTransport } = await import("./shm.js");
        const jobDir = opts.jobDir ?? `tsmpi-${process.ppid}`;
        // Without ZeroMQ peers (one host), only shared memory brings messages: a wait may block the JS thread.
        const policy = spinPolicy(cpus().length, opts.tcpAddress === undefined, opts.timeWaits);
        transports.push({ name: "shm", transport: ShmTransport.open(shm.addon, { rank: opts.rank, host: opts.host, localSize: opts.localSize, jobDir, policy }, handlers) });
      } else if (opts.choice === "shm") {
        throw new MpiError(`--transport shm: ${shm.error}`);
      } else if (opts.localRank === 0) {
        process.stderr.write(`tsmpi: warning: ranks on host ${opts.host} talk through ZeroMQ ipc, not shared memory: ${shm.error}\n`);
      }
    }
    if (transports.length === 0 || opts.tcpAddress !== undefined) {
      const { ZmqTransport } = await import("./zmq.js");
      const secure = opts.tcpAddress !== undefined && !opts.insecure;
      const zmq = await ZmqTransport.open({ rank: opts.rank, host: opts.host, ipcDir: opts.jobDir, tcpAddress: opts.tcpAddress, secure }, handlers);
      transports.push({ name: "zmq", transport: zmq });
    }
    return new Router(opts.rank, transports);
  }

  get address(): Record<string, unknown> {
    return Object.fromEntries(this.transports.map((t) => [t.name, t.transport.address]));
  }

  setPeers(table: readonly PeerAddress[]): void {
    for (const { transport } of this.transports) transport.setPeers(table);
    this.routes = table.map((peer, dest) => {
      if (dest === this.rank) return this.transports[0]!.transport; // never used: p2p delivers to itself
      const t = this.transports.find(({ transport }) => transport.reaches(dest));
      if (!t) {
        const offered = Object.keys(peer).filter((k) => k !== "host");
        throw new MpiError(
          `rank ${this.rank} (host ${table[this.rank]?.host}) cannot reach rank ${dest} (host ${peer.host}): ` +
            `it offers ${offered.join(", ") || "nothing"}, this rank has ${this.transports.map((x) => x.name).join(", ")} (are both started with the same --transport?)`,
        );
      }
      return t.transport;
    });
  }

  reaches(dest: number): boolean {
    return this.routes[dest] !== undefined;
  }

  /** Boards when every other member is reached by one transport that offers them. */
  boards(contextId: number, members: readonly number[]): SharedBoards | null {
    const others = members.filter((m) => m !== this.rank);
    const t = others.length > 0 ? this.routes[others[0]!] : undefined;
    if (!t?.boards || others.some((m) => this.routes[m] !== t)) return null;
    return t.boards(contextId, members);
  }

  copyLimit(dest: number): number {
    return this.routes[dest]!.copyLimit(dest);
  }

  inlineLimit(dest: number): number {
    return this.routes[dest]!.inlineLimit(dest);
  }

  send(dest: number, frames: Buffer[], borrowedFrom: number): Promise<void> {
    const t = this.routes[dest];
    if (!t) return Promise.reject(new MpiError(`transport: no route to rank ${dest}`));
    return t.send(dest, frames, borrowedFrom);
  }

  hold(): void {
    for (const { transport } of this.transports) transport.hold();
  }

  release(): void {
    for (const { transport } of this.transports) transport.release();
  }

  poke(): void {
    for (const { transport } of this.transports) transport.poke();
  }

  waitedMs(): number {
    let ms = 0;
    for (const { transport } of this.transports) ms += transport.waitedMs?.() ?? 0;
    return ms;
  }

  sleeps(): number {
    let n = 0;
    for (const { transport } of this.transports) n += transport.sleeps?.() ?? 0;
    return n;
  }

  close(): void {
    for (const { transport } of this.transports) transport.close();
  }
}
