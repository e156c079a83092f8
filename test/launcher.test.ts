// tsmpirun as users meet it: exit statuses, messages, signals and no processes left behind.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { CLI, fixture, leftovers, newMark, processesWith, ROOT, run, start, waitForOutput } from "./helpers.js";

describe("tsmpirun on one machine", () => {
  it("runs hello with the ranks in order", async () => {
    const r = await run(["-n", "4", "examples/hello.ts"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().split("\n").map((l) => l.replace(/ \(pid \d+\)/, ""))).toEqual([0, 1, 2, 3].map((k) => `hello from rank ${k} of 4`));
  });

  it("gives ranks TSMPI_* variables, -x variables, --wdir and the script's arguments", async () => {
    const wdir = realpathSync(mkdtempSync(join(tmpdir(), "tsmpi-wdir-")));
    const r = await run(["-n", "3", "-x", "FOO=bar baz", "-x", "BAR", "--wdir", wdir, fixture("env.ts"), "--flag", "value", "-n", "9"], {
      env: { BAR: "from-launcher" },
    });
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l.env).toEqual([String(l.rank), "3", String(l.rank), "3"]);
      expect(l.foo).toBe("bar baz");
      expect(l.bar).toBe("from-launcher");
      expect(l.cwd).toBe(wdir);
      expect(l.args).toEqual(["--flag", "value", "-n", "9"]);
      expect(l.url).toBe(pathToFileURL(fixture("env.ts")).href); // import.meta.url names the source
    }
  });

  it("has glibc keep large freed blocks for reuse in ranks, unless the user set malloc up", async () => {
    const malloc = async (args: string[]) => {
      const r = await run(["-n", "2", ...args, fixture("env.ts")]);
      expect(r.exitCode).toBe(0);
      return r.stdout.trim().split("\n").map((l) => JSON.parse(l).malloc);
    };
    expect(await malloc([])).toEqual([["33554432", "67108864", null], ["33554432", "67108864", null]]);
    expect((await malloc(["-x", "MALLOC_TRIM_THRESHOLD_=1000"]))[0]).toEqual([null, "1000", null]);
    expect((await malloc(["-x", "GLIBC_TUNABLES=glibc.malloc.trim_threshold=1000"]))[1]).toEqual([null, null, "glibc.malloc.trim_threshold=1000"]);
  });

  it("runs `node [options] script` with those options in every rank", async () => {
    const r = await run(["-n", "2", "node", "--max-old-space-size=1234", "--no-warnings", fixture("env.ts"), "a"]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { args: string[]; execArgv: string[] });
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(l.args).toEqual(["a"]);
      expect(l.execArgv).toEqual(expect.arrayContaining(["--max-old-space-size=1234", "--no-warnings"]));
    }
    // Options Node refuses stop the job before any rank starts, named once, without Node's
    // lines about the V8 flags it passes after a bad one.
    for (const bad of ["--interrupt-budget=abc", "--no-such-option"]) {
      const refused = await run(["-n", "2", "node", "--no-warnings", bad, fixture("env.ts")]);
      expect(refused.exitCode).toBe(2);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toMatch(new RegExp(`^tsmpirun: node --no-warnings ${bad}: Node.js does not accept these options: .*${bad}`));
      expect(refused.stderr).not.toContain("harmony");
    }
    const python = await run(["-n", "2", "python3", "x.py"]);
    expect(python.exitCode).toBe(2);
    expect(python.stderr).toContain("tsmpirun runs Node.js scripts (.ts, .js, ...), given as a file");
  });

  it("profiles every rank with `node --cpu-prof --cpu-prof-dir D` (values as separate words too): one profile per rank, none more", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsmpi-prof-"));
    const r = await run(["-n", "2", "node", "--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", "500", "examples/hello.ts"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    // The options' check (node --check) must not leave a profile of its own.
    expect(readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))).toHaveLength(2);
  });

  it("accepts -np as mpirun does, and the tsmpiexec alias", async () => {
    const r = await run(["-np", "2", "examples/hello.ts"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("of 2");
    const pkg = (await import(pathToFileURL(join(ROOT, "package.json")).href, { with: { type: "json" } })).default as { bin: Record<string, string> };
    expect(pkg.bin.tsmpiexec).toBe(pkg.bin.tsmpirun);
  });

  it("--tag-output prefixes every line with [rank]; lines never mix", async () => {
    const r = await run(["-n", "4", "--tag-output", fixture("lines.ts")]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split("\n").filter((l) => l.length > 0);
    expect(lines).toHaveLength(4 * 301);
    for (const line of lines) {
      const m = /^\[(\d)\] (.*)$/.exec(line);
      expect(m, line.slice(0, 80)).not.toBeNull();
      const ch = String.fromCharCode(65 + Number(m![1]));
      expect(m![2] === `${ch} no newline at the end` || /^(.)\1*$/.test(m![2]!)).toBe(true);
      if (m![2]!.length > 100) expect(m![2]![0]).toBe(ch);
    }
    expect(r.stderr.split("\n").filter((l) => /^\[\d\] [A-D] progress/.test(l))).toHaveLength(24);
  });

  it("a rank that exits with a code ends the job with that code, naming the rank", async () => {
    const mark = newMark();
    const r = await run(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("fail-exit.ts"), "1", "3"]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/tsmpirun: rank 1 \(host [^)]+\) exited with code 3; stopping 2 ranks/);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("a peer waiting on a rank that left with process.exit(0) gets RankFailedError, not a hang", async () => {
    const r = await run(["-n", "2", fixture("fail-exit.ts"), "0", "0"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/RankFailedError: recv from world rank 0 cannot complete: that rank has exited/);
    // The rank that failed is named, and so is the one that left first, the likely cause.
    expect(r.stderr).toMatch(/tsmpirun: rank 1 \(host [^)]+\) exited with code 1 after rank 0 \(host [^)]+\) left the job early, with exit code 0 but without finalize\(\) \(process\.exit\?\)/);
    const mid = await run(["-n", "3", fixture("exit-midjob.ts")]);
    expect(mid.exitCode).toBe(1);
    expect(mid.stderr).toMatch(/tsmpirun: rank 0 \(host [^)]+\) exited with code 1 after rank 1 \(host [^)]+\) left the job early/);
  });

  it("a rank's own children end with the job: after a normal end, a rank killed with SIGKILL, and tsmpirun killed with SIGKILL", async () => {
    const normal = newMark();
    const done = await run(["-n", "3", "-x", `TSMPI_TEST_MARK=${normal}`, fixture("spawn-child.ts"), "exit"]);
    expect(done.exitCode).toBe(0);
    expect(await leftovers(normal)).toEqual([]);
    for (const victim of ["rank", "tsmpirun"] as const) {
      const mark = newMark();
      const job = start(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("spawn-child.ts")]);
      await waitForOutput(job, "ready", 3);
      expect(processesWith(mark).length).toBeGreaterThanOrEqual(6); // 3 ranks, 3 children (and setpriv's)
      if (victim === "tsmpirun") job.kill("SIGKILL");
      else {
        const rank1 = processesWith(mark).find((pid) => readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes("TSMPI_RANK=1") && readFileSync(`/proc/${pid}/comm`, "latin1").trim() === "node");
        process.kill(rank1!, "SIGKILL");
      }
      await job;
      expect(await leftovers(mark), victim).toEqual([]);
    }
  });

  it("a rank killed by a signal ends the job with 128 + signal", async () => {
    const mark = newMark();
    const job = start(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts")]);
    await waitForOutput(job, "ready", 3);
    const rank2 = processesWith(mark).find((p) => readFileSync(`/proc/${p}/environ`, "latin1").includes("\0TSMPI_RANK=2\0"));
    expect(rank2).toBeDefined();
    process.kill(rank2!, "SIGKILL");
    const r = await job;
    expect(r.exitCode).toBe(137);
    expect(String(r.stderr)).toMatch(/rank 2 \(host [^)]+\) was killed by signal SIGKILL/);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("an uncaught exception prints the rank's stack and fails the job", async () => {
    const mark = newMark();
    const r = await run(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("fail-throw.ts")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("tsmpi: rank 1 failed with an uncaught exception:");
    expect(r.stderr).toMatch(/Error: boom from rank 1\n\s+at .*fail-throw\.ts:7/); // source-mapped .ts line
    expect(r.stderr).toMatch(/tsmpirun: rank 1 \(host [^)]+\) exited with code 1/);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("an unhandled rejection fails the job the same way", async () => {
    const r = await run(["-n", "2", fixture("fail-throw.ts"), "reject"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("tsmpi: rank 1 failed with an unhandled promise rejection:");
    expect(r.stderr).toContain("async boom from rank 1");
  });

  it("abort(code) stops every rank and exits with code", async () => {
    const mark = newMark();
    const r = await run(["-n", "4", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("abort.ts")]);
    expect(r.exitCode).toBe(7);
    expect(r.stderr).toContain("rank 2 (host");
    expect(r.stderr).toContain("abort(7): bad input on rank 2");
    expect(await leftovers(mark)).toEqual([]);
  });

  it("--timeout stops the job with status 124 and says so", async () => {
    const mark = newMark();
    const t0 = Date.now();
    const r = await run(["-n", "3", "--timeout", "2", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts"), "timer"]);
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toContain("tsmpirun: the job ran longer than --timeout 2 s; stopping 3 ranks");
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("--timeout counts from the start: a job still compiling its script when it runs out stops with 124", async () => {
    const mark = newMark();
    const r = await run(["-n", "2", "--timeout", "0.001", "-x", `TSMPI_TEST_MARK=${mark}`, "examples/hello.ts"]);
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toBe("tsmpirun: the job ran longer than --timeout 0.001 s (it was still compiling examples/hello.ts)");
    expect(processesWith(mark)).toEqual([]);
  });

  it("--timeout beyond Node's 24.8-day timer limit (30 days) does not end the job at once", async () => {
    const r = await run(["-n", "2", "--timeout", "2592000", "examples/hello.ts"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
  });

  it("-n far beyond this machine's memory is refused at once, before any rank starts", async () => {
    const mark = newMark();
    const t0 = Date.now();
    const r = await run(["-n", "100000", "-x", `TSMPI_TEST_MARK=${mark}`, "examples/hello.ts"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^tsmpirun: -n 100000: that many ranks on this machine need at least 2929\.7 GB of memory \(30 MB each\) and it has [\d.]+ GB; use fewer ranks, or other hosts \(--host, --hostfile\)$/m);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(processesWith(mark)).toEqual([]);
  });

  it("a TMPDIR that does not exist is a clear error; one too long for socket names falls back to /tmp", async () => {
    const missing = await run(["-n", "2", "examples/hello.ts"], { env: { TMPDIR: "/no/such/dir" } });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe("tsmpirun: cannot make the job's directory in /no/such/dir (TMPDIR): it does not exist; set TMPDIR to a writable directory");
    const long = join(mkdtempSync(join(tmpdir(), "tsmpi-long-")), "x".repeat(90));
    mkdirSync(long);
    for (const transport of ["zmq", "shm"]) {
      const r = await run(["-n", "2", "--transport", transport, "examples/hello.ts"], { env: { TMPDIR: long } });
      expect(r.stderr, transport).toBe("");
      expect(r.stdout).toContain("hello from rank 1 of 2");
    }
  });

  /** `test/fixtures/hang.ts:N`, the line of hang.ts that holds `code`: what a report names. */
  const hangLine = (code: string) => {
    const n = readFileSync(fixture("hang.ts"), "utf8").split("\n").findIndex((l) => l.includes(code)) + 1;
    expect(n).toBeGreaterThan(0);
    return `test/fixtures/hang.ts:${n}`;
  };
  const esc = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  it("a deadlock (every rank receives first) ends within --deadlock-after + 2 s, naming each rank's call, its line and the wait-for cycle", async () => {
    const mark = newMark();
    const t0 = Date.now();
    const r = await run(["-n", "3", "--deadlock-after", "2", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("hang.ts"), "recv-first"]);
    expect(Date.now() - t0).toBeLessThan(2000 + 2000 + 3000); // threshold + 2 s, and the job's start
    expect(r.exitCode).toBe(125);
    expect(r.stderr).toContain("tsmpirun: deadlock: every rank has waited 2 s in tsmpi with no message moving:\n");
    const line = hangLine("await world.recv((rank + 1) % size, 7)");
    for (let k = 0; k < 3; k++) expect(r.stderr).toMatch(new RegExp(`  rank ${k} \\(host [^)]+\\): waits in recv from rank ${(k + 1) % 3}, tag 7, on the world at ${esc(line)}\\n`));
    expect(r.stderr).toContain("  wait-for cycle: rank 0 → rank 1 → rank 2 → rank 0\n");
    expect(r.stderr).toMatch(/tsmpirun: the job is deadlocked \(--deadlock-after 2\); stopping 3 ranks/);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("gather against scatter, where no message moves at all, is reported as a deadlock naming both calls and their lines", async () => {
    const t0 = Date.now();
    const r = await run(["-n", "3", "--deadlock-after", "2", fixture("hang.ts"), "gather-scatter"]);
    expect(Date.now() - t0).toBeLessThan(2000 + 2000 + 3000);
    expect(r.exitCode).toBe(125);
    const gather = esc(hangLine("await world.gather(rank, 0)"));
    const scatter = esc(hangLine("await world.scatter(null, 0)"));
    expect(r.stderr).toMatch(new RegExp(`rank 0 \\(host [^)]+\\): waits in gather \\(root 0\\), for rank 1's part, on the world at ${gather}; and in gather \\(root 0\\), for rank 2's part, on the world at ${gather}\\n`));
    expect(r.stderr).toMatch(new RegExp(`rank 1 \\(host [^)]+\\): waits in scatter \\(root 0\\), for rank 0's part, on the world at ${scatter}\\n`));
    expect(r.stderr).toContain("wait-for cycle: rank 0 → rank 1 → rank 0");
  });

  it("an allreduce waiting on a shared-memory board for a rank's part is a wait on that rank, with its line", async () => {
    const r = await run(["-n", "3", "--transport", "shm", "--deadlock-after", "2", fixture("hang.ts"), "board"]);
    expect(r.exitCode).toBe(125);
    const allreduce = esc(hangLine("else await world.allreduce(rank)"));
    for (const k of [1, 2]) expect(r.stderr).toMatch(new RegExp(`rank ${k} \\(host [^)]+\\): waits in allreduce \\(op sum\\), for rank 0's part, on the world at ${allreduce}\\n`));
    expect(r.stderr).toMatch(new RegExp(`rank 0 \\(host [^)]+\\): waits in recv from rank 1, tag any, on the world at ${esc(hangLine("if (rank === 0) await world.recv(1)"))}\\n`));
    expect(r.stderr).toContain("wait-for cycle: rank 0 → rank 1 → rank 0");
  });

  it("a rank busy in JavaScript is no deadlock: its state is shown once after --deadlock-after, and --timeout names it busy and the others' lines", async () => {
    const t0 = Date.now();
    const job = start(["-n", "3", "--deadlock-after", "1", "--timeout", "8", fixture("hang.ts"), "busy"]);
    let shownAfter = Infinity;
    job.stderr!.on("data", (chunk: Buffer) => {
      if (shownAfter === Infinity && chunk.toString().includes("no message has moved")) shownAfter = Date.now() - t0;
    });
    const r = await job;
    expect(r.exitCode).toBe(124);
    expect(shownAfter).toBeLessThan(1000 + 2000 + 3000); // threshold + 2 s, and the job's start
    const stderr = String(r.stderr);
    expect(stderr).not.toContain("deadlock:");
    const waits = esc(`waits in recv from rank 1, tag any, on the world at ${hangLine("await world.recv(1);")}`);
    const state = `  rank 0 \\(host [^)]+\\): ${waits}\\n  rank 1 \\(host [^)]+\\): busy: running JavaScript, not in a tsmpi call that waits \\(it did not answer\\)\\n  rank 2 \\(host [^)]+\\): ${waits}\\n`;
    expect(stderr).toMatch(new RegExp(`^tsmpirun: no message has moved for 1 s, and a rank does not answer \\(not stopping the job: a rank may compute for long; --timeout stops it\\):\\n${state}tsmpirun: --timeout 8 s: what each rank was doing:\\n${state}`));
    expect(stderr.split("no message has moved")).toHaveLength(2); // once, not at every poll
    expect(Date.now() - t0).toBeGreaterThan(8000);
  });

  it("a stopped rank (SIGSTOP) that the others wait for is a deadlock: named as stopped, and no process is left", async () => {
    const mark = newMark();
    const t0 = Date.now();
    const r = await run(["-n", "3", "--deadlock-after", "2", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("hang.ts"), "stopped"]);
    expect(Date.now() - t0).toBeLessThan(2000 + 2000 + 3000);
    expect(r.exitCode).toBe(125);
    const waits = esc(`waits in recv from rank 1, tag any, on the world at ${hangLine("} else await world.recv(1);")}`);
    expect(r.stderr).toMatch(new RegExp(
      `^tsmpirun: deadlock: every rank has waited in tsmpi or been stopped 2 s, with no message moving:\\n  rank 0 \\(host [^)]+\\): ${waits}\\n` +
        `  rank 1 \\(host [^)]+\\): stopped \\(SIGSTOP, or a debugger\\): it cannot go on until it gets SIGCONT\\n  rank 2 \\(host [^)]+\\): ${waits}\\n`,
    ));
    expect(await leftovers(mark)).toEqual([]);
  });

  it("a rank awaiting a timer of its own is no deadlock, however long the others wait for it", async () => {
    const r = await run(["-n", "3", "--deadlock-after", "1", fixture("hang.ts"), "sleepy"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("rank 2 got late");
  });

  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    it(`${sig} to the launcher stops every rank`, async () => {
      const mark = newMark();
      const job = start(["-n", "4", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts")]);
      await waitForOutput(job, "ready", 4);
      job.kill(sig);
      const r = await job;
      expect(r.exitCode).toBe(sig === "SIGINT" ? 130 : 143);
      expect(String(r.stderr)).toContain(`tsmpirun: caught ${sig}; stopping 4 ranks`);
      expect(await leftovers(mark)).toEqual([]);
    });
  }

  it("kill -9 of the launcher: every rank exits by itself within seconds, even one busy computing", async () => {
    // With setpriv (a parent-death signal) and without it (the ranks' watchdog thread).
    for (const setpriv of ["1", "0"]) {
      for (const mode of ["recv", "timer", "busy"]) {
        const mark = newMark();
        const job = start(["-n", "4", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts"), mode], { env: { TSMPI_SETPRIV: setpriv } });
        await waitForOutput(job, "ready", 4);
        job.kill("SIGKILL");
        await job;
        expect(await leftovers(mark, 5000), `ranks waiting in ${mode}, TSMPI_SETPRIV=${setpriv}`).toEqual([]);
      }
    }
  });

  it("standard input goes to rank 0 (the others get none), and unread input does not hold the job", async () => {
    const input = Array.from({ length: 50_000 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
    const r = await run(["-n", "3", fixture("stdin.ts")], { input });
    expect(r.exitCode).toBe(0);
    const got = r.stdout.trim().split("\n").map((l) => JSON.parse(l)).sort((a, b) => a.rank - b.rank);
    expect(got).toEqual([
      { rank: 0, lines: 50_000, first: "line 1", last: "line 50000" },
      { rank: 1, lines: 0, first: null, last: null },
      { rank: 2, lines: 0, first: null, last: null },
    ]);
    const unread = await run(["-n", "2", "examples/hello.ts"], { input: "x".repeat(8 << 20) });
    expect(unread.exitCode).toBe(0);
    expect(unread.stdout).toContain("hello from rank 1 of 2");
  });

  it("output is paced by its reader: a slow reader holds the ranks back instead of filling the launcher's memory", async () => {
    // 2 ranks × 1,000,000 lines of 100 bytes: 200 MB, which the launcher used to keep in memory
    // (over 1 GB of it) when nobody read its stdout for a while.
    const proc = spawn(process.execPath, [CLI, "-n", "2", fixture("flood.ts"), "1000000"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    await new Promise((r) => setTimeout(r, 4000)); // not reading
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))![1]);
    expect(rssKiB).toBeLessThan(200 * 1024);
    expect(stderr).not.toContain("flood done"); // the ranks wait for the reader
    let lines = 0;
    proc.stdout.on("data", (c: Buffer) => {
      for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
    });
    const code = await new Promise((r) => proc.on("close", r));
    expect([code, lines]).toEqual([0, 2_000_000]);
    expect(stderr.match(/flood done rank \d/g)).toHaveLength(2);
  });

  it("a closed stdout (tsmpirun ... | head) ends the job with 141, quietly, leaving nothing behind", async () => {
    const mark = newMark();
    const proc = spawn(process.execPath, [CLI, "-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("flood.ts"), "100000000"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    await new Promise((r) => proc.stdout.once("data", r));
    proc.stdout.destroy(); // as head does after its lines
    const code = await new Promise((r) => proc.on("close", r));
    expect(code).toBe(141);
    expect(stderr).toContain("tsmpirun: standard output was closed (broken pipe); stopping 3 ranks");
    expect(stderr).not.toMatch(/^\s+at /m);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("SIGUSR1 and SIGUSR2 to the launcher reach every rank, as with mpirun", async () => {
    const job = start(["-n", "3", fixture("signals.ts")]);
    await waitForOutput(job, "ready", 3);
    job.kill("SIGUSR1");
    await waitForOutput(job, "got SIGUSR1", 3);
    job.kill("SIGUSR2");
    const r = await job;
    expect(r.exitCode).toBe(0);
    expect(String(r.stdout).match(/rank \d got SIGUSR2/g)?.sort()).toEqual(["rank 0 got SIGUSR2", "rank 1 got SIGUSR2", "rank 2 got SIGUSR2"]);
  });

  it("two jobs at once do not collide", async () => {
    const [a, b] = await Promise.all([run(["-n", "3", fixture("suite.ts"), "p2p"]), run(["-n", "3", fixture("suite.ts"), "p2p"])]);
    expect([a.exitCode, b.exitCode]).toEqual([0, 0]);
    for (const r of [a, b]) {
      expect(r.stdout).toContain("suite p2p done");
      expect(r.stdout).not.toContain("FAILED");
    }
  });

  it("a script that throws during import fails the job with its stack", async () => {
    const r = await run(["-n", "2", fixture("import-throw.ts")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/Error: broken at import on rank \d/);
    expect(r.stderr).toMatch(/import-throw\.ts:3/);
  });

  it("a rank that exits without init() while others wait in init() fails the job", async () => {
    const mark = newMark();
    const r = await run(["-n", "3", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("no-init.ts")]);
    expect(r.exitCode).toBe(1);
    // Which of the others has reached init() by then depends on timing.
    expect(r.stderr).toMatch(/tsmpirun: rank 1 exited without calling init\(\) while rank (0|2|0, 2) waited for it in init\(\)/);
    expect(await leftovers(mark)).toEqual([]);
  });

  it("bad command lines get a clear error and status 2", async () => {
    const missing = await run(["-n", "2", "no/such/script.ts"]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("tsmpirun: script not found: no/such/script.ts");
    const noScript = await run(["-n", "2"]);
    expect(noScript.exitCode).toBe(2);
    expect(noScript.stderr).toContain("no script given");
    const badN = await run(["-n", "0", "examples/hello.ts"]);
    expect(badN.exitCode).toBe(2);
    expect(badN.stderr).toContain("-n 0: the number of ranks must be a whole number ≥ 1");
    const badOpt = await run(["--frobnicate", "examples/hello.ts"]);
    expect(badOpt.exitCode).toBe(2);
    expect(badOpt.stderr).toMatch(/Unknown argument: frobnicate/);
    const badX = await run(["-x", "1BAD=2", "examples/hello.ts"]);
    expect(badX.exitCode).toBe(2);
    expect(badX.stderr).toContain('-x 1BAD=2: "1BAD" is not a valid environment variable name');
  });

  it("--version and --help print and exit 0 without running anything", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const v = await run(["--version"]);
    expect([v.exitCode, v.stdout.trim()]).toEqual([0, `tsmpirun (tsmpi) ${pkg.version}, Node.js ${process.version}`]);
    const h = await run(["--help"]);
    expect(h.exitCode).toBe(0);
    expect(h.stdout).toContain("--oversubscribe");
  });

  it("a script that does not compile names the file, line and column", async () => {
    const r = await run(["-n", "2", fixture("syntax-error.ts")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("tsmpirun: cannot compile");
    expect(r.stderr).toMatch(/syntax-error\.ts:1:18/);
  });

  it("without the launcher a script is a singleton world", async () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "examples/hello.ts"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^hello from rank 0 of 1/);
  });
});
