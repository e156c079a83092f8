// Who sent a message between hosts: the rank whose CURVE keys made the connection's sender token,
// never the number in the header. Three ranks' engines in this process, each over its own real
// ZeroMQ socket on tcp loopback with CURVE, as in a job that spans hosts.
import { afterEach, describe, expect, it } from "vitest";
import { PointToPoint, type Incoming } from "../src/p2p.js";
import { writeHeader } from "../src/protocol.js";
import { decode, encode } from "../src/wire.js";
import type { PeerAddress, TransportHandlers } from "../src/transport/index.js";
import { ZmqTransport } from "../src/transport/zmq.js";

interface Rank {
  p2p: PointToPoint;
  zmq: ZmqTransport;
  /** Every message the transport delivered, with the sender it named. */
  delivered: { src: number; from: number | undefined }[];
  refusals: string[];
}

let open: Rank[] = [];
afterEach(() => {
  for (const r of open) {
    r.zmq.release();
    r.zmq.close();
  }
  open = [];
});

/** `size` ranks of one job (secured unless `insecure`), each knowing the others' addresses. */
async function job(size: number, insecure = false): Promise<Rank[]> {
  const ranks: Rank[] = [];
  for (let rank = 0; rank < size; rank++) {
    const p2p = new PointToPoint(rank, size);
    const r = { p2p, delivered: [], refusals: [] } as unknown as Rank;
    const handlers: TransportHandlers = {
      message: (frames, from) => {
        r.delivered.push({ src: frames[0]!.readUInt32LE(8), from });
        p2p.message(frames, from);
      },
      broken: p2p.broken,
      refused: (reason) => {
        r.refusals.push(reason);
        p2p.refused(reason);
      },
    };
    r.zmq = await ZmqTransport.open({ rank, host: `h${rank}`, tcpAddress: "127.0.0.1", secure: !insecure }, handlers);
    p2p.attach(r.zmq);
    ranks.push(r);
  }
  const table: PeerAddress[] = ranks.map((r, k) => ({ host: `h${k}`, zmq: r.zmq.address }));
  for (const r of ranks) r.zmq.setPeers(table);
  // Each rank reads (and lets the job's ranks connect) throughout, as a rank waiting in a call does.
  for (const r of ranks) r.zmq.hold();
  open = ranks;
  return ranks;
}

/** A value message with `src` written in its header, as a rank that lies about itself would send it. */
function forged(src: number, tag: number, value: unknown): Buffer[] {
  const enc = encode(value);
  return [writeHeader({ kind: enc.kind, ctx: 0, src, tag, meta: enc.meta }, 0), ...enc.frames.map((f) => Buffer.from(f))];
}

const recv = (r: Rank, src: number, tag: number) => r.p2p.receive(0, src, tag, [0, 1, 2], undefined, (m: Incoming) => decode(m.kind, m.meta, m.frames));

describe("sender identity over CURVE", () => {
  it("each message is delivered as from the rank whose connection it came on", async () => {
    const [r0, r1, r2] = await job(3);
    await r1!.p2p.send(0, 0, 5, "from one");
    await r2!.p2p.send(0, 0, 5, "from two");
    expect(await recv(r0!, 1, 5)).toBe("from one");
    expect(await recv(r0!, 2, 5)).toBe("from two");
    expect(r0!.delivered).toHaveLength(2);
    expect(r0!.delivered).toEqual(expect.arrayContaining([{ src: 1, from: 1 }, { src: 2, from: 2 }]));
  });

  it("a rank of the job that writes another rank's number in its header is not believed: the message is dropped", async () => {
    const [r0, r1, r2] = await job(3);
    // Rank 2 claims to be rank 1, on the tag rank 0 waits on; then rank 1 sends the real one.
    const pending = recv(r0!, 1, 7);
    await r2!.zmq.send(0, forged(1, 7, "forged"), 1);
    await r2!.p2p.send(0, 0, 8, "after"); // same connection, so it arrives after the forgery
    expect(await recv(r0!, 2, 8)).toBe("after");
    await r1!.p2p.send(0, 0, 7, "the real one");
    expect(await pending).toBe("the real one");
    expect(r0!.delivered).toContainEqual({ src: 1, from: 2 }); // the transport named the true sender
    expect(r0!.p2p.malformed).toBe(1);
  });

  it("without CURVE (--insecure) the transport cannot tell, and the forgery is what the rank reads", async () => {
    const [r0, , r2] = await job(3, true);
    const pending = recv(r0!, 1, 7);
    await r2!.zmq.send(0, forged(1, 7, "forged"), 1);
    expect(await pending).toBe("forged");
    expect(r0!.delivered).toEqual([{ src: 1, from: undefined }]);
  });

  it("a message whose token is not one of the job's is refused", async () => {
    const [r0, r1] = await job(3);
    // Rank 1's socket with its own token taken off and another put on: what a replay of some
    // other pair's token, or a made-up one, looks like on arrival.
    const link = (r1!.zmq as unknown as { link(dest: number): { token: Buffer | undefined } }).link(0);
    link.token = Buffer.alloc(16, 7);
    await r1!.zmq.send(0, forged(1, 9, "bad token"), 1);
    link.token = undefined;
    await r1!.zmq.send(0, forged(1, 9, "no token"), 1);
    for (let i = 0; i < 100 && r0!.refusals.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(r0!.refusals).toEqual(["no rank of this job's sender token", "no rank of this job's sender token"]);
    expect(r0!.p2p.iprobe(0, 1, 9)).toBeUndefined();
  });
});

