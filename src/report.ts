/**
 * What a rank did, for `tsmpirun --report`: messages and bytes per peer, time spent waiting in
 * tsmpi calls against the rest, and the slowest calls. Kept only when the launcher asks for it
 * (TSMPI_REPORT=1): otherwise nothing here runs, and the message path pays one null check.
 */
import { performance } from "node:perf_hooks";

/** One rank's summary, as it travels to the launcher at finalize. */
export interface RankReport {
  rank: number;
  host: string;
  wallSeconds: number;
  /** Time with at least one tsmpi call pending (overlapping calls count once). */
  waitSeconds: number;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Per call name: how many, and their summed durations (overlapping calls each count). */
  calls: Record<string, { count: number; seconds: number }>;
  /** The longest calls, longest first: name, peer or root (−1: none), seconds. */
  slowest: { call: string; peer: number; seconds: number }[];
  /** World ranks this one sent to, by bytes, most first: [rank, messages, bytes]. */
  topPeers: [number, number, number][];
}

const SLOWEST = 5;

export class Activity {
  private readonly started = performance.now();
  private messagesSent = 0;
  private messagesReceived = 0;
  private bytesSent = 0;
  private bytesReceived = 0;
  private readonly toPeer = new Map<number, [number, number]>();
  private readonly calls = new Map<string, { count: number; seconds: number }>();
  private slowest: { call: string; peer: number; seconds: number }[] = [];
  /** Calls pending now, and since when at least one has been. */
  private depth = 0;
  private busySince = 0;
  private waited = 0;

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

  /** Times `call` (with `peer`, −1 for none) until `p` settles; returns `p`'s outcome. */
  track<T>(call: string, peer: number, p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    if (this.depth++ === 0) this.busySince = t0;
    const done = () => {
      const t1 = performance.now();
      if (--this.depth === 0) this.waited += t1 - this.busySince;
      const seconds = (t1 - t0) / 1000;
      const c = this.calls.get(call);
      if (c) (c.count++, (c.seconds += seconds));
      else this.calls.set(call, { count: 1, seconds });
      if (this.slowest.length < SLOWEST || seconds > this.slowest[this.slowest.length - 1]!.seconds) {
        this.slowest.push({ call, peer, seconds });
        this.slowest.sort((a, b) => b.seconds - a.seconds);
        this.slowest.length = Math.min(this.slowest.length, SLOWEST);
      }
    };
    return p.then(
      (v) => (done(), v),
      (e: unknown) => {
        done();
        throw e;
      },
    );
  }

  report(rank: number, host: string): RankReport {
    const now = performance.now();
    const waited = this.waited + (this.depth > 0 ? now - this.busySince : 0);
    return {
      rank,
      host,
      wallSeconds: (now - this.started) / 1000,
      waitSeconds: waited / 1000,
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      calls: Object.fromEntries(this.calls),
      slowest: this.slowest,
      topPeers: [...this.toPeer].map(([r, [m, b]]): [number, number, number] => [r, m, b]).sort((a, b) => b[2] - a[2]).slice(0, 3),
    };
  }
}

/** This rank's activity record, or null when no report was asked for. */
export const activity: Activity | null = process.env.TSMPI_REPORT === "1" ? new Activity() : null;

/** The calls of a communicator that are timed, and which argument names the peer or root. */
const TIMED: Record<string, number | null> = {
  send: 1, recv: 0, recvMessage: 0, recvInto: 1, sendrecv: 1, sendrecvInto: 1, probe: 0,
  barrier: null, bcast: 1, reduce: 2, allreduce: null, gather: 1, allgather: null, scatter: 1,
  alltoall: null, scan: null, exscan: null, split: null, dup: null, cart: null,
};

const ROOTED = new Set(["bcast", "reduce", "gather", "scatter"]);

/**
 * Wraps the timed methods of `proto` (Communicator.prototype) so that each call is timed. Done
 * once, and only when a report is asked for: a job without --report runs the methods as they are.
 */
export function instrument(proto: object, a: Activity): void {
  const methods = proto as Record<string, (...args: unknown[]) => unknown>;
  for (const [name, peerArg] of Object.entries(TIMED)) {
    const f = methods[name];
    if (typeof f !== "function") continue;
    methods[name] = function (this: unknown, ...args: unknown[]) {
      const r = f.apply(this, args);
      // A root left out is 0; a source left out is ANY_SOURCE (−2).
      const peer = peerArg === null ? -1 : typeof args[peerArg] === "number" ? (args[peerArg] as number) : ROOTED.has(name) ? 0 : -2;
      return r instanceof Promise ? a.track(name, peer, r) : r;
    };
  }
}
