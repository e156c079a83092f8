// tsmpirun's command line: a pure function from argv to options, with mpirun's spellings.
import { describe, expect, it, vi } from "vitest";
import { parseArgs, UsageError } from "../launcher/args.js";
import { longTimeout } from "../launcher/job.js";

function parse(argv: string[]) {
  const warnings: string[] = [];
  return { opts: parseArgs(argv, (l) => warnings.push(l)), warnings };
}

describe("tsmpirun arguments", () => {
  it("reads -n, -c, -np and --np alike, and stops at the script", () => {
    for (const flag of ["-n", "-c", "-np", "--np", "--n"]) {
      const { opts } = parse([flag, "3", "s.ts", "-n", "9", "--x"]);
      expect([opts.np, opts.npGiven, opts.script, opts.scriptArgs]).toEqual([3, true, "s.ts", ["-n", "9", "--x"]]);
    }
  });

  it("quotes what was typed when a number is wrong, and rejects a repeated -n", () => {
    const msg = (argv: string[]) => {
      try {
        parse(argv);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error(`${argv.join(" ")} was accepted`);
    };
    expect(msg(["-n", "x", "s.ts"])).toBe("-n x: the number of ranks must be a whole number ≥ 1");
    expect(msg(["-n", "2.5", "s.ts"])).toBe("-n 2.5: the number of ranks must be a whole number ≥ 1");
    expect(msg(["-n", "0", "s.ts"])).toBe("-n 0: the number of ranks must be a whole number ≥ 1");
    expect(msg(["-n", "2", "-n", "3", "s.ts"])).toBe("-n was given 2 times (2, 3); give it once");
    expect(msg(["--timeout", "soon", "s.ts"])).toBe("--timeout soon: must be a number of seconds ≥ 0");
    expect(msg(["--timeout", "-1", "s.ts"])).toBe("--timeout -1: must be a number of seconds ≥ 0");
    // An empty --host (say, a variable that expanded to nothing) is not "this machine".
    expect(msg(["--host", "", "s.ts"])).toBe('--host "": no host given (expected host[:slots],...)');
    expect(msg(["--host", "a,,b", "s.ts"])).toBe('--host "a,,b": an empty host name (expected host[:slots],...)');
  });

  it("takes --timeout in seconds, fractions too, 0 (the default) for no limit", () => {
    expect(parse(["s.ts"]).opts.timeout).toBe(0);
    expect(parse(["--timeout", "1.5", "s.ts"]).opts.timeout).toBe(1.5);
  });

  it("-x passes a value or this environment's, and warns when that is unset", () => {
    process.env.TSMPI_ARGS_TEST = "here";
    delete process.env.TSMPI_ARGS_UNSET;
    const { opts, warnings } = parse(["-x", "A=1", "-x", "TSMPI_ARGS_TEST", "-x", "TSMPI_ARGS_UNSET", "-x", "E=", "s.ts"]);
    expect(opts.env).toEqual({ A: "1", TSMPI_ARGS_TEST: "here", TSMPI_ARGS_UNSET: undefined, E: "" });
    expect(warnings).toEqual(["-x TSMPI_ARGS_UNSET: TSMPI_ARGS_UNSET is not set in this environment, so the ranks do not get it"]);
  });

  it("takes `node [options] script`, as mpirun users write `python3 script.py`", () => {
    const { opts } = parse(["-n", "2", "node", "--max-old-space-size=4096", "--no-warnings", "s.js", "--x", "1"]);
    expect([opts.script, opts.scriptArgs, opts.nodeFlags]).toEqual(["s.js", ["--x", "1"], ["--max-old-space-size=4096", "--no-warnings"]]);
    expect(parse(["/usr/local/bin/node", "s.ts"]).opts.nodeFlags).toEqual([]);
    expect(parse(["tsx", "s.ts"]).opts.script).toBe("s.ts");
    expect(parse(["s.ts", "node"]).opts.scriptArgs).toEqual(["node"]); // only before the script
    expect(() => parse(["node", "--inspect"])).toThrow("node --inspect: no script given after node and its options");
  });

  it("takes a Node option's value as the next word, as node does, and passes it joined (options that take one: node --help)", () => {
    const { opts } = parse(["-n", "2", "node", "--cpu-prof", "--cpu-prof-interval", "50", "-r", "./pre.cjs", "--no-warnings", "s.ts", "--steps", "3"]);
    expect(opts.nodeFlags).toEqual(["--cpu-prof", "--cpu-prof-interval=50", "--require=./pre.cjs", "--no-warnings"]);
    expect([opts.script, opts.scriptArgs]).toEqual(["s.ts", ["--steps", "3"]]);
    // A flag that takes no value leaves the next word to be the script.
    expect(parse(["node", "--no-warnings", "s.ts"]).opts.script).toBe("s.ts");
    expect(() => parse(["node", "--cpu-prof-interval", "50"])).toThrow("node --cpu-prof-interval 50: no script given after node and its options");
    // V8's options take their value after "=" only (node refuses a separate one too): say so.
    expect(() => parse(["node", "--max-old-space-size", "8192", "s.ts"])).toThrow("node --max-old-space-size 8192: 8192 is not a script; if it is the value of --max-old-space-size, join them: --max-old-space-size=8192");
  });

  it("reads one-dash long options as Open MPI does (-host, -hostfile, -wdir, ...), and never rewrites the script's arguments", () => {
    const { opts } = parse(["-host", "a:2,b", "-np", "3", "-wdir", "/tmp", "-oversubscribe", "-map-by=node", "-tag-output", "s.ts", "-np", "9", "-host", "z"]);
    expect(opts.hosts).toEqual(["a:2", "b"]);
    expect([opts.np, opts.wdir, opts.oversubscribe, opts.mapBy, opts.tagOutput]).toEqual([3, "/tmp", true, "node", true]);
    expect(opts.scriptArgs).toEqual(["-np", "9", "-host", "z"]);
    expect(parse(["-H", "a", "-x", "A=1", "s.ts", "-x"]).opts.scriptArgs).toEqual(["-x"]);
    expect(parse(["-hostfile", "f", "s.ts"]).opts.hostfile).toBe("f");
    expect(parse(["-n", "1", "--", "s.ts", "-np", "2"]).opts.scriptArgs).toEqual(["-np", "2"]);
  });
});

describe("--deadlock-after", () => {
  it("defaults to 10 s; 0 turns it off; anything else is an error", () => {
    expect(parse(["s.ts"]).opts.deadlockAfter).toBe(10);
    expect(parse(["--deadlock-after", "0", "s.ts"]).opts.deadlockAfter).toBe(0);
    expect(parse(["--deadlock-after=2.5", "s.ts"]).opts.deadlockAfter).toBe(2.5);
    expect(() => parse(["--deadlock-after", "soon", "s.ts"])).toThrow("--deadlock-after soon: must be a number of seconds ≥ 0");
  });
});

describe("--report", () => {
  it("takes an optional format (text or json) and never the script as one", () => {
    expect(parse(["--report", "s.ts"]).opts).toMatchObject({ report: "text", script: "s.ts" });
    expect(parse(["--report", "json", "s.ts"]).opts).toMatchObject({ report: "json", script: "s.ts" });
    expect(parse(["--report=json", "s.ts"]).opts.report).toBe("json");
    expect(parse(["-report", "text", "s.ts"]).opts.report).toBe("text");
    expect(parse(["s.ts", "--report"]).opts).toMatchObject({ report: undefined, scriptArgs: ["--report"] });
    expect(() => parse(["--report=xml", "s.ts"])).toThrow("--report=xml: the format must be text (the default) or json");
  });

  it("after an option with a value, still leaves the script alone (--transport zmq --report s.ts)", () => {
    expect(parse(["--transport", "zmq", "--report", "s.ts"]).opts).toMatchObject({ transport: "zmq", report: "text", script: "s.ts" });
    expect(parse(["--trace", "t.json", "--report", "s.ts"]).opts).toMatchObject({ trace: expect.stringContaining("t.json"), report: "text", script: "s.ts" });
    expect(parse(["--timeout", "5", "--report", "json", "s.ts"]).opts).toMatchObject({ report: "json", script: "s.ts" });
  });
});

describe("longTimeout", () => {
  it("waits longer than setTimeout's 2³¹ − 1 ms, and can be cleared", () => {
    vi.useFakeTimers();
    try {
      let fired = 0;
      longTimeout(() => fired++, 30 * 86_400_000); // 30 days
      vi.advanceTimersByTime(29 * 86_400_000);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(86_400_000);
      expect(fired).toBe(1);
      const t = longTimeout(() => fired++, 2 ** 31 + 5);
      vi.advanceTimersByTime(2 ** 31);
      t.clear();
      vi.advanceTimersByTime(10);
      expect(fired).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});
