// The doorbell's count of sleeping ranks (Crowd), with the real addon in one process: a wait that
// sleeps in the waiter thread counts as asleep until it is woken, and the spin window follows the
// number of ranks awake.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Bell, Crowd, Doorbell, DOORBELL_BYTES, type SpinPolicy } from "../src/transport/doorbell.js";
import { loadShm } from "../src/transport/native.js";

const shm = loadShm().addon!;
const CROWD_AT = 2 * DOORBELL_BYTES;

function segment() {
  const name = `/tsmpi-test-${randomBytes(6).toString("hex")}`;
  const buf = shm.map(name, 4096, true);
  shm.unlink(name);
  return buf;
}

const policy = (blockMicros: number): SpinPolicy => ({ spinMicros: 50, crowdedSpinMicros: 5, cores: 2, blockMicros });
const idle = { active: () => false, arrived: () => false, progress: () => false };

describe("Doorbell and Crowd", () => {
  it("polls the long window and counts as uncrowded while the ranks awake fit the cores, the short one and crowded when they do not", () => {
    const buf = segment();
    const door = new Doorbell(shm, buf, 0, policy(0), idle);
    try {
      expect(door.spinWindow()).toBe(50); // no crowd: every rank has a core
      expect(door.crowded()).toBe(false);
      const crowd = new Crowd(buf, CROWD_AT, 4);
      door.crowd = crowd;
      expect(door.spinWindow()).toBe(5); // 4 awake on 2 cores
      expect(door.crowded()).toBe(true);
      crowd.asleep();
      expect(door.spinWindow()).toBe(5); // 3 awake
      crowd.asleep();
      expect(crowd.awake()).toBe(2);
      expect(door.spinWindow()).toBe(50); // 2 awake on 2 cores
      expect(door.crowded()).toBe(false);
      crowd.woke();
      expect(door.spinWindow()).toBe(5);
      expect(door.crowded()).toBe(true);
    } finally {
      door.close();
    }
  });

  it("counts a wait as asleep while it sleeps in the waiter thread, and as awake once the bell woke it", async () => {
    const buf = segment();
    let waiting = true;
    let handed = 0;
    const client = {
      active: () => waiting,
      arrived: () => false,
      progress() {
        if (Atomics.load(new Int32Array(buf, 3 * DOORBELL_BYTES, 1), 0) === 0) return false;
        waiting = false;
        handed++;
        return true;
      },
    };
    // No sleeping on the JS thread (blockMicros 0): the wait goes to the waiter thread at once,
    // and this test's timers keep running meanwhile.
    const door = new Doorbell(shm, buf, 0, { ...policy(0), spinMicros: 0, crowdedSpinMicros: 0 }, client);
    const crowd = new Crowd(buf, CROWD_AT, 4);
    door.crowd = crowd;
    try {
      door.start();
      await new Promise((r) => setTimeout(r, 100));
      expect(crowd.awake()).toBe(3);
      // A peer publishes something and rings.
      Atomics.store(new Int32Array(buf, 3 * DOORBELL_BYTES, 1), 0, 1);
      new Bell(shm, buf, 0).ring();
      for (let i = 0; i < 100 && handed === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(handed).toBe(1);
      await new Promise((r) => setImmediate(r));
      expect(crowd.awake()).toBe(4);
    } finally {
      door.close();
    }
  });

  it("a wait asleep in the waiter thread when the doorbell closes no longer counts as asleep", async () => {
    const buf = segment();
    const door = new Doorbell(shm, buf, 0, { ...policy(0), spinMicros: 0, crowdedSpinMicros: 0 }, { active: () => true, arrived: () => false, progress: () => false });
    const crowd = new Crowd(buf, CROWD_AT, 4);
    door.crowd = crowd;
    door.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(crowd.awake()).toBe(3);
    door.close(); // as the transport's close does, with its rank finalizing
    expect(crowd.awake()).toBe(4);
  });

  /**
   * A caller that answers every wake-up at once with a new wait and a ring of its own bell (as a
   * ping-pong partner that replies within µs would): `n` such waits, and how many event-loop turns
   * (setImmediate callbacks) and timer callbacks ran meanwhile.
   */
  async function stream(n: number): Promise<{ turns: number; timers: number }> {
    const buf = segment();
    let waiter: (() => void) | null = null;
    let rung = 0;
    const door = new Doorbell(shm, buf, 0, policy(2000), {
      active: () => waiter !== null,
      arrived: () => false,
      progress() {
        if (rung === 0 || !waiter) return false;
        rung--;
        const w = waiter;
        waiter = null;
        w();
        return true;
      },
    });
    const bell = new Bell(shm, buf, 0);
    let turns = 0;
    let timers = 0;
    let streaming = true;
    const turn = () => {
      turns++;
      if (streaming) setImmediate(turn);
    };
    setImmediate(turn);
    const timer = setInterval(() => timers++, 1);
    try {
      for (let i = 0; i < n; i++) {
        const answered = new Promise<void>((resolve) => {
          waiter = resolve;
          door.start();
        });
        rung++;
        bell.ring();
        await answered;
      }
    } finally {
      streaming = false;
      clearInterval(timer);
      door.close();
    }
    return { turns, timers };
  }

  it("after a wake-up, goes on polling in the microtask queue once the woken caller has waited again, not after an event-loop turn", async () => {
    const { turns } = await stream(20000);
    // One turn per wait before; now one per millisecond or per missed poll.
    expect(turns).toBeLessThan(5000);
  });

  it("still gives the event loop a turn while a stream of wake-ups goes on: timers fire meanwhile", async () => {
    const t0 = performance.now();
    const { timers } = await stream(200000);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThan(20); // long enough for a 1 ms timer to come due many times
    expect(timers).toBeGreaterThan(0);
  });
});
