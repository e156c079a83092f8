// The floor under the shared-memory transport: two ranks, one segment, a byte ring each way and a
// doorbell each (src/transport/{ring,doorbell}.ts over the addon), with no protocol above them.
// What tsmpi's shared-memory path will add to these numbers is its own cost. The 8-byte ping-pong
// is also timed without the doorbell's loop, to show what the loop and the event loop cost.
// Run: `npx tsmpirun -n 2 bench/shm-floor.ts` (add `-- --spin 0` to sleep at once).
import { cpus } from "node:os";
import { finalize, init } from "tsmpi";
import { oneWayMicros } from "./lib.js";
import { Bell, Doorbell, DOORBELL_BYTES, spinPolicy } from "../src/transport/doorbell.js";
import { loadShm } from "../src/transport/native.js";
import { Ring } from "../src/transport/ring.js";

const world = await init();
if (world.size !== 2) throw new Error("shm-floor needs exactly 2 ranks");
const shm = loadShm();
if (!shm.addon) throw new Error(shm.error);
const addon = shm.addon;
const spinArg = process.argv.indexOf("--spin");
const spin = spinArg > 0 ? Number(process.argv[spinArg + 1]) : undefined;
const policy = spin !== undefined ? { spinMicros: spin, crowdedSpinMicros: spin, cores: cpus().length, blockMicros: 0 } : spinPolicy(cpus().length, true);

const CAP = 1 << 20;
// Bytes published at a time, so the receiver copies out while the sender copies in.
const CHUNK = 64 << 10;
const ringAt = (from: number) => 2 * DOORBELL_BYTES + from * Ring.bytes(CAP);
// Rank 0 creates the segment before it tells rank 1 its name.
const mine = `/tsmpi-floor-${process.pid}`;
const created = world.rank === 0 ? addon.map(mine, ringAt(2), true) : undefined;
const name = await world.bcast(mine);
const seg = created ?? addon.map(name, ringAt(2), false);
await world.barrier();
if (world.rank === 0) addon.unlink(name); // both have it mapped: nothing is left in /dev/shm
const me = world.rank;
const peer = 1 - me;
const out = new Ring(seg, ringAt(me), CAP, "producer");
const inn = new Ring(seg, ringAt(peer), CAP, "consumer");
// The doorbell's client here is a list of conditions, each settled when it holds.
const waits: { ready(): boolean; resolve(): void }[] = [];
const door = new Doorbell(addon, seg, me * DOORBELL_BYTES, policy, {
  active: () => waits.length > 0,
  arrived: () => inn.available() > 0,
  progress() {
    let woke = false;
    for (let i = 0; i < waits.length; ) {
      if (waits[i]!.ready()) {
        waits.splice(i, 1)[0]!.resolve();
        woke = true;
      } else i++;
    }
    return woke;
  },
});
function until(ready: () => boolean): Promise<void> {
  if (ready()) return Promise.resolve();
  return new Promise((resolve) => {
    waits.push({ ready, resolve });
    door.start();
  });
}
const bell = new Bell(addon, seg, peer * DOORBELL_BYTES, true);

async function send(buf: Uint8Array): Promise<void> {
  for (let sent = 0; ; ) {
    const n = out.push(buf.subarray(sent, sent + CHUNK));
    if (n > 0) bell.published();
    sent += n;
    if (sent === buf.byteLength) return;
    // Ask again on every look: a wake-up may answer an older request (Ring.wantRoom).
    if (!out.wantRoom()) await until(() => out.wantRoom());
  }
}

async function recv(buf: Uint8Array): Promise<void> {
  for (let got = 0; ; ) {
    const n = inn.pull(buf.subarray(got));
    if (n > 0 && inn.takeRoomRequest()) bell.ring();
    got += n;
    if (got === buf.byteLength) return;
    await until(() => inn.available() > 0);
  }
}

async function pingpong(bytes: number, iters: number): Promise<number> {
  const a = new Uint8Array(bytes);
  return oneWayMicros(iters, me === 0 ? async () => (await send(a), await recv(a)) : async () => (await recv(a), await send(a)));
}

/** `--check`: stream patterned messages of awkward sizes both ways and compare every byte. */
async function check(): Promise<void> {
  const sizes = [1, 7, 8, 4095, 65537, CAP - 3, CAP + 5, 3 * CAP + 11];
  const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed) & 0xff);
  for (const [i, n] of sizes.entries()) {
    const mine = pattern(n, me * 7 + i);
    const got = new Uint8Array(n);
    // Both send at once: full rings on both sides must not deadlock.
    await Promise.all([send(mine), recv(got)]);
    if (Buffer.compare(got, pattern(n, peer * 7 + i)) !== 0) throw new Error(`message of ${n} bytes arrived corrupted`);
  }
  console.log(`shm-floor check ok rank ${me}`);
}

if (process.argv.includes("--check")) {
  await check();
  door.close();
  await finalize();
  process.exit(0);
}

const us8 = await pingpong(8, 50000);
const us4m = await pingpong(4 << 20, 200);

// What the 8 bytes cost without the doorbell's loop: spinning on the ring with no event loop at
// all (the hardware's floor: one cache line each way), and with one turn of the event loop
// (setImmediate) before each receive spins, as any wait that lets other work run must take.
function put(buf: Uint8Array): void {
  out.push(buf);
  bell.published();
}
function spinFor(buf: Uint8Array): void {
  for (let polls = 1; inn.available() < buf.byteLength; polls++) if (polls % 64 === 0) addon.yieldCpu();
  inn.pull(buf);
}
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const b8 = new Uint8Array(8);
const usSync = await oneWayMicros(100000, async () => (me === 0 ? (put(b8), spinFor(b8)) : (spinFor(b8), put(b8))));
const usTurn = await oneWayMicros(100000, async () => (me === 0 ? (put(b8), await turn(), spinFor(b8)) : (await turn(), spinFor(b8), put(b8))));

if (me === 0) {
  console.log(`shm floor (spin ${policy.spinMicros} µs; median of 10 batches): 8 B one-way ${us8.toFixed(2)} µs; 4 MiB one-way ${(us4m / 1000).toFixed(2)} ms = ${((4 << 20) / us4m / 1000).toFixed(1)} GB/s`);
  console.log(`8 B one-way without the doorbell loop: spinning with no event loop ${usSync.toFixed(2)} µs; one setImmediate per receive ${usTurn.toFixed(2)} µs`);
  console.log(JSON.stringify({ spinMicros: policy.spinMicros, latency8Micros: us8, latency8SyncMicros: usSync, latency8ImmediateMicros: usTurn, bandwidth4MiBGBps: (4 << 20) / us4m / 1000 }));
}
door.close();
await finalize();
