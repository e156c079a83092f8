/**
 * The launcher's channel to a remote host agent: JSON lines over the launch agent's standard
 * input and output (ssh or srun carry them unchanged). Data between ranks never goes this way.
 */
import type { LauncherToRank, RankToLauncher } from "../src/control.js";
import type { RankSpec } from "./agent.js";

/** What a remote agent needs to start its host's ranks. */
export interface RemotePlan {
  host: string;
  /** Program and arguments of a rank; the element SCRIPT is replaced by the script's path there. */
  command: string[];
  /** The compiled script (TypeScript is compiled once, by the launcher), or null to run `command` as is. */
  bundle: string | null;
  cwd: string;
  /** Variables for every rank of the host, on top of the agent's own environment. */
  env: Record<string, string>;
  ranks: RankSpec[];
  /** The job spans several hosts: the ranks listen on tcp too. */
  multiHost: boolean;
  /** Address to listen on for other hosts; null lets the agent choose one of its own. */
  tcpAddress: string | null;
}

/** Placeholder in RemotePlan.command for the compiled script's path on the remote host. */
export const SCRIPT = "\u0000script";

export type LauncherToAgent =
  | { t: "plan"; plan: RemotePlan }
  | { t: "send"; rank: number; msg: LauncherToRank }
  | { t: "signal"; sig: NodeJS.Signals }
  /** The launcher's host clock (ms, see src/trace.ts hostClock): an answer to "clock?". */
  | { t: "clock"; now: number }
  /** Standard input for a rank, base64; null closes it. */
  | { t: "stdin"; rank: number; data: string | null };

export type AgentToLauncher =
  /**
   * The agent runs. `client`: the launcher's address as this host reaches it (ssh's client end,
   * or the launcher address this host has a route to); `server`: this host's own address on that
   * path; `tcpAddress`: the address --tcp-if chose here.
   */
  | { t: "ready"; client: string | null; server: string | null; tcpAddress: string | null }
  | { t: "control"; rank: number; msg: RankToLauncher }
  | { t: "output"; rank: number; stream: "stdout" | "stderr"; line: string }
  | { t: "exit"; rank: number; code: number | null; signal: string | null }
  | { t: "error"; message: string }
  /** Asks the launcher's clock (--trace: the agent measures how far this host's clock is from it). */
  | { t: "clock?" }
  /** A rank's standard input can take more (after a write that filled it). */
  | { t: "drained"; rank: number };
