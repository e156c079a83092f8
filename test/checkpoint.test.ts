// Checkpoint files on their own (the .npy header codec and the commit protocol, on real files in
// one process), then save/load through real launches on different rank counts, read by numpy.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { abandon, checkMeta, commit, hashData, prepare, readHeader, settle } from "../src/checkpoint.js";
import { decodeNpyHeader, encodeNpyHeader, npyClass, npyDescr } from "../src/npy.js";
import { checkpointLoad, checkpointSave } from "./fixtures/suites/checkpoint.js";
import { fixture, run, suiteCases } from "./helpers.js";

// Buffer's latin1 is ISO-8859-1 (TextDecoder's "latin1" is windows-1252, which moves \x93).
const text = (b: Uint8Array) => Buffer.from(b).toString("latin1");
const scratch = () => mkdtempSync(join(tmpdir(), "tsmpi-ckpt-"));

/** A .npy header around `dict`, as another writer might make it. */
const make = (dict: string, major = 1) => {
  const prefix = major === 1 ? 10 : 12;
  const b = new Uint8Array(prefix + dict.length);
  b.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  if (major === 1) new DataView(b.buffer).setUint16(8, dict.length, true);
  else new DataView(b.buffer).setUint32(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) b[prefix + i] = dict.charCodeAt(i);
  return b;
};

describe(".npy header", () => {
  it("is byte for byte what numpy.save writes, padded so the data starts on a 64-byte boundary", () => {
    const h = encodeNpyHeader("<f8", [13, 17]);
    expect(h.length).toBe(128);
    expect(text(h.subarray(0, 10))).toBe("\x93NUMPY\x01\x00v\x00");
    expect(text(h.subarray(10))).toBe(`${"{'descr': '<f8', 'fortran_order': False, 'shape': (13, 17), }".padEnd(117)}\n`);
    expect(text(encodeNpyHeader("|i1", [37]))).toContain("'shape': (37,), }");
    expect(encodeNpyHeader("<u8", new Array(40).fill(1000)).length % 64).toBe(0);
  });

  it("maps every typed-array class to a NumPy type and back (Uint8ClampedArray as uint8)", () => {
    for (const T of [Float64Array, Float32Array, Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array]) {
      expect(npyClass(npyDescr(T))).toBe(T);
    }
    expect(npyDescr(Uint8ClampedArray)).toBe("|u1");
  });

  it("reads headers written by other tools: other key order, spacing, '=' byte order, version 2", () => {
    const other = `{"shape":(2,3),"fortran_order":False,"descr":"=i4"}\n`;
    expect(decodeNpyHeader(make(other), "f")).toEqual({ descr: "<i4", shape: [2, 3], dataOffset: 10 + other.length });
    expect(decodeNpyHeader(make(`{'descr': '<u1', 'fortran_order': False, 'shape': (), }\n`, 2), "f")).toMatchObject({ descr: "|u1", shape: [] });
    // Too few bytes read yet: says how many the header needs.
    const whole = make(`{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }\n`);
    expect(decodeNpyHeader(whole.subarray(0, 20), "f")).toEqual({ needed: whole.length });
  });

  it("rejects what it cannot read with the file's name and the reason", () => {
    const dict = (d: string) => make(`{'descr': ${d}, 'shape': (2,), }\n`);
    expect(() => decodeNpyHeader(new TextEncoder().encode("PK\x03\x04 not npy"), "a.npy")).toThrow("a.npy: not a .npy file tsmpi can read: it does not start with \\x93NUMPY");
    expect(() => decodeNpyHeader(dict("'<f8', 'fortran_order': True"), "a.npy")).toThrow("it is in Fortran order (save numpy.ascontiguousarray(a) instead)");
    expect(() => decodeNpyHeader(dict("'>f8', 'fortran_order': False"), "a.npy")).toThrow("its element type >f8 is not one of <f8, <f4");
    expect(() => decodeNpyHeader(dict("'|b1', 'fortran_order': False"), "a.npy")).toThrow("its element type |b1 is not one of");
  });
});

describe("checkpoint commit protocol", () => {
  /** Saves `data` as `file` the way grid.save does on one rank. */
  function save(file: string, data: Float64Array, meta: Record<string, unknown>) {
    const header = encodeNpyHeader("<f8", [data.length]);
    const { partial, identity } = prepare(file, header, data.byteLength);
    expect(identity).toMatch(/^\d+:\d+:\d+$/);
    writeFileSync(partial, Buffer.concat([header, Buffer.from(data.buffer)]));
    commit(file, { descr: "<f8", shape: [data.length], dataOffset: header.length }, data.byteLength, meta);
  }
  const dataOf = (file: string) => new Float64Array(Uint8Array.from(readFileSync(file).subarray(128)).buffer);

  it("writes FILE and FILE.json and nothing else; the sidecar holds the data's sha256 and the metadata", () => {
    const dir = scratch(), file = join(dir, "run.npy");
    save(file, new Float64Array([1, 2, 3]), { step: 7 });
    expect(readdirSync(dir).sort()).toEqual(["run.npy", "run.npy.json"]);
    const side = JSON.parse(readFileSync(`${file}.json`, "utf8"));
    expect(side).toMatchObject({ format: "tsmpi-checkpoint", dtype: "<f8", shape: [3], meta: { step: 7 } });
    expect(side.sha256).toBe(hashData(file, 128, 24));
    expect(settle(file)?.meta).toEqual({ step: 7 });
  });

  it("a save stopped while writing its data leaves the previous checkpoint, and the next save replaces the leftover", () => {
    const dir = scratch(), file = join(dir, "run.npy");
    save(file, new Float64Array([1, 2, 3]), { step: 1 });
    const { partial } = prepare(file, encodeNpyHeader("<f8", [3]), 24); // then the job is killed
    expect(existsSync(partial)).toBe(true);
    expect(settle(file)?.meta).toEqual({ step: 1 });
    expect([...dataOf(file)]).toEqual([1, 2, 3]);
    save(file, new Float64Array([4, 5, 6]), { step: 2 });
    expect(settle(file)?.meta).toEqual({ step: 2 });
    expect(existsSync(partial)).toBe(false);
  });

  it("a save stopped between its two renames is finished when the checkpoint is next opened", () => {
    const dir = scratch(), file = join(dir, "run.npy");
    save(file, new Float64Array([1, 2, 3]), { step: 1 });
    copyFileSync(file, join(dir, "old"));
    save(file, new Float64Array([4, 5, 6]), { step: 2 });
    // Undo the last rename: the sidecar says step 2, FILE still holds step 1's data.
    renameSync(file, `${file}.partial`);
    copyFileSync(join(dir, "old"), file);
    expect(settle(file)?.meta).toEqual({ step: 2 });
    expect([...dataOf(file)]).toEqual([4, 5, 6]);
    expect(existsSync(`${file}.partial`)).toBe(false);
  });

  it("data that does not match its sidecar is an error naming both, not a silent restart from other data", () => {
    const dir = scratch(), file = join(dir, "run.npy");
    save(file, new Float64Array([1, 2, 3]), {});
    const other = readFileSync(file);
    other[130] ^= 1;
    writeFileSync(file, other);
    expect(() => settle(file)).toThrow(/run\.npy: its data does not match .*run\.npy\.json \(sha256 [0-9a-f]{12}…/);
    abandon(file); // no partial: nothing happens
    expect(() => readHeader(join(dir, "missing.npy"), "missing.npy")).toThrow(/missing\.npy: ENOENT/);
    expect(() => prepare(join(dir, "no/such/dir/x.npy"), encodeNpyHeader("<f8", [1]), 8)).toThrow(/directory .*no\/such\/dir does not exist/);
  });

  it("metadata must survive JSON exactly: NaN, undefined, bigint, Date and class instances are named", () => {
    expect(() => checkMeta({ step: 3, sums: [1.5, null], o: { s: "x", b: true } }, "save")).not.toThrow();
    expect(() => checkMeta({ sums: [1, NaN] }, "save")).toThrow("save: meta.sums[1] is NaN; metadata must be JSON");
    expect(() => checkMeta({ a: { b: undefined } }, "save")).toThrow("meta.a.b is a undefined");
    expect(() => checkMeta({ n: 5n }, "save")).toThrow("meta.n is a bigint");
    expect(() => checkMeta({ when: new Date(0) }, "save")).toThrow("meta.when is a Date");
    expect(() => checkMeta([1], "save")).toThrow("meta must be a plain object");
  });
});

describe("grid.save / BlockGrid.load through real launches: 1-, 2- and 3-D grids of every dtype, between rank counts", () => {
  const dir = scratch();
  describe("saved on 3 ranks (one job; a case per shape and dtype)", () => {
    suiteCases("checkpoint-save", Object.keys(checkpointSave), () => ["-n", "3"], () => [dir]);
    it("nothing partial is left", () => {
      expect(readdirSync(dir).filter((f) => !/\.npy(\.json)?$/.test(f))).toEqual([]);
    });
  });
  describe.each([1, 2, 4, 5])("loaded on %i ranks", (n) => {
    suiteCases("checkpoint-load", Object.keys(checkpointLoad), () => ["-n", String(n)], () => [dir]);
  });
  it("numpy reads every file", () => {
    // numpy (Debian's python3-numpy) sees the right shape, dtype and every value.
    const py = spawnSync("python3", ["-c", `
import glob, json, numpy
names = {"Float64Array": "float64", "Float32Array": "float32", "Int8Array": "int8", "Uint8Array": "uint8", "Uint8ClampedArray": "uint8", "Int16Array": "int16",
         "Uint16Array": "uint16", "Int32Array": "int32", "Uint32Array": "uint32", "BigInt64Array": "int64", "BigUint64Array": "uint64"}
files = sorted(glob.glob("${dir}/*.npy"))
for f in files:
    a = numpy.load(f)
    meta = json.load(open(f + ".json"))["meta"]
    k = numpy.arange(a.size)
    want = (k * 7 + 3) % 101 + (0.5 if a.dtype.kind == "f" else 0)
    assert list(a.shape) == meta["shape"] and str(a.dtype) == names[meta["dtype"]], f
    assert numpy.array_equal(a.ravel(), want.astype(a.dtype)), f
print(len(files), "ok")
`], { encoding: "utf8" });
    expect(py.stderr).toBe("");
    expect(py.stdout.trim()).toBe("33 ok");
  });

  it("loads an array written by numpy.save; a Fortran-order file or a missing one is an error on every rank", async () => {
    const dir = scratch();
    const py = spawnSync("python3", ["-c", `
import numpy
numpy.save("${dir}/a.npy", numpy.arange(5 * 6, dtype=numpy.int32).reshape(5, 6) * 3)
numpy.save("${dir}/f.npy", numpy.asfortranarray(numpy.ones((4, 4))))
`], { encoding: "utf8" });
    expect(py.stderr).toBe("");
    const script = fixture("npy-load.ts");
    const ok = await run(["-n", "2", script, join(dir, "a.npy")]);
    expect(ok.stderr).toBe("");
    expect(ok.stdout.trim().split("\n")).toEqual(["Int32Array {} 1305", "Int32Array {} 1305"]);
    const fortran = await run(["-n", "2", script, join(dir, "f.npy")]);
    expect(fortran.stdout).toContain(`rank 0: BlockGrid.load("${dir}/f.npy"): ${dir}/f.npy: not a .npy file tsmpi can read: it is in Fortran order`);
    expect(fortran.stdout).toContain(`rank 1: BlockGrid.load("${dir}/f.npy"): ${dir}/f.npy: not a .npy file tsmpi can read: it is in Fortran order`);
    const missing = await run(["-n", "2", script, join(dir, "none.npy")]);
    expect(missing.stdout.trim().split("\n").sort()).toEqual([0, 1].map((r) => `rank ${r}: BlockGrid.load("${dir}/none.npy"): ${dir}/none.npy: no such file`));
    expect(readdirSync(dir).sort()).toEqual(["a.npy", "f.npy"]);
  });
});

describe("grid.save's mistakes", () => {
  it("a missing directory, metadata that is not JSON or a directory as the file rejects on every rank, leaving nothing", async () => {
    const dir = scratch();
    const r = await run(["-n", "3", fixture("save-errors.ts"), dir]);
    expect(r.stderr).toBe("");
    for (let k = 0; k < 3; k++) {
      expect(r.stdout).toContain(`rank ${k}: MpiError: grid.save("${dir}/no/such/dir/x.npy"): ${dir}/no/such/dir/x.npy: directory ${dir}/no/such/dir does not exist`);
      expect(r.stdout).toContain(`rank ${k}: MpiError: grid.save("${dir}/x.npy"): meta.sums[1] is NaN; metadata must be JSON`);
      expect(r.stdout).toContain(`rank ${k}: MpiError: grid.save("${dir}"): ${dir} is a directory`);
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});
