// Start-up across hosts: `tsmpirun -n 6 examples/hello.ts` over 3 pretend hosts (network
// namespaces with sshd, test/rig/hosts-up.sh), against the same 6 ranks on this machine.
// Needs root (npm run bench skips it otherwise).   npx tsx bench/hosts.ts
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { launchTime as median, ROOT as root } from "./lib.js";

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
  } finally {
    spawnSync("bash", [join(root, "test/rig/hosts-down.sh"), RIG]);
  }
}
