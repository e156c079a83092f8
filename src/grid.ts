/**
 * Block-decomposed grids: a global array of any number of dimensions split into one block per
 * rank of a Cartesian communicator, each block padded with ghost layers that `exchange()` fills
 * from the neighbouring blocks. This is the helper that stencil solvers are written on.
 */
import { began, ended, GRID_CALLS, instrument, observed } from "./instrument.js";
import { existsSync, fsyncSync, closeSync } from "node:fs";
import { resolve } from "node:path";
import { abandon, checkMeta, commit, fileIdentity, ioMessage, openFile, prepare, readAll, readHeader, settle, writeAll } from "./checkpoint.js";
import type { CartComm, Communicator } from "./comm.js";
import { PROC_NULL } from "./constants.js";
import { MpiError } from "./errors.js";
import { encodeNpyHeader, npyClass, npyDescr, type NpyDescr, type NpyHeader } from "./npy.js";
import type { TypedArray } from "./wire.js";
import { NONE } from "./trace.js";

/** Tag of the blocks that go through rank 0 in save/load (exchange uses 0 … 2·ndims − 1). */
const FILE_TAG = 1 << 20;

/** "star": faces only (5-point, 7-point stencils); "box": faces, edges and corners (9-point). */
export type Stencil = "star" | "box";

/** What `BlockGrid.load` resolves with. */
export interface LoadedGrid<A extends TypedArray> {
  /** The new grid, each rank's block read from the file. */
  grid: BlockGrid<A>;
  /** The metadata saved with it (`{}` for a plain .npy file). */
  meta: Record<string, unknown>;
}

/** A typed-array class, e.g. Float64Array. */
export interface ArrayClass<A extends TypedArray> {
  new (length: number): A;
  /** Bytes per element. */
  readonly BYTES_PER_ELEMENT: number;
  /** The class's name, e.g. "Float64Array". */
  readonly name: string;
}

/** Options of `BlockGrid.create` (and, but for `shape` and `dtype`, of `BlockGrid.load`). */
export interface BlockGridOptions<A extends TypedArray> {
  /** Global interior size per dimension (no ghosts), e.g. [ny, nx]. */
  shape: readonly number[];
  /** Ghost layers on every side. Default 1. */
  ghost?: number;
  /** Element type. Default Float64Array. */
  dtype?: ArrayClass<A>;
  /** Which ghost cells `exchange()` fills. Default "star". */
  stencil?: Stencil;
  /**
   * Where `local` lives: returns a zero-filled array of `dtype` with `length` elements, e.g. a
   * view of a WebAssembly.Memory for a WebAssembly kernel. Default `new dtype(length)`.
   */
  alloc?: (length: number) => A;
}

/** A box of the padded local array: [lo[d], hi[d]) per dimension, and its runs of contiguous elements. */
interface Slab {
  /** Start index of each run along the last dimension. */
  starts: Int32Array;
  runLength: number;
  count: number;
  /** The slab is one contiguous range of the local array (receive straight into it). */
  contiguous: boolean;
}

/** One side of one dimension: whom we talk to and the cells that go out and come in. */
interface Face {
  peer: number;
  sendTag: number;
  recvTag: number;
  send: Slab;
  recv: Slab;
  /** What goes out: a view of `local` where the face is contiguous, else a buffer to pack into. */
  sendBuffer: TypedArray;
  /** Where it comes in: a view of the ghost layer where contiguous, else a buffer to unpack from. */
  recvBuffer: TypedArray;
}

/** Where block `c` of `p` starts and how long it is, for `n` cells (the first n mod p blocks get one more). */
export function blockRange(n: number, p: number, c: number): [start: number, length: number] {
  const q = Math.floor(n / p), r = n % p;
  return [c * q + Math.min(c, r), q + (c < r ? 1 : 0)];
}

/**
 * A global array split into one block per rank of a Cartesian communicator, each block padded
 * with `ghost` layers that `exchange()` fills from the neighbours; `save`/`load` checkpoint it as
 * a NumPy `.npy` file. Make one with `BlockGrid.create` or `BlockGrid.load` (collective). Its
 * calls are collective over the cart and are made one at a time: the grid's messages use fixed
 * tags on a private communicator.
 */
export class BlockGrid<A extends TypedArray = Float64Array> {
  /** This rank's block plus ghost layers, row-major (the last dimension varies fastest). */
  readonly local: A;
  /** Size of this rank's block without ghosts, e.g. [by, bx]. */
  readonly localShape: readonly number[];
  /** Global index of the block's first interior cell. */
  readonly offset: readonly number[];
  /** Size of `local` per dimension: localShape + 2 · ghost. */
  readonly paddedShape: readonly number[];
  /** Element strides of `local` per dimension (for writing your own loops). */
  readonly strides: readonly number[];
  /** The global array's size per dimension (no ghosts). */
  readonly shape: readonly number[];
  /** Ghost layers on every side. */
  readonly ghost: number;
  /** Which ghost cells `exchange()` fills. */
  readonly stencil: Stencil;
  /** The element type. */
  readonly dtype: ArrayClass<A>;
  /** Faces per dimension: [lower side, upper side], null where there is no neighbour. */
  private readonly faces: (Face | null)[][];

  private constructor(
    /** The communicator the grid is split over. */
    readonly cart: CartComm,
    /** Private duplicate of `cart`: the grid's messages never meet the user's. */
    private readonly comm: Communicator,
    opts: Required<BlockGridOptions<A>>,
  ) {
    const { shape, ghost, dtype, stencil, alloc } = opts;
    this.shape = [...shape];
    this.ghost = ghost;
    this.dtype = dtype;
    this.stencil = stencil;
    const ranges = shape.map((n, d) => blockRange(n, cart.dims[d]!, cart.coords[d]!));
    this.offset = ranges.map((r) => r[0]);
    this.localShape = ranges.map((r) => r[1]);
    this.paddedShape = this.localShape.map((n) => n + 2 * ghost);
    const strides = new Array<number>(shape.length);
    let s = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      strides[d] = s;
      s *= this.paddedShape[d]!;
    }
    this.strides = strides;
    this.local = alloc(s);
    if (!(this.local instanceof dtype) || this.local.length !== s) {
      throw new MpiError(`BlockGrid.create: alloc(${s}) must return a ${dtype.name} of ${s} elements, got ${describeArray(this.local)}`);
    }
    this.faces = shape.map((_, d) => this.makeFaces(d));
  }

  /**
   * Makes the grid over `cart`'s ranks. Collective over `cart`. Throws MpiError when the shape
   * does not fit the topology (wrong number of dimensions, fewer cells than ranks along a
   * dimension, blocks thinner than the ghost width).
   */
  static async create<A extends TypedArray = Float64Array>(cart: CartComm, options: BlockGridOptions<A>): Promise<BlockGrid<A>> {
    const dtype = options.dtype ?? (Float64Array as unknown as ArrayClass<A>);
    const opts = {
      ghost: 1,
      stencil: "star" as Stencil,
      alloc: (length: number) => new dtype(length),
      ...options,
      dtype,
    };
    const { shape, ghost, stencil } = opts;
    const where = `BlockGrid.create`;
    if (!cart || typeof cart.shift !== "function") throw new MpiError(`${where}: the first argument must be a Cartesian communicator (from comm.cart(...))`);
    if (!Array.isArray(shape) || shape.length !== cart.ndims || shape.some((n) => !Number.isInteger(n) || n < 1)) {
      throw new MpiError(`${where}: shape ${JSON.stringify(shape)} must be ${cart.ndims} positive integer${cart.ndims > 1 ? "s" : ""}, one per dimension of the cart (dims [${cart.dims.join(", ")}])`);
    }
    if (!Number.isInteger(ghost) || ghost < 0) throw new MpiError(`${where}: ghost ${ghost} must be an integer ≥ 0`);
    if (stencil !== "star" && stencil !== "box") throw new MpiError(`${where}: stencil ${JSON.stringify(stencil)} must be "star" or "box"`);
    if (typeof dtype !== "function" || !ArrayBuffer.isView(new dtype(0))) throw new MpiError(`${where}: dtype must be a typed-array class such as Float64Array`);
    shape.forEach((n, d) => {
      const p = cart.dims[d]!;
      if (n < p) throw new MpiError(`${where}: shape[${d}] = ${n} is smaller than the ${p} ranks along dimension ${d}: every rank needs at least one cell`);
      const thinnest = Math.floor(n / p);
      const hasNeighbours = p > 1 || cart.periodic[d];
      if (hasNeighbours && thinnest < ghost) {
        throw new MpiError(`${where}: along dimension ${d}, ${n} cells on ${p} rank${p > 1 ? "s" : ""} give blocks of ${thinnest}, thinner than the ghost width ${ghost}`);
      }
    });
    const comm = await cart.dup();
    return new BlockGrid(cart, comm, opts);
  }

  /** Flat index into `local` of interior cell (i, j, …); ghosts are at −1 … −ghost and localShape … */
  index(...coords: number[]): number {
    let k = 0;
    for (let d = 0; d < coords.length; d++) k += (coords[d]! + this.ghost) * this.strides[d]!;
    return k;
  }

  /**
   * Fills the ghost layers from the neighbours. Periodic dimensions wrap; ghosts on a
   * non-periodic edge are left as they are (boundary values are yours to set). "star" sends every
   * face at once; "box" goes one dimension at a time, last to first, each face including the
   * ghosts already filled, so edges and corners arrive too (2·ndims messages, not 3^ndims − 1).
   */
  async exchange(): Promise<void> {
    // Timed here rather than wrapped by instrument(), as the point-to-point calls are: a solver
    // calls it every step, and the wrapper made a closure and a promise reaction per call.
    const t0 = observed ? began("exchange") : 0;
    try {
      const n = this.shape.length;
      if (this.stencil === "star") {
        const all: Promise<void>[] = [];
        for (let d = 0; d < n; d++) this.exchangeDim(d, all);
        await Promise.all(all);
      } else {
        for (let d = n - 1; d >= 0; d--) {
          const ops: Promise<void>[] = [];
          this.exchangeDim(d, ops);
          await Promise.all(ops);
        }
      }
    } finally {
      if (observed) ended("exchange", NONE, NONE, NONE, this.cart.contextId, t0);
    }
  }

  /**
   * Deep halos: the cells to update in local step `s` (0-based) of `k` steps taken between two
   * exchanges, as [lo, hi) per dimension of `local`. That is the interior grown by k − 1 − s
   * layers on every side with a neighbour: after an exchange the ghost layers hold the
   * neighbours' cells, so a stencil step can advance them too, one layer fewer each step, and k
   * steps need one exchange instead of k. Sides on a non-periodic edge do not grow (their ghosts
   * are boundary values). Needs k ≤ ghost, and a "box" stencil when a step reads diagonal
   * neighbours or k > 1 (corner ghosts feed the cells next to them after two steps).
   *
   * The trade-off: k times fewer messages (each of k times the data) for a little redundant work
   * at the rim, (k − 1)·k/2 extra layers per side over the k steps; worth it when messages cost
   * more than the rim's cells, as with many ranks per core or slow networks.
   */
  updateBox(s: number, k: number): [number, number][] {
    if (!Number.isInteger(k) || k < 1 || k > Math.max(1, this.ghost)) throw new MpiError(`updateBox: k ${k} must be an integer from 1 to the ghost width ${this.ghost}`);
    if (!Number.isInteger(s) || s < 0 || s >= k) throw new MpiError(`updateBox: step ${s} must be an integer from 0 to k − 1 = ${k - 1}`);
    const grow = k - 1 - s;
    return this.localShape.map((n, d): [number, number] => {
      const [lower, upper] = this.faces[d]!;
      return [this.ghost - (lower ? grow : 0), this.ghost + n + (upper ? grow : 0)];
    });
  }

  /** The whole global array (no ghosts) on `root`; undefined elsewhere. Collective. */
  async gather(root = 0): Promise<A | undefined> {
    const interior = this.slab(this.interiorBox());
    const mine = new this.dtype(interior.count);
    this.pack(interior, mine);
    const parts = await this.comm.gather(mine, root);
    if (!parts) return undefined;
    const full = new this.dtype(this.shape.reduce((a, b) => a * b, 1));
    parts.forEach((part, r) => this.placeBlock(r, (fullIndex, k, len) => copy(full, fullIndex, part, k, len)));
    return full;
  }

  /** Sets every block's interior from the whole global array `full` given on `root`. Collective. */
  async scatter(full: A | null | undefined, root = 0): Promise<void> {
    let blocks: A[] | null = null;
    let mistake: string | undefined;
    if (this.cart.rank === root) {
      const total = this.shape.reduce((a, b) => a * b, 1);
      if (!(full instanceof this.dtype) || full.length !== total) {
        mistake = `grid.scatter: the root must pass a ${this.dtype.name} of ${total} elements (shape [${this.shape.join(", ")}]), got ${full === null || full === undefined ? String(full) : `${full.constructor.name} of ${(full as TypedArray).length}`}`;
      } else {
        blocks = Array.from({ length: this.cart.size }, (_, r) => {
          const block = new this.dtype(this.blockShape(r).reduce((a, b) => a * b, 1));
          this.placeBlock(r, (fullIndex, k, len) => copy(block, k, full, fullIndex, len));
          return block;
        });
      }
    }
    let mine: A;
    try {
      mine = await this.comm.scatter(blocks, root);
    } catch (e) {
      throw mistake ? new MpiError(mistake) : e;
    }
    this.unpack(this.slab(this.interiorBox()), mine);
  }

  /**
   * Writes the global field (no ghosts) to `file` as a NumPy `.npy` file (C order, the grid's
   * dtype) and `meta` to `FILE.json` beside it, for `BlockGrid.load` or `numpy.load(file)`.
   * Collective. Ranks that see rank 0's file system write their own blocks at their offsets;
   * the others send them to rank 0. The data goes to `FILE.partial` and is renamed into place
   * only when complete, so a job killed mid-write leaves the previous checkpoint intact.
   * `meta` must be JSON (finite numbers, strings, booleans, null, arrays, plain objects).
   * @throws MpiError on every rank when the metadata is not JSON or a rank cannot write.
   */
  async save(file: string, meta: Record<string, unknown> = {}): Promise<void> {
    const where = `grid.save(${JSON.stringify(file)})`;
    const header: NpyHeader = { descr: npyDescr(this.dtype), shape: [...this.shape], dataOffset: 0 };
    const bytes = encodeNpyHeader(header.descr, header.shape);
    header.dataOffset = bytes.length;
    const dataBytes = this.shape.reduce((a, b) => a * b, 1) * this.dtype.BYTES_PER_ELEMENT;
    let plan: { error?: string; partial?: string; identity?: string } = {};
    if (this.comm.rank === 0) {
      try {
        if (typeof file !== "string" || file === "") throw new MpiError(`${where}: file must be a non-empty path`);
        checkMeta(meta, where);
        plan = prepare(file, bytes, dataBytes);
      } catch (e) {
        const message = (e as Error).message;
        plan = { error: message.startsWith(where) ? message : `${where}: ${message}` };
      }
    }
    plan = await this.comm.bcast(plan, 0);
    if (plan.error !== undefined) throw new MpiError(plan.error);
    const partial = plan.partial!;
    const errors = await this.moveBlocks(partial, plan.identity!, header, "write");
    let verdict: string | null = errors;
    if (this.comm.rank === 0) {
      try {
        if (errors) abandon(file);
        else commit(file, header, dataBytes, meta);
      } catch (e) {
        verdict = (e as Error).message;
      }
    }
    verdict = await this.comm.bcast(verdict, 0);
    if (verdict) throw new MpiError(`${where}: ${verdict}`);
  }

  /**
   * Reads a `.npy` file (a checkpoint from `save`, or any C-order array from `numpy.save`) into
   * a new grid over `cart`, each rank its own block, whatever decomposition wrote it. The shape
   * and dtype come from the file (`options.shape`/`dtype`, if given, must agree); the other
   * options are as for `create`. Returns the grid and the metadata saved with it (`{}` for a
   * plain .npy file). Collective.
   * @throws MpiError on every rank when the file is missing, is not a .npy file tsmpi reads,
   *   does not match its sidecar, or does not fit the options.
   */
  static async load<A extends TypedArray = Float64Array>(
    cart: CartComm,
    file: string,
    options: Partial<BlockGridOptions<A>> = {},
  ): Promise<LoadedGrid<A>> {
    const where = `BlockGrid.load(${JSON.stringify(file)})`;
    type Plan = { error?: string; path?: string; descr?: NpyDescr; shape?: number[]; dataOffset?: number; meta?: Record<string, unknown>; identity?: string };
    let plan: Plan = {};
    if (cart.rank === 0) {
      try {
        if (typeof file !== "string" || file === "") throw new MpiError(`file must be a non-empty path`);
        const path = resolve(file);
        if (!existsSync(path) && !existsSync(`${path}.json`)) throw new MpiError(`${file}: no such file`);
        const sidecar = settle(file);
        const h = readHeader(path, file);
        if (sidecar && (sidecar.dtype !== h.descr || JSON.stringify(sidecar.shape) !== JSON.stringify(h.shape))) {
          throw new MpiError(`${file}: holds ${h.descr} [${h.shape.join(", ")}] but ${file}.json says ${sidecar.dtype} [${sidecar.shape.join(", ")}]`);
        }
        plan = { path, descr: h.descr, shape: h.shape, dataOffset: h.dataOffset, meta: sidecar?.meta ?? {}, identity: fileIdentity(path) };
      } catch (e) {
        plan = { error: `${where}: ${(e as Error).message}` };
      }
    }
    plan = await cart.bcast(plan, 0);
    if (plan.error !== undefined) throw new MpiError(plan.error);
    const shape = plan.shape!;
    const dtype = npyClass(plan.descr!) as unknown as ArrayClass<A>;
    const fail = (why: string) => new MpiError(`${where}: ${why}`);
    if (options.dtype && npyDescr(options.dtype) !== plan.descr) throw fail(`the file holds ${dtype.name} (${plan.descr}), not ${options.dtype.name}`);
    if (options.shape && JSON.stringify([...options.shape]) !== JSON.stringify(shape)) throw fail(`the file's shape is [${shape.join(", ")}], not [${options.shape.join(", ")}]`);
    let grid: BlockGrid<A>;
    try {
      grid = await BlockGrid.create(cart, { ...options, shape, dtype: options.dtype ?? dtype });
    } catch (e) {
      throw fail((e as Error).message);
    }
    const errors = await grid.moveBlocks(plan.path!, plan.identity!, { descr: plan.descr!, shape, dataOffset: plan.dataOffset! }, "read");
    if (errors) throw new MpiError(`${where}: ${errors}`);
    return { grid, meta: plan.meta! };
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * Moves every rank's interior between `local` and the .npy file at `path`: ranks that see the
   * file rank 0 sees (`identity`, from `fileIdentity`) read or write their own rows; rank 0 does
   * it for the others, with their blocks as messages. Returns the ranks' errors as one line (null when none), the
   * same on every rank.
   */
  private async moveBlocks(path: string, identity: string, header: NpyHeader, mode: "read" | "write"): Promise<string | null> {
    const comm = this.comm;
    // Nobody writes before everyone has looked: the file's size and mtime are still rank 0's.
    const sees = await comm.allgather(comm.rank === 0 || fileIdentity(path) === identity);
    const B = this.dtype.BYTES_PER_ELEMENT;
    const interior = this.slab(this.interiorBox());
    const localBytes = new Uint8Array(this.local.buffer, this.local.byteOffset, this.local.byteLength);
    let error: string | null = null;
    /** Reads or writes rank `r`'s rows between the file and `bytes`, where `at(k)` is block element k's index in `bytes`. */
    const move = (fd: number, r: number, bytes: Uint8Array, at: (k: number, row: number) => number) => {
      let row = 0;
      this.placeBlock(r, (fullIndex, k, len) => {
        const part = bytes.subarray(at(k, row) * B, (at(k, row) + len) * B);
        const position = header.dataOffset + fullIndex * B;
        row++;
        if (mode === "write") writeAll(fd, part, position);
        else if (!readAll(fd, part, position)) throw new MpiError(`${path}: the file ends before the data its header describes (${header.shape.join("×")} ${header.descr})`);
      });
    };
    const withFile = (fn: (fd: number) => void) => {
      const fd = openFile(path, mode === "write" ? "r+" : "r");
      try {
        fn(fd);
        if (mode === "write") fsyncSync(fd);
      } catch (e) {
        throw e instanceof MpiError ? e : new MpiError(ioMessage(path, e));
      } finally {
        closeSync(fd);
      }
    };
    if (sees[comm.rank]) {
      try {
        withFile((fd) => move(fd, comm.rank, localBytes, (_k, row) => interior.starts[row]!));
      } catch (e) {
        error = `rank ${comm.rank}: ${(e as Error).message}`;
      }
    }
    // Ranks on other file systems: their blocks travel through rank 0, one at a time.
    const relayed = sees.flatMap((s, r) => (s ? [] : [r]));
    if (comm.rank === 0) {
      for (const r of relayed) {
        const block = new this.dtype(this.blockShape(r).reduce((a, b) => a * b, 1));
        const bytes = new Uint8Array(block.buffer);
        if (mode === "write") await comm.recvInto(block, r, FILE_TAG);
        try {
          if (!error) withFile((fd) => move(fd, r, bytes, (k) => k));
        } catch (e) {
          error = `rank 0 for rank ${r}: ${(e as Error).message}`;
        }
        if (mode === "read") await comm.send(block, r, FILE_TAG);
      }
    } else if (!sees[comm.rank]) {
      const block = new this.dtype(interior.count);
      if (mode === "write") {
        this.pack(interior, block);
        await comm.send(block, 0, FILE_TAG);
      } else {
        await comm.recvInto(block, 0, FILE_TAG);
        this.unpack(interior, block);
      }
    }
    const all = await comm.allgather(error);
    return all.filter((e) => e !== null).join("; ") || null;
  }


  private blockShape(rank: number): number[] {
    const c = this.cart.coordsOf(rank);
    return this.shape.map((n, d) => blockRange(n, this.cart.dims[d]!, c[d]!)[1]);
  }

  /** Calls `run(indexInFull, indexInBlock, length)` for each row of rank `rank`'s block. */
  private placeBlock(rank: number, run: (fullIndex: number, blockIndex: number, length: number) => void): void {
    const c = this.cart.coordsOf(rank);
    const ranges = this.shape.map((n, d) => blockRange(n, this.cart.dims[d]!, c[d]!));
    const n = this.shape.length;
    const len = ranges[n - 1]![1];
    const fullStrides = new Array<number>(n);
    let s = 1;
    for (let d = n - 1; d >= 0; d--) {
      fullStrides[d] = s;
      s *= this.shape[d]!;
    }
    const idx = new Array<number>(n - 1).fill(0);
    for (let k = 0; ; k += len) {
      let f = ranges[n - 1]![0];
      for (let d = 0; d < n - 1; d++) f += (ranges[d]![0] + idx[d]!) * fullStrides[d]!;
      run(f, k, len);
      let d = n - 2;
      while (d >= 0 && ++idx[d]! === ranges[d]![1]) idx[d--] = 0;
      if (d < 0) return;
    }
  }

  private interiorBox(): [number, number][] {
    return this.localShape.map((n) => [this.ghost, this.ghost + n]);
  }

  private makeFaces(d: number): (Face | null)[] {
    const g = this.ghost, n = this.localShape[d]!;
    const { source: lower, dest: upper } = this.cart.shift(d, 1);
    // Extent in the other dimensions: the interior, except (box) the dimensions exchanged before
    // this one, whose ghosts are already filled and carry the edges and corners along.
    const box = (range: [number, number]): [number, number][] =>
      this.localShape.map((m, e): [number, number] => (e === d ? range : this.stencil === "box" && e > d ? [0, m + 2 * g] : [g, g + m]));
    const face = (peer: number, sendRange: [number, number], recvRange: [number, number], sendTag: number, recvTag: number): Face | null => {
      if (peer === PROC_NULL || g === 0) return null;
      const send = this.slab(box(sendRange)), recv = this.slab(box(recvRange));
      // Made once: `local` never moves, so an exchange allocates no buffer and no view.
      const buffer = (sl: Slab) => (sl.contiguous ? this.local.subarray(sl.starts[0]!, sl.starts[0]! + sl.count) : new this.dtype(sl.count));
      return { peer, sendTag, recvTag, send, recv, sendBuffer: buffer(send), recvBuffer: buffer(recv) };
    };
    // Tag 2d travels upwards (my upper face to the upper neighbour's lower ghosts), 2d+1 downwards:
    // with two ranks in a periodic dimension both neighbours are the same rank, and only the tag
    // tells the two messages apart.
    return [face(lower, [g, 2 * g], [0, g], 2 * d + 1, 2 * d), face(upper, [n, n + g], [n + g, n + 2 * g], 2 * d, 2 * d + 1)];
  }

  private slab(box: [number, number][]): Slab {
    const n = box.length;
    const runLength = box[n - 1]![1] - box[n - 1]![0];
    const rows = box.slice(0, n - 1).reduce((a, [lo, hi]) => a * (hi - lo), 1);
    const starts = new Int32Array(rows);
    const idx = box.slice(0, n - 1).map(([lo]) => lo);
    for (let r = 0; r < rows; r++) {
      let k = box[n - 1]![0];
      for (let d = 0; d < n - 1; d++) k += idx[d]! * this.strides[d]!;
      starts[r] = k;
      for (let d = n - 2; d >= 0; d--) {
        if (++idx[d]! < box[d]![1]) break;
        idx[d] = box[d]![0];
      }
    }
    // Contiguous when, past the first dimension with more than one layer, every dimension is whole.
    let k = 0;
    while (k < n - 1 && box[k]![1] - box[k]![0] === 1) k++;
    let contiguous = true;
    for (let d = k + 1; d < n; d++) if (box[d]![0] !== 0 || box[d]![1] !== this.paddedShape[d]) contiguous = false;
    return { starts, runLength, count: rows * runLength, contiguous };
  }

  private pack(s: Slab, into: TypedArray): void {
    for (let r = 0; r < s.starts.length; r++) copy(into, r * s.runLength, this.local, s.starts[r]!, s.runLength);
  }

  private unpack(s: Slab, from: TypedArray): void {
    for (let r = 0; r < s.starts.length; r++) copy(this.local, s.starts[r]!, from, r * s.runLength, s.runLength);
  }

  private exchangeDim(d: number, ops: Promise<void>[]): void {
    for (const f of this.faces[d]!) {
      if (!f) continue;
      // Post the receive first, then pack and send; contiguous ghost layers are received in place.
      const received = this.comm.recvInto(f.recvBuffer, f.peer, f.recvTag);
      ops.push(f.recv.contiguous ? received.then(() => undefined) : received.then(() => this.unpack(f.recv, f.recvBuffer)));
      if (!f.send.contiguous) this.pack(f.send, f.sendBuffer);
      ops.push(this.comm.send(f.sendBuffer, f.peer, f.sendTag));
    }
  }
}

function describeArray(a: unknown): string {
  return ArrayBuffer.isView(a) ? `${a.constructor.name} of ${(a as TypedArray).length}` : a === null ? "null" : typeof a;
}

/** dst[di … di+len) = src[si … si+len), same element type. Short runs (a column face) by hand. */
function copy(dst: TypedArray, di: number, src: TypedArray, si: number, len: number): void {
  if (len > 16) {
    (dst as Uint8Array).set((src as Uint8Array).subarray(si, si + len), di);
    return;
  }
  const o = dst as unknown as number[], i = src as unknown as number[];
  for (let t = 0; t < len; t++) o[di + t] = i[si + t]!;
}

// For --report and --trace: the grid's calls are timed like the communicator's.
instrument(BlockGrid.prototype, GRID_CALLS, (g) => (g as BlockGrid).cart.contextId, (g) => (g as BlockGrid).cart.group);
