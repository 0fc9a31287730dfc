#!/usr/bin/python3
"""FAISS peer of benchmarks/bench_tokenizers.cpp: RQ encode and k-means on the same data.

    /usr/bin/python3 benchmarks/peers/faiss_tokenizers.py [--threads 1 2] [--repeats 5]

Debian's python3 with python3-faiss (1.7.3) and numpy. Prints one JSON object per line:

  {"bench": "rq_encode", "threads": T, "beam": B, "seconds": median, "items_per_second": ..., "mse": ...}
  {"bench": "kmeans", "threads": T, "seconds": median, "items_per_second": n*niter/s, "mse": obj/n}

Data: the same floats as bench_tokenizers.cpp (splitmix64 draws; 1024 centres in [-1, 1)^64 plus
uniform noise of half-width 0.3). RQ: ResidualQuantizer(64, 3, 8) with train_type = Train_default
(plain k-means per level), greedy training (max_beam_size = 1), cp.niter = 10,
max_points_per_centroid = 256 (FAISS's defaults otherwise) -- the settings the C++ benchmark
trains with; encoding (compute_codes) with max_beam_size = 1 and 5. k-means: faiss.Kmeans(64,
256, niter=20, max_points_per_centroid=1 << 20) (no subsampling; FAISS's random-row init).
Times are medians of --repeats runs, wall clock, after one warm-up run.

BLAS: Debian's python3-faiss links libblas.so.3, which on a default Debian 12 is the netlib
reference BLAS (single-threaded, unblocked): FAISS's GEMMs are then several times slower than
they can be. For a fair peer, run it on OpenBLAS without touching the system's alternatives:

    apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb /tmp/oblas
    LD_LIBRARY_PATH=/tmp/oblas/usr/lib/x86_64-linux-gnu/openblas-pthread OPENBLAS_NUM_THREADS=T \
        /usr/bin/python3 benchmarks/peers/faiss_tokenizers.py --threads T

(one process per thread count T, so OpenBLAS uses as many threads as FAISS's OpenMP). The
"data" line lists the BLAS libraries actually loaded.
"""

from __future__ import annotations

import argparse
import json
import time

import faiss
import numpy as np

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform24(k: np.ndarray) -> np.ndarray:
    return (splitmix64(k) >> np.uint64(40)).astype(np.float64) * 2.0**-24


def synthetic(n: int, d: int) -> np.ndarray:
    i = np.arange(n, dtype=np.uint64)
    c = splitmix64((np.uint64(1) << np.uint64(40)) + i) % np.uint64(1024)
    j = np.arange(d, dtype=np.uint64)
    centre = 2.0 * uniform24((np.uint64(2) << np.uint64(40)) + c[:, None] * np.uint64(d) + j[None, :]) - 1.0
    noise = 2.0 * uniform24(i[:, None] * np.uint64(d) + j[None, :]) - 1.0
    return (centre + 0.3 * noise).astype(np.float32)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--skip-kmeans", action="store_true")
    args = ap.parse_args()
    n, d, m, nbits, k = args.n, 64, 3, 8, 256
    x = synthetic(n, d)
    with open("/proc/self/maps") as maps:
        blas = sorted({line.split()[-1] for line in maps if "blas" in line.lower()})
    print(json.dumps({"bench": "data", "n": n, "d": d, "checksum": float(x.astype(np.float64).sum()),
                      "x00": float(x[0, 0]), "faiss": faiss.__version__, "blas": blas}), flush=True)

    faiss.omp_set_num_threads(max(args.threads))
    rq = faiss.ResidualQuantizer(d, m, nbits)
    rq.train_type = faiss.ResidualQuantizer.Train_default
    rq.max_beam_size = 1
    rq.cp.niter = 10
    rq.cp.max_points_per_centroid = 256
    rq.train(x)
    for t in args.threads:
        faiss.omp_set_num_threads(t)
        for beam in (1, 5):
            rq.max_beam_size = beam
            codes = rq.compute_codes(x)
            mse = float(((x.astype(np.float64) - rq.decode(codes)) ** 2).sum(axis=1).mean())
            s = median_time(lambda: rq.compute_codes(x), args.repeats)
            print(json.dumps({"bench": "rq_encode", "threads": t, "beam": beam, "seconds": s,
                              "items_per_second": n / s, "mse": mse}), flush=True)
    if args.skip_kmeans:
        return
    for t in args.threads:
        faiss.omp_set_num_threads(t)
        result = {}

        def run() -> None:
            km = faiss.Kmeans(d, k, niter=20, max_points_per_centroid=1 << 20, seed=1234)
            km.train(x)
            result["obj"] = float(km.obj[-1])

        s = median_time(run, max(1, args.repeats // 2))
        print(json.dumps({"bench": "kmeans", "threads": t, "seconds": s, "items_per_second": n * 20 / s,
                          "mse": result["obj"] / n}), flush=True)


if __name__ == "__main__":
    main()
