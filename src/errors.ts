/** Base class of every error tsmpi raises, so `catch (e) { if (e instanceof MpiError) ... }` works. */
export class MpiError extends Error {
  override name = "MpiError";
}

/** A message was larger than the buffer given to `recvInto`/`sendrecvInto`. */
export class TruncateError extends MpiError {
  override name = "TruncateError";
}

/** A peer rank died or finished while a call still needed it. */
export class RankFailedError extends MpiError {
  override name = "RankFailedError";
  constructor(message: string, readonly rank: number) {
    super(message);
  }
}

/** An operation did not complete in the time it was given. */
export class TimeoutError extends MpiError {
  override name = "TimeoutError";
}

/** A task of a task pool threw on a worker; `stack` carries the worker's stack. */
export class TaskError extends MpiError {
  override name = "TaskError";
  constructor(
    message: string,
    readonly fn: string,
    readonly index: number,
    readonly worker: number,
    readonly workerStack?: string,
  ) {
    super(message);
  }
}
