// Many hosts for real: three pretend cluster hosts (network namespaces on a bridge, each with its
// own sshd; test/rig/hosts-up.sh), reached over ssh as on a cluster. Needs root and iproute2;
// elsewhere these tests are reported as skipped, never as passed.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkTrace } from "./trace-check.js";
import { CLI, eventually, fixture, leftovers, newMark, ROOT, run, start, waitForOutput } from "./helpers.js";

const RIG = "/tmp/tsmpi-rig-test";
const canRig = process.getuid?.() === 0 && spawnSync("ip", ["netns", "list"]).status === 0;
if (!canRig) console.warn("hosts.test.ts: skipped: the multi-host rig needs root and iproute2 (ip netns)");

const agent = `ssh -F ${RIG}/ssh_config`;
/** Parses where.ts's JSON lines, by rank. */
function where(stdout: string) {
  return stdout.trim().split("\n").map((l) => JSON.parse(l) as { rank: number; local: number[]; host: string; addresses: string[]; mark: string | null; heard: string; sum: number; cwd: string; step: string | null }).sort((a, b) => a.rank - b.rank);
}
const address = (host: string) => `10.77.0.${10 + Number(host.slice(1))}`;

/** PID of the rank process with TSMPI_RANK=rank whose environment holds `mark`. */
function rankPid(mark: string, rank: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "latin1").split("\0");
      if (env.includes(`TSMPI_TEST_MARK=${mark}`) && env.includes(`TSMPI_RANK=${rank}`)) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

describe.skipIf(!canRig)("many hosts (3 network namespaces with sshd)", () => {
  beforeAll(() => {
    const r = spawnSync("bash", [join(ROOT, "test/rig/hosts-up.sh"), "3", RIG], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`rig did not come up:\n${r.stdout}\n${r.stderr}`);
  }, 180_000);
  afterAll(() => {
    spawnSync("bash", [join(ROOT, "test/rig/hosts-down.sh"), RIG]);
  });

  it("a hang across hosts is reported with each rank's host, call and line; a rank stopped on another host is named stopped", async () => {
    const mark = newMark();
    const t0 = Date.now();
    const r = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-n", "3", "--map-by", "node", "--deadlock-after", "2", "-x", `TSMPI_TEST_MARK=${mark}`, fixture("hang.ts"), "stopped"]);
    expect(Date.now() - t0).toBeLessThan(2000 + 2000 + 5000); // threshold + 2 s, and a start over ssh
    expect(r.exitCode).toBe(125);
    const n = readFileSync(fixture("hang.ts"), "utf8").split("\n").findIndex((l) => l.includes("} else await world.recv(1);")) + 1;
    expect(r.stderr).toContain(
      "tsmpirun: deadlock: every rank has waited in tsmpi or been stopped 2 s, with no message moving:\n" +
        `  rank 0 (host h1): waits in recv from rank 1, tag any, on the world at test/fixtures/hang.ts:${n}\n` +
        "  rank 1 (host h2): stopped (SIGSTOP, or a debugger): it cannot go on until it gets SIGCONT\n" +
        `  rank 2 (host h3): waits in recv from rank 1, tag any, on the world at test/fixtures/hang.ts:${n}\n`,
    );
    expect(await leftovers(mark)).toEqual([]);
  });

  it("a communicator of one host's ranks has shared-memory boards (no message for its allreduces); one across hosts uses messages", async () => {
    const r = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "--report", "json", fixture("board.ts"), "pairs"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    for (let k = 0; k < 6; k++) expect(r.stdout).toContain(`rank ${k}: pairs: ok`);
    const { ranks } = JSON.parse(r.stdout.trim().split("\n").pop()!) as { ranks: { host: string; messagesSent: number }[] };
    // Slots fill host by host: ranks 2k and 2k + 1 share one (and with TSMPI_BOARDS=off each sends 200 more).
    expect(ranks.map((x) => x.host)).toEqual(["h1", "h1", "h2", "h2", "h3", "h3"]);
    // 20 world allreduces by messages (and the split) on every rank; the 200 pair allreduces add nothing.
    for (const x of ranks) {
      expect(x.messagesSent).toBeGreaterThanOrEqual(20);
      expect(x.messagesSent).toBeLessThan(200);
    }
  });

  it("heat on 3 hosts × 2 slots gives the same fieldHash as on one rank", async () => {
    const args = ["examples/heat.ts", "--n", "96", "--steps", "60", "--json"];
    const many = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, ...args]);
    expect(many.stderr).toBe("");
    expect(many.exitCode).toBe(0);
    const one = await run(["-n", "1", ...args]);
    const [a, b] = [many, one].map((r) => JSON.parse(r.stdout.trim().split("\n").pop()!));
    expect(a.ranks).toBe(6); // -n defaults to the hostfile's slots
    expect(a.fieldHash).toBe(b.fieldHash);
  });

  it("a program outside the job cannot get a message, FIN, acknowledgement or collective contribution read by a rank on another host (CURVE, per-rank keys), and raw random bytes on its port harm nothing; with --insecure the forged message gets in", async () => {
    for (const insecure of [false, true]) {
      const mark = newMark();
      const job = start(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, ...(insecure ? ["--insecure"] : []), fixture("intruder-target.ts")]);
      await waitForOutput(job, "ready", 1);
      // The intruder knows where rank 0 listens (as a port scan would tell it).
      const pid = rankPid(mark, 0)!;
      const listening = spawnSync("nsenter", ["-t", String(pid), "-n", "ss", "-ltnpH"], { encoding: "utf8" }).stdout.split("\n").find((l) => l.includes(`pid=${pid},`));
      const address = listening?.trim().split(/\s+/)[3];
      expect(address, `rank 0's tcp socket (ss: ${listening})`).toMatch(/^10\.77\.0\.\d+:\d+$/);
      // Secured, it also tries a FIN, an acknowledgement and a collective contribution in rank 1's name.
      const intruder = await execa(process.execPath, [fixture("intruder.mjs"), `tcp://${address}`, insecure ? "message" : "all"], { cwd: ROOT, reject: false });
      expect(intruder.exitCode, String(intruder.stderr)).toBe(0);
      expect(Number(/(\d+) raw writes/.exec(String(intruder.stdout))?.[1])).toBeGreaterThan(10); // random bytes on the bare port too
      const r = await job;
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(String(r.stdout)).toContain(insecure ? 'rank 0 got "forged" from rank 1' : 'rank 0 got "the real message" from rank 1');
      expect(String(r.stdout).match(/rank \d: allreduce 15/g)).toHaveLength(6);
    }
  });

  it("--trace: one file with every host's ranks on one time line, even when the hosts' clocks disagree by seconds", async () => {
    const file = join(mkdtempSync("/tmp/tsmpi-trace-rig-"), "rig.json");
    const began = Date.now();
    // h2's clock reads 5 s ahead and h3's 3 s behind (TSMPI_TEST_CLOCK_SKEW): each host's agent
    // measures its offset to the launcher, and its ranks' times are moved by it.
    const r = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", "TSMPI_TEST_CLOCK_SKEW=h2:5000,h3:-3000", "--trace", file, "examples/heat.ts", "--n", "96", "--steps", "60"]);
    const wallUs = (Date.now() - began) * 1000;
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const t = checkTrace(file);
    expect([...t.processes.values()].map((n) => n.replace(/^rank \d+ /, "")).sort()).toEqual(["(h1)", "(h1)", "(h2)", "(h2)", "(h3)", "(h3)"]);
    for (const s of t.spans) {
      expect(s.ts).toBeGreaterThan(0);
      expect(s.ts + s.dur!).toBeLessThan(wallUs);
    }
    const across = t.messages.filter((m) => t.processes.get(m.from.pid)!.slice(-3) !== t.processes.get(m.to.pid)!.slice(-3));
    expect(across.length).toBeGreaterThan(100);
    for (const m of t.messages) expect(m.to.ts + m.to.dur!, `message ${m.id}: ${m.from.name} on rank ${m.from.pid} → ${m.to.name} on rank ${m.to.pid}`).toBeGreaterThanOrEqual(m.from.ts);
  });

  it("checkpoints on hosts that do not share the directory go through rank 0; a killed rig job restarts on this machine with the same fieldHash", async () => {
    // h2 and h3 get a directory of their own at the same path (a tmpfs in their sshd's mount
    // namespace), as nodes with local disks have: only h1 (rank 0's host) sees this machine's.
    const dir = mkdtempSync("/tmp/tsmpi-ckpt-rig-");
    const file = join(dir, "heat.npy");
    const sshd = (h: string) => readFileSync(join(RIG, `sshd-${h}.pid`), "utf8").trim();
    for (const h of ["h2", "h3"]) expect(spawnSync("nsenter", ["-t", sshd(h), "-m", "mount", "-t", "tmpfs", "tmpfs", dir]).status).toBe(0);
    try {
      const heat = (n: number, steps: number) => ["examples/heat.ts", "--n", String(n), "--steps", String(steps), "--json"];
      const onRig = (args: string[]) => run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, ...args]);
      const hashOf = (r: { stdout: string }) => JSON.parse(r.stdout.trim().split("\n").pop()!).fieldHash as string;
      const saved = await onRig([...heat(64, 50), "--checkpoint", file]);
      expect(saved.stderr).toBe("");
      expect(readdirSync(dir).sort()).toEqual(["heat.npy", "heat.npy.json"]);
      const here = await run(["-n", "1", ...heat(64, 100)]);
      // Restarted on the rig (h2's and h3's blocks read by rank 0) and on this machine alone.
      expect(hashOf(await onRig([...heat(64, 100), "--restart", file]))).toBe(hashOf(here));
      expect(hashOf(await run(["-n", "4", ...heat(64, 100), "--restart", file]))).toBe(hashOf(here));
      // Killed with SIGKILL on the rig between checkpoints, continued on 3 local ranks.
      const mark = newMark();
      const long = ["examples/heat.ts", "--n", "96", "--steps", "4000", "--kernel", "js", "--json"];
      const job = start(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, ...long, "--checkpoint", file, "--checkpoint-every", "300"]);
      const first = readFileSync(`${file}.json`, "utf8");
      await eventually(() => readFileSync(`${file}.json`, "utf8"), (text) => text !== first, 60_000);
      job.kill("SIGKILL");
      await job;
      expect(await leftovers(mark, 10_000)).toEqual([]);
      const step = JSON.parse(readFileSync(`${file}.json`, "utf8")).meta.step as number;
      expect([step % 300, step < 4000]).toEqual([0, true]);
      const [again, whole] = [await run(["-n", "3", ...long, "--restart", file]), await run(["-n", "1", ...long])];
      expect(again.stderr).toBe("");
      expect(hashOf(again)).toBe(hashOf(whole));
    } finally {
      for (const h of ["h2", "h3"]) spawnSync("nsenter", ["-t", sshd(h), "-m", "umount", dir]);
    }
  });

  it("--map-by slot and --map-by node put each rank where they say, and ranks on different hosts talk", async () => {
    const mark = newMark();
    for (const mapBy of ["slot", "node"]) {
      const r = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "--map-by", mapBy, "-x", `TSMPI_TEST_MARK=${mark}`, fixture("where.ts")]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      const ranks = where(r.stdout);
      expect(ranks.map((x) => x.rank)).toEqual([0, 1, 2, 3, 4, 5]);
      for (const x of ranks) {
        const host = mapBy === "slot" ? `h${Math.floor(x.rank / 2) + 1}` : `h${(x.rank % 3) + 1}`;
        expect(x.host, `rank ${x.rank} with --map-by ${mapBy}`).toBe(host);
        expect(x.addresses).toEqual([address(host)]); // really in that host's namespace
        expect(x.local).toEqual([mapBy === "slot" ? x.rank % 2 : Math.floor(x.rank / 3), 2]);
        expect(x.mark).toBe(mark); // -x reaches remote ranks
        expect(x.cwd).toBe(resolve(ROOT)); // and so does the working directory
        expect(x.heard).toBe(`from ${(x.rank + 5) % 6}`);
        expect(x.sum).toBe(15);
      }
    }
    expect(await leftovers(mark)).toEqual([]);
  });

  it("mixes this machine with remote hosts, and honours --host, --oversubscribe and --tcp-if", async () => {
    const r = await run(["--host", "localhost:2,h2:1,h3", "--launch-agent", agent, "--tcp-if", "10.77.0.0/24", fixture("where.ts")]);
    expect(r.exitCode).toBe(0);
    expect(where(r.stdout).map((x) => x.host)).toEqual(["localhost", "localhost", "h2", "h3"]);
    const over = await run(["--host", "h1:2,h2:2", "--launch-agent", agent, "-n", "5", fixture("where.ts")]);
    expect(over.exitCode).toBe(2);
    expect(over.stderr).toContain("-n 5: --host has 4 slots (h1:2, h2:2); add --oversubscribe to run more ranks than slots");
    const ok = await run(["--host", "h1:2,h2:2", "--launch-agent", agent, "-n", "5", "--oversubscribe", fixture("where.ts")]);
    expect(ok.exitCode).toBe(0);
    expect(where(ok.stdout).map((x) => x.host)).toEqual(["h1", "h1", "h2", "h2", "h1"]);
  });

  it("inside a PBS allocation, hosts and slots come from PBS_NODEFILE", async () => {
    const nodefile = join(RIG, "pbs_nodefile");
    writeFileSync(nodefile, "h2\nh2\nh3\nh1\n"); // a host once per slot, as PBS writes it
    const r = await run(["--launch-agent", agent, fixture("where.ts")], { env: { PBS_NODEFILE: nodefile } });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const ranks = where(r.stdout);
    expect(ranks.map((x) => x.host)).toEqual(["h2", "h2", "h3", "h1"]); // -n defaults to the slots
    for (const x of ranks) expect(x.addresses).toEqual([address(x.host)]);
  });

  it("without ssh's variables (as under srun), each host takes its address from the route to the launcher", async () => {
    // A launch agent that reaches hosts with ssh but hides SSH_CONNECTION/SSH_CLIENT there.
    const wrapper = join(RIG, "nossh-agent");
    writeFileSync(wrapper, `#!/bin/bash\nhost="$1"; shift\nexec ssh -F ${RIG}/ssh_config "$host" "unset SSH_CONNECTION SSH_CLIENT SSH_TTY; $*"\n`, { mode: 0o755 });
    for (const hosts of ["localhost:1,h1:1,h2:1", "h1:1,h2:1,h3:1"]) {
      const r = await run(["--host", hosts, "--launch-agent", wrapper, fixture("where.ts")]);
      expect(r.stderr, hosts).toBe("");
      expect(r.exitCode).toBe(0);
      const ranks = where(r.stdout);
      expect(ranks.map((x) => x.host)).toEqual(hosts.split(",").map((h) => h.split(":")[0]));
      for (const x of ranks) expect([x.heard, x.sum]).toEqual([`from ${(x.rank + 2) % 3}`, 3]);
    }
  });

  it("an address the other hosts cannot reach is reported on stderr, not a silent hang", async () => {
    const r = await run(["--host", "localhost:1,h1:1", "--launch-agent", agent, "--tcp-if", "127.0.0.0/8", "-x", "TSMPI_CONNECT_WARN=1", "--timeout", "5", fixture("where.ts")]);
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toMatch(/tsmpi: rank \d \(host (localhost|h1)\) has not reached rank \d at tcp:\/\/127\.0\.0\.1:\d+ \(host (h1|localhost)\) in 1 s and keeps trying; .*--tcp-if/);
  });

  it("standard input reaches rank 0 on a remote host", async () => {
    const input = Array.from({ length: 20_000 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
    const r = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, fixture("stdin.ts")], { input });
    expect(r.exitCode).toBe(0);
    const got = r.stdout.trim().split("\n").map((l) => JSON.parse(l)).sort((a, b) => a.rank - b.rank);
    expect(got[0]).toEqual({ rank: 0, lines: 20_000, first: "line 1", last: "line 20000" });
    expect(got.slice(1).every((x) => x.lines === 0)).toBe(true);
  });

  it("output from remote ranks is paced by the reader, and a closed stdout ends the job on every host", async () => {
    const proc = spawn(process.execPath, [CLI, "--host", "h2:2", "--launch-agent", agent, fixture("flood.ts"), "600000"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    await new Promise((r) => setTimeout(r, 5000)); // not reading
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))![1]);
    expect(rssKiB).toBeLessThan(200 * 1024); // 120 MB of output is waiting on h2, not here
    expect(stderr).not.toContain("flood done");
    let lines = 0;
    proc.stdout.on("data", (c: Buffer) => {
      for (let i = c.indexOf(10); i >= 0; i = c.indexOf(10, i + 1)) lines++;
    });
    expect([await new Promise((r) => proc.on("close", r)), lines]).toEqual([0, 1_200_000]);

    const mark = newMark();
    const head = spawn(process.execPath, [CLI, "--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, fixture("flood.ts"), "100000000"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    await new Promise((r) => head.stdout.once("data", r));
    head.stdout.destroy();
    expect(await new Promise((r) => head.on("close", r))).toBe(141);
    expect(await leftovers(mark, 10_000)).toEqual([]);
  });

  it("SIGUSR1 to the launcher reaches the ranks on every host", async () => {
    const job = start(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, fixture("signals.ts")]);
    await waitForOutput(job, "ready", 6);
    job.kill("SIGUSR1");
    await waitForOutput(job, "got SIGUSR1", 6);
    job.kill("SIGUSR2");
    expect((await job).exitCode).toBe(0);
  });

  it("a rank killed on a remote host ends the job naming its host; nothing is left on any host", async () => {
    const mark = newMark();
    const job = start(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts")]);
    await waitForOutput(job, "ready", 6);
    process.kill(rankPid(mark, 4)!, "SIGKILL");
    const r = await job;
    expect(r.exitCode).toBe(137);
    expect(String(r.stderr)).toMatch(/tsmpirun: rank 4 \(host h3\) was killed by signal SIGKILL; stopping 5 ranks/);
    expect(await leftovers(mark)).toEqual([]);
    const code = await run(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, fixture("fail-exit.ts"), "3", "7"]);
    expect(code.exitCode).toBe(7);
    expect(code.stderr).toContain("tsmpirun: rank 3 (host h2) exited with code 7");
    expect(await leftovers(mark)).toEqual([]);
  });

  it("kill -9 of the launcher, or Ctrl-C, leaves nothing running on any host", async () => {
    const mark = newMark();
    const job = start(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts"), "timer"]);
    await waitForOutput(job, "ready", 6);
    job.kill("SIGKILL");
    await job;
    expect(await leftovers(mark, 10_000)).toEqual([]);
    const again = start(["--hostfile", `${RIG}/hostfile`, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, fixture("wait-forever.ts")]);
    await waitForOutput(again, "ready", 6);
    again.kill("SIGINT");
    const r = await again;
    expect(r.exitCode).toBe(130);
    expect(await leftovers(mark, 10_000)).toEqual([]);
  });

  describe("inside a Slurm allocation of 3 nodes, one slurmd on each rig host", () => {
    const SLURM = "/tmp/tsmpi-slurm-rig-test";
    const env = { ...process.env, SLURM_CONF: `${SLURM}/slurm.conf` };
    /** salloc -N 3 -n N tsmpirun ...: the launcher runs outside the nodes, as on a login node. */
    const salloc = (n: number, args: string[]) =>
      execa("salloc", ["-N", "3", "-n", String(n), process.execPath, CLI, ...args], { cwd: ROOT, env, reject: false, timeout: 120_000 });
    beforeAll(() => {
      const r = spawnSync("bash", [join(ROOT, "test/rig/slurm-up.sh"), SLURM, "3"], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`slurm did not come up:\n${r.stdout}\n${r.stderr}`);
    }, 300_000);
    afterAll(() => {
      spawnSync("bash", [join(ROOT, "test/rig/slurm-down.sh"), SLURM]);
    });

    it("ranks run on every node of the allocation, one srun step per node, and talk across nodes", async () => {
      const mark = newMark();
      const r = await salloc(6, ["-x", `TSMPI_TEST_MARK=${mark}`, fixture("where.ts")]);
      expect(r.exitCode).toBe(0);
      const ranks = where(String(r.stdout));
      expect(ranks.map((x) => x.rank)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(new Set(ranks.map((x) => x.host))).toEqual(new Set(["h1", "h2", "h3"]));
      const stepOf = new Map<string, string>();
      for (const x of ranks) {
        expect(x.addresses).toEqual([address(x.host)]); // in that node's own network stack
        expect(x.sum).toBe(15);
        expect(x.heard).toBe(`from ${(x.rank + 5) % 6}`);
        expect(x.mark).toBe(mark);
        // Ranks of one node share its step; each node has its own.
        expect(x.step).not.toBeNull();
        expect(stepOf.get(x.host) ?? x.step).toBe(x.step);
        stepOf.set(x.host, x.step!);
      }
      expect(new Set(stepOf.values()).size).toBe(3);
      expect(await leftovers(mark)).toEqual([]);
    });

    it("heat gives the 1-rank field; a rank failing on a node ends the job naming it, leaving nothing", async () => {
      const args = ["examples/heat.ts", "--n", "64", "--steps", "40", "--json"];
      const many = await salloc(5, args);
      expect(many.exitCode).toBe(0);
      const one = await run(["-n", "1", ...args]);
      const [a, b] = [String(many.stdout), one.stdout].map((out) => JSON.parse(out.trim().split("\n").pop()!));
      expect([a.ranks, a.fieldHash]).toEqual([5, b.fieldHash]);
      const mark = newMark();
      const fail = await salloc(3, ["-x", `TSMPI_TEST_MARK=${mark}`, fixture("fail-exit.ts"), "2", "7"]);
      expect(fail.exitCode).toBe(7);
      expect(String(fail.stderr)).toMatch(/tsmpirun: rank 2 \(host h3\) exited with code 7/);
      expect(await leftovers(mark, 10_000)).toEqual([]);
    });
  });

  it("a host that does not answer, or does not exist, is a clear error within 10 s naming it", async () => {
    const mark = newMark();
    const file = join(RIG, "hostfile-bad");
    writeFileSync(file, "h1 slots=2\n10.77.0.250 slots=2   # never answers\n");
    const t0 = Date.now();
    const r = await run(["--hostfile", file, "--launch-agent", agent, "-x", `TSMPI_TEST_MARK=${mark}`, "examples/hello.ts"]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/tsmpirun: cannot start on host 10\.77\.0\.250: ssh exited with code 255: .*(No route to host|timed out)|host 10\.77\.0\.250 did not answer within/);
    const unknown = await run(["--host", "h1,no-such-host.invalid", "--launch-agent", agent, "examples/hello.ts"]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toMatch(/cannot start on host no-such-host\.invalid: .*Could not resolve hostname/);
    expect(await leftovers(mark)).toEqual([]);
  });
});
