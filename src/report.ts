/**
 * What a rank did, for `tsmpirun --report`: messages and bytes per peer, time spent waiting in
 * tsmpi calls against the rest, and the slowest calls. Kept only when the launcher asks for it
 * (TSMPI_REPORT=1): otherwise nothing here runs, and the message path pays one null check.
 */
import { performance } from "node:perf_hooks";
import { ANY_SOURCE } from "./constants.js";
import { NONE } from "./trace.js";

/** One rank's summary, as it travels to the launcher at finalize. */
export interface RankReport {
  rank: number;
  host: string;
  wallSeconds: number;
  /**
   * Time blocked in tsmpi: with at least one tsmpi call pending and nothing to run (the event
   * loop idle, or the transport polling or asleep). A call left pending while the rank computes
   * (a halo exchange overlapped with the interior) does not count as waiting.
   */
  waitSeconds: number;
  /**
   * Times a wait of this rank went to sleep in the kernel (shared memory; 0 over ZeroMQ, whose
   * waits are the event loop's). Waking costs tens of µs: with more ranks than cores, a run that
   * sleeps more is a slower run (heat on 4 ranks on 2 cores: ~500 sleeps in all at 1000 M
   * cell updates/s, ~2000 at 700 M).
   */
  sleeps: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /**
   * Per call name: how many, their summed durations (overlapping calls each count), and the
   * waiting (as waitSeconds) while at least one of them was pending: a halo exchange's waiting
   * counts for `exchange` and for the receives it made.
   */
  calls: Record<string, CallRecord>;
  /** The longest calls, longest first: name, peer or root (−1: none), seconds. */
  slowest: { call: string; peer: number; seconds: number }[];
  /** World ranks this one sent to, by bytes, most first: [rank, messages, bytes]. */
  topPeers: [number, number, number][];
}

export interface CallRecord {
  count: number;
  seconds: number;
  waitSeconds: number;
}

/** A call name's record while the rank runs: the report's, and how many of those calls are pending. */
interface Tally extends CallRecord {
  pending: number;
}

const SLOWEST = 5;

/**
 * Node's own count of the time its event loop has waited for events (what
 * performance.eventLoopUtilization() reports as idle, read without making its object).
 */
const nodeTiming = performance.nodeTiming;

export class Activity {
  private readonly started = performance.now();
  private messagesSent = 0;
  private messagesReceived = 0;
  private bytesSent = 0;
  private bytesReceived = 0;
  private readonly toPeer = new Map<number, [number, number]>();
  private readonly calls = new Map<string, Tally>();
  private slowest: { call: string; peer: number; seconds: number }[] = [];
  /** Calls pending now; idle time when last looked at; idle time while some calls were pending. */
  private depth = 0;
  private idleSeen = 0;
  private waited = 0;
  /** ms the transport has waited on the JS thread, and how often it slept (set once it is open). */
  private transportWaited: () => number = () => 0;
  private transportSleeps: () => number = () => 0;

  /** Where to read how long the transport has waited on the JS thread, and how often it slept. */
  countWaits(waited: () => number, sleeps: () => number): void {
    this.transportWaited = waited;
    this.transportSleeps = sleeps;
  }

  /** ms this rank has been idle so far: in the event loop, or in the transport's waits. */
  private idle(): number {
    return nodeTiming.idleTime + this.transportWaited();
  }

  sent(dest: number, bytes: number): void {
    this.messagesSent++;
    this.bytesSent += bytes;
    const p = this.toPeer.get(dest);
    if (p) {
      p[0]++;
      p[1] += bytes;
    } else this.toPeer.set(dest, [1, bytes]);
  }

  received(bytes: number): void {
    this.messagesReceived++;
    this.bytesReceived += bytes;
  }

  /**
   * Adds the idle time since the last look to the waiting, and to each call name pending (idle
   * time only grows while the rank is not running, so between two calls' ends and beginnings).
   */
  private look(): void {
    const now = this.idle();
    const d = now - this.idleSeen;
    this.idleSeen = now;
    if (this.depth === 0 || d <= 0) return;
    this.waited += d;
    for (const c of this.calls.values()) if (c.pending > 0) c.waitSeconds += d / 1000;
  }

  private tally(call: string): Tally {
    let c = this.calls.get(call);
    if (!c) this.calls.set(call, (c = { count: 0, seconds: 0, waitSeconds: 0, pending: 0 }));
    return c;
  }

  /** A call begins. */
  begin(call: string): void {
    this.look();
    this.depth++;
    this.tally(call).pending++;
  }

  /** The call begun at `t0` ended at `t1`; `peer`: its peer or root, NONE when it has none. */
  end(call: string, peer: number, _world: number, _tag: number, _ctx: number, t0: number, t1: number): void {
    this.look();
    this.depth--;
    const seconds = (t1 - t0) / 1000;
    const c = this.tally(call);
    c.pending--;
    c.count++;
    c.seconds += seconds;
    if (this.slowest.length < SLOWEST || seconds > this.slowest[this.slowest.length - 1]!.seconds) {
      // In the report −1 is "no peer" and −2 "any source".
      this.slowest.push({ call, peer: peer === NONE ? -1 : peer === ANY_SOURCE ? -2 : peer, seconds });
      this.slowest.sort((a, b) => b.seconds - a.seconds);
      this.slowest.length = Math.min(this.slowest.length, SLOWEST);
    }
  }

  report(rank: number, host: string): RankReport {
    const now = performance.now();
    this.look();
    return {
      rank,
      host,
      wallSeconds: (now - this.started) / 1000,
      waitSeconds: this.waited / 1000,
      sleeps: this.transportSleeps(),
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      calls: Object.fromEntries([...this.calls].map(([call, { count, seconds, waitSeconds }]) => [call, { count, seconds, waitSeconds }])),
      slowest: this.slowest,
      topPeers: [...this.toPeer].map(([r, [m, b]]): [number, number, number] => [r, m, b]).sort((a, b) => b[2] - a[2]).slice(0, 3),
    };
  }
}

/** This rank's activity record, or null when no report was asked for. */
export const activity: Activity | null = process.env.TSMPI_REPORT === "1" ? new Activity() : null;
