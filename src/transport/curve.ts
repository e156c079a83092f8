/**
 * Who may connect to a rank's ZeroMQ socket in a job that spans hosts: ZeroMQ CURVE (encrypted,
 * authenticated connections) with a key pair per rank, made when the rank starts. A rank's
 * public key reaches the others only in the rendezvous table, over channels the launcher already
 * trusts (its pipes to local ranks, the ssh or srun streams to other hosts); a client must know
 * the server's key to complete the handshake, and the server's ZAP handler (RFC 27) lets in only
 * clients whose key is one of the job's. A program outside the job therefore cannot get a
 * message, an acknowledgement or a FIN read by a rank.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from "node:crypto";
import * as zmq from "zeromq";

export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

/** How long an idle handler waits before it lets the event loop go. */
const IDLE_MS = 200;

const Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/** A Z85 text (ZeroMQ's key encoding) as the bytes it stands for. */
export function z85Decode(text: string): Buffer {
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 85 + Z85.indexOf(text[i + j]!);
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}

export function keyPair(): KeyPair {
  return zmq.curveKeyPair();
}

/** Length of a sender token (see SenderTokens). */
export const TOKEN_BYTES = 16;

/**
 * Who sent a message, on a socket that all of the job's ranks write to. ZeroMQ authenticates each
 * connection, but zeromq.js does not say which connection a message came in on
 * (zeromq/zeromq.js#327), so a rank of the job could still write another's number in a header.
 * Each message therefore starts with a token that only its sender and its receiver can make:
 * derived from the X25519 secret the two share (one's secret key with the other's public key,
 * the same on both sides; CURVE keys are X25519 keys). It travels inside the CURVE connection,
 * so nobody else sees it, and checking it is a map lookup.
 */
export class SenderTokens {
  private readonly own: KeyObject;
  /** Token → the rank whose messages to this rank carry it. */
  private readonly senders = new Map<string, number>();
  private readonly toPeer = new Map<number, Buffer>();

  constructor(
    private readonly rank: number,
    keys: KeyPair,
  ) {
    this.own = createPrivateKey({ key: { kty: "OKP", crv: "X25519", d: base64url(keys.secretKey), x: base64url(keys.publicKey) }, format: "jwk" });
  }

  /** Learns the job's keys (public, Z85, by rank; undefined: none) and works out each peer's token to this rank. */
  setPeers(publicKeys: readonly (string | undefined)[]): void {
    publicKeys.forEach((key, peer) => {
      if (key === undefined || peer === this.rank) return;
      const shared = diffieHellman({ privateKey: this.own, publicKey: createPublicKey({ key: { kty: "OKP", crv: "X25519", x: base64url(key) }, format: "jwk" }) });
      this.toPeer.set(peer, token(shared, this.rank, peer));
      this.senders.set(token(shared, peer, this.rank).toString("latin1"), peer);
    });
  }

  /** The token this rank puts on its messages to `peer`. */
  to(peer: number): Buffer | undefined {
    return this.toPeer.get(peer);
  }

  /** The rank that sent a message whose first frame is `frame`, or undefined when no rank of the job did. */
  sender(frame: Buffer): number | undefined {
    return frame.byteLength >= TOKEN_BYTES ? this.senders.get(frame.toString("latin1", 0, TOKEN_BYTES)) : undefined;
  }
}

const base64url = (z85: string) => z85Decode(z85).toString("base64url");

/** The token on messages from `from` to `to`, from the secret the two share. */
function token(shared: Buffer, from: number, to: number): Buffer {
  return createHmac("sha256", shared).update(`tsmpi sender ${from} to ${to}`).digest().subarray(0, TOKEN_BYTES);
}

/**
 * The process's ZAP handler: answers libzmq's authentication requests for every CURVE server
 * socket of this process (one per ZeroMQ context: zeromq.js's global one). Until the job's keys
 * are known (`allow`), nobody is let in: no rank of the job can connect before it has the table.
 */
class Gatekeeper {
  private readonly allowed = new Set<string>();
  private readonly socket = new zmq.Reply({ linger: 0, receiveTimeout: IDLE_MS });
  private serving = false;

  private constructor() {}

  static async start(): Promise<Gatekeeper> {
    const g = new Gatekeeper();
    await g.socket.bind("inproc://zeromq.zap.01");
    return g;
  }

  allow(publicKeys: Iterable<string>): void {
    for (const k of publicKeys) this.allowed.add(z85Decode(k).toString("hex"));
  }

  /**
   * Answers requests while `busy()` says the rank waits for something (as the transport's own
   * reader does): a receive pending in zeromq.js keeps Node's event loop alive, and a finished
   * rank must be able to exit. A peer connecting meanwhile waits for the next wait of this rank.
   */
  serveWhile(busy: () => boolean): void {
    if (!this.serving) void this.serve(busy);
  }

  private async serve(busy: () => boolean): Promise<void> {
    this.serving = true;
    try {
      for (;;) {
        let req: Buffer[];
        try {
          req = await this.socket.receive();
        } catch (e) {
          if ((e as { code?: string }).code === "EAGAIN" && busy()) continue;
          return; // idle, or closed with the transport
        }
        const [version, requestId, , , , mechanism, clientKey] = req;
        const ok = mechanism?.toString() === "CURVE" && clientKey !== undefined && this.allowed.has(clientKey.toString("hex"));
        try {
          await this.socket.send([version!, requestId!, ok ? "200" : "400", ok ? "OK" : "not a rank of this job", "", ""]);
        } catch {
          return; // closed with the transport (finalize) between the request and the answer
        }
      }
    } finally {
      this.serving = false;
    }
  }

  close(): void {
    this.socket.close();
  }
}

let gatekeeper: Promise<Gatekeeper> | null = null;

/** This process's ZAP handler, started on first use. */
export function gate(): Promise<Gatekeeper> {
  gatekeeper ??= Gatekeeper.start();
  return gatekeeper;
}
