/**
 * How a rank waiting for shared memory sleeps and is woken. Each rank owns a doorbell in its own
 * segment: a counter that every producer bumps after publishing bytes (or room) for it, and a
 * `sleeping` flag. Waiting means polling for a window longer than one wake-up (a blocked process
 * on these machines takes ~35 µs to wake, so a shorter window blocks on almost every message),
 * yielding the CPU every few dozen polls so that a peer sharing the core can run, and then
 * sleeping in the addon's futex waiter, which uses no CPU.
 *
 * Lost wake-ups are ruled out the futex way: the waiter sets `sleeping`, reads the counter, checks
 * its condition once more, and sleeps only while the counter still holds what it read; a producer
 * publishes, bumps the counter, then wakes if `sleeping` is set.
 */
import type { ShmAddon, Waiter } from "./native.js";

const COUNT = 0;
const SLEEPING = 1;
/** Bytes a doorbell takes in a segment (a cache line of its own). */
export const DOORBELL_BYTES = 64;
/** Polls between sched_yield calls while spinning. */
const POLLS_PER_YIELD = 64;

export interface SpinPolicy {
  /** How long to poll before sleeping, µs (0: sleep at once). */
  spinMicros: number;
  /**
   * How long a wait may then sleep on the JS thread itself, µs, before it hands the wait to the
   * waiter thread (0: at once). Sleeping on the JS thread wakes in one context switch instead of
   * three (waiter thread, libuv, JS thread), which is most of a wait's cost with more ranks than
   * cores; but nothing else of the process runs meanwhile, so it is bounded, and off when ZeroMQ
   * peers need the event loop.
   */
  blockMicros: number;
}

/** Default bound of a wait's sleep on the JS thread: timers and I/O run at most this late. */
const BLOCK_MICROS = 2000;

function envMicros(name: string): number | undefined {
  const v = process.env[name];
  const n = Number(v);
  return v !== undefined && v !== "" && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * Spin long when every rank has a core, briefly when they share (as Open MPI's yield_when_idle).
 * `eventLoopFree`: nothing but shared memory brings this rank messages, so a wait may block the
 * JS thread for a while. TSMPI_SPIN_US and TSMPI_BLOCK_US override the choices.
 */
export function spinPolicy(localRanks: number, cores: number, eventLoopFree: boolean): SpinPolicy {
  return {
    spinMicros: envMicros("TSMPI_SPIN_US") ?? (localRanks <= cores ? 50 : 5),
    blockMicros: eventLoopFree ? (envMicros("TSMPI_BLOCK_US") ?? BLOCK_MICROS) : 0,
  };
}

/** A peer's doorbell, to ring after publishing something for it. */
export class Bell {
  private readonly words: Int32Array;
  constructor(
    private readonly addon: ShmAddon,
    private readonly buffer: ArrayBuffer,
    private readonly byteOffset: number,
  ) {
    this.words = new Int32Array(buffer, byteOffset, 2);
  }

  ring(): void {
    Atomics.add(this.words, COUNT, 1);
    if (Atomics.load(this.words, SLEEPING) !== 0) this.addon.wake(this.buffer, this.byteOffset);
  }
}

interface Pending {
  ready(): boolean;
  resolve(): void;
}

/**
 * This rank's own doorbell, and its one waiting loop: every wait of the rank (receives, sends held
 * up by a full ring) goes through it, so two pollers never race for one wake-up.
 */
export class Doorbell {
  private readonly words: Int32Array;
  private readonly waiter: Waiter;
  private wakeUp: (() => void) | null = null;
  private pending: Pending[] = [];
  private running = false;

  constructor(
    private readonly addon: ShmAddon,
    buffer: ArrayBuffer,
    byteOffset: number,
    private readonly policy: SpinPolicy,
  ) {
    this.words = new Int32Array(buffer, byteOffset, 2);
    this.waiter = addon.waiter(buffer, byteOffset, () => this.wakeUp?.());
  }

  /**
   * Resolves once `ready()` returns true. `ready` is polled often and should only look at ring
   * counters. Waits already running are polled alongside.
   *
   * Polling starts from a macrotask, never inside the caller: a caller that posts a receive and
   * then sends (sendrecv, a halo exchange) must get its sends out before this rank spins.
   */
  until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.pending.push({ ready, resolve });
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.run());
      }
    });
  }

  /** The counter producers bump: a wait whose condition is "anything new" compares it. */
  count(): number {
    return Atomics.load(this.words, COUNT);
  }

  /**
   * Rings this doorbell from its own process: something a pending condition looks at changed
   * outside the rings (a wait was cancelled), so a sleeping loop must poll once more. A loop that
   * is not asleep polls every condition before it sleeps again (this runs on the same thread), so
   * only a sleeping one needs the ring: this is called once per completed receive.
   */
  interrupt(): void {
    if (Atomics.load(this.words, SLEEPING) === 0) return;
    Atomics.add(this.words, COUNT, 1);
    this.addon.wake(this.words.buffer as ArrayBuffer, this.words.byteOffset);
  }

  /** Resolves every pending wait whose condition holds; true if there was one. */
  private settle(): boolean {
    let any = false;
    for (let i = 0; i < this.pending.length; ) {
      const p = this.pending[i]!;
      if (p.ready()) {
        this.pending.splice(i, 1);
        p.resolve();
        any = true;
      } else i++;
    }
    return any;
  }

  private async run(): Promise<void> {
    try {
      /** µs this stretch of waiting has slept on the JS thread. */
      let blocked = 0;
      while (this.pending.length > 0) {
        let settled = this.spin();
        if (!settled) {
          Atomics.store(this.words, SLEEPING, 1);
          const seen = Atomics.load(this.words, COUNT);
          settled = this.settle();
          if (!settled && blocked < this.policy.blockMicros) {
            const t0 = performance.now();
            this.addon.sleep(this.words.buffer as ArrayBuffer, this.words.byteOffset, seen, this.policy.blockMicros - blocked);
            blocked += (performance.now() - t0) * 1000;
          } else if (!settled) {
            await new Promise<void>((resolve) => {
              this.wakeUp = resolve;
              this.addon.arm(this.waiter, seen);
            });
            this.wakeUp = null;
          }
          Atomics.store(this.words, SLEEPING, 0);
        }
        if (settled) {
          blocked = 0;
          // Let the woken callers run (and post their next waits) before polling again.
          await new Promise<void>((r) => setImmediate(r));
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Polls the pending waits for the spin window; true as soon as one was resolved. */
  private spin(): boolean {
    if (this.settle()) return true;
    if (this.policy.spinMicros <= 0) return false;
    const until = performance.now() + this.policy.spinMicros / 1000;
    for (let polls = 1; ; polls++) {
      if (this.settle()) return true;
      if (polls % POLLS_PER_YIELD === 0) {
        if (performance.now() > until) return false;
        this.addon.yieldCpu();
      }
    }
  }

  close(): void {
    this.addon.close(this.waiter);
  }
}
