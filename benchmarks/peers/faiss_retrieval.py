#!/usr/bin/python3
"""FAISS peer of benchmarks/bench_retrieval.cpp: exact inner-product top-10 (IndexFlatIP).

    /usr/bin/python3 benchmarks/peers/faiss_retrieval.py --threads T [--repeats 5] [--n 1000000]

Debian's python3 with python3-faiss (1.7.3) and numpy. Same sizes as the C++ benchmark: a table
of n x 64 float32 uniform in [-1, 1), k = 10, one query (batch 1) and a batch of 256 queries
(FAISS searches a batch >= 20 queries with a blocked sgemm + per-query heaps, a single query
with a SIMD scan). faiss.omp_set_num_threads(T). Prints one JSON object per line:

  {"bench": "flatip", "batch": B, "threads": T, "seconds": median per search call,
   "queries_per_second": B / seconds, "bytes_per_second": n * 64 * 4 / (seconds / B) ...}

Times are medians of --repeats calls (wall clock) after one warm-up call; batch-1 calls cycle
through 64 different queries. For batch 256 FAISS uses BLAS: run it on OpenBLAS as
faiss_tokenizers.py explains (LD_LIBRARY_PATH=/tmp/oblas/root/usr/lib/x86_64-linux-gnu/
openblas-pthread OPENBLAS_NUM_THREADS=T); the "data" line lists the BLAS libraries loaded.
The random values differ from the C++ ones (numpy's generator), which does not change the
work of an exact scan.
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(1)
    xb = rng.uniform(-1.0, 1.0, size=(args.n, args.d)).astype(np.float32)
    xq = rng.uniform(-1.0, 1.0, size=(256, args.d)).astype(np.float32)
    index = faiss.IndexFlatIP(args.d)
    index.add(xb)
    with open("/proc/self/maps") as maps:
        blas = sorted({line.split()[-1] for line in maps if "blas" in line.lower()})
    print(json.dumps({"bench": "data", "n": args.n, "d": args.d, "faiss": faiss.__version__, "blas": blas}),
          flush=True)
    for batch in (1, 256):
        calls = []
        index.search(xq[:batch], args.k)  # warm-up
        reps = args.repeats * (20 if batch == 1 else 1)
        for r in range(reps):
            q = xq[(r % 64):(r % 64) + 1] if batch == 1 else xq
            t0 = time.perf_counter()
            index.search(q, args.k)
            calls.append(time.perf_counter() - t0)
        sec = float(np.median(calls))
        print(json.dumps({"bench": "flatip", "batch": batch, "threads": args.threads, "seconds": sec,
                          "queries_per_second": batch / sec,
                          "bytes_per_second": args.n * args.d * 4 / (sec / batch)}), flush=True)


if __name__ == "__main__":
    main()
