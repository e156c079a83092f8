/**
 * Where ranks' output goes: the launcher's own stdout/stderr, one whole line per write, so lines
 * from different ranks never interleave mid-line.
 *
 * Writing is paced by the reader: when a stream's buffer is full, `line` returns a promise and
 * the caller stops reading that rank's output until it settles, so the rank's pipe fills and
 * the rank itself waits. Without that, a job printing faster than its reader (a pager, a slow
 * pipe, ssh) piled all of its output up in the launcher's memory.
 */
import type { Writable } from "node:stream";

type Stream = "stdout" | "stderr";

export class Output {
  private readonly closed = new Set<Stream>();
  /** One wait per stream for its buffer to empty, shared by every rank held back by it. */
  private readonly draining = new Map<Stream, Promise<void>>();
  private brokenHandler: ((stream: Stream) => void) | null = null;

  constructor(
    private readonly tag: boolean,
    private readonly streams: Record<Stream, Writable> = { stdout: process.stdout, stderr: process.stderr },
  ) {
    for (const name of ["stdout", "stderr"] as const) {
      // EPIPE and the like: whoever read this stream has gone (`tsmpirun ... | head`).
      this.streams[name].on("error", () => this.broken(name));
    }
  }

  /** Called once when a stream can no longer be written (its reader closed it). */
  onBroken(handler: (stream: Stream) => void): void {
    this.brokenHandler = handler;
  }

  /** Writes one line; a promise means "wait for it before handing me more from this source". */
  line(rank: number, stream: Stream, text: string): Promise<void> | undefined {
    return this.write(stream, this.tag ? `[${rank}] ${text}\n` : `${text}\n`);
  }

  /** A message from tsmpirun itself. */
  note(text: string): void {
    void this.write("stderr", `tsmpirun: ${text}\n`);
  }

  private write(stream: Stream, text: string): Promise<void> | undefined {
    if (this.closed.has(stream)) return undefined; // nobody reads it: drop, never block on it
    const out = this.streams[stream];
    if (out.write(text)) return undefined;
    let wait = this.draining.get(stream);
    if (!wait) {
      wait = new Promise<void>((resolve) => {
        const done = () => {
          out.off("drain", done);
          out.off("close", done);
          out.off("error", done);
          this.draining.delete(stream);
          resolve();
        };
        out.on("drain", done);
        out.on("close", done);
        out.on("error", done);
      });
      this.draining.set(stream, wait);
    }
    return wait;
  }

  private broken(stream: Stream): void {
    if (this.closed.has(stream)) return;
    this.closed.add(stream);
    this.brokenHandler?.(stream);
  }
}
