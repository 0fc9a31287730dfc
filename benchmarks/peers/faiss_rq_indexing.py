#!/usr/bin/env python3
"""FAISS peer of examples/indexing_schemes.cpp's semantic-rq row: RQ-KMeans semantic IDs of the same
item vectors, their collision rate and the time to train and encode.

    build/examples/indexing_schemes --schemes semantic-rq --dump_vectors /tmp/x.f32   # writes the vectors
    benchmarks/peers/.venv/bin/python benchmarks/peers/faiss_rq_indexing.py /tmp/x.f32 --dim 64 --levels 3 --nbits 8

Input: N x dim float32, row-major, little-endian (row i - 1 = item i). faiss.ResidualQuantizer(dim,
levels, nbits) with plain k-means per level (Train_default), cp.niter = 20, greedy training
(max_beam_size = 1), then encoding with max_beam_size = 5: the settings of
indexing::semantic_rq_indexing's defaults. Prints one JSON line: seconds (train + encode, wall, the
median of --repeats runs),
collision rate (share of items whose code tuple another item also has), distinct tuples.
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vectors")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--nbits", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    faiss.omp_set_num_threads(a.threads)
    x = np.fromfile(a.vectors, dtype="<f4").reshape(-1, a.dim)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        rq = faiss.ResidualQuantizer(a.dim, a.levels, a.nbits)
        rq.train_type = faiss.ResidualQuantizer.Train_default
        rq.max_beam_size = 1
        rq.cp.niter = 20
        rq.cp.seed = a.seed
        rq.train(x)
        rq.max_beam_size = 5
        packed = rq.compute_codes(x)
        times.append(time.perf_counter() - t0)
    seconds = sorted(times)[len(times) // 2]
    codes = np.zeros((x.shape[0], a.levels), dtype=np.int64)
    for i in range(x.shape[0]):  # unpack nbits per level (LSB first, FAISS's BitstringReader)
        bits = int.from_bytes(packed[i].tobytes(), "little")
        for m in range(a.levels):
            codes[i, m] = (bits >> (m * a.nbits)) & ((1 << a.nbits) - 1)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    colliding = int((counts[inverse.reshape(-1)] > 1).sum())
    print(json.dumps({"peer": "faiss.ResidualQuantizer", "faiss": faiss.__version__, "items": int(x.shape[0]),
                      "levels": a.levels, "codebook_size": 1 << a.nbits, "threads": a.threads,
                      "seconds": round(seconds, 3), "collision_rate": round(colliding / x.shape[0], 4),
                      "distinct_tuples": int(len(counts))}))


if __name__ == "__main__":
    main()
