"""Reference: the ping-pong of bench/pingpong.ts in mpi4py, for bench/pingpong.ts.
For each size, round trips between ranks 0 and 1 with buffers (Send/Recv of NumPy arrays into
posted arrays) and with objects (send/recv of a bytes object, pickled); prints one JSON line with
the median one-way time of 10 batches, in µs.
Run: mpirun -n 2 python3 pingpong_mpi4py.py"""
import json
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
peer = 1 - rank
SIZES = [8, 64, 512, 4096, 32768, 262144, 1048576, 4194304]


def one_way(bytes_, round_trip):
    iters = 20000 if bytes_ <= 4096 else 2000 if bytes_ <= 262144 else 200
    batch = iters // 10
    samples = []
    for b in range(-1, 10):  # batch -1 is the warm-up
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(batch):
            round_trip()
        if b >= 0:
            samples.append((time.perf_counter() - t0) * 1e6 / batch / 2)
    return sorted(samples)[5]


rows = []
for n in SIZES:
    sbuf, rbuf = np.ones(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8)
    obj = bytes(n)

    def buffers():
        if rank == 0:
            comm.Send(sbuf, dest=peer, tag=1)
            comm.Recv(rbuf, source=peer, tag=1)
        else:
            comm.Recv(rbuf, source=peer, tag=1)
            comm.Send(sbuf, dest=peer, tag=1)

    def objects():
        if rank == 0:
            comm.send(obj, dest=peer, tag=2)
            comm.recv(source=peer, tag=2)
        else:
            comm.recv(source=peer, tag=2)
            comm.send(obj, dest=peer, tag=2)

    rows.append({"bytes": n, "buffers": one_way(n, buffers), "objects": one_way(n, objects)})
if rank == 0:
    print(json.dumps({"bench": "pingpong-mpi4py", "rows": rows}))
