/* Reference: what bench/collectives.ts measures, in C + MPI, so that its ratios can be read
 * beside Open MPI's on the same machine: an 8-byte ping-pong between ranks 0 and 1 (the others
 * wait), an 8-byte MPI_Allreduce, one 8 MiB transfer into a posted buffer, an 8 MiB
 * MPI_Allreduce of doubles (sum) into a separate buffer, an 8 MiB MPI_Reduce to rank 1, an
 * 8 MiB MPI_Bcast from rank 0 and an MPI_Allgather of 8 MiB in all (8 MiB ÷ p from each rank). Each figure is the median over 9
 * batches (the slowest rank's time per call), after a warm-up; one JSON line on rank 0, in µs.
 * Build: mpicc -O3 -o collectives collectives.c      Run: mpirun -n 4 ./collectives */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define BIG (8 * 1024 * 1024 / 8)

static int rank, size;
static double *big_in, *big_out, eight_in[1], eight_out[1];

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void pingpong(double *buf, int count) {
  if (rank == 0) {
    MPI_Send(buf, count, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD);
    MPI_Recv(buf, count, MPI_DOUBLE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (rank == 1) {
    MPI_Recv(buf, count, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Send(buf, count, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD);
  }
}
static void pingpong8(void) { pingpong(eight_in, 1); }
static void pingpong8MiB(void) { pingpong(big_out, BIG); }
static void allreduce8(void) { MPI_Allreduce(eight_in, eight_out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }
static void allreduce8MiB(void) { MPI_Allreduce(big_in, big_out, BIG, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); }
static void reduce8MiB(void) { MPI_Reduce(big_in, big_out, BIG, MPI_DOUBLE, MPI_SUM, 1 % size, MPI_COMM_WORLD); }
static void bcast8MiB(void) { MPI_Bcast(big_out, BIG, MPI_DOUBLE, 0, MPI_COMM_WORLD); }
static void allgather8MiB(void) { MPI_Allgather(big_in, BIG / size, MPI_DOUBLE, big_out, BIG / size, MPI_DOUBLE, MPI_COMM_WORLD); }

/* Median over 9 batches of `iters` calls of the µs per call, the slowest rank's. */
static double timed(int iters, int warm, void (*op)(void)) {
  double samples[9];
  for (int i = 0; i < warm; i++) op();
  for (int b = 0; b < 9; b++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) op();
    double us = (MPI_Wtime() - t0) * 1e6 / iters, slowest;
    MPI_Allreduce(&us, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    samples[b] = slowest;
  }
  qsort(samples, 9, sizeof samples[0], cmp);
  return samples[4];
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  big_in = malloc(BIG * sizeof(double));
  big_out = malloc(BIG * sizeof(double));
  for (int i = 0; i < BIG; i++) big_in[i] = rank, big_out[i] = 0;
  eight_in[0] = rank;
  double p8 = timed(300, 3000, pingpong8) / 2;
  double a8 = timed(300, 3000, allreduce8);
  double p8m = timed(5, 2, pingpong8MiB) / 2;
  double a8m = timed(3, 2, allreduce8MiB);
  if (big_out[0] != (double)size * (size - 1) / 2) {
    fprintf(stderr, "collectives.c: allreduce gave %g\n", big_out[0]);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  double r8m = timed(3, 2, reduce8MiB);
  double b8m = timed(3, 2, bcast8MiB);
  double g8m = timed(3, 2, allgather8MiB);
  if (rank == 0)
    printf("{\"bench\":\"collectives-c\",\"ranks\":%d,\"pingpong8\":%.3f,\"allreduce8\":%.3f,\"transferInto8MiB\":%.3f,\"allreduce8MiB\":%.3f,\"reduce8MiB\":%.3f,\"bcast8MiB\":%.3f,\"allgather8MiB\":%.3f}\n",
           size, p8, a8, p8m, a8m, r8m, b8m, g8m);
  free(big_in);
  free(big_out);
  MPI_Finalize();
  return 0;
}
