/**
 * The point-to-point message protocol, above any transport (Open MPI's PML to the transports'
 * BTLs): the header every message starts with, and the control messages of the protocol itself,
 * the large-message acknowledgement and the FIN handshake. A transport only moves the frames.
 */
import { Buffer } from "node:buffer"; // not the global, which is a getter: a call on every use
import { MpiError } from "./errors.js";
import { BINARY_TYPE_COUNT, Kind, readU32, writeU32 } from "./wire.js";

/** What a message carries besides its payload frames. */
export interface Envelope {
  /** Payload encoding (wire.Kind), or one of the protocol kinds below. */
  kind: number;
  /** Context id: which communicator (and whether point-to-point or collective traffic). */
  ctx: number;
  /** Sender's world rank. */
  src: number;
  tag: number;
  /** Encoding detail, e.g. the typed-array class of a raw payload; the ack id of an ACK. */
  meta: number;
}

// Protocol kinds, above the wire kinds.
/** The receiver has the whole message whose ack id is in `meta`: the sender's buffers are free. */
export const KIND_ACK = 16;
/** The sender has finalized; everything it sent on this link came before. */
export const KIND_FIN = 17;
export const KIND_FIN_ACK = 18;

/**
 * The header counts inline frames in 16 bits. (A value with that many binary parts packs to more
 * than any transport's inline limit anyway, since each part leaves a reference in the packed frame.)
 */
export const MAX_INLINE_FRAMES = 0xffff;

/**
 * Header frame: kind u8, unused u8, number of inline payload frames u16, then ctx, src, tag,
 * meta and ack id as u32 (little-endian), then one u32 length per inline frame and their bytes,
 * each starting at a multiple of 8 (zeros between). A fixed layout rather than msgpack: it is
 * read and written on every message.
 */
const HEADER_BYTES = 24;

/**
 * Where an inline frame starts: 8-byte aligned, as the header frame itself is (Node's buffer pool
 * and fresh memory both align to 8), so that a receiver can read a typed array of any class
 * straight from it (wire.fromFrame) instead of copying its bytes into a new buffer.
 */
const aligned = (at: number): number => (at + 7) & ~7;

/**
 * Buffers' sizes are read as `length` on the message path, here and in the transports: V8 11
 * (Node 20) inlines it and calls a builtin for `byteLength` (~10 ns), and a message reads a dozen.
 */
export function writeHeader(env: Envelope, ackId: number, inline: readonly Buffer[] = []): Buffer {
  const n = inline.length;
  let size = HEADER_BYTES + 4 * n;
  for (let i = 0; i < n; i++) size = aligned(size) + inline[i]!.length;
  const h = Buffer.allocUnsafe(size);
  h[0] = env.kind;
  h[1] = 0;
  h[2] = n;
  h[3] = n >>> 8;
  writeU32(h, 4, env.ctx);
  writeU32(h, 8, env.src);
  writeU32(h, 12, env.tag);
  writeU32(h, 16, env.meta);
  writeU32(h, 20, ackId);
  let at = HEADER_BYTES + 4 * n;
  for (let i = 0; i < n; i++) {
    const f = inline[i]!;
    writeU32(h, HEADER_BYTES + 4 * i, f.length);
    // The padding is zeroed: allocUnsafe's memory holds whatever this process had there.
    for (const start = aligned(at); at < start; at++) h[at] = 0;
    h.set(f, at);
    at += f.length;
  }
  return h;
}

/**
 * A received message: its envelope, the ack id its sender waits for (0: none) and its payload
 * frames. `landed` and `flow` are set later (see Incoming); every message object is made with all
 * nine fields, in this order, so that the code that matches and settles messages sees one shape.
 */
export interface Received extends Envelope {
  ackId: number;
  frames: Buffer[];
  landed: number | undefined;
  flow: number | undefined;
}

/** The payload encodings a data message may carry (wire.Kind: raw bytes, msgpack); protocol kinds come after. */
const DATA_KINDS = 2;

/**
 * Reads a received message; the result is also the Incoming that matching keeps (one object per
 * message). Throws MpiError, saying what is wrong, for anything this rank's peers could not have
 * sent: a short header, inline lengths that do not add up, an unknown kind or type code, a
 * source outside the job (`size` ranks), or one other than `from` when the transport knows the
 * sender.
 */
export function readMessage(msg: Buffer[], size: number, from?: number): Received {
  const h = msg[0];
  if (!h || h.length < HEADER_BYTES) throw new MpiError(`a header of ${h?.length ?? 0} bytes (at least ${HEADER_BYTES})`);
  const n = h[2]! | (h[3]! << 8);
  let frames: Buffer[];
  if (n === 0) frames = msg.length === 1 ? [] : msg.slice(1);
  else {
    // Made whole when there is one frame (a typed array's payload, the common case): the first
    // push onto [] allocates room for 17.
    frames = n === 1 ? [h] : [];
    let at = HEADER_BYTES + 4 * n;
    if (at > h.length) throw new MpiError(`${n} inline frames in a header of ${h.length} bytes`);
    for (let i = 0; i < n; i++) {
      const len = readU32(h, HEADER_BYTES + 4 * i);
      at = aligned(at);
      if (at + len > h.length) throw new MpiError(`inline frames longer than their header (${h.length} bytes)`);
      const f = h.subarray(at, at + len);
      if (n === 1) frames[0] = f;
      else frames.push(f);
      at += len;
    }
    if (at !== h.length) throw new MpiError(`inline frames of ${at} bytes in a header of ${h.length}`);
  }
  const m: Received = { kind: h[0]!, ctx: readU32(h, 4), src: readU32(h, 8), tag: readU32(h, 12), meta: readU32(h, 16), ackId: readU32(h, 20), frames, landed: undefined, flow: undefined };
  if (m.src >= size) throw new MpiError(`source rank ${m.src} in a job of ${size}`);
  if (from !== undefined && m.src !== from) throw new MpiError(`source rank ${m.src} on the link from rank ${from}`);
  if (m.kind >= DATA_KINDS && m.kind !== KIND_ACK && m.kind !== KIND_FIN && m.kind !== KIND_FIN_ACK) throw new MpiError(`unknown kind ${m.kind}`);
  if (m.kind === Kind.Raw && ((m.meta & 0xff) >= BINARY_TYPE_COUNT || frames.length !== 1)) throw new MpiError(`a raw payload of type ${m.meta & 0xff} in ${frames.length} frames`);
  if (m.kind === Kind.Packed && frames.length === 0) throw new MpiError("a packed payload with no frame");
  if (m.kind >= DATA_KINDS && frames.length > 0) throw new MpiError(`a protocol message (kind ${m.kind}) with a payload`);
  return m;
}

/**
 * The envelope of a header whose payload has not been read yet, for a transport that can copy the
 * payload frames straight to their destination; undefined unless the payload travels in frames of
 * its own (not inline) and no acknowledgement is asked for.
 */
export function peekEnvelope(h: Buffer): Envelope | undefined {
  if (h.length !== HEADER_BYTES || readU32(h, 20) !== 0) return undefined;
  return { kind: h[0]!, ctx: readU32(h, 4), src: readU32(h, 8), tag: readU32(h, 12), meta: readU32(h, 16) };
}
