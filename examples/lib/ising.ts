/**
 * The 2D Ising model's compute kernel (J = 1, no field), shared by examples/ising.ts (one lattice
 * split over many ranks) and examples/sweep.ts (one serial lattice per task).
 *
 * Checkerboard Metropolis: the sites of one colour ((x + y) even, then odd) have no neighbours of
 * their own colour, so they can all be updated at once from the other colour's values. Every
 * accept/reject decision draws its random number from a counter-based hash of
 * (seed, sweep, colour, global site), never from a stream, so the outcome of a run does not
 * depend on how the lattice is split or in which order the sites are visited.
 */

const P1 = 0x9e3779b1, P2 = 0x85ebca77, P3 = 0xc2b2ae3d, P4 = 0x27d4eb2f, P5 = 0x165667b1;

/** One xxHash32 round: fold a 32-bit word into the running hash. */
function mix(h: number, word: number): number {
  h = (h + Math.imul(word, P3)) | 0;
  h = (h << 17) | (h >>> 15);
  return Math.imul(h, P4);
}

/** xxHash32's final avalanche: every input bit affects every output bit. */
function avalanche(h: number): number {
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The hash state after (seed, sweep, colour): one per half-sweep; a site's number is `siteRandom(key, site)`. */
export function halfSweepKey(seed: number, sweep: number, colour: number): number {
  return mix(mix((seed + P5 + 16) | 0, sweep), colour);
}

/** Uniform 32-bit random integer for one site of one half-sweep. */
export function siteRandom(key: number, site: number): number {
  return avalanche(mix(key, site));
}

/** A seed for task `index` derived from a base seed (independent streams for a sweep's points). */
export function derivedSeed(seed: number, index: number): number {
  return avalanche(mix(mix(P1, seed), index));
}

/**
 * Acceptance thresholds for a spin flip that raises the energy by 4 or 8 at temperature T:
 * flip when the site's 32-bit random number is below exp(−ΔE/T) · 2³². Integers, so the decision
 * is exact and the same on every machine.
 */
export function thresholds(T: number): [number, number] {
  const t = (dE: number) => Math.min(2 ** 32 - 1, Math.floor(Math.exp(-dE / T) * 2 ** 32));
  return [t(4), t(8)];
}

/**
 * A block of the lattice: `spins` holds it with `ghost` ghost layers (default 1), `width` elements
 * per row (block columns + 2·ghost); the interior is rows ghost … ghost + rows − 1, and the same
 * for columns. `y0`, `x0` are the global coordinates of the interior's first cell and `L` the
 * global side (for site numbers).
 */
export interface Block {
  spins: Int8Array;
  width: number;
  rows: number;
  cols: number;
  y0: number;
  x0: number;
  L: number;
  ghost?: number;
}

/** A global coordinate wrapped onto the periodic lattice (ghost cells lie at most one side off). */
function wrap(x: number, L: number): number {
  return x < 0 ? x + L : x >= L ? x - L : x;
}

/**
 * Metropolis update of every site of one colour in `box` ([i0, i1), [j0, j1) in `spins`'
 * coordinates; default the interior), whose neighbours must be current. A ghost cell in the box
 * gets exactly the update its owner gives it (same site number, same colour, same random
 * number), which is what deep halos rely on.
 */
export function updateColour(b: Block, colour: number, seed: number, sweep: number, thr: readonly [number, number], box?: readonly (readonly [number, number])[]): void {
  const { spins: s, width: W, y0, x0, L } = b;
  const g = b.ghost ?? 1;
  const [[i0, i1], [j0, j1]] = box ?? [
    [g, g + b.rows],
    [g, g + b.cols],
  ];
  const key = halfSweepKey(seed, sweep, colour);
  const t4 = thr[0], t8 = thr[1];
  for (let i = i0; i < i1; i++) {
    const gy = wrap(y0 + i - g, L);
    // The colours alternate along a row, so every other site is one colour, except across the
    // periodic edge of an odd L: a row that crosses it has each site's colour checked.
    const step = L % 2 === 0 || (x0 + j0 - g >= 0 && x0 + j1 - g <= L) ? 2 : 1;
    const first = step === 2 ? j0 + ((((colour - gy - wrap(x0 + j0 - g, L)) % 2) + 2) % 2) : j0;
    // The site's global column, kept in step with j rather than wrapped per site.
    let gx = wrap(x0 + first - g, L);
    for (let j = first, k = i * W + first; j < j1; j += step, k += step, gx = gx + step >= L ? gx + step - L : gx + step) {
      if (step === 1 && (gy + gx) % 2 !== colour) continue;
      const spin = s[k]!;
      const dE = 2 * spin * (s[k - 1]! + s[k + 1]! + s[k - W]! + s[k + W]!);
      if (dE > 0) {
        const r = siteRandom(key, gy * L + gx);
        if (r >= (dE === 4 ? t4 : t8)) continue;
      }
      s[k] = -spin;
    }
  }
}

/**
 * Magnetisation (sum of spins) and energy (−Σ s·(right + down)) of the block's interior; the
 * ghost layer to its right and below must be current.
 */
export function measure(b: Block): { M: number; E: number } {
  const { spins: s, width: W, rows, cols } = b;
  const g = b.ghost ?? 1;
  let M = 0, E = 0;
  for (let i = g; i < g + rows; i++) {
    for (let j = g, k = i * W + g; j < g + cols; j++, k++) {
      M += s[k]!;
      E -= s[k]! * (s[k + 1]! + s[k + W]!);
    }
  }
  return { M, E };
}

/** Fills the ghost layer of a whole periodic L × L lattice held in one block (the serial case). */
export function wrapPeriodic(b: Block): void {
  const { spins: s, width: W, rows: n } = b;
  for (let j = 1; j <= n; j++) (s[j] = s[n * W + j]!), (s[(n + 1) * W + j] = s[W + j]!);
  for (let i = 0; i <= n + 1; i++) (s[i * W] = s[i * W + n]!), (s[i * W + n + 1] = s[i * W + 1]!);
}

export interface IsingRun {
  L: number;
  T: number;
  sweeps: number;
  therm: number;
  seed: number;
}

/** Mean |m| and energy per site of a serial run: the same kernel and random numbers as ising.ts on one rank. */
export function runSerial({ L, T, sweeps, therm, seed }: IsingRun): { absMagnetization: number; energy: number; spins: Int8Array } {
  const W = L + 2;
  const b: Block = { spins: new Int8Array(W * W), width: W, rows: L, cols: L, y0: 0, x0: 0, L };
  for (let i = 1; i <= L; i++) b.spins.fill(1, i * W + 1, i * W + 1 + L);
  const thr = thresholds(T);
  wrapPeriodic(b);
  let sumAbsM = 0, sumE = 0;
  for (let sweep = 0; sweep < therm + sweeps; sweep++) {
    for (const colour of [0, 1]) {
      updateColour(b, colour, seed, sweep, thr);
      wrapPeriodic(b);
    }
    if (sweep >= therm) {
      const { M, E } = measure(b);
      sumAbsM += Math.abs(M);
      sumE += E;
    }
  }
  const N = L * L;
  return { absMagnetization: sumAbsM / sweeps / N, energy: sumE / sweeps / N, spins: b.spins };
}
