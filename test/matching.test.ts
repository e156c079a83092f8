// The matching engine alone: which receive a message completes and which message a receive takes.
import { describe, expect, it } from "vitest";
import { ANY_SOURCE, ANY_TAG } from "../src/constants.js";
import { Matcher, type Incoming, type Waiter } from "../src/matching.js";

const msg = (src: number, tag: number, ctx = 0, id = `${src}/${tag}`): Incoming => ({ kind: 0, ctx, src, tag, meta: 0, frames: [Buffer.from(id)] });
const id = (m: Incoming | undefined) => m?.frames[0]?.toString();

/** A waiter that records what completed it. */
function waiter(src: number, tag: number, ctx = 0): Waiter & { got?: Incoming; err?: Error } {
  const w: Waiter & { got?: Incoming; err?: Error } = {
    ctx,
    src,
    tag,
    resolve: (m) => (w.got = m),
    reject: (e) => (w.err = e),
  };
  return w;
}

describe("Matcher", () => {
  it("keeps one source's messages on one tag in arrival order", () => {
    const m = new Matcher();
    m.arrive(msg(1, 5, 0, "a"));
    m.arrive(msg(1, 5, 0, "b"));
    expect(id(m.take(0, 1, 5))).toBe("a");
    expect(id(m.take(0, 1, 5))).toBe("b");
    expect(m.take(0, 1, 5)).toBeUndefined();
  });

  it("lets a receive for a tag pass over earlier messages with other tags", () => {
    const m = new Matcher();
    m.arrive(msg(1, 1));
    m.arrive(msg(1, 2));
    expect(id(m.take(0, 1, 2))).toBe("1/2");
    expect(id(m.take(0, 1, ANY_TAG))).toBe("1/1");
  });

  it("gives ANY_SOURCE the earliest arrival among all sources", () => {
    const m = new Matcher();
    m.arrive(msg(3, 0));
    m.arrive(msg(1, 0));
    m.arrive(msg(2, 0));
    expect([m.take(0, ANY_SOURCE, 0), m.take(0, ANY_SOURCE, 0), m.take(0, ANY_SOURCE, 0)].map((x) => x?.src)).toEqual([3, 1, 2]);
  });

  it("never matches across contexts", () => {
    const m = new Matcher();
    m.arrive(msg(1, 0, 2));
    expect(m.take(0, 1, 0)).toBeUndefined();
    expect(m.take(0, ANY_SOURCE, ANY_TAG)).toBeUndefined();
    expect(m.take(2, 1, 0)?.ctx).toBe(2);
  });

  it("completes the earliest posted receive, whether it named the source or not", () => {
    const m = new Matcher();
    const any = waiter(ANY_SOURCE, ANY_TAG);
    const own = waiter(1, 0);
    m.postRecv(any);
    m.postRecv(own);
    m.arrive(msg(1, 0, 0, "first"));
    m.arrive(msg(1, 0, 0, "second"));
    expect(id(any.got)).toBe("first");
    expect(id(own.got)).toBe("second");
  });

  it("completes a specific receive posted before an ANY_SOURCE one first", () => {
    const m = new Matcher();
    const own = waiter(1, ANY_TAG);
    const any = waiter(ANY_SOURCE, ANY_TAG);
    m.postRecv(own);
    m.postRecv(any);
    m.arrive(msg(1, 4, 0, "x"));
    expect(id(own.got)).toBe("x");
    expect(any.got).toBeUndefined();
  });

  it("queues a message no receive wants, and claim() finds nothing for it", () => {
    const m = new Matcher();
    const w = waiter(2, 0);
    m.postRecv(w);
    expect(m.claim(0, 1, 0)).toBeUndefined();
    m.arrive(msg(1, 0));
    expect(w.got).toBeUndefined();
    expect(m.claim(0, 2, 0)).toBe(w);
    expect(m.claim(0, 2, 0)).toBeUndefined(); // claimed receives are gone
  });

  it("shows probes only what no receive took, and leaves it queued", () => {
    const m = new Matcher();
    const probe = waiter(1, ANY_TAG);
    const recv = waiter(1, 7);
    m.postProbe(probe);
    m.postRecv(recv);
    m.arrive(msg(1, 7, 0, "taken"));
    expect(probe.got).toBeUndefined();
    m.arrive(msg(1, 8, 0, "left"));
    expect(id(probe.got)).toBe("left");
    expect(id(m.peek(0, 1, ANY_TAG))).toBe("left");
    expect(id(m.take(0, 1, ANY_TAG))).toBe("left");
  });

  it("rejects the receives and probes a predicate picks, and no others", () => {
    const m = new Matcher();
    const a = waiter(1, 0);
    const b = waiter(2, 0);
    const p = waiter(1, ANY_TAG);
    m.postRecv(a);
    m.postRecv(b);
    m.postProbe(p);
    m.failWhere((w) => (w.src === 1 ? new Error(`gone ${w.src}`) : undefined));
    expect(a.err?.message).toBe("gone 1");
    expect(p.err?.message).toBe("gone 1");
    expect(b.err).toBeUndefined();
    m.arrive(msg(2, 0));
    expect(b.got?.src).toBe(2);
    m.arrive(msg(1, 0));
    expect(a.got).toBeUndefined();
  });
});
