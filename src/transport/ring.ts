/**
 * A single-producer single-consumer byte ring in shared memory: one per ordered pair of ranks on
 * a host. It is a byte stream (the shared-memory transport frames messages on top), so a message
 * of any size passes through a ring of any size, a piece at a time.
 *
 * Only the producer writes `tail`, only the consumer writes `head`; both are byte counts that wrap
 * at 2³², published with Atomics so the other process sees the bytes before the count. Neither
 * side ever blocks here: a full ring makes `push` write less, and the producer sets `wanted` so
 * that the consumer, having made room, wakes it.
 */

/** Control words, each on its own 64-byte cache line so producer and consumer do not share one. */
const TAIL = 0;
const HEAD = 16;
const WANTED = 32;
/** Bytes of control area in front of the data. */
export const RING_HEADER_BYTES = 192;

export class Ring {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;
  /** Our own copy of the counter we alone write (tail for the producer, head for the consumer). */
  private own: number;
  /**
   * The producer's last reading of `head`. The room it shows is there for sure (the consumer only
   * adds room), so a push that fits in it reads nothing the consumer writes: the head's cache
   * line moves between the two cores only when the producer runs short, not on every message.
   */
  private head = 0;

  /**
   * `byteOffset`: where the ring starts in `buffer` (a multiple of 64); `capacity`: a power of two
   * up to 2³⁰ bytes of data after the RING_HEADER_BYTES of control.
   */
  constructor(
    buffer: ArrayBuffer,
    byteOffset: number,
    readonly capacity: number,
    role: "producer" | "consumer",
  ) {
    if (capacity < 64 || capacity > 2 ** 30 || (capacity & (capacity - 1)) !== 0) throw new RangeError(`ring capacity ${capacity} is not a power of two in [64, 2^30]`);
    if (byteOffset % 64 !== 0) throw new RangeError(`ring offset ${byteOffset} is not 64-byte aligned`);
    this.ctl = new Int32Array(buffer, byteOffset, RING_HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, byteOffset + RING_HEADER_BYTES, capacity);
    this.mask = capacity - 1;
    this.own = Atomics.load(this.ctl, role === "producer" ? TAIL : HEAD);
    if (role === "producer") this.head = Atomics.load(this.ctl, HEAD);
  }

  /** Bytes of memory a ring of `capacity` takes in a segment. */
  static bytes(capacity: number): number {
    return RING_HEADER_BYTES + capacity;
  }

  // ---- producer side ----------------------------------------------------------------------------

  /** Copies as much of `src` as fits; returns the number of bytes written (0 when full). */
  push(src: Uint8Array): number {
    const n = Math.min(this.roomFor(src.length), src.length);
    if (n === 0) return 0;
    this.own = this.copyIn(n === src.length ? src : src.subarray(0, n), this.own);
    Atomics.store(this.ctl, TAIL, this.own);
    return n;
  }

  /** Free bytes: a push of up to this many writes all of it. */
  room(): number {
    this.head = Atomics.load(this.ctl, HEAD);
    return this.capacity - ((this.own - this.head) >>> 0);
  }

  /** Free bytes, at least `n` if there are: reads the consumer's head only when the last reading shows less. */
  roomFor(n: number): number {
    const known = this.capacity - ((this.own - this.head) >>> 0);
    return known >= n ? known : this.room();
  }

  /**
   * Copies `head` and then every part, which must fit in `room()` together, and publishes them at
   * once: the consumer sees a small message whole, with one store to the shared counter.
   */
  pushAll(head: Uint8Array, parts: readonly Uint8Array[]): void {
    let tail = this.copyIn(head, this.own);
    for (let i = 0; i < parts.length; i++) tail = this.copyIn(parts[i]!, tail);
    this.own = tail;
    Atomics.store(this.ctl, TAIL, tail);
  }

  /** Copies `src` to the ring's byte `tail` (wrapping), unpublished; returns the tail after it. */
  private copyIn(src: Uint8Array, tail: number): number {
    const n = src.length;
    const at = tail & this.mask;
    const first = Math.min(n, this.capacity - at);
    this.data.set(first === n ? src : src.subarray(0, first), at);
    if (n > first) this.data.set(src.subarray(first, n), 0);
    return (tail + n) | 0;
  }

  /**
   * The producer found the ring full and will wait: asks the consumer for a wake-up. Returns true
   * if room appeared meanwhile (then push again instead of waiting), which closes the race with a
   * consumer that emptied the ring before it could see the request.
   *
   * A wake-up may answer an older request with room the producer has filled since, so a producer
   * woken into a ring that is still full must call this again, not just look for room: the
   * consumer's next pull would otherwise find no request and never wake it
   * (test/ring-processes.test.ts).
   */
  wantRoom(): boolean {
    Atomics.store(this.ctl, WANTED, 1);
    return this.hasRoom();
  }

  /** At least one byte can be pushed. */
  hasRoom(): boolean {
    return this.room() > 0;
  }

  /** Everything pushed has been consumed. */
  drained(): boolean {
    return Atomics.load(this.ctl, HEAD) === this.own;
  }

  // ---- consumer side ----------------------------------------------------------------------------

  /**
   * Whether bytes wait, from a plain read of `tail`: cheap enough to poll, but not ordered with
   * anything (a look, not a read; available() is the read).
   */
  seemsNonEmpty(): boolean {
    return this.ctl[TAIL] !== this.own;
  }

  /** Bytes waiting to be read. */
  available(): number {
    return (Atomics.load(this.ctl, TAIL) - this.own) >>> 0;
  }

  /** The little-endian u32 `offset` bytes past the read position (the caller knows it has arrived). */
  peekU32(offset: number): number {
    const d = this.data, m = this.mask, at = this.own + offset;
    return (d[at & m]! | (d[(at + 1) & m]! << 8) | (d[(at + 2) & m]! << 16) | (d[(at + 3) & m]! << 24)) >>> 0;
  }

  /** Copies `dst.byteLength` bytes from `offset` bytes past the read position, without consuming them. */
  peekInto(dst: Uint8Array, offset: number): void {
    const n = dst.length;
    const at = (this.own + offset) & this.mask;
    if (n <= 64) {
      // Byte by byte: cheaper than the views a set() of a sub-range needs, at these sizes.
      const d = this.data, m = this.mask;
      for (let i = 0; i < n; i++) dst[i] = d[(at + i) & m]!;
      return;
    }
    const first = Math.min(n, this.capacity - at);
    dst.set(this.data.subarray(at, at + first), 0);
    if (n > first) dst.set(this.data.subarray(0, n - first), first);
  }

  /** Consumes `n` bytes that have been peeked. */
  skip(n: number): void {
    this.own = (this.own + n) | 0;
    Atomics.store(this.ctl, HEAD, this.own);
  }

  /** Copies up to `dst.byteLength` waiting bytes into `dst`; returns how many. */
  pull(dst: Uint8Array): number {
    const head = this.own;
    const n = Math.min((Atomics.load(this.ctl, TAIL) - head) >>> 0, dst.length);
    if (n === 0) return 0;
    const at = head & this.mask;
    const first = Math.min(n, this.capacity - at);
    dst.set(this.data.subarray(at, at + first), 0);
    if (n > first) dst.set(this.data.subarray(0, n - first), first);
    this.own = (head + n) | 0;
    Atomics.store(this.ctl, HEAD, this.own);
    return n;
  }

  /** After a pull: did the producer ask to be woken? (Clears the request.) */
  takeRoomRequest(): boolean {
    return Atomics.load(this.ctl, WANTED) === 1 && Atomics.exchange(this.ctl, WANTED, 0) === 1;
  }
}
