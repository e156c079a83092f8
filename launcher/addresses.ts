/**
 * Which address a host's ranks listen on for ranks on other hosts. A head node often has several
 * addresses and the compute hosts reach only some of them, so the address is chosen per host:
 * the one named by --tcp-if (an interface name or a CIDR block, like Open MPI's
 * btl_tcp_if_include), else the one the launcher's ssh connection arrived on (SSH_CONNECTION on
 * the remote side, SSH_CLIENT for the launcher's own host), else the source address of the route
 * towards the launcher.
 */
import { createSocket } from "node:dgram";
import { networkInterfaces } from "node:os";

function ipv4ToInt(a: string): number {
  return a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

/** The first IPv4 address of this host on interface `spec`, or inside CIDR block `spec`. */
export function interfaceAddress(spec: string): string | undefined {
  const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(spec);
  // Loopback last: a wide block such as 0.0.0.0/0 means "any address the others can reach".
  const all = Object.entries(networkInterfaces()).flatMap(([name, addrs]) => (addrs ?? []).map((a) => ({ name, a })));
  all.sort((x, y) => Number(x.a.internal) - Number(y.a.internal));
  for (const { name, a } of all) {
    if (a.family !== "IPv4") continue;
    if (cidr) {
      const bits = Number(cidr[2]);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      if (((ipv4ToInt(a.address) & mask) >>> 0) === ((ipv4ToInt(cidr[1]!) & mask) >>> 0)) return a.address;
    } else if (name === spec) return a.address;
  }
  return undefined;
}

/** This host's non-loopback IPv4 addresses. */
export function ownAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => a!.address);
}

/** The local address of the route towards `target` (a UDP "connect" sends nothing). */
export function routeSource(target: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    const done = (v: string | undefined) => {
      s.close();
      resolve(v);
    };
    s.on("error", () => done(undefined));
    try {
      // With no route the connect still "succeeds", with the unspecified address as its source.
      s.connect(9, target, () => {
        const a = s.address().address;
        done(a === "0.0.0.0" ? undefined : a);
      });
    } catch {
      done(undefined);
    }
  });
}

/** The address the launcher's ssh connection arrived on, as this (remote) host sees it. */
export function sshServerAddress(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.SSH_CONNECTION?.split(" ")[2];
}

/** The launcher's address as this (remote) host sees it. */
export function sshClientAddress(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return (env.SSH_CLIENT ?? env.SSH_CONNECTION)?.split(" ")[0];
}
