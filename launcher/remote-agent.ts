#!/usr/bin/env node
/**
 * The tsmpi agent on a remote host, started once per host by the launch agent (ssh, srun):
 * runs that host's ranks with the same HostAgent the launcher uses for its own host, and relays
 * control messages, output lines and exit statuses over its stdin/stdout as JSON lines. When its
 * stdin closes (the launcher died, or the connection was lost) it stops its ranks and exits: a
 * remote command outlives a dead ssh otherwise.
 *   usage: remote-agent.js [--tcp-if SPEC] [--launcher ADDR,ADDR,...]
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { interfaceAddress, ownAddresses, routeSource, sshClientAddress, sshServerAddress } from "./addresses.js";
import { HostAgent, inheritedEnv } from "./agent.js";
import { createJobDir, type JobDir } from "./jobdir.js";
import { PacedWriter } from "./output.js";
import { hostClock, testSkew } from "../src/trace.js";
import { SCRIPT, type AgentToLauncher, type LauncherToAgent, type RemotePlan } from "./protocol.js";

const STOP_GRACE_MS = 2000;

/**
 * Messages to the launcher. Output lines wait for the returned promise, so a rank printing faster
 * than the launcher's reader is held back here rather than piling up in this process.
 */
const toLauncher = new PacedWriter(process.stdout);
function say(msg: AgentToLauncher): Promise<void> | undefined {
  return toLauncher.write(`${JSON.stringify(msg)}\n`);
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const tcpIf = arg("--tcp-if");
const chosen = tcpIf ? interfaceAddress(tcpIf) : undefined;
if (tcpIf && !chosen) {
  say({ t: "error", message: `--tcp-if ${tcpIf}: this host has no IPv4 address on that interface or in that block` });
  process.exit(1);
}
// Without ssh (srun, other agents) nothing says which of the launcher's addresses this host
// reaches: take the first one it has a route to, and this host's address on that route.
let route: { launcher: string; self: string } | undefined;
for (const addr of (arg("--launcher") ?? "").split(",").filter(Boolean)) {
  const self = await routeSource(addr);
  if (self) {
    route = { launcher: addr, self };
    break;
  }
}
say({
  t: "ready",
  client: sshClientAddress() ?? route?.launcher ?? null,
  server: sshServerAddress() ?? route?.self ?? null,
  tcpAddress: chosen ?? null,
});

let agent: HostAgent | null = null;
let jobDir: JobDir | null = null;
let finished = false;
const input = createInterface({ input: process.stdin });

function stop(): void {
  if (!agent) process.exit(0);
  agent.signal("SIGTERM");
  setTimeout(() => agent?.signal("SIGKILL"), STOP_GRACE_MS).unref();
}

async function start(plan: RemotePlan): Promise<void> {
  jobDir = createJobDir();
  let command = plan.command;
  if (plan.bundle !== null) {
    const file = join(jobDir.path, "main.mjs");
    writeFileSync(file, plan.bundle);
    command = command.map((a) => (a === SCRIPT ? file : a));
  }
  const env: Record<string, string> = { ...inheritedEnv(), ...plan.env, TSMPI_JOB_DIR: jobDir.path };
  // --trace: this host's ranks put their times on the launcher's time line.
  if (plan.env.TSMPI_TRACE === "1") env.TSMPI_CLOCK_OFFSET = String(await clockOffset(testSkew(plan.host, plan.env.TSMPI_TEST_CLOCK_SKEW)));
  if (plan.multiHost) env.TSMPI_TCP_ADDRESS = plan.tcpAddress ?? ownAddresses()[0] ?? "127.0.0.1";
  agent = new HostAgent(
    { host: plan.host, command, cwd: plan.cwd, env, ranks: plan.ranks, onSpawn: (pid) => jobDir?.track(pid) },
    {
      control: (rank, msg) => say({ t: "control", rank, msg }),
      output: (rank, stream, line) => say({ t: "output", rank, stream, line }),
      exit: (rank, code, signal) => say({ t: "exit", rank, code, signal }),
    },
  );
  await agent.run();
  finished = true;
  jobDir.remove();
  // Everything is reported: stop reading so the event loop empties and the agent exits.
  input.close();
  process.stdin.destroy();
}

/**
 * The launcher's host clock minus this host's (ms), as NTP measures it: from the exchange with
 * the shortest round trip of `samples`, assuming the way there and back take as long. The error
 * is at most half that round trip.
 */
let clockWaiter: ((now: number) => void) | null = null;
async function clockOffset(skew: number, samples = 16): Promise<number> {
  const now = () => hostClock() + skew;
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < samples; i++) {
    const answer = new Promise<number>((resolve) => (clockWaiter = resolve));
    const t0 = now();
    await say({ t: "clock?" });
    const theirs = await answer;
    const t1 = now();
    if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: theirs - (t0 + t1) / 2 };
  }
  clockWaiter = null;
  return best.offset;
}

input.on("line", (text) => {
  let msg: LauncherToAgent;
  try {
    msg = JSON.parse(text) as LauncherToAgent;
  } catch {
    say({ t: "error", message: `unreadable message from the launcher: ${text.slice(0, 80)}` });
    return;
  }
  if (msg.t === "plan") {
    start(msg.plan).catch((e: unknown) => {
      say({ t: "error", message: `cannot start the ranks: ${(e as Error).message}` });
      process.exitCode = 1;
      input.close();
      process.stdin.destroy();
    });
  } else if (msg.t === "clock") clockWaiter?.(msg.now);
  else if (msg.t === "send") agent?.send(msg.rank, msg.msg);
  else if (msg.t === "signal") agent?.signal(msg.sig);
  else if (msg.t === "stdin" && agent) {
    const rank = msg.rank;
    void agent.feed(rank, msg.data === null ? null : Buffer.from(msg.data, "base64")).then(() => say({ t: "drained", rank }));
  }
});
// The launcher is gone: stop the ranks; the agent exits when they have.
input.on("close", () => {
  if (!finished) stop();
});
process.stdout.on("error", () => {
  if (!finished) stop();
});
process.on("exit", () => {
  jobDir?.remove();
});
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, stop);
