// The shared-memory byte ring, in one process (two Ring objects over one buffer, as the producer
// and consumer processes have): order, wrap-around, partial writes and the room request.
import { describe, expect, it } from "vitest";
import { Ring } from "../src/transport/ring.js";

function pair(capacity: number) {
  const buf = new ArrayBuffer(64 + Ring.bytes(capacity));
  return { p: new Ring(buf, 64, capacity, "producer"), c: new Ring(buf, 64, capacity, "consumer") };
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe("Ring", () => {
  it("passes bytes through in order and reports what is waiting", () => {
    const { p, c } = pair(64);
    expect(c.available()).toBe(0);
    expect(p.push(bytes(10, 1))).toBe(10);
    expect(c.available()).toBe(10);
    const out = new Uint8Array(16);
    expect(c.pull(out)).toBe(10);
    expect(out.subarray(0, 10)).toEqual(bytes(10, 1));
    expect(c.pull(out)).toBe(0);
    expect(p.drained()).toBe(true);
  });

  it("writes only what fits when full, and takes the rest after the consumer made room", () => {
    const { p, c } = pair(64);
    const src = bytes(100, 7);
    expect(p.push(src)).toBe(64);
    expect(p.push(src.subarray(64))).toBe(0);
    expect(p.wantRoom()).toBe(false); // still full: the producer may sleep
    const out = new Uint8Array(100);
    expect(c.pull(out.subarray(0, 40))).toBe(40);
    expect(c.takeRoomRequest()).toBe(true); // the consumer wakes the producer...
    expect(c.takeRoomRequest()).toBe(false); // ...once
    expect(p.push(src.subarray(64))).toBe(36);
    expect(c.pull(out.subarray(40))).toBe(60);
    expect(out).toEqual(src);
  });

  it("sees room that appeared between a full push and the room request", () => {
    const { p, c } = pair(64);
    p.push(bytes(64, 0));
    c.pull(new Uint8Array(8));
    expect(p.wantRoom()).toBe(true);
  });

  it("keeps a 1 MiB stream intact through a 256-byte ring in uneven pieces, across many wrap-arounds", () => {
    const { p, c } = pair(256);
    const src = bytes(1 << 20, 3);
    const dst = new Uint8Array(src.byteLength);
    let sent = 0;
    let got = 0;
    let step = 0;
    while (got < src.byteLength) {
      step++;
      sent += p.push(src.subarray(sent, Math.min(src.byteLength, sent + 1 + ((step * 97) % 300))));
      got += c.pull(dst.subarray(got, Math.min(dst.byteLength, got + 1 + ((step * 61) % 200))));
    }
    expect(Buffer.compare(dst, src)).toBe(0);
  });

  it("continues where another process's Ring left off (counters live in the buffer)", () => {
    const buf = new ArrayBuffer(Ring.bytes(64));
    new Ring(buf, 0, 64, "producer").push(bytes(50, 9));
    const c1 = new Ring(buf, 0, 64, "consumer");
    c1.pull(new Uint8Array(30));
    const p2 = new Ring(buf, 0, 64, "producer");
    expect(p2.push(bytes(60, 2))).toBe(44);
    const c2 = new Ring(buf, 0, 64, "consumer");
    expect(c2.available()).toBe(64);
  });

  it("refuses a capacity that is not a power of two, or a misaligned offset", () => {
    const buf = new ArrayBuffer(4096);
    expect(() => new Ring(buf, 0, 100, "producer")).toThrow(/power of two/);
    expect(() => new Ring(buf, 8, 64, "producer")).toThrow(/aligned/);
  });

  it("roomFor trusts its last reading of the head while it suffices, and reads again when it does not", () => {
    const { p, c } = pair(64);
    p.push(bytes(40, 1));
    expect(p.roomFor(8)).toBe(24); // the head as last read: 24 free
    c.pull(new Uint8Array(40)); // the consumer frees 40 bytes
    expect(p.roomFor(8)).toBe(24); // enough: the consumer's line is not read
    expect(p.roomFor(30)).toBe(64); // not enough: read again, and the freed room is seen
    expect(p.push(bytes(64, 2))).toBe(64);
    expect(p.roomFor(1)).toBe(0);
  });

  it("publishes several parts at once with pushAll, across the wrap-around", () => {
    const { p, c } = pair(64);
    const skip = new Uint8Array(50);
    p.push(bytes(50, 3));
    c.pull(skip); // the next write starts at byte 50 and wraps
    expect(p.room()).toBe(64);
    p.pushAll(bytes(6, 1), [bytes(20, 2)]);
    expect(p.room()).toBe(38);
    const out = new Uint8Array(26);
    expect(c.pull(out)).toBe(26);
    expect(out).toEqual(Uint8Array.from([...bytes(6, 1), ...bytes(20, 2)]));
  });

  it("peeks words and bytes across the wrap-around without consuming, then skips them", () => {
    const { p, c } = pair(128);
    p.push(bytes(126, 0));
    c.pull(new Uint8Array(126)); // read position 126: a u32 there wraps
    const msg = new Uint8Array(4 + 100);
    new DataView(msg.buffer).setUint32(0, 0xdeadbeef, true);
    msg.set(bytes(100, 9), 4);
    p.push(msg);
    expect(c.peekU32(0)).toBe(0xdeadbeef);
    const small = new Uint8Array(10);
    const large = new Uint8Array(100);
    c.peekInto(small, 4);
    c.peekInto(large, 4);
    expect(small).toEqual(bytes(10, 9));
    expect(large).toEqual(bytes(100, 9));
    expect(c.available()).toBe(104); // nothing consumed yet
    c.skip(104);
    expect(c.available()).toBe(0);
    expect(p.drained()).toBe(true);
  });
});
