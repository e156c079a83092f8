// Across hosts (3 pretend hosts: network namespaces with sshd, test/rig/hosts-up.sh):
//  - start-up: `tsmpirun -n 6 examples/hello.ts` over the 3 hosts, against 6 ranks on this machine;
//  - what CURVE costs: bench/pingpong-ranks.ts between two hosts (tcp), with the job's CURVE
//    security and with --insecure, one-way µs and the bandwidth it gives.
// Needs root (npm run bench skips it otherwise).   npx tsx bench/hosts.ts
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { CLI as cli, lastJson, launchTime as median, ROOT as root } from "./lib.js";

const RIG = "/tmp/tsmpi-rig-bench";

if (process.getuid?.() !== 0) {
  console.log("(start-up across hosts skipped: the rig needs root)");
} else {
  const up = spawnSync("bash", [join(root, "test/rig/hosts-up.sh"), "3", RIG], { encoding: "utf8" });
  if (up.status !== 0) throw new Error(`rig did not come up: ${up.stderr}`);
  try {
    const hosts = median(["--hostfile", `${RIG}/hostfile`, "--launch-agent", `ssh -F ${RIG}/ssh_config`, "-n", "6", "examples/hello.ts"]);
    const local = median(["-n", "6", "examples/hello.ts"]);
    console.log(`tsmpirun -n 6 examples/hello.ts, median of 7: 3 hosts over ssh ${hosts.toFixed(2)} s; one host ${local.toFixed(2)} s`);
    console.log(JSON.stringify({ bench: "hosts", threeHosts: hosts, oneHost: local }));
    const pingpong = (extra: string[]) =>
      lastJson(process.execPath, [cli, "--host", "h1:1,h2:1", "--launch-agent", `ssh -F ${RIG}/ssh_config`, ...extra, "bench/pingpong-ranks.ts"]) as unknown as { rows: { bytes: number; into: number }[] };
    const secure = pingpong([]).rows, insecure = pingpong(["--insecure"]).rows;
    console.log("\nping-pong between 2 hosts over tcp, one-way µs into a posted array (and MB/s):");
    console.log(`${"bytes".padStart(9)} ${"CURVE".padStart(18)} ${"--insecure".padStart(18)}`);
    const cell = (r: { bytes: number; into: number }) => `${r.into.toFixed(1).padStart(8)} (${(r.bytes / r.into).toFixed(0).padStart(6)} MB/s)`.padStart(18);
    secure.forEach((r, i) => console.log(`${String(r.bytes).padStart(9)} ${cell(r)} ${cell(insecure[i]!)}`));
  } finally {
    spawnSync("bash", [join(root, "test/rig/hosts-down.sh"), RIG]);
  }
}
