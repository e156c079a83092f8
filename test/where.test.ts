// Finding the user's line that awaits a pending call (src/where.ts), with real promises: the
// line found, and the call completing as before once it has been looked up.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { awaitedAt, userFrame, type Settle } from "../src/where.js";

/** A pending call as the engine holds one: its promise and the resolving functions it settles it with. */
function pendingCall<T>() {
  const call = {} as Settle<T> & { promise: Promise<T>; locate(): Promise<string | undefined> };
  call.promise = new Promise<T>((done, fail) => Object.assign(call, { done, fail }));
  call.locate = () => awaitedAt(call.done, (next) => Object.assign(call, next));
  return call;
}

const thisFile = "test/where.test.ts";
/** `file:line` of the line of this file that ends with the comment `// <mark>`. */
const at = (mark: string) => `${thisFile}:${readFileSync(import.meta.filename, "utf8").split("\n").findIndex((l) => l.endsWith(`// ${mark}`)) + 1}`;
/** Lets every queued reaction run (the look-up takes a few turns of the microtask queue). */
const turns = () => new Promise((r) => setTimeout(r, 0));

describe("userFrame", () => {
  const cwd = "/home/u/job";
  it("takes the first frame outside tsmpi and Node, relative to the working folder", () => {
    const stack = [
      "Error",
      `    at ${join(import.meta.dirname, "../src/where.ts")}:60:21`,
      `    at async Communicator.allreduce (${join(import.meta.dirname, "../src/comm.ts")}:370:5)`,
      "    at async Promise.all (index 0)",
      "    at async step (node:internal/whatever:1:1)",
      "    at async solve (file:///home/u/job/heat.ts:42:7)",
      "    at async /home/u/job/main.ts:9:1",
    ].join("\n");
    expect(userFrame(stack, cwd)).toBe("heat.ts:42");
  });

  it("keeps a path outside the working folder absolute, and finds nothing in a stack of tsmpi's own", () => {
    expect(userFrame("Error\n    at /opt/lib/x.js:3:4", cwd)).toBe("/opt/lib/x.js:3");
    expect(userFrame(`Error\n    at ${join(import.meta.dirname, "../src/p2p.ts")}:1:1\n    at <anonymous>`, cwd)).toBeUndefined();
  });
});

describe("awaitedAt", () => {
  it("names the line of an await in the caller, through an async function of the library's kind", async () => {
    const call = pendingCall<number>();
    const inner = async () => (await call.promise) + 1; // inner
    const outer = (async () => {
      return await inner();
    })();
    await turns();
    // The innermost frame that is not the library's: here inner, as in a user's helper function.
    expect(await call.locate()).toBe(at("inner"));
    call.done(41);
    expect(await outer).toBe(42);
  });

  it("follows Promise.all and then-chains, and the call still rejects as it would have", async () => {
    const call = pendingCall<number>();
    const awaited = Promise.all([call.promise.then((v) => v * 2)]);
    const caught = (async () => {
      try {
        await awaited; // all
        return "resolved";
      } catch (e) {
        return (e as Error).message;
      }
    })();
    await turns();
    expect(await call.locate()).toBe(at("all"));
    call.fail(new Error("rank 1 failed"));
    expect(await caught).toBe("rank 1 failed");
  });

  it("settles the call with whatever arrives while the look-up is under way", async () => {
    const call = pendingCall<string>();
    const got = (async () => await call.promise)(); // early
    await turns();
    const where = call.locate();
    call.done("early"); // before the look-up's reaction has run
    expect(await got).toBe("early");
    expect(await where).toBe(at("early"));
  });

  it("a stack formatter of the user's that throws costs the line, never the call", async () => {
    const call = pendingCall<number>();
    const got = (async () => await call.promise)();
    await turns();
    const saved = Error.prepareStackTrace;
    Error.prepareStackTrace = () => {
      throw new Error("formatter failed");
    };
    try {
      const gaveUp = new Promise((resolve) => setTimeout(() => resolve("the lookup never finished"), 2000));
      expect(await Promise.race([call.locate(), gaveUp])).toBeUndefined();
    } finally {
      Error.prepareStackTrace = saved;
    }
    call.done(5);
    expect(await got).toBe(5); // not rejected by the formatter's error
  });

  it("finds no line for a call that nobody awaits, and the call completes all the same", async () => {
    const call = pendingCall<number>();
    expect(await call.locate()).toBeUndefined();
    call.done(7);
    expect(await call.promise).toBe(7);
  });
});
