/**
 * Collective algorithms, written once against a small channel that a communicator hands out per
 * call (its own tag on the communicator's collective context). Every algorithm here moves data
 * only through point-to-point messages.
 */

/** One collective call's view of its communicator. */
export interface Channel {
  readonly rank: number;
  readonly size: number;
  send(dest: number, value: unknown): Promise<void>;
  recv(source: number): Promise<unknown>;
}

/**
 * Dissemination barrier (Hensgen, Finkel and Manber): in round k every rank signals
 * rank + 2^k and waits for rank − 2^k, so all ranks know of all others after ⌈log2 p⌉ rounds,
 * for any p, not only powers of two.
 */
export async function barrier(ch: Channel): Promise<void> {
  const { rank, size } = ch;
  for (let k = 1; k < size; k <<= 1) {
    await Promise.all([ch.send((rank + k) % size, null), ch.recv((rank - k + size) % size)]);
  }
}
