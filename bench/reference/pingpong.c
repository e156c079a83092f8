/* Reference: an osu_latency-style ping-pong in C + MPI, for bench/pingpong.ts.
 * For each size: warm-up, then timed round trips of MPI_Send/MPI_Recv between ranks 0 and 1 into
 * posted buffers; prints one JSON line with the median one-way time of 10 batches, in µs.
 * Build: mpicc -O3 -o pingpong pingpong.c      Run: mpirun -n 2 ./pingpong */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const int sizes[] = {8, 64, 512, 4096, 32768, 262144, 1048576, 4194304};
  const int nsizes = sizeof sizes / sizeof sizes[0];
  char *sbuf = malloc(4194304), *rbuf = malloc(4194304);
  memset(sbuf, 1, 4194304);
  memset(rbuf, 0, 4194304);
  int peer = 1 - rank;
  if (rank == 0) printf("{\"bench\":\"pingpong-c\",\"rows\":[");
  for (int s = 0; s < nsizes; s++) {
    int bytes = sizes[s];
    int iters = bytes <= 4096 ? 20000 : bytes <= 262144 ? 2000 : 200;
    int batch = iters / 10;
    double samples[10];
    for (int b = -1; b < 10; b++) { /* batch -1 is the warm-up */
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      for (int i = 0; i < batch; i++) {
        if (rank == 0) {
          MPI_Send(sbuf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
          MPI_Recv(rbuf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
          MPI_Recv(rbuf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(sbuf, bytes, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
        }
      }
      if (b >= 0) samples[b] = (MPI_Wtime() - t0) * 1e6 / batch / 2;
    }
    qsort(samples, 10, sizeof samples[0], cmp);
    if (rank == 0) printf("%s{\"bytes\":%d,\"micros\":%.4f}", s ? "," : "", bytes, samples[5]);
  }
  if (rank == 0) printf("]}\n");
  free(sbuf);
  free(rbuf);
  MPI_Finalize();
  return 0;
}
