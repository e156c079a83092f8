/**
 * Collectives through shared memory (Open MPI's coll/sm is the model), for communicators whose
 * ranks all share one host's memory. A small allreduce or a barrier done with messages takes
 * log p rounds, and each round waits for a peer that, with more ranks than cores, has to be
 * scheduled first: on 4 ranks and 2 cores an 8-byte allreduce took ~25 µs that way. Here every
 * rank writes its value on its own board (a slot in its segment) and reads everyone else's: one
 * round, a few stores and loads, no message (~8 µs there). Every rank combines the values in
 * rank order itself, so all get the same bits.
 *
 * A board has two control lines and SLOTS slots, used in turn by the communicator's board calls.
 * A slot says which call it holds (its sequence number), the call's collective tag and
 * signature (so ranks that called different collectives find out, as with messages), and the
 * value: nothing (barrier), a number, a boolean or a small typed array. A rank whose value a
 * board cannot carry says so in its slot, and then every rank of the call falls back to the
 * message algorithms (on the same collective channel, so nothing else changes).
 *
 * A reduce goes the same way with only the root combining the values (one round) or gathering
 * the reduced shares (blocks). An allgather posts the values the same way, and every rank takes a
 * copy of each (one round), or copies each member's blocks out of its stage (Collected).
 *
 * A typed array too large for a slot goes through the members' stages instead (larger shared
 * areas, one per rank, whatever the communicator). Up to a quarter of a stage (and QUARTER_WORK)
 * it goes as through a slot, in the quarter that belongs to the call's slot. A larger one goes in
 * blocks (Staged): each rank copies its block into its stage, reduces its share of the block from
 * every stage, puts the result back into its stage and copies the others' shares out. That is two
 * copies of the array per rank where the message ring makes four (into a ring and out, twice),
 * and no message: on 4 ranks sharing 2 cores an 8 MiB allreduceInto took 12–17 ms by the ring,
 * ~3 ms so. The slot then carries the call's progress.
 *
 * A rank reuses a slot only once every member has read what it held: the control line's DONE
 * says up to which call a member has read, and a writer that has to wait for it counts itself in
 * WANTERS, which the reader that moves DONE answers with a ring. With SLOTS calls in flight
 * before that, it happens only when ranks are that many calls apart.
 */
import { RankFailedError } from "./errors.js";
import { combine, combineArrays, type OpName } from "./op.js";
import { BOARD_BYTES, type BoardWatch, type SharedBoards, type SharedStages, type StageHolder } from "./transport/index.js";
import { foldKernel, OP_CODES, streamCopy } from "./transport/native.js";
import { Awaited } from "./where.js";
import { plainTypedArrayCode, type TypedArray, type TypedArrayConstructor } from "./wire.js";

/**
 * Words of a board's two control lines: DONE (each member's own), and in the first member's
 * board WANTERS, the members waiting for room (a line of its own: it is read on every call and
 * rarely written).
 */
const DONE = 0;
const WANTERS = 16;
/** Slots, their size and where the first begins (in 32-bit words, after the control lines). */
const SLOTS = 4;
const SLOT_WORDS = 32;
const FIRST_SLOT = 32;
/** Words of a slot: its call's sequence number (written last), tag, signature, kind, payload bytes. */
const SEQ = 0;
const TAG = 1;
const SIG = 2;
const KIND = 3;
const BYTES = 4;
/** The payload begins 8-byte aligned, so a number is one Float64Array element. */
const PAYLOAD = 8;
/** The largest typed array a slot carries, in bytes. */
export const BOARD_PAYLOAD = (SLOT_WORDS - PAYLOAD) * 4;
if ((FIRST_SLOT + SLOTS * SLOT_WORDS) * 4 > BOARD_BYTES) throw new Error("board layout exceeds BOARD_BYTES");

/** Kinds of value in a slot. */
const OTHER = 1; // not one a board carries: the call goes by messages
const NOTHING = 2;
const NUMBER = 3;
const BOOLEAN = 4;
const ARRAY = 16; // + the typed array's binary type code (wire.ts)
const STAGED = 48; // + the code: an array that goes through the stages
/**
 * Words of a STAGED slot's payload: whether the rank got its stage for the call, and how many
 * blocks it has copied into it, reduced its share of, and gathered (so its stage's half of that
 * block is free again).
 */
const HAS_STAGE = PAYLOAD;
const WRITTEN = PAYLOAD + 1;
const REDUCED = PAYLOAD + 2;
const GATHERED = PAYLOAD + 3;
/**
 * Arrays whose size times the members is up to this (and that fit a quarter of the stage) go
 * through a quarter of the stage, as through a slot: one round, in which every rank reduces the
 * whole array. Larger ones go in blocks (Staged): three rounds, each rank reducing a share. On 4
 * ranks sharing 2 cores one round won up to 256 KiB (128 KiB: ~80 against ~125 µs), blocks from
 * 512 KiB (~190 against ~250 µs).
 */
const QUARTER_WORK = 1024 * 1024;

/** A value no board carries, for a rank that knows its call must go by messages (a function op, say). */
export const NOT_ON_BOARD: unknown = Symbol("not on board");
/** What a board call resolves with when it has to go by messages. */
export const BY_MESSAGES: unknown = Symbol("by messages");
/** A call that cannot complete yet (see reduce). */
const NOT_YET: unknown = Symbol("not yet");
/** A call that goes on through the stages (see reduce). */
const RUN: unknown = Symbol("run");

function kindOf(v: unknown, staged: boolean): number {
  if (v === null) return NOTHING;
  if (typeof v === "number") return NUMBER;
  if (typeof v === "boolean") return BOOLEAN;
  // Subclasses go by messages: a view of a slot is made with the value's constructor.
  const code = plainTypedArrayCode(v);
  if (code < 0) return OTHER;
  const bytes = (v as TypedArray).byteLength;
  if (bytes <= BOARD_PAYLOAD) return ARRAY + code;
  // Lengths are compared as 32-bit words: larger arrays go by messages.
  return staged && bytes < 2 ** 31 ? STAGED + code : OTHER;
}

/** What a board needs of its communicator. */
export interface BoardHooks {
  /**
   * Ranks called different collectives at collective tag `tag`: this rank's call there (`mine`;
   * undefined: look it up), member `member`'s signature `theirs` (0: unknown). Returns the error
   * to reject with; the communicator's collectives end.
   */
  mismatch(tag: number, mine: number | undefined, theirs: number, member: number): Error;
  /** How world rank `rank` has gone ("finalized", "exited"), or undefined while it is there. */
  gone(rank: number): string | undefined;
  /** Whether any rank of the job has gone already (before this board was made). */
  anyGone(): boolean;
  /** A call's signature in words, for errors: "allreduce (op sum)". */
  describe(sig: number): string;
  /** A call completed (for the launcher's watch for hangs: something moved). */
  moved(): void;
}

/** One board call of this rank, waiting for its slot to be free or for the others' slots. */
class BoardCall extends Awaited<unknown> {
  written = false;
  /**
   * A member posted this board call at a later collective call (see reduce): nothing on the
   * boards will change for it, so it waits only for the notice that ends the collectives.
   */
  stalled = false;
  /**
   * A STAGED call: whether it has this rank's stage, whether its array goes through a quarter of
   * it (one round) and, if not, its run in blocks once every member has posted.
   */
  tookStage = false;
  quarter = false;
  run: Run | null = null;

  constructor(
    readonly seq: number,
    readonly tag: number,
    readonly sig: number,
    readonly kind: number,
    readonly value: unknown,
    readonly op: OpName | null,
    readonly into: TypedArray | undefined,
    /** The member that gets the result (reduce); undefined: every member does (allreduce, barrier). */
    readonly root: number | undefined,
    /** An allgather: every member's value, not their combination. */
    readonly gather = false,
  ) {
    super();
  }

  resolve(v: unknown): void {
    this.done(v);
  }

  reject(e: Error): void {
    this.fail(e);
  }
}

/** A wait on a board, as a report of what the rank waits for shows it: the call and a member it waits on. */
export interface BoardWait {
  tag: number;
  /** World rank waited on. */
  src: number;
  locate(): Promise<string | undefined>;
}

/** The boards of one communicator, as this rank uses them. */
export class Board implements BoardWatch, StageHolder {
  private seq = 0;
  private readonly queue: BoardCall[] = [];
  private watched = false;
  private readonly areas: readonly Int32Array[];
  private readonly stages: SharedStages | null;
  private readonly numbers: Float64Array[];
  private readonly own: Int32Array;
  /** Each member's DONE as last read: enough to know a slot is free without reading it again, most calls. */
  private readonly doneSeen: Int32Array;
  /** The last call this rank completed (its DONE). */
  private completed = 0;
  /** Whether this rank counts itself in WANTERS. */
  private wanting = false;
  /** Whether this board has this rank's stage (it keeps it until another board asks: release). */
  private holds = false;
  /** Whether a call of this board runs through the stages in blocks (see Staged). */
  private busy = false;
  /** The last call that put its array into a quarter of the stage (see reduce), or 0. */
  private lastQuarter = 0;
  /**
   * Typed-array views of each member's slots (by member · SLOTS + slot), then of its stage's
   * quarters (the same, after the members' slots): made again only when the class or length changes.
   */
  private readonly views: (TypedArray | undefined)[] = [];
  /** Set once a call failed for a reason that every later one shares (a rank gone). */
  private failure: Error | null = null;
  /** Some rank of the job has gone (see peerGone): only then is it worth looking for one. */
  private anyGone = false;

  constructor(
    private readonly shared: SharedBoards,
    /** This rank in the communicator. */
    private readonly rank: number,
    /** World ranks of the members. */
    private readonly group: readonly number[],
    private readonly hooks: BoardHooks,
  ) {
    this.areas = shared.areas;
    this.stages = shared.stages;
    this.numbers = this.areas.map((a) => new Float64Array(a.buffer, a.byteOffset, a.length / 2));
    this.own = this.areas[rank]!;
    this.doneSeen = new Int32Array(this.areas.length);
    this.anyGone = hooks.anyGone();
  }

  /**
   * Posts `value` for the collective call `tag` (signature `sig`) and resolves with every
   * member's value combined with `op` in rank order (the same bits on every rank; for a typed
   * array a new one, or `into`), or with null for a barrier (value null, no op). With a `root`
   * (reduce), only that member gets the result; the others resolve with undefined. Resolves with
   * BY_MESSAGES when some member's value is not one a board carries (NOT_ON_BOARD, an object, a
   * large array, values of different kinds or sizes): the call then goes by messages, on every
   * rank alike.
   */
  exchange(tag: number, sig: number, value: unknown, op: OpName | null, into?: TypedArray, root?: number): Promise<unknown> {
    return this.post(new BoardCall((this.seq + 1) | 0, tag, sig, value === NOT_ON_BOARD ? OTHER : kindOf(value, this.stages !== null && op !== null), value, op, into, root));
  }

  /**
   * Posts `value` for the allgather `tag` (signature `sig`) and resolves with every member's value
   * in rank order (this rank's own value itself, copies of the others), or with BY_MESSAGES when
   * the values are not ones a board carries or differ in kind or size (the call then goes by
   * messages, on every rank alike).
   */
  collect(tag: number, sig: number, value: unknown): Promise<unknown> {
    return this.post(new BoardCall((this.seq + 1) | 0, tag, sig, value === NOT_ON_BOARD ? OTHER : kindOf(value, this.stages !== null), value, null, undefined, undefined, true));
  }

  private post(c: BoardCall): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    this.seq = c.seq;
    this.queue.push(c);
    this.step();
    return c.promise;
  }

  /** Watch: the next call can write its slot, or the first one has all it waits for. */
  ready(): boolean {
    const q = this.queue;
    if (q.length === 0) return false;
    const head = q[0]!;
    if (head.run ? head.run.ready() : head.written && !head.stalled && this.present(head)) return true;
    for (let i = 0; i < q.length; i++) if (!q[i]!.written) return this.stageAllows(q[i]!) && this.canWrite(q[i]!.seq);
    return false;
  }

  fire(): void {
    this.step();
  }

  /** Rejects every call waiting here (the communicator's collectives failed). */
  fail(e: Error): void {
    this.stopWanting();
    // The stage stays this board's: another member may still be reading it.
    for (const c of this.queue.splice(0)) c.reject(e);
    this.unwatch();
  }

  /** A rank has finalized or exited: a call that waits for its slot cannot complete. */
  peerGone(): void {
    this.anyGone = true;
    if (this.queue.length > 0) this.step();
  }

  /** What this rank waits for here: for the first call, each member whose slot it lacks. */
  waits(): BoardWait[] {
    const c = this.queue[0];
    if (!c) return [];
    const base = slotOf(c.seq);
    const out: BoardWait[] = [];
    for (let i = 0; i < this.areas.length; i++) {
      if (i === this.rank) continue;
      const a = this.areas[i]!;
      const missing = c.run ? c.run.waitsOn(i) : !c.written ? ((Atomics.load(a, DONE) - c.seq + SLOTS) | 0) < 0 : c.stalled ? a[base + TAG] !== c.tag : Atomics.load(a, base + SEQ) !== c.seq;
      if (missing) out.push({ tag: c.tag, src: this.group[i]!, locate: () => c.locate() });
    }
    return out;
  }

  /** Writes the slots it can, in call order, then completes the calls whose slots are all there. */
  private step(): void {
    const q = this.queue;
    // A completed call frees its slot for a call SLOTS later, which may then be written.
    for (let again = true; again; ) {
      again = false;
      for (let i = 0; i < q.length; i++) {
        const c = q[i]!;
        if (c.written) continue;
        if (!this.stageAllows(c)) break;
        if (!this.canWrite(c.seq) && !this.askRoom(c.seq)) break;
        this.write(c);
      }
      while (q.length > 0 && q[0]!.written) {
        const c = q[0]!;
        if (c.run) {
          if (c.run.advance()) this.hooks.moved();
          if (!c.run.complete()) {
            const gone = this.anyGone ? this.goneFromRun(c, c.run) : undefined;
            if (gone) return this.fail((this.failure = gone));
            break;
          }
          q.shift();
          this.busy = false;
          this.finish(c, c.run.out);
          again = true;
          continue;
        }
        if (!this.present(c)) {
          const gone = this.anyGone ? this.goneMember(c) : undefined;
          if (gone) return this.fail((this.failure = gone));
          break;
        }
        q.shift();
        let result: unknown;
        try {
          result = this.reduce(c);
        } catch (e) {
          c.reject(e as Error);
          return this.fail(e as Error);
        }
        if (result === NOT_YET) {
          c.stalled = true;
          q.unshift(c);
          break;
        }
        if (result === RUN) {
          const v = c.value as TypedArray;
          const notify = () => this.shared.notify();
          c.run = c.gather
            ? new Collected(this.areas, this.stages!.areas, this.rank, slotOf(c.seq), v, notify)
            : new Staged(this.areas, this.stages!.areas, this.rank, slotOf(c.seq), v, c.op!, c.into, c.root === undefined || c.root === this.rank, notify);
          q.unshift(c);
          continue;
        }
        if (c.tookStage && !c.quarter) this.busy = false;
        this.finish(c, result);
        again = true;
      }
    }
    if (q.length > 0) this.watch();
    else this.unwatch();
  }

  /**
   * Whether call `c` may be written now, as far as the stage goes. An earlier call of this
   * communicator that runs through the stage in blocks has it all: a later one waits rather than
   * go by messages (calls complete in order, so it will be free). A call in blocks needs the
   * quarters free as well: every member has completed the last call that used one.
   */
  private stageAllows(c: BoardCall): boolean {
    if (c.kind < STAGED || !this.holds) return true;
    if (this.busy) return false;
    return this.quarterOf(c) || this.quartersRead();
  }

  /**
   * Whether every member, this one too, has completed the last call that used a quarter: what
   * reusing that call's slot needs (canWrite of the call SLOTS later).
   */
  private quartersRead(): boolean {
    return this.lastQuarter === 0 || this.canWrite((this.lastQuarter + SLOTS) | 0);
  }

  /** Another board wants the stage: this one gives it up if none of its calls uses it or may still be read from it. */
  release(): boolean {
    if (this.busy || !this.quartersRead()) return false;
    this.holds = false;
    this.lastQuarter = 0;
    return true;
  }

  /** Whether call `c`'s array goes through a quarter of the stage (one round), not blocks. */
  private quarterOf(c: BoardCall): boolean {
    const bytes = (c.value as TypedArray).byteLength;
    return bytes * this.areas.length <= QUARTER_WORK && bytes <= this.stages!.areas[0]!.length >> 2;
  }

  /** Completes call `c` with `result`: its slot may be reused once the others are done with theirs. */
  private finish(c: BoardCall, result: unknown): void {
    this.completed = c.seq;
    Atomics.store(this.own, DONE, c.seq);
    // A member waiting to reuse a slot waits for this DONE (see askRoom).
    if (Atomics.load(this.areas[0]!, WANTERS) !== 0) this.shared.notify();
    this.hooks.moved();
    c.resolve(result);
  }

  /**
   * Whether every member, this one too, has read what the slot of call `seq` held before (call
   * seq − SLOTS): this rank reads its own value from its slot as well (see reduce).
   */
  private canWrite(seq: number): boolean {
    const need = (seq - SLOTS) | 0;
    if (((this.completed - need) | 0) < 0) return false;
    const seen = this.doneSeen;
    for (let i = 0; i < this.areas.length; i++) {
      if (i === this.rank || ((seen[i]! - need) | 0) >= 0) continue;
      seen[i] = Atomics.load(this.areas[i]!, DONE);
      if (((seen[i]! - need) | 0) < 0) return false;
    }
    return true;
  }

  /**
   * The slot is still being read: asks the readers to ring once they are done, the futex way
   * (WANTERS is raised before DONE is read again; a reader stores DONE before it reads WANTERS).
   */
  private askRoom(seq: number): boolean {
    if (!this.wanting) {
      this.wanting = true;
      Atomics.add(this.areas[0]!, WANTERS, 1);
    }
    if (!this.canWrite(seq)) return false;
    this.stopWanting();
    return true;
  }

  private stopWanting(): void {
    if (!this.wanting) return;
    this.wanting = false;
    Atomics.sub(this.areas[0]!, WANTERS, 1);
  }

  private write(c: BoardCall): void {
    const base = slotOf(c.seq);
    const own = this.own;
    own[base + TAG] = c.tag;
    own[base + SIG] = c.sig;
    own[base + KIND] = c.kind;
    const v = c.value;
    if (c.kind === NUMBER) this.numbers[this.rank]![(base + PAYLOAD) >> 1] = v as number;
    else if (c.kind === BOOLEAN) own[base + PAYLOAD] = v ? 1 : 0;
    else if (c.kind >= STAGED) {
      own[base + BYTES] = (v as TypedArray).byteLength;
      if (!this.holds) this.holds = this.stages!.take(this);
      c.tookStage = this.holds;
      c.quarter = this.quarterOf(c);
      if (c.tookStage && c.quarter) {
        // Like a slot's payload: the quarter is reused SLOTS calls later, once every member has read it.
        (this.view(this.rank, c) as Float64Array).set(v as Float64Array);
        this.lastQuarter = c.seq;
      } else if (c.tookStage) this.busy = true;
      own[base + HAS_STAGE] = c.tookStage ? 1 : 0;
      own[base + WRITTEN] = own[base + REDUCED] = own[base + GATHERED] = 0;
    } else if (c.kind >= ARRAY) {
      const a = v as TypedArray;
      own[base + BYTES] = a.byteLength;
      // Through a view of the slot in the array's own class: a copy without reading `a.buffer`.
      (this.view(this.rank, c) as Float64Array).set(a as Float64Array);
    }
    // Last, and with a store that orders after the others: a reader that sees SEQ sees the slot.
    Atomics.store(own, base + SEQ, c.seq);
    this.stopWanting();
    c.written = true;
    this.shared.notify();
  }

  /** Whether call `c` needs nothing more: every member's slot holds it (or it goes by messages anyway). */
  private present(c: BoardCall): boolean {
    if (c.kind === OTHER) return true;
    const base = slotOf(c.seq) + SEQ;
    for (let i = 0; i < this.areas.length; i++) if (i !== this.rank && Atomics.load(this.areas[i]!, base) !== c.seq) return false;
    return true;
  }

  /** A member whose slot call `c` lacks and that has gone: the error to reject with. */
  private goneMember(c: BoardCall): Error | undefined {
    const base = slotOf(c.seq);
    for (let i = 0; i < this.areas.length; i++) {
      if (i === this.rank || Atomics.load(this.areas[i]!, base + SEQ) === c.seq) continue;
      const how = this.hooks.gone(this.group[i]!);
      if (how) return new RankFailedError(`${this.hooks.describe(c.sig)} cannot complete: world rank ${this.group[i]} has ${how} without taking part in it`, this.group[i]!);
    }
    return undefined;
  }

  /** A member that call `c`'s run waits for and that has gone: the error to reject with. */
  private goneFromRun(c: BoardCall, run: Run): Error | undefined {
    for (let i = 0; i < this.areas.length; i++) {
      if (i === this.rank || !run.waitsOn(i)) continue;
      const how = this.hooks.gone(this.group[i]!);
      if (how) return new RankFailedError(`${this.hooks.describe(c.sig)} cannot complete: world rank ${this.group[i]} has ${how} in the middle of it`, this.group[i]!);
    }
    return undefined;
  }

  /**
   * The call's result, read from the slots before DONE lets them be reused: every member's value
   * combined in rank order (arrays straight from the slots, into one result), or BY_MESSAGES.
   */
  private reduce(c: BoardCall): unknown {
    // A rank whose own value goes by messages does not wait for the others' slots (see present).
    if (c.kind === OTHER) return BY_MESSAGES;
    const base = slotOf(c.seq);
    const n = this.areas.length;
    for (let i = 0; i < n; i++) {
      if (i === this.rank) continue;
      const a = this.areas[i]!;
      const tag = a[base + TAG]!, sig = a[base + SIG]!;
      if (tag === c.tag) {
        if (sig !== c.sig) throw this.hooks.mismatch(c.tag, c.sig, sig, i);
        continue;
      }
      // The member posted this board call at another collective call: the ranks called
      // different collectives. The one ahead (at the later call) knows what both called at the
      // earlier one: it reports, and its notice ends the wait of the one behind (which reports
      // itself if the other's call went by messages: that one reads no slot).
      if (((tag - c.tag) | 0) < 0) throw this.hooks.mismatch(tag, undefined, sig, i);
      if (a[base + KIND] === OTHER) throw this.hooks.mismatch(c.tag, c.sig, 0, i);
      return NOT_YET;
    }
    for (let i = 0; i < n; i++) {
      const a = this.areas[i]!;
      if (a[base + KIND] !== c.kind || (c.kind >= ARRAY && a[base + BYTES] !== this.own[base + BYTES])) return BY_MESSAGES;
      // A member whose stage another call of it has (on another communicator) cannot take part.
      if (c.kind >= STAGED && a[base + HAS_STAGE] !== 1) return BY_MESSAGES;
    }
    if (c.gather) return c.kind >= STAGED && !c.quarter ? RUN : this.collected(c);
    if (c.kind === NOTHING) return null;
    if (c.kind >= STAGED && !c.quarter) return RUN;
    // A reduce: the others' values are read by the root alone.
    if (c.root !== undefined && c.root !== this.rank) return undefined;
    const op = c.op!;
    if (c.kind === NUMBER) {
      const at = (base + PAYLOAD) >> 1;
      let acc = this.numbers[0]![at]!;
      for (let i = 1; i < n; i++) acc = combine("allreduce", op, acc, this.numbers[i]![at]!) as number;
      return acc;
    }
    if (c.kind === BOOLEAN) {
      let acc = this.areas[0]![base + PAYLOAD] !== 0;
      for (let i = 1; i < n; i++) acc = combine("allreduce", op, acc, this.areas[i]![base + PAYLOAD] !== 0) as boolean;
      return acc;
    }
    // This rank's own value is read from its slot too: `into` may be that value (in place).
    const mine = c.value as TypedArray;
    const out = c.into ?? new (mine.constructor as TypedArrayConstructor)(mine.length);
    combineArrays(op, this.view(0, c), this.view(1, c), out);
    for (let i = 2; i < n; i++) combineArrays(op, out, this.view(i, c), out);
    return out;
  }

  /** An allgather's result from the slots (or quarters): this rank's own value, copies of the others'. */
  private collected(c: BoardCall): unknown[] {
    const base = slotOf(c.seq);
    return this.areas.map((a, i) => {
      if (i === this.rank) return c.value;
      if (c.kind === NOTHING) return null;
      if (c.kind === NUMBER) return this.numbers[i]![(base + PAYLOAD) >> 1]!;
      if (c.kind === BOOLEAN) return a[base + PAYLOAD] !== 0;
      return this.view(i, c).slice();
    });
  }

  /**
   * Where member `i`'s value of call `c` lies, as an array of the class and length of this rank's
   * value: its slot's payload, or (a STAGED call in one round) the quarter of its stage that
   * belongs to that slot.
   */
  private view(i: number, c: BoardCall): TypedArray {
    const mine = c.value as TypedArray;
    const slot = c.seq & (SLOTS - 1);
    const staged = c.kind >= STAGED;
    const k = (staged ? this.areas.length * SLOTS : 0) + i * SLOTS + slot;
    const v = this.views[k];
    if (v !== undefined && v.constructor === mine.constructor && v.length === mine.length) return v;
    const at = staged ? this.stages!.areas[i]! : this.areas[i]!;
    const offset = staged ? slot * (at.length >> 2) : (slotOf(c.seq) + PAYLOAD) * 4;
    const made = new (mine.constructor as TypedArrayConstructor)(at.buffer, at.byteOffset + offset, mine.length);
    this.views[k] = made;
    return made;
  }

  private watch(): void {
    if (this.watched) return;
    this.watched = true;
    this.shared.watch(this);
  }

  private unwatch(): void {
    if (!this.watched) return;
    this.watched = false;
    this.shared.unwatch(this);
  }
}

/** First word of the slot of call `seq`. */
function slotOf(seq: number): number {
  return FIRST_SLOT + (seq & (SLOTS - 1)) * SLOT_WORDS;
}

/** What a call in blocks through the stages does once every member has posted (Staged, Collected). */
interface Run {
  /** The call's result, once complete. */
  readonly out: unknown;
  /** Whether every member is done with every block: this rank's stage is free again. */
  complete(): boolean;
  /** Whether advance() would do something. */
  ready(): boolean;
  /** Does every step it can; true if it did any. */
  advance(): boolean;
  /** Whether member `i` holds up this rank's next step. */
  waitsOn(i: number): boolean;
}

/**
 * A typed array through the members' stages in blocks of half a stage, so that a rank copies
 * block b + 1 in while the others still read block b: what Staged and Collected share.
 */
abstract class InBlocks {
  /** Blocks this rank has copied into its stage, and gathered (so their halves may be reused). */
  protected w = 0;
  protected g = 0;
  protected readonly blocks: number;
  /** Elements of a block, and bytes of a stage's half. */
  protected readonly per: number;
  protected readonly half: number;
  protected readonly make: TypedArrayConstructor;
  protected readonly size: number;
  /** This rank's array, as bytes. */
  protected readonly bytes: Uint8Array;
  /** The addon's non-temporal copy (the addon is there wherever stages are: they come with it). */
  protected readonly stream = streamCopy();

  constructor(
    protected readonly areas: readonly Int32Array[],
    protected readonly stages: readonly Uint8Array[],
    protected readonly rank: number,
    protected readonly base: number,
    protected readonly value: TypedArray,
    protected readonly notify: () => void,
  ) {
    this.make = value.constructor as TypedArrayConstructor;
    this.size = value.BYTES_PER_ELEMENT;
    this.half = stages[0]!.length >> 1;
    this.per = Math.floor(this.half / this.size);
    this.blocks = Math.ceil(value.length / this.per);
    this.bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }

  /**
   * A new array of the value's class and length, not zeroed (a memset of 8 MiB ≈ 0.3 ms): every
   * element of a result is written before the call completes, and a call that fails never hands
   * it out.
   */
  protected fresh(): TypedArray {
    return new this.make(Buffer.allocUnsafeSlow(this.value.byteLength).buffer, 0, this.value.length);
  }

  /** Whether every member has gathered every block: this rank's stage is free again. */
  complete(): boolean {
    return this.g === this.blocks && this.least(GATHERED, this.blocks);
  }

  /** The next block can go into its half of the stage: everyone has gathered what it held. */
  protected canWrite(): boolean {
    return this.w < this.blocks && this.g >= this.w - 1 && this.least(GATHERED, this.w - 1);
  }

  /** Whether member `a` still reads the half the next block goes into, or (all written) any block. */
  protected holdsHalf(a: Int32Array): boolean {
    return Atomics.load(a, this.base + GATHERED) < (this.w < this.blocks ? this.w - 1 : this.blocks);
  }

  /** Whether every other member's `word` is at least `n`. */
  protected least(word: number, n: number): boolean {
    if (n <= 0) return true;
    for (let i = 0; i < this.areas.length; i++) if (i !== this.rank && Atomics.load(this.areas[i]!, this.base + word) < n) return false;
    return true;
  }

  /** Block b's first element and element count. */
  protected block(b: number): [number, number] {
    const from = b * this.per;
    return [from, Math.min(this.value.length, from + this.per) - from];
  }

  /** Block b of this rank's array into its half of its stage, but for elements [lo, hi) of the block. */
  protected copyIn(b: number, lo = 0, hi = 0): void {
    const [from, m] = this.block(b);
    const stage = this.stages[this.rank]!, at = (b & 1) * this.half, size = this.size;
    stage.set(this.bytes.subarray(from * size, (from + lo) * size), at);
    stage.set(this.bytes.subarray((from + hi) * size, (from + m) * size), at + hi * size);
  }

  /** Member i's stage, `count` elements from element `at` of block b's half. */
  protected view(i: number, b: number, at: number, count: number): TypedArray {
    const s = this.stages[i]!;
    return new this.make(s.buffer, s.byteOffset + (b & 1) * this.half + at * this.size, count);
  }

  /**
   * `count` elements of member k's stage from element `at` of block b's half, into `out` from
   * element `to`: past the cache, for results larger than it (an ordinary copy first reads each
   * line it writes; ~15 % off an 8 MiB allreduce).
   */
  protected copyOut(out: TypedArray, to: number, k: number, b: number, at: number, count: number): void {
    if (this.stream) this.stream(out.subarray(to, to + count), this.view(k, b, at, count));
    else (out as Float64Array).set(this.view(k, b, at, count) as Float64Array, to);
  }
}

/**
 * An allgather of typed arrays of one class and length through the stages, in blocks: each rank
 * copies block b of its array into its stage (WRITTEN), then block b of every other member's
 * stage into that member's result (GATHERED). One copy in and p − 1 out per rank, where Bruck's
 * messages copy each array into a ring and out of it ⌈log₂ p⌉ times over.
 */
class Collected extends InBlocks implements Run {
  /** Every member's array in rank order: this rank's own value, and new ones for the others. */
  readonly out: TypedArray[];

  constructor(areas: readonly Int32Array[], stages: readonly Uint8Array[], rank: number, base: number, value: TypedArray, notify: () => void) {
    super(areas, stages, rank, base, value, notify);
    this.out = areas.map((_, i) => (i === rank ? value : this.fresh()));
  }

  ready(): boolean {
    return this.canWrite() || this.canGather() || this.complete();
  }

  advance(): boolean {
    let moved = false;
    for (let again = true; again; ) {
      again = false;
      if (this.canWrite()) {
        this.copyIn(this.w);
        Atomics.store(this.areas[this.rank]!, this.base + WRITTEN, ++this.w);
        again = moved = true;
      }
      if (this.canGather()) {
        const [from, m] = this.block(this.g);
        for (let k = 0; k < this.areas.length; k++) if (k !== this.rank) this.copyOut(this.out[k]!, from, k, this.g, 0, m);
        Atomics.store(this.areas[this.rank]!, this.base + GATHERED, ++this.g);
        again = moved = true;
      }
    }
    if (moved) this.notify();
    return moved;
  }

  waitsOn(i: number): boolean {
    const a = this.areas[i]!;
    return this.g < this.w ? Atomics.load(a, this.base + WRITTEN) < this.g + 1 : this.holdsHalf(a);
  }

  private canGather(): boolean {
    return this.g < this.w && this.least(WRITTEN, this.g + 1);
  }
}

/**
 * One large reduction through the members' stages, in blocks of half a stage, so that a rank
 * copies block b + 1 in while the others still read block b. For each block a rank copies its
 * part into its stage (WRITTEN), reduces its share of the block (a 1/p slice) from every stage in
 * rank order into its result and puts that back into its stage (REDUCED), then copies the
 * others' reduced shares into its result (GATHERED). A half is written again only once every
 * member has gathered the block it held, and the call completes only once every member has
 * gathered all blocks: until then someone may still read this rank's stage.
 */
class Staged extends InBlocks implements Run {
  /** Blocks this rank has reduced its share of (between w and g). */
  private r = 0;
  /** The result; null on a rank that only reduces its shares for a root (with the addon's fold). */
  readonly out: TypedArray | null;
  private readonly fold = foldKernel();
  private readonly code: number;
  /** Whether the addon's fold takes this class and op (where it gives JavaScript's bits), asked once per call. */
  private readonly native: boolean;

  constructor(
    areas: readonly Int32Array[],
    stages: readonly Uint8Array[],
    rank: number,
    base: number,
    value: TypedArray,
    private readonly op: OpName,
    into: TypedArray | undefined,
    /** Whether this rank gets the result (false: a reduce's other ranks, which copy nothing out). */
    private readonly gathers: boolean,
    notify: () => void,
  ) {
    super(areas, stages, rank, base, value, notify);
    this.code = OP_CODES.indexOf(op);
    this.native = this.fold !== undefined && this.fold(this.code, new this.make(0), null, [new this.make(0)]);
    // Without the fold, a rank that gathers nothing still needs room for its share.
    this.out = into ?? (gathers || !this.native ? this.fresh() : null);
  }

  /** Whether advance() would do something. */
  ready(): boolean {
    return this.canWrite() || this.canReduce() || this.canGather() || this.complete();
  }

  /** Does every step it can; true if it did any. */
  advance(): boolean {
    let moved = false;
    for (let again = true; again; ) {
      again = false;
      if (this.canWrite()) {
        this.copyBlockIn(this.w++);
        Atomics.store(this.areas[this.rank]!, this.base + WRITTEN, this.w);
        again = true;
      }
      if (this.canReduce()) {
        this.reduceShare(this.r++);
        Atomics.store(this.areas[this.rank]!, this.base + REDUCED, this.r);
        again = true;
      }
      if (this.canGather()) {
        this.gather(this.g++);
        Atomics.store(this.areas[this.rank]!, this.base + GATHERED, this.g);
        again = true;
      }
      if (again) moved = true;
    }
    if (moved) this.notify();
    return moved;
  }

  /** Whether member `i` holds up this rank's next step. */
  waitsOn(i: number): boolean {
    const a = this.areas[i]!;
    if (this.g < this.r) return this.gathers && Atomics.load(a, this.base + REDUCED) < this.g + 1;
    if (this.r < this.w) return Atomics.load(a, this.base + WRITTEN) < this.r + 1;
    return this.holdsHalf(a);
  }

  private canReduce(): boolean {
    return this.r < this.w && this.least(WRITTEN, this.r + 1);
  }

  /** A rank that gathers nothing has read all it reads of block g once it has reduced its share. */
  private canGather(): boolean {
    return this.g < this.r && (!this.gathers || this.least(REDUCED, this.g + 1));
  }

  /** Member k's share of a block of m elements: first element (within the block) and end. */
  private share(k: number, m: number): [number, number] {
    const p = this.areas.length;
    return [Math.floor((k * m) / p), Math.floor(((k + 1) * m) / p)];
  }

  /** Block b into this rank's stage; with the addon's fold, but for this rank's share, which reduceShare reads from the array itself. */
  private copyBlockIn(b: number): void {
    if (!this.native) return this.copyIn(b);
    const [lo, hi] = this.share(this.rank, this.block(b)[1]);
    this.copyIn(b, lo, hi);
  }

  /** This rank's share of block b, from every stage in rank order: into the result, then back into its stage. */
  private reduceShare(b: number): void {
    const [from, m] = this.block(b);
    const [lo, hi] = this.share(this.rank, m);
    if (hi === lo) return;
    const p = this.areas.length;
    if (this.native) {
      // One pass over the shares, the result past the cache (nobody reads it during the call) and
      // into this rank's stage for the others; its own share straight from its array, which
      // copyIn therefore skipped. The pairwise loop below makes p - 1 passes, and reads each
      // line of the result from memory before writing it.
      const ins: TypedArray[] = [];
      for (let i = 0; i < p; i++) ins.push(i === this.rank ? this.value.subarray(from + lo, from + hi) : this.view(i, b, lo, hi - lo));
      this.fold!(this.code, this.out && this.out.subarray(from + lo, from + hi), this.view(this.rank, b, lo, hi - lo), ins);
      return;
    }
    const mine = this.out!.subarray(from + lo, from + hi);
    if (p === 1) (mine as Float64Array).set(this.view(0, b, lo, hi - lo) as Float64Array);
    else {
      combineArrays(this.op, this.view(0, b, lo, hi - lo), this.view(1, b, lo, hi - lo), mine);
      for (let i = 2; i < p; i++) combineArrays(this.op, mine, this.view(i, b, lo, hi - lo), mine);
    }
    (this.view(this.rank, b, lo, hi - lo) as Float64Array).set(mine as Float64Array);
  }

  /** The other members' reduced shares of block b, into the result. */
  private gather(b: number): void {
    const out = this.out;
    if (!this.gathers || !out) return;
    const [from, m] = this.block(b);
    for (let k = 0; k < this.areas.length; k++) {
      if (k === this.rank) continue;
      const [lo, hi] = this.share(k, m);
      if (hi > lo) this.copyOut(out, from + lo, k, b, lo, hi - lo);
    }
  }
}
