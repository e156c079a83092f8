/**
 * The rank's side of the launcher's control channel: Node's IPC channel to the process that
 * started the rank (the launcher itself, or the launcher's agent on a remote host). It carries
 * start-up rendezvous, finalize and abort notices; data never goes through it.
 */
import type { RankReport } from "./report.js";
import type { TracePart } from "./trace.js";
import type { PeerAddress } from "./transport/index.js";

/** Messages a rank sends to its launcher. */
export type RankToLauncher =
  | { t: "hello"; rank: number; address: PeerAddress | null }
  | { t: "fin"; rank: number; sentTo: number[] }
  | { t: "report"; rank: number; report: RankReport }
  /** A piece of the rank's trace (--trace); the last one has `last` and is acknowledged. */
  | { t: "trace"; rank: number; part: TracePart; last: boolean }
  /** Answer to "state?": what the rank waits for, the ranks it waits on, and how much has moved. */
  | { t: "state"; rank: number; waits: string[]; on: number[]; moved: number; resources: string[]; stopped?: boolean }
  | { t: "abort"; rank: number; code: number; reason: string };

/** How a peer left: through finalize(), or by exiting without it. */
export type GoneHow = "finalized" | "exited";

/** Messages the launcher sends to a rank. */
export type LauncherToRank =
  | { t: "peers"; table: (PeerAddress | null)[] }
  | { t: "gone"; rank: number; sentTo: number[]; how: GoneHow }
  /** The launcher has a report: the rank may go on to exit. */
  | { t: "ack" }
  /** Asks what the rank waits for (a job that seems to hang, or runs out of time); `where`: with the user's lines. */
  | { t: "state?"; where?: boolean };

type Gone = Extract<LauncherToRank, { t: "gone" }>;

export class ControlChannel {
  private peersWaiter: ((table: (PeerAddress | null)[]) => void) | null = null;
  private ackWaiter: (() => void) | null = null;
  private stateOf: ((where: boolean) => Promise<RankToLauncher>) | null = null;
  private goneHandler: ((g: Gone) => void) | null = null;
  private readonly early: Gone[] = [];

  private constructor() {
    process.on("message", (m: LauncherToRank) => {
      if (m.t === "peers") this.peersWaiter?.(m.table);
      else if (m.t === "ack") this.ackWaiter?.();
      else if (m.t === "state?" && this.stateOf) void this.stateOf(m.where === true).then((s) => this.send(s)).catch(() => {});
      else if (m.t === "gone") {
        if (this.goneHandler) this.goneHandler(m);
        else this.early.push(m);
      }
    });
  }

  /** The channel to the launcher, or null when this process was not started by one. */
  static connect(): ControlChannel | null {
    if (typeof process.send !== "function" || !process.channel || process.env.TSMPI_SIZE === undefined) return null;
    return new ControlChannel();
  }

  send(msg: RankToLauncher): Promise<void> {
    return new Promise((resolve, reject) => {
      process.send!(msg, undefined, {}, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Sends hello and waits for every rank's address. */
  async rendezvous(hello: RankToLauncher & { t: "hello" }): Promise<(PeerAddress | null)[]> {
    const table = new Promise<(PeerAddress | null)[]>((resolve) => (this.peersWaiter = resolve));
    // The channel is unreferenced so that it never keeps a finished rank alive; while we wait for
    // the table it is the only thing that should.
    process.channel?.ref();
    try {
      await this.send(hello);
      return await table;
    } finally {
      this.peersWaiter = null;
      process.channel?.unref();
    }
  }

  /**
   * Sends `msg` and waits until the launcher says it has it (at most `ms`). For what is sent just
   * before the rank exits: messages on the channel are read as they come, but a rank's exit can
   * be seen before its last messages are, and those are then lost.
   */
  async sendAndWait(msg: RankToLauncher, ms = 5000): Promise<void> {
    const acked = new Promise<void>((resolve) => (this.ackWaiter = resolve));
    let timer: NodeJS.Timeout | undefined;
    process.channel?.ref();
    try {
      await this.send(msg);
      await Promise.race([acked, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    } finally {
      clearTimeout(timer);
      this.ackWaiter = null;
      process.channel?.unref();
    }
  }

  /** Answers the launcher's "state?" with `state(where)`. */
  onStateRequest(state: (where: boolean) => Promise<RankToLauncher>): void {
    this.stateOf = state;
  }

  onGone(handler: (g: Gone) => void): void {
    this.goneHandler = handler;
    for (const g of this.early.splice(0)) handler(g);
  }
}
