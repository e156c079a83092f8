/**
 * Where ranks' output goes: the launcher's own stdout/stderr, one whole line per write, so lines
 * from different ranks never interleave mid-line.
 */
export class Output {
  constructor(private readonly tag: boolean) {}

  line(rank: number, stream: "stdout" | "stderr", text: string): void {
    const out = stream === "stdout" ? process.stdout : process.stderr;
    out.write(this.tag ? `[${rank}] ${text}\n` : `${text}\n`);
  }

  /** A message from tsmpirun itself. */
  note(text: string): void {
    process.stderr.write(`tsmpirun: ${text}\n`);
  }
}
