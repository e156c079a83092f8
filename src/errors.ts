/** Base class of every error tsmpi raises, so `catch (e) { if (e instanceof MpiError) ... }` works. */
export class MpiError extends Error {
  /** "MpiError", or the subclass's name. */
  override name = "MpiError";
}

/** A message was larger than the buffer given to `recvInto`/`sendrecvInto`. */
export class TruncateError extends MpiError {
  /** "TruncateError". */
  override name = "TruncateError";
}

/** A peer rank died or finished while a call still needed it. */
export class RankFailedError extends MpiError {
  /** "RankFailedError". */
  override name = "RankFailedError";
  constructor(
    message: string,
    /** World rank of the peer that has gone. */
    readonly rank: number,
  ) {
    super(message);
  }
}

/** An operation did not complete in the time it was given. */
export class TimeoutError extends MpiError {
  /** "TimeoutError". */
  override name = "TimeoutError";
}

/** A task of a task pool threw on a worker; `stack` carries the worker's stack. */
export class TaskError extends MpiError {
  /** "TaskError". */
  override name = "TaskError";
  constructor(
    message: string,
    /** Name of the task function. */
    readonly fn: string,
    /** Index of the item whose task failed (of the first item of a chunk that could not be sent). */
    readonly index: number,
    /** Rank that ran the task. */
    readonly worker: number,
    /** The worker's stack trace of the error, when there was one. */
    readonly workerStack?: string,
  ) {
    super(message);
  }
}
