/**
 * Cartesian topologies (MPI_Cart_create, MPI_Dims_create): ranks laid out row-major (the last
 * dimension varies fastest, as in MPI's C binding) on a grid that may wrap in any dimension.
 */
import { PROC_NULL } from "./constants.js";
import { MpiError } from "./errors.js";

/** Options of `Communicator.cart`. */
export interface CartOptions {
  /** One flag per dimension: whether it wraps around. Default: none wraps. */
  periodic?: readonly boolean[];
  /** Accepted for MPI compatibility; ranks are never renumbered (every rank keeps its rank). */
  reorder?: boolean;
}

/** Source and destination of a shift along one dimension (MPI_Cart_shift). */
export interface Shift {
  /** The rank `disp` steps back: where data shifted forward comes from (PROC_NULL off an edge). */
  source: number;
  /** The rank `disp` steps ahead: where this rank's data goes (PROC_NULL off an edge). */
  dest: number;
}

function primeFactors(n: number): number[] {
  const f: number[] = [];
  for (let p = 2; p * p <= n; p++) while (n % p === 0) (f.push(p), (n /= p));
  if (n > 1) f.push(n);
  return f;
}

/**
 * Fills the zero entries of `dims` so that their product with the fixed entries is `nnodes`,
 * as balanced as possible and in non-increasing order (MPI_Dims_create).
 */
export function fillDims(nnodes: number, dims: readonly number[], call = "dimsCreate"): number[] {
  if (!Number.isInteger(nnodes) || nnodes < 1) throw new MpiError(`${call}: nnodes must be a positive integer, got ${nnodes}`);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) throw new MpiError(`${call}: dims [${dims.join(", ")}] must be integers ≥ 0 (0 = choose for me)`);
  const fixed = dims.reduce((p, d) => (d > 0 ? p * d : p), 1);
  const free = dims.filter((d) => d === 0).length;
  if (nnodes % fixed !== 0 || (free === 0 && fixed !== nnodes)) {
    throw new MpiError(`${call}: dims [${dims.join(", ")}] cannot multiply to ${nnodes}`);
  }
  // Largest prime factors first, each onto the currently smallest free dimension.
  const chosen = new Array<number>(free).fill(1);
  for (const p of primeFactors(nnodes / fixed).reverse()) {
    let min = 0;
    for (let i = 1; i < free; i++) if (chosen[i]! < chosen[min]!) min = i;
    chosen[min]! *= p;
  }
  chosen.sort((a, b) => b - a);
  let k = 0;
  return dims.map((d) => (d > 0 ? d : chosen[k++]!));
}

/** A balanced factorisation of `nnodes` into `ndims` factors, largest first (MPI_Dims_create). */
export function dimsCreate(nnodes: number, ndims: number): number[] {
  if (!Number.isInteger(ndims) || ndims < 1) throw new MpiError(`dimsCreate: ndims must be a positive integer, got ${ndims}`);
  return fillDims(nnodes, new Array<number>(ndims).fill(0));
}

/** The arithmetic of a Cartesian grid, independent of any communicator. */
export class CartGeometry {
  readonly ndims: number;
  private readonly strides: number[];

  constructor(
    readonly dims: readonly number[],
    readonly periodic: readonly boolean[],
  ) {
    this.ndims = dims.length;
    this.strides = new Array<number>(dims.length);
    let s = 1;
    for (let d = dims.length - 1; d >= 0; d--) {
      this.strides[d] = s;
      s *= dims[d]!;
    }
  }

  /** Rank at `coords`; periodic dimensions wrap, PROC_NULL outside a non-periodic one. */
  rankAt(coords: readonly number[]): number {
    if (coords.length !== this.ndims) throw new MpiError(`rankAt: expected ${this.ndims} coordinates, got ${coords.length}`);
    let r = 0;
    for (let d = 0; d < this.ndims; d++) {
      let c = coords[d]!;
      const n = this.dims[d]!;
      if (!Number.isInteger(c)) throw new MpiError(`rankAt: coordinate ${c} is not an integer`);
      if (c < 0 || c >= n) {
        if (!this.periodic[d]) return PROC_NULL;
        c = ((c % n) + n) % n;
      }
      r += c * this.strides[d]!;
    }
    return r;
  }

  coordsOf(rank: number): number[] {
    const size = this.strides[0]! * this.dims[0]!;
    if (!Number.isInteger(rank) || rank < 0 || rank >= size) throw new MpiError(`coordsOf: rank ${rank} is not in the grid (0..${size - 1})`);
    return this.dims.map((n, d) => Math.floor(rank / this.strides[d]!) % n);
  }

  shift(rank: number, direction: number, disp: number): Shift {
    if (!Number.isInteger(direction) || direction < 0 || direction >= this.ndims) {
      throw new MpiError(`shift: direction ${direction} is not a dimension of this grid (0..${this.ndims - 1})`);
    }
    if (!Number.isInteger(disp)) throw new MpiError(`shift: disp ${disp} is not an integer`);
    const c = this.coordsOf(rank);
    const at = (delta: number) => this.rankAt(c.map((x, d) => (d === direction ? x + delta : x)));
    return { source: at(-disp), dest: at(disp) };
  }
}
