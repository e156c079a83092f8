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

/**
 * A stream written at its reader's pace: `write` returns undefined while the stream takes more,
 * and otherwise the one promise, shared by every writer held back, that settles when it has
 * drained (or closed: nobody will read it, so nobody should wait for it).
 */
export class PacedWriter {
  private draining: Promise<void> | null = null;

  constructor(readonly out: Writable) {}

  write(text: string): Promise<void> | undefined {
    if (this.out.write(text)) return undefined;
    this.draining ??= new Promise<void>((resolve) => {
      const done = () => {
        this.out.off("drain", done);
        this.out.off("close", done);
        this.out.off("error", done);
        this.draining = null;
        resolve();
      };
      this.out.on("drain", done);
      this.out.on("close", done);
      this.out.on("error", done);
    });
    return this.draining;
  }
}

export class Output {
  private readonly closed = new Set<Stream>();
  private readonly writers: Record<Stream, PacedWriter>;
  private brokenHandler: ((stream: Stream) => void) | null = null;

  constructor(
    private readonly tag: boolean,
    streams: Record<Stream, Writable> = { stdout: process.stdout, stderr: process.stderr },
  ) {
    this.writers = { stdout: new PacedWriter(streams.stdout), stderr: new PacedWriter(streams.stderr) };
    for (const name of ["stdout", "stderr"] as const) {
      // EPIPE and the like: whoever read this stream has gone (`tsmpirun ... | head`).
      streams[name].on("error", () => this.broken(name));
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

  /** Text from tsmpirun itself, as it is (a report's table or JSON line). */
  text(stream: Stream, text: string): void {
    void this.write(stream, text);
  }

  private write(stream: Stream, text: string): Promise<void> | undefined {
    if (this.closed.has(stream)) return undefined; // nobody reads it: drop, never block on it
    return this.writers[stream].write(text);
  }

  private broken(stream: Stream): void {
    if (this.closed.has(stream)) return;
    this.closed.add(stream);
    this.brokenHandler?.(stream);
  }
}
