// Hostfiles, --host lists, Slurm's hostlist and tasks-per-node syntax, PBS nodefiles, and the
// placement of ranks on hosts: pure functions, against the formats their documentation gives.
import { describe, expect, it } from "vitest";
import { UsageError } from "../launcher/args.js";
import { allocation, expandHostlist, expandTasksPerNode, parseHostfile, parseHostList, parsePbsNodefile, placeRanks } from "../launcher/hosts.js";
import { shellQuote, splitCommand } from "../launcher/remote.js";

describe("hostfiles", () => {
  it("reads Open MPI and MPICH lines, comments and blank lines", () => {
    const text = "# cluster\nnode01 slots=4\nnode02 slots=4 max_slots=8   # big one\n\nnode03:2\nnode04\n  node05 slots:3\nnode01 slots=2\n";
    expect(parseHostfile(text, "hosts")).toEqual([
      { name: "node01", slots: 6 },
      { name: "node02", slots: 4, maxSlots: 8 },
      { name: "node03", slots: 2 },
      { name: "node04", slots: 1 },
      { name: "node05", slots: 3 },
    ]);
  });

  it("errors name the file and the line", () => {
    expect(() => parseHostfile("a slots=2\nb slots=zero\n", "my.hosts")).toThrow(/^my\.hosts:2: "slots=zero": slots must be a whole number from 1 to 1048576$/);
    expect(() => parseHostfile("a\nb:x\n", "f")).toThrow(/^f:2: "b:x": the slot count after ':' must be a whole number from 1 to 1048576$/);
    expect(() => parseHostfile("a cores=2\n", "f")).toThrow(/^f:1: unknown field "cores=2"/);
    expect(() => parseHostfile("a slots=4 max_slots=2\n", "f")).toThrow(/f:1: max_slots=2 is less than slots=4/);
    expect(() => parseHostfile("# nothing\n\n", "f")).toThrow(/f: the hostfile names no host/);
    expect(() => parseHostfile("bad$name\n", "f")).toThrow(UsageError);
    // Not a crash ("invalid size") and not hours of spawning: refused with the line.
    expect(() => parseHostfile("a slots=99999999999999999999\n", "f")).toThrow(/^f:1: "slots=99999999999999999999": slots must be a whole number from 1 to 1048576$/);
    expect(() => parseHostList(["a:1048577"])).toThrow(/--host a:1048577: the slot count after ':' must be a whole number from 1 to 1048576/);
  });

  it("a host named twice adds up its slots and its max_slots (each line's limit its slots when it has none)", () => {
    expect(parseHostfile("a slots=2\na slots=3 max_slots=4\n", "f")).toEqual([{ name: "a", slots: 5, maxSlots: 6 }]);
    expect(parseHostfile("a slots=2 max_slots=3\na slots=3\n", "f")).toEqual([{ name: "a", slots: 5, maxSlots: 6 }]);
    expect(parseHostfile("a slots=2 max_slots=3\na:1\na max_slots=2\n", "f")).toEqual([{ name: "a", slots: 4, maxSlots: 6 }]);
  });

  it("--host lists: host or host:slots", () => {
    expect(parseHostList(["h1", "h2:4", "h1"])).toEqual([{ name: "h1", slots: 2 }, { name: "h2", slots: 4 }]);
    expect(() => parseHostList(["h1:0"])).toThrow(/--host h1:0: the slot count/);
  });
});

describe("batch allocations", () => {
  it("expands Slurm hostlists as the srun manual documents them", () => {
    expect(expandHostlist("node[01-04,07],gpu3")).toEqual(["node01", "node02", "node03", "node04", "node07", "gpu3"]);
    expect(expandHostlist("tux[0-2]")).toEqual(["tux0", "tux1", "tux2"]);
    expect(expandHostlist("lx[10-11]-ib")).toEqual(["lx10-ib", "lx11-ib"]);
    expect(expandHostlist("r[1-2]n[1-2]")).toEqual(["r1n1", "r1n2", "r2n1", "r2n2"]);
    expect(expandHostlist("single")).toEqual(["single"]);
    expect(() => expandHostlist("node[3-1]")).toThrow(/runs backwards/);
    expect(() => expandHostlist("node[1-2")).toThrow(/unbalanced/);
  });

  it("expands SLURM_TASKS_PER_NODE", () => {
    expect(expandTasksPerNode("2(x3),1")).toEqual([2, 2, 2, 1]);
    expect(expandTasksPerNode("4")).toEqual([4]);
    expect(() => expandTasksPerNode("2(3)")).toThrow(/cannot read "2\(3\)"/);
  });

  it("takes hosts and slots from Slurm's environment, or a PBS nodefile", () => {
    expect(allocation({ SLURM_JOB_NODELIST: "n[1-3]", SLURM_TASKS_PER_NODE: "2(x2),1" })).toEqual({
      source: "slurm",
      hosts: [{ name: "n1", slots: 2 }, { name: "n2", slots: 2 }, { name: "n3", slots: 1 }],
    });
    expect(() => allocation({ SLURM_JOB_NODELIST: "n[1-3]", SLURM_TASKS_PER_NODE: "2" })).toThrow(/names 3 nodes but SLURM_TASKS_PER_NODE=2 gives 1/);
    expect(parsePbsNodefile("a\na\nb\na\n")).toEqual([{ name: "a", slots: 3 }, { name: "b", slots: 1 }]);
    expect(allocation({})).toBeNull();
  });
});

describe("placement", () => {
  const hosts = [{ name: "a", slots: 2 }, { name: "b", slots: 2 }, { name: "c", slots: 1 }];
  it("by slot fills each host in turn; by node goes round-robin", () => {
    expect(placeRanks(hosts, 5, "slot", false, "hostfile")).toEqual([[0, 1], [2, 3], [4]]);
    expect(placeRanks(hosts, 5, "node", false, "hostfile")).toEqual([[0, 3], [1, 4], [2]]);
    expect(placeRanks(hosts, 3, "slot", false, "hostfile")).toEqual([[0, 1], [2], []]);
  });
  it("more ranks than slots needs --oversubscribe, and respects max_slots", () => {
    expect(() => placeRanks(hosts, 6, "slot", false, "hostfile")).toThrow(/-n 6: the hostfile has 5 slots \(a:2, b:2, c:1\); add --oversubscribe/);
    expect(placeRanks(hosts, 7, "slot", true, "hostfile")).toEqual([[0, 1, 5], [2, 3, 6], [4]]);
    expect(() => placeRanks([{ name: "a", slots: 1, maxSlots: 2 }], 3, "slot", true, "hostfile")).toThrow(/more ranks than the max_slots/);
  });
});

describe("launch agent commands", () => {
  it("splits --launch-agent like a shell and quotes remote words", () => {
    expect(splitCommand(`ssh -F '/tmp/my config' -o "Port 2222"`)).toEqual(["ssh", "-F", "/tmp/my config", "-o", "Port 2222"]);
    expect(shellQuote("/usr/bin/node")).toBe("/usr/bin/node");
    expect(shellQuote("it's here")).toBe(`'it'\\''s here'`);
  });
});
