"""Reference: the same FTCS heat solver as examples/heat.ts in mpi4py + NumPy, for bench/heat.ts.
Row strips, one ghost row above and below, Sendrecv halos; prints one JSON line.
Run: mpirun -n 2 python3 heat_mpi4py.py 2048 200"""
import json
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
h = 1.0 / (n + 1)
r = 0.2
q, rem = divmod(n, size)
rows = q + (rank < rem)
y0 = rank * q + min(rank, rem)
u = np.zeros((rows + 2, n + 2))
v = np.zeros_like(u)
y = (y0 + np.arange(1, rows + 1)) * h
x = np.arange(1, n + 1) * h
u[1:-1, 1:-1] = np.outer(np.sin(np.pi * y), np.sin(np.pi * x))
up = rank - 1 if rank > 0 else MPI.PROC_NULL
down = rank + 1 if rank < size - 1 else MPI.PROC_NULL
comm.Barrier()
t0 = MPI.Wtime()
for _ in range(steps):
    comm.Sendrecv(u[1], dest=up, sendtag=0, recvbuf=u[-1], source=down, recvtag=0)
    comm.Sendrecv(u[-2], dest=down, sendtag=1, recvbuf=u[0], source=up, recvtag=1)
    c = u[1:-1, 1:-1]
    v[1:-1, 1:-1] = c + r * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * c)
    u, v = v, u
secs = comm.reduce(MPI.Wtime() - t0, op=MPI.MAX, root=0)
if rank == 0:
    print(json.dumps({"impl": "mpi4py-numpy", "n": n, "steps": steps, "ranks": size, "seconds": secs, "cellUpdatesPerSecond": n * n * steps / secs}))
