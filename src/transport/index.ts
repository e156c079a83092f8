/**
 * The transport layer: byte movers between ranks (Open MPI's BTLs). A transport delivers a
 * message's frames to a rank, in order per peer, and says when the caller's buffers are free; it
 * knows nothing of envelopes, matching or acknowledgements, which are the point-to-point
 * protocol's (src/protocol.ts, src/p2p.ts). Each peer is reached by the best transport that can
 * reach it; today that is ZeroMQ (ipc on one host, tcp between hosts), and the shared-memory
 * pieces (native.ts, ring.ts, doorbell.ts) are being assembled into the next one.
 */

/**
 * How other ranks reach this one: the host, plus one entry per transport in a shape only that
 * transport reads. The launcher passes the table around without looking inside.
 */
export interface PeerAddress {
  host: string;
  [transport: string]: unknown;
}

export interface TransportHandlers {
  /** A message arrived: its frames, the protocol's header first. */
  message(frames: Buffer[]): void;
}

export interface Transport {
  /** This transport's entry of the rank's address (see PeerAddress). */
  readonly address: unknown;
  /**
   * Borrowed frames up to this size are copied by `send`, so the caller's memory is free when it
   * resolves. Larger ones are still read after that, until the receiver has the message: the
   * protocol then waits for its acknowledgement.
   */
  readonly copyLimit: number;
  setPeers(table: readonly PeerAddress[]): void;
  /**
   * Queues a message for `dest`. Frames from index `borrowedFrom` on are views of the caller's
   * memory. Resolves once the message is queued and the copied frames are ours.
   */
  send(dest: number, frames: Buffer[], borrowedFrom: number): Promise<void>;
  /** Keeps messages flowing in while something waits for one; pair every hold with a release. */
  hold(): void;
  release(): void;
  /** Reads whatever has arrived without holding the receive path open (for iprobe). */
  poke(): void;
  /** Closes the transport; call after the protocol has flushed what matters. */
  close(): void;
}
