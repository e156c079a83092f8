/**
 * The transport's floor: the collectives' algorithms written directly on zeromq.js (PUSH/PULL
 * over ipc, as tsmpi uses between ranks of one host), with no framing beyond a sender byte, no
 * matching beyond one queue per sender, no copies and no acknowledgements. bench/collectives.ts
 * runs these in the same processes as tsmpi's own calls, so the ratios it reports can be set
 * against what ZeroMQ itself allows on this machine.
 */
import * as zmq from "zeromq";

export class RawMesh {
  private readonly pull = new zmq.Pull();
  private readonly push: zmq.Push[] = [];
  private readonly queues: Buffer[][][] = [];
  private readonly waiting: (((m: Buffer[]) => void) | undefined)[] = [];
  private reading = false;

  constructor(
    readonly rank: number,
    readonly size: number,
    private readonly dir: string,
  ) {
    for (let r = 0; r < size; r++) (this.queues.push([]), this.waiting.push(undefined));
  }

  async bind(): Promise<void> {
    await this.pull.bind(`ipc://${this.dir}/raw-${this.rank}`);
  }

  connect(): void {
    for (let r = 0; r < this.size; r++) {
      const s = new zmq.Push();
      s.connect(`ipc://${this.dir}/raw-${r}`);
      this.push.push(s);
    }
  }

  close(): void {
    for (const s of this.push) s.close();
    this.pull.close();
  }

  /** Small payloads share the frame with the sender byte; large ones go as a frame of their own, zero-copy. */
  send(dest: number, payload: Buffer): Promise<void> {
    if (payload.byteLength <= 128) {
      const m = Buffer.allocUnsafe(payload.byteLength + 1);
      m[0] = this.rank;
      m.set(payload, 1);
      return this.push[dest]!.send(m);
    }
    return this.push[dest]!.send([Buffer.of(this.rank), payload]);
  }

  /** The next message from `src` (its payload). */
  recv(src: number): Promise<Buffer> {
    const q = this.queues[src]!;
    const toPayload = (m: Buffer[]) => (m.length === 1 ? m[0]!.subarray(1) : m[1]!);
    if (q.length > 0) return Promise.resolve(toPayload(q.shift()!));
    return new Promise((resolve) => {
      this.waiting[src] = (m) => resolve(toPayload(m));
      if (!this.reading) void this.read();
    });
  }

  private async read(): Promise<void> {
    this.reading = true;
    while (this.waiting.some((w) => w)) {
      const m = await this.pull.receive();
      const src = m[0]![0]!;
      const w = this.waiting[src];
      if (w) {
        this.waiting[src] = undefined;
        w(m);
      } else this.queues[src]!.push(m);
    }
    this.reading = false;
  }

  /** Recursive doubling on one float64 (power-of-two sizes). */
  async allreduce8(x: Float64Array): Promise<Float64Array> {
    const acc = new Float64Array(x);
    for (let mask = 1; mask < this.size; mask <<= 1) {
      const partner = this.rank ^ mask;
      const [, got] = await Promise.all([this.send(partner, Buffer.from(acc.buffer)), this.recv(partner)]);
      acc[0] += new Float64Array(got.buffer.slice(got.byteOffset, got.byteOffset + 8))[0]!;
    }
    return acc;
  }

  /** Ring reduce-scatter then ring allgather (sum), as tsmpi's large allreduce does. */
  async allreduceRing(x: Float64Array): Promise<Float64Array> {
    const p = this.size, rank = this.rank;
    const acc = new Float64Array(x);
    const chunk = (i: number) => {
      const c = ((i % p) + p) % p;
      const lo = Math.floor((c * acc.length) / p), hi = Math.floor(((c + 1) * acc.length) / p);
      return acc.subarray(lo, hi);
    };
    const right = (rank + 1) % p, left = (rank - 1 + p) % p;
    const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    for (let s = 0; s < p - 1; s++) {
      const [, got] = await Promise.all([this.send(right, bytes(chunk(rank - s))), this.recv(left)]);
      const into = chunk(rank - s - 1);
      const g = new Float64Array(got.buffer, got.byteOffset, into.length);
      for (let i = 0; i < into.length; i++) into[i]! += g[i]!;
    }
    for (let s = 0; s < p - 1; s++) {
      const [, got] = await Promise.all([this.send(right, bytes(chunk(rank + 1 - s))), this.recv(left)]);
      chunk(rank - s).set(new Float64Array(got.buffer, got.byteOffset, got.byteLength / 8));
    }
    return acc;
  }
}
