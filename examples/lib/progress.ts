/**
 * A progress line for the examples' long runs, from rank 0: "heat: 400/1000 steps (40 %),
 * 1.2 s elapsed, ~1.8 s left". Shown when someone is watching — tsmpirun's stderr is a terminal
 * (it tells the ranks with TSMPI_STDERR_TTY=1; theirs is a pipe), or this process's own when run
 * without tsmpirun — or when asked for (`force`, e.g. --progress); quiet when piped.
 * A line every 2 s and one at the end: tsmpirun forwards whole lines, so no carriage returns.
 */
export function progress(what: string, total: number, unit: string, force = false): (done: number) => void {
  const rank0 = (process.env.TSMPI_RANK ?? "0") === "0";
  const watched = process.env.TSMPI_RANK === undefined ? process.stderr.isTTY === true : process.env.TSMPI_STDERR_TTY === "1";
  if (!rank0 || !(watched || force) || total <= 0) return () => {};
  const t0 = performance.now();
  let said = 0;
  let first: number | undefined;
  return (done) => {
    const elapsed = (performance.now() - t0) / 1000;
    first ??= done; // a restarted run starts part way: time left is reckoned from here
    if (elapsed - said < 2 && done < total) return;
    said = elapsed;
    const rate = done > first ? (done - first) / elapsed : 0;
    const left = rate > 0 ? `~${((total - done) / rate).toFixed(1)} s left` : "";
    process.stderr.write(`${what}: ${done}/${total} ${unit} (${Math.floor((100 * done) / total)} %), ${elapsed.toFixed(1)} s elapsed${left ? `, ${left}` : ""}\n`);
  };
}
