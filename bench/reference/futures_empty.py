"""Reference for bench/pool.ts: empty tasks through mpi4py.futures' MPIPoolExecutor.map.
Run: mpirun -n 2|4 python3 -m mpi4py.futures futures_empty.py TASKS CHUNKSIZE"""
import json
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def empty(x):
    return x


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    chunksize = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    with MPIPoolExecutor() as pool:
        list(pool.map(empty, range(500)))  # warm-up
        t0 = time.perf_counter()
        list(pool.map(empty, range(tasks), chunksize=chunksize))
        seconds = time.perf_counter() - t0
        workers = MPI.COMM_WORLD.Get_size() - 1
    print(json.dumps({"impl": "mpi4py.futures", "workers": workers, "tasks": tasks, "chunksize": chunksize, "seconds": seconds, "tasksPerSecond": tasks / seconds}))
