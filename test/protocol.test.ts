// The message header on its own, and what a rank does with frames no peer could have sent:
// checked, dropped with one warning and counted, never allowed to end the rank. Random and
// truncated frames are generated with fast-check.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MpiError } from "../src/errors.js";
import { PointToPoint } from "../src/p2p.js";
import { KIND_ACK, KIND_FIN, readMessage, writeHeader } from "../src/protocol.js";
import { encode } from "../src/wire.js";

const SIZE = 4;
const header = (over: Partial<{ kind: number; ctx: number; src: number; tag: number; meta: number }> = {}, ackId = 0, inline: Buffer[] = []) =>
  writeHeader({ kind: 1, ctx: 0, src: 1, tag: 5, meta: 0, ...over }, ackId, inline);

describe("the message header", () => {
  it("round-trips an envelope, its ack id and its inline frames", () => {
    const m = readMessage([header({ kind: 0, ctx: 6, src: 3, tag: 9, meta: 10 }, 7, [Buffer.from([1, 2, 3, 4, 5, 6, 7, 8])])], SIZE);
    expect(m).toMatchObject({ kind: 0, ctx: 6, src: 3, tag: 9, meta: 10, ackId: 7 });
    expect([...m.frames[0]!]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("starts every inline frame at a multiple of 8 bytes into the header, with zeros before it", () => {
    // One frame: its length ends at byte 28, so it starts at 32.
    const one = header({}, 0, [Buffer.from([1, 2, 3])]);
    expect(readMessage([one], SIZE).frames[0]!.byteOffset - one.byteOffset).toBe(32);
    expect([...one.subarray(28, 32)]).toEqual([0, 0, 0, 0]);
    // Two: the lengths end at 32; the second frame starts at 40, after the first's 3 bytes.
    const two = header({}, 0, [Buffer.from([1, 2, 3]), Buffer.from([4, 5, 6, 7, 8, 9, 10, 11, 12])]);
    const m = readMessage([two], SIZE);
    expect(m.frames.map((f) => f.byteOffset - two.byteOffset)).toEqual([32, 40]);
    expect([...two.subarray(35, 40)]).toEqual([0, 0, 0, 0, 0]);
    expect(m.frames.map((f) => [...f])).toEqual([[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12]]);
  });

  it("rejects, saying why, what no rank of the job could have sent", () => {
    const cases: [Buffer[], string, number?][] = [
      [[], "a header of 0 bytes (at least 24)"],
      [[Buffer.alloc(5)], "a header of 5 bytes (at least 24)"],
      [[Buffer.concat([header({}, 0, [Buffer.alloc(8)]).subarray(0, 30)])], "inline frames longer than their header"],
      [[Buffer.concat([header({}, 0, [Buffer.alloc(8)]), Buffer.alloc(3)])], "inline frames of 40 bytes in a header of 43"],
      [[header({ src: 4 }), Buffer.alloc(1)], "source rank 4 in a job of 4"],
      [[header({ src: 2 }), Buffer.alloc(1)], "source rank 2 on the link from rank 1", 1],
      [[header({ kind: 9 }), Buffer.alloc(1)], "unknown kind 9"],
      [[header({ kind: 0, meta: 99 }), Buffer.alloc(8)], "a raw payload of type 99 in 1 frames"],
      [[header({ kind: 1 })], "a packed payload with no frame"],
      [[header({ kind: KIND_FIN }), Buffer.alloc(1)], "a protocol message (kind 17) with a payload"],
    ];
    for (const [msg, why, from] of cases) {
      let error: unknown;
      try {
        readMessage(msg, SIZE, from);
      } catch (e) {
        error = e;
      }
      expect(error, why).toBeInstanceOf(MpiError);
      expect((error as Error).message).toContain(why);
    }
  });

  it("on any frames at all, either reads a message or throws MpiError (fast-check)", () => {
    const frame = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 24, maxLength: 80 }));
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 4 }), (frames) => {
        try {
          readMessage(frames.map((f) => Buffer.from(f)), SIZE);
        } catch (e) {
          expect(e).toBeInstanceOf(MpiError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("a rank receiving malformed frames", () => {
  let warnings: string[];
  beforeEach(() => {
    warnings = [];
    vi.spyOn(process.stderr, "write").mockImplementation((s) => (warnings.push(String(s)), true));
  });
  afterEach(() => vi.restoreAllMocks());

  /** A real message from rank 1: `value` on context 0, tag 5. */
  const valid = (value: unknown) => {
    const e = encode(value);
    return [writeHeader({ kind: e.kind, ctx: 0, src: 1, tag: 5, meta: e.meta }, 0), ...e.frames.map((f) => Buffer.from(f))];
  };

  it("drops random, truncated and forged frames with one warning, and still receives the real messages between them (fast-check)", async () => {
    const p2p = new PointToPoint(0, SIZE);
    const real = valid({ n: 0 });
    const garbage = fc.oneof(
      fc.array(fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b)), { maxLength: 3 }),
      fc.nat({ max: real[0]!.byteLength - 1 }).map((cut) => [real[0]!.subarray(0, cut)]), // truncated header
      fc.record({ src: fc.nat({ max: 9 }), ack: fc.nat({ max: 5 }) }).map(({ src, ack }) => [header({ kind: KIND_ACK, src, meta: ack })]), // forged acks
    );
    let sent = 0;
    fc.assert(
      fc.property(fc.array(garbage, { maxLength: 6 }), (junk) => {
        for (const frames of junk) expect(() => p2p.message(frames)).not.toThrow();
        p2p.message(valid({ n: ++sent }));
      }),
      { numRuns: 300 },
    );
    for (let k = 1; k <= sent; k++) expect(await p2p.receive(0, 1, 5, [0, 1, 2, 3], undefined, (m) => m)).toMatchObject({ src: 1, tag: 5 });
    expect(p2p.malformed).toBeGreaterThan(10);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^tsmpi: rank 0: dropped a malformed message on its ZeroMQ socket \(.+\); later ones are counted\n$/);
  });
});
