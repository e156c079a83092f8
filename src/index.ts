/** tsmpi: MPI-style message passing for TypeScript. */
export { init, finalize, abort, wtime } from "./runtime.js";
export { Communicator, CartComm, type Status, type Message, type RecvIntoStatus, type SendRecvTags } from "./comm.js";
export { ANY_SOURCE, ANY_TAG, PROC_NULL, UNDEFINED, TAG_UB } from "./constants.js";
export { MpiError, TruncateError, RankFailedError, TimeoutError, TaskError } from "./errors.js";
export type { TypedArray } from "./wire.js";
export { dimsCreate, type CartOptions, type Shift } from "./topology.js";
export type { Op, OpName, OpFunction, Reducible } from "./op.js";
export { BlockGrid, type BlockGridOptions, type LoadedGrid, type Stencil, type ArrayClass } from "./grid.js";
export { taskPool, type Pool, type TaskPoolOptions, type MapOptions, type TaskFunction, type TaskFunctions, type TaskItem, type TaskResult, type Finished } from "./pool.js";
