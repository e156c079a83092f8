/**
 * What a job that seems stuck is doing: each rank's answer to "state?" (the calls it waits in),
 * the ranks that did not answer (busy in JavaScript), and the wait-for cycle if there is one.
 * Printed when --deadlock-after finds every rank waiting with nothing moving, and on --timeout.
 */

/** A rank's answer: the calls it waits in, the world ranks it waits on, and its message count. */
export interface RankState {
  waits: string[];
  on: number[];
  moved: number;
  /** What else keeps the rank's event loop alive (Node's getActiveResourcesInfo: "Timeout", …). */
  resources: string[];
  /** The rank's process is stopped (SIGSTOP, a debugger): its host agent answered for it. */
  stopped?: boolean;
}

/** A cycle in the wait-for graph (rank → the ranks it waits on), as ranks in order, or undefined. */
export function waitForCycle(states: ReadonlyMap<number, RankState>): number[] | undefined {
  const state = new Map<number, "open" | "done">();
  const path: number[] = [];
  const visit = (r: number): number[] | undefined => {
    state.set(r, "open");
    path.push(r);
    for (const next of states.get(r)?.on ?? []) {
      if (!states.has(next)) continue; // a rank that did not answer, or has gone
      if (state.get(next) === "open") return [...path.slice(path.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    path.pop();
    state.set(r, "done");
    return undefined;
  };
  for (const r of [...states.keys()].sort((a, b) => a - b)) {
    if (!state.has(r)) {
      const found = visit(r);
      if (found) return found;
    }
  }
  return undefined;
}

/**
 * The lines of a state report: one per rank (in rank order) with what it waits in, "busy" for a
 * rank that did not answer, then the wait-for cycle.
 */
export function stateLines(ranks: readonly number[], states: ReadonlyMap<number, RankState>, hostOf: (rank: number) => string): string[] {
  const lines = ranks.map((r) => {
    const s = states.get(r);
    const who = `rank ${r} (host ${hostOf(r)})`;
    if (!s) return `  ${who}: busy: running JavaScript, not in a tsmpi call that waits (it did not answer)`;
    if (s.stopped) return `  ${who}: stopped (SIGSTOP, or a debugger): it cannot go on until it gets SIGCONT`;
    if (s.waits.length === 0) return `  ${who}: not waiting in tsmpi (in its own code, or an await of its own)`;
    const own = s.resources.length > 0 ? ` (and has ${[...new Set(s.resources)].join(", ")} of its own pending)` : "";
    return `  ${who}: waits in ${s.waits.join("; and in ")}${own}`;
  });
  const cycle = waitForCycle(states);
  if (cycle) lines.push(`  wait-for cycle: ${cycle.map((r) => `rank ${r}`).join(" → ")}`);
  return lines;
}
