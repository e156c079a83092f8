/* Reference: the same FTCS heat solver as examples/heat.ts in C + MPI, for bench/heat.ts.
 * Row strips, one ghost row above and below, MPI_Sendrecv halos; prints one JSON line.
 * Build: mpicc -O3 -march=native -o heat heat.c -lm      Run: mpirun -n 2 ./heat 2048 200 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int n = argc > 1 ? atoi(argv[1]) : 2048, steps = argc > 2 ? atoi(argv[2]) : 200;
  double h = 1.0 / (n + 1), dt = 0.2 * h * h, r = dt / (h * h);
  int q = n / size, rem = n % size;
  int rows = q + (rank < rem), y0 = rank * q + (rank < rem ? rank : rem);
  int W = n + 2;
  double *u = calloc((size_t)(rows + 2) * W, sizeof(double)), *v = calloc((size_t)(rows + 2) * W, sizeof(double));
  for (int i = 1; i <= rows; i++)
    for (int j = 1; j <= n; j++) u[i * W + j] = sin(M_PI * j * h) * sin(M_PI * (y0 + i) * h);
  int up = rank > 0 ? rank - 1 : MPI_PROC_NULL, down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  for (int s = 0; s < steps; s++) {
    MPI_Sendrecv(u + W, W, MPI_DOUBLE, up, 0, u + (rows + 1) * W, W, MPI_DOUBLE, down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(u + rows * W, W, MPI_DOUBLE, down, 1, u, W, MPI_DOUBLE, up, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (int i = 1; i <= rows; i++) {
      const double *c = u + i * W;
      double *o = v + i * W;
      for (int j = 1; j <= n; j++) o[j] = c[j] + r * (c[j - W] + c[j + W] + c[j - 1] + c[j + 1] - 4 * c[j]);
    }
    double *t = u; u = v; v = t;
  }
  double local = MPI_Wtime() - t0, secs;
  MPI_Reduce(&local, &secs, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  if (rank == 0) printf("{\"impl\":\"c-openmpi\",\"n\":%d,\"steps\":%d,\"ranks\":%d,\"seconds\":%g,\"cellUpdatesPerSecond\":%g}\n", n, steps, size, secs, (double)n * n * steps / secs);
  free(u); free(v);
  MPI_Finalize();
  return 0;
}
