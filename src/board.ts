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
 * A rank reuses a slot only once every member has read what it held: the control line's DONE
 * says up to which call a member has read, and a writer that has to wait for it counts itself in
 * WANTERS, which the reader that moves DONE answers with a ring. With SLOTS calls in flight
 * before that, it happens only when ranks are that many calls apart.
 */
import { RankFailedError } from "./errors.js";
import { combine, combineArrays, type OpName } from "./op.js";
import { BOARD_BYTES, type BoardWatch, type SharedBoards } from "./transport/index.js";
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

/** A value no board carries, for a rank that knows its call must go by messages (a function op, say). */
export const NOT_ON_BOARD: unknown = Symbol("not on board");
/** What a board call resolves with when it has to go by messages. */
export const BY_MESSAGES: unknown = Symbol("by messages");
/** A call that cannot complete yet (see reduce). */
const NOT_YET: unknown = Symbol("not yet");

function kindOf(v: unknown): number {
  if (v === null) return NOTHING;
  if (typeof v === "number") return NUMBER;
  if (typeof v === "boolean") return BOOLEAN;
  // Subclasses go by messages: a view of a slot is made with the value's constructor.
  const code = plainTypedArrayCode(v);
  return code >= 0 && (v as TypedArray).byteLength <= BOARD_PAYLOAD ? ARRAY + code : OTHER;
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

  constructor(
    readonly seq: number,
    readonly tag: number,
    readonly sig: number,
    readonly kind: number,
    readonly value: unknown,
    readonly op: OpName | null,
    readonly into: TypedArray | undefined,
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
export class Board implements BoardWatch {
  private seq = 0;
  private readonly queue: BoardCall[] = [];
  private watched = false;
  private readonly areas: readonly Int32Array[];
  private readonly numbers: Float64Array[];
  private readonly own: Int32Array;
  /** Each member's DONE as last read: enough to know a slot is free without reading it again, most calls. */
  private readonly doneSeen: Int32Array;
  /** The last call this rank completed (its DONE). */
  private completed = 0;
  /** Whether this rank counts itself in WANTERS. */
  private wanting = false;
  /** Typed-array views of each member's slots, by member · SLOTS + slot: made again only when the class or length changes. */
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
    this.numbers = this.areas.map((a) => new Float64Array(a.buffer, a.byteOffset, a.length / 2));
    this.own = this.areas[rank]!;
    this.doneSeen = new Int32Array(this.areas.length);
    this.anyGone = hooks.anyGone();
  }

  /**
   * Posts `value` for the collective call `tag` (signature `sig`) and resolves with every
   * member's value combined with `op` in rank order (the same bits on every rank; for a typed
   * array a new one, or `into`), or with null for a barrier (value null, no op). Resolves with
   * BY_MESSAGES when some member's value is not one a board carries (NOT_ON_BOARD, an object, a
   * large array, values of different kinds or sizes): the call then goes by messages, on every
   * rank alike.
   */
  exchange(tag: number, sig: number, value: unknown, op: OpName | null, into?: TypedArray): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    this.seq = (this.seq + 1) | 0;
    const c = new BoardCall(this.seq, tag, sig, value === NOT_ON_BOARD ? OTHER : kindOf(value), value, op, into);
    this.queue.push(c);
    this.step();
    return c.promise;
  }

  /** Watch: the next call can write its slot, or the first one has all it waits for. */
  ready(): boolean {
    const q = this.queue;
    if (q.length === 0) return false;
    if (q[0]!.written && !q[0]!.stalled && this.present(q[0]!)) return true;
    for (let i = 0; i < q.length; i++) if (!q[i]!.written) return this.canWrite(q[i]!.seq);
    return false;
  }

  fire(): void {
    this.step();
  }

  /** Rejects every call waiting here (the communicator's collectives failed). */
  fail(e: Error): void {
    this.stopWanting();
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
      const missing = !c.written ? ((Atomics.load(a, DONE) - c.seq + SLOTS) | 0) < 0 : c.stalled ? a[base + TAG] !== c.tag : Atomics.load(a, base + SEQ) !== c.seq;
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
        if (!this.canWrite(c.seq) && !this.askRoom(c.seq)) break;
        this.write(c);
      }
      while (q.length > 0 && q[0]!.written) {
        const c = q[0]!;
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
        this.completed = c.seq;
        Atomics.store(this.own, DONE, c.seq);
        // A member waiting to reuse a slot waits for this DONE (see askRoom).
        if (Atomics.load(this.areas[0]!, WANTERS) !== 0) this.shared.notify();
        this.hooks.moved();
        c.resolve(result);
        again = true;
      }
    }
    if (q.length > 0) this.watch();
    else this.unwatch();
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
    else if (c.kind >= ARRAY) {
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
    }
    if (c.kind === NOTHING) return null;
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

  /** Member `i`'s slot of call `c` as an array of the class and length of this rank's value. */
  private view(i: number, c: BoardCall): TypedArray {
    const mine = c.value as TypedArray;
    const k = i * SLOTS + (c.seq & (SLOTS - 1));
    const v = this.views[k];
    if (v !== undefined && v.constructor === mine.constructor && v.length === mine.length) return v;
    const a = this.areas[i]!;
    const made = new (mine.constructor as TypedArrayConstructor)(a.buffer, a.byteOffset + (slotOf(c.seq) + PAYLOAD) * 4, mine.length);
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
