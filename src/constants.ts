/** Wildcard source for receives and probes (MPI_ANY_SOURCE). */
export const ANY_SOURCE = -1;
/** Wildcard tag for receives and probes (MPI_ANY_TAG). */
export const ANY_TAG = -1;
/** The null process: sends to it and receives from it complete at once and move nothing. */
export const PROC_NULL = -2;
/** `split` colour that leaves a rank out of every new communicator. */
export const UNDEFINED = -32766;
/** Largest tag a user may use (MPI_TAG_UB); the wire header stores tags as 32-bit integers. */
export const TAG_UB = 0x7fffffff;
