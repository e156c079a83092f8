/**
 * How a rank waiting for shared memory sleeps and is woken. Each rank owns a doorbell in its own
 * segment: a counter and a `sleeping` flag. Waiting means polling for a window longer than one
 * wake-up (a blocked process on these machines takes ~35 µs to wake, so a shorter window blocks on
 * almost every message), yielding the CPU now and then so that a peer sharing the core can run,
 * and then sleeping in the addon's futex waiter, which uses no CPU.
 *
 * While the host has a core for each of its ranks, a poll looks at the counter and at the client's
 * rings themselves (`arrived`): a producer that publishes bytes for a rank that is awake writes
 * only its ring, so the message crosses from one core to the other in the ring's lines alone, not
 * in the doorbell's line as well (8 B ping-pong: −0.1 µs one way). Room made for a waiting producer
 * and bytes for a rank that sleeps bump the counter. Where ranks share cores (a Crowd), every
 * publish bumps it and a poll reads it alone: polling every ring was slower there (heat on 4 ranks
 * and 2 cores: 4–8 %), for reasons not pinned down.
 *
 * Lost wake-ups are ruled out the futex way: the waiter sets `sleeping`, reads the counter, checks
 * its rings and its condition once more, and sleeps only while the counter still holds what it
 * read; a producer publishes, then reads `sleeping`, and if it is set bumps the counter and wakes
 * the waiter (Bell.published; room made, or bytes for a rank that does not poll its rings, bump
 * the counter in any case). Atomics stores are sequentially consistent: either the waiter sees
 * the bytes or the producer sees the flag.
 */
// Imported rather than the global: Node's global `performance` is a getter, a call on every read.
import { performance } from "node:perf_hooks";
import type { ShmAddon, Waiter } from "./native.js";

const COUNT = 0;
const SLEEPING = 1;
/** Bytes a doorbell takes in a segment (a cache line of its own). */
export const DOORBELL_BYTES = 64;
/** Polls between looks at the clock while spinning (a look costs ~45 ns here, a poll a few). */
const POLLS_PER_LOOK = 64;
/**
 * While no more of the host's ranks are awake than it has cores, µs of spinning between
 * sched_yield calls. A yield is a system call (~0.5 µs on these virtual machines), and a message
 * that arrives during one is seen that much later: yielding every 64 polls, as when ranks share
 * cores, cost the 8-byte ping-pong ~0.2 µs one way. Other processes still get the core within this.
 */
const YIELD_EVERY_US = 10;

export interface SpinPolicy {
  /** How long to poll before sleeping, µs (0: sleep at once), while no more ranks are awake than there are cores. */
  spinMicros: number;
  /**
   * How long to poll while more ranks of the host are awake than it has cores: a rank that polls
   * then holds a core that a peer needs, so it polls briefly and sleeps (Open MPI's
   * yield_when_idle). Which of the two applies is looked up at each wait (see Crowd).
   */
  crowdedSpinMicros: number;
  /** The host's cores. */
  cores: number;
  /**
   * How long a wait may then sleep on the JS thread itself, µs, before it hands the wait to the
   * waiter thread (0: at once). Sleeping on the JS thread wakes in one context switch instead of
   * three (waiter thread, libuv, JS thread), which is most of a wait's cost with more ranks than
   * cores; but nothing else of the process runs meanwhile, so it is bounded, and off when ZeroMQ
   * peers need the event loop.
   */
  blockMicros: number;
  /** Count the time spent waiting on the JS thread (for --report): a few clock reads per wait. */
  timeWaits?: boolean;
}

/**
 * After a wake-up, the loop may go on inside the microtask queue instead of waiting for the event
 * loop's next turn (~0.9 µs here, an epoll_wait each): see `settle`. It looks for the woken
 * callers' next calls for up to SETTLE_TICKS microtask turns, starts polling once no call has come
 * for QUIET_TICKS of them, polls for at most MICRO_SPIN_US there, and gives the event loop a turn
 * at least every TURN_MS whatever happens. A poll there that finds nothing turns this off for the
 * next MICRO_BACKOFF wake-ups: the pattern of calls does not answer that fast. Only while no
 * more of the host's ranks are awake than it has cores (with 4 ranks on 2 cores, all awake, heat
 * ran ~9 % slower with it; see crowded()), and only where a wait may hold the JS thread at all
 * (policy.blockMicros > 0: no ZeroMQ peers, and TSMPI_BLOCK_US not 0).
 */
const SETTLE_TICKS = 16;
const QUIET_TICKS = 2;
const MICRO_SPIN_US = 20;
const TURN_MS = 1;
const MICRO_BACKOFF = 64;
/**
 * settle's turns are queued as reactions to this promise, not with queueMicrotask: Node's
 * queueMicrotask makes an AsyncResource and a bound function per call and enters its async
 * scope to run it, and a message takes about three turns (8 B ping-pong: 2.15 → 2.01 µs).
 */
const RESOLVED = Promise.resolve();

/** Default bound of a wait's sleep on the JS thread: timers and I/O run at most this late. */
const BLOCK_MICROS = 2000;

function envMicros(name: string): number | undefined {
  const v = process.env[name];
  const n = Number(v);
  return v !== undefined && v !== "" && Number.isFinite(n) && n >= 0 ? n : undefined;
}

/**
 * Spin long when the ranks that are awake have a core each, briefly when they share one (as Open
 * MPI's yield_when_idle). `eventLoopFree`: nothing but shared memory brings this rank messages, so
 * a wait may block the JS thread for a while. TSMPI_SPIN_US (both windows) and TSMPI_BLOCK_US
 * override the choices.
 */
export function spinPolicy(cores: number, eventLoopFree: boolean, timeWaits = false): SpinPolicy {
  const fixed = envMicros("TSMPI_SPIN_US");
  return {
    spinMicros: fixed ?? 50,
    crowdedSpinMicros: fixed ?? 5,
    cores,
    blockMicros: eventLoopFree ? (envMicros("TSMPI_BLOCK_US") ?? BLOCK_MICROS) : 0,
    timeWaits,
  };
}

/**
 * How many ranks of the host are asleep in a wait: one counter in shared memory that every rank's
 * doorbell raises before it sleeps and lowers when it wakes. The ranks that are awake (computing,
 * polling) are the host's ranks less those; when they fit the cores, a wait may poll for the long
 * window, as nobody needs the core it holds. With 4 ranks on 2 cores, 2 of them blocked, the other
 * two then ping-pong as if alone. A rank that has exited still counts as awake: the others poll
 * briefly, as they did before the count existed.
 */
export class Crowd {
  private readonly word: Int32Array;
  constructor(
    buffer: ArrayBuffer,
    byteOffset: number,
    /** Ranks on the host. */
    readonly ranks: number,
  ) {
    this.word = new Int32Array(buffer, byteOffset, 1);
  }

  /** Ranks of the host not asleep in a wait now. */
  awake(): number {
    return this.ranks - Atomics.load(this.word, 0);
  }

  asleep(): void {
    Atomics.add(this.word, 0, 1);
  }

  woke(): void {
    Atomics.sub(this.word, 0, 1);
  }
}

/** A peer's doorbell, to ring after publishing something for it. */
export class Bell {
  private readonly words: Int32Array;
  constructor(
    private readonly addon: ShmAddon,
    private readonly buffer: ArrayBuffer,
    private readonly byteOffset: number,
    /** The peer's loop polls its rings while awake (its host has a core per rank; see Doorbell.poll). */
    private readonly ringsPolled = false,
  ) {
    this.words = new Int32Array(buffer, byteOffset, 2);
  }

  /** After making room (or anything its rings do not show): the peer's loop looks again. */
  ring(): void {
    Atomics.add(this.words, COUNT, 1);
    if (Atomics.load(this.words, SLEEPING) !== 0) this.addon.wake(this.buffer, this.byteOffset);
  }

  /** After publishing bytes in one of the peer's rings: a peer that polls them and is awake needs nothing more. */
  published(): void {
    if (this.ringsPolled && Atomics.load(this.words, SLEEPING) === 0) return;
    this.ring();
  }
}

/** What the waiting loop serves: the shared-memory transport. */
export interface DoorbellClient {
  /** Something waits (a receive, a send held up by a full ring): keep the loop running. */
  active(): boolean;
  /**
   * Bytes wait in a ring that progress() has not read, or a board shows what a watch waits for
   * (see board.ts). `sure`: read with Atomics, as the check
   * before sleeping must be (it orders after the `sleeping` flag's store); otherwise plain reads,
   * as a spin makes on every poll (an Atomics call costs ~8 ns here, a plain read ~1).
   */
  arrived(sure: boolean): boolean;
  /**
   * Reads what has arrived and pushes what waited for room; called when bytes arrived or the
   * counter moved.
   * True if it handed over a message or completed a send: callers may be waiting to run.
   */
  progress(): boolean;
}

/**
 * This rank's own doorbell and its one waiting loop: every wait of the rank (receives, sends held
 * up by a full ring) is this loop calling `progress()` whenever the counter moves, so two pollers
 * never race for one wake-up, and a message is handled in the loop's own turn rather than through
 * a chain of promises.
 */
export class Doorbell {
  private readonly words: Int32Array;
  private readonly waiter: Waiter;
  private wakeUp: (() => void) | null = null;
  private running = false;
  /** The host's count of sleeping ranks, once the transport has mapped it (see Crowd). */
  crowd: Crowd | null = null;
  /** The counter when `progress()` last ran, and how often it has run. */
  private seen = 0;
  private progressed = 0;
  /**
   * With `policy.timeWaits`: ms spent polling and sleeping on the JS thread with nothing to do,
   * and when the current stretch of it began (−1: not in one). The stretch is closed before each
   * progress(), so a call that progress() ends finds its wait counted already.
   */
  waitedMs = 0;
  private waitingSince = -1;
  /** µs the current stretch of waiting has slept on the JS thread. */
  private blocked = 0;
  /**
   * Times a wait went to sleep in the kernel (on the JS thread or in the waiter thread), for
   * --report: each ends with a wake-up that costs tens of µs, so with more ranks than cores a
   * job's speed follows this count.
   */
  sleeps = 0;

  /** Calls of start() and touch() so far, and their count when `settle` last looked. */
  private calls = 0;
  private callsSeen = 0;
  /** Microtask turns `settle` has waited, how many of them in a row saw no call, and whether any did. */
  private ticks = 0;
  private quiet = 0;
  private called = false;
  /** When the loop last gave the event loop a turn (ms), and wake-ups left before `settle` is tried again. */
  private turnAt = 0;
  private backoff = 0;

  constructor(
    private readonly addon: ShmAddon,
    buffer: ArrayBuffer,
    byteOffset: number,
    private readonly policy: SpinPolicy,
    private readonly client: DoorbellClient,
  ) {
    this.words = new Int32Array(buffer, byteOffset, 2);
    this.waiter = addon.waiter(buffer, byteOffset, () => {
      const resume = this.wakeUp;
      this.wakeUp = null;
      resume?.();
    });
  }

  /**
   * Starts the loop unless it runs; it stops by itself once the client is no longer active.
   * It starts from a macrotask, never inside the caller: a caller that posts a receive and then
   * sends (sendrecv, a halo exchange) must get its sends out before this rank spins.
   */
  start(): void {
    this.calls++;
    if (this.running) return;
    this.running = true;
    setImmediate(this.begin);
  }

  /**
   * Rings this doorbell from its own process: the client stopped being active while the loop may
   * be asleep (a wait was given up), so it must look once more. A loop that is not asleep checks
   * before it sleeps again (this runs on the same thread), so only a sleeping one needs the ring.
   */
  interrupt(): void {
    if (Atomics.load(this.words, SLEEPING) === 0) return;
    Atomics.add(this.words, COUNT, 1);
    this.addon.wake(this.words.buffer as ArrayBuffer, this.words.byteOffset);
  }

  /**
   * Runs `progress()` if bytes arrived or the counter moved since it last ran; true if that woke
   * someone. Only a host with a core per rank (no Crowd) looks at the rings: elsewhere producers
   * bump the counter for every publish (the transport makes their Bells so).
   */
  private poll(): boolean {
    const polled = this.crowd === null;
    // Where the rings are polled, plain reads, as in arrived(false): whether to look, not what is there.
    const c = polled ? this.words[COUNT]! : Atomics.load(this.words, COUNT);
    if (c === this.seen && !(polled && this.client.arrived(false))) return false;
    this.seen = c;
    this.progressed++;
    if (this.waitingSince < 0) return this.client.progress();
    this.waitedMs += performance.now() - this.waitingSince;
    const woke = this.client.progress();
    this.waitingSince = performance.now();
    return woke;
  }

  /** A send went out (or was queued): the caller is still busy (see settle). */
  touch(): void {
    this.calls++;
  }

  /**
   * progress() woke callers: the loop resumes once they have made their next calls. A microtask
   * (settle) when it may hold the JS thread (see SETTLE_TICKS) and the event loop had a turn
   * lately, else the event loop's next turn.
   */
  private resume(): void {
    if (this.crowded() || this.policy.blockMicros <= 0 || this.backoff > 0 || performance.now() - this.turnAt > TURN_MS) {
      if (this.backoff > 0) this.backoff--;
      setImmediate(this.afterTurn);
      return;
    }
    this.callsSeen = this.calls;
    this.ticks = 0;
    this.quiet = 0;
    this.called = false;
    void RESOLVED.then(this.settle);
  }

  /**
   * A microtask turn after a wake-up. The woken callers run in the turns before and between these
   * (their promises were resolved first); once one has made a call into tsmpi and then none has
   * come for QUIET_TICKS turns, they are waiting, and the loop polls right here: the answer to a
   * message that was just sent often comes within a few µs, and an event loop turn would cost as
   * much. Callers that make no call within SETTLE_TICKS turns get the event loop's next turn.
   */
  private readonly settle = (): void => {
    if (this.calls !== this.callsSeen) {
      this.callsSeen = this.calls;
      this.called = true;
      this.quiet = 0;
    } else this.quiet++;
    if (this.called && this.quiet >= QUIET_TICKS) this.run(false, true);
    else if (++this.ticks < SETTLE_TICKS) void RESOLVED.then(this.settle);
    else setImmediate(this.afterTurn);
  };

  /** The loop starts: whatever arrived before counts as news. */
  private readonly begin = (): void => {
    this.turnAt = performance.now();
    this.seen = Atomics.load(this.words, COUNT);
    this.blocked = 0;
    this.run(this.client.progress());
  };

  /** The turn after a wake-up has passed: the woken callers have posted their next waits, if any. */
  private readonly afterTurn = (): void => {
    this.turnAt = performance.now();
    this.blocked = 0;
    this.run(false);
  };

  /** The waiter thread saw the counter move (or was interrupted). */
  private readonly woken = (): void => {
    this.turnAt = performance.now();
    this.crowd?.woke();
    Atomics.store(this.words, SLEEPING, 0);
    this.run(this.poll());
  };

  /**
   * The waiting loop, as plain callbacks rather than an async function: a turn of the event loop
   * costs one setImmediate and no promise or suspended frame, which every message takes (an
   * async loop allocated ~480 bytes per message). `moved`: progress() just woke someone.
   * `inMicrotask`: called by settle, where it polls briefly and never sleeps (queued microtasks
   * and the event loop wait behind it).
   */
  private run(moved: boolean, inMicrotask = false): void {
    let done = true;
    try {
      for (;;) {
        if (moved) {
          // Let the callers that progress() woke run (and post their next waits) first. The loop
          // looks for those waits after that rather than ending at once: a rank that answers a
          // message with a send and a receive keeps one loop going instead of starting another.
          this.resume();
          done = false;
          return;
        }
        if (!this.client.active()) return;
        moved = this.spin(inMicrotask ? Math.min(MICRO_SPIN_US, this.spinWindow()) : this.spinWindow());
        if (moved) continue;
        if (inMicrotask) {
          this.backoff = MICRO_BACKOFF;
          setImmediate(this.afterTurn);
          done = false;
          return;
        }
        Atomics.store(this.words, SLEEPING, 1);
        // Producers publish, then bump the counter and wake if SLEEPING is set: a bump after
        // this load is never missed, and bytes or a bump before it are seen here.
        const seen = Atomics.load(this.words, COUNT);
        if (seen === this.seen && !this.client.arrived(true) && this.client.active()) {
          this.crowd?.asleep();
          this.sleeps++;
          if (this.blocked >= this.policy.blockMicros) {
            // A long wait: the waiter thread sleeps for it, and the event loop is free meanwhile.
            this.wakeUp = this.woken;
            this.addon.arm(this.waiter, seen);
            done = false;
            return;
          }
          const t0 = performance.now();
          try {
            this.addon.sleep(this.words.buffer as ArrayBuffer, this.words.byteOffset, seen, this.policy.blockMicros - this.blocked);
          } finally {
            this.crowd?.woke();
          }
          const slept = performance.now() - t0;
          this.blocked += slept * 1000;
          if (this.policy.timeWaits) this.waitedMs += slept;
        }
        Atomics.store(this.words, SLEEPING, 0);
        moved = this.poll();
      }
    } finally {
      if (done) this.running = false;
    }
  }

  /**
   * Polls for `window` µs; true as soon as progress() woke someone. The window starts again
   * whenever progress() runs: a large message streams in as many pieces.
   */
  private spin(window: number): boolean {
    if (!this.policy.timeWaits) return this.spinning(window);
    this.waitingSince = performance.now();
    const woke = this.spinning(window);
    this.waitedMs += performance.now() - this.waitingSince;
    this.waitingSince = -1;
    return woke;
  }

  /**
   * More of the host's ranks are awake now than it has cores (see Crowd): a wait then polls
   * briefly, yields at every look, and resumes after an event-loop turn. Looked up at each wait
   * and wake-up, so that with 4 ranks on 2 cores, two asleep, the other two wait as if alone.
   */
  crowded(): boolean {
    return this.crowd !== null && this.crowd.awake() > this.policy.cores;
  }

  /** µs the next wait polls before sleeping: the long window unless more ranks are awake than cores. */
  spinWindow(): number {
    const p = this.policy;
    return p.spinMicros === p.crowdedSpinMicros || !this.crowded() ? p.spinMicros : p.crowdedSpinMicros;
  }

  private spinning(window: number): boolean {
    if (this.poll()) return true;
    if (window <= 0) return false;
    let now = performance.now();
    let until = now + window / 1000;
    // While more ranks are awake than there are cores, a peer may need this one: yield at every look.
    const yieldEvery = this.crowded() ? 0 : YIELD_EVERY_US / 1000;
    let yieldAt = now + yieldEvery;
    let seen = this.progressed;
    for (let polls = 1; ; polls++) {
      if (this.poll()) return true;
      if (polls % POLLS_PER_LOOK === 0) {
        now = performance.now();
        if (this.progressed !== seen) {
          seen = this.progressed;
          until = now + window / 1000;
        } else if (now > until) return false;
        if (now >= yieldAt) {
          this.addon.yieldCpu();
          yieldAt = now + yieldEvery;
        }
      }
    }
  }

  close(): void {
    // A wait still asleep in the waiter thread will not be resumed (the waiter closes now, and
    // its wake-up may never be delivered): it is no longer asleep for the host's count.
    if (this.wakeUp === this.woken) {
      this.wakeUp = null;
      this.crowd?.woke();
    }
    this.addon.close(this.waiter);
  }
}
