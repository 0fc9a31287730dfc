#!/usr/bin/env python3
"""FAISS (PyPI faiss-cpu) peers of the approximate index (issue 16), on make_mips_data.py's data.

    benchmarks/peers/.venv/bin/python benchmarks/peers/faiss_ivf_peers.py --data DIR --d 64 \
        --threads 1 [--cache DIR] [--quick]

Indexes, all inner product: IndexFlatIP; IndexScalarQuantizer SQ8; IndexHNSWFlat (M = 32,
efConstruction = 40) over efSearch; IVF{nlist},PQ{d/2}x4fs (IndexIVFPQFastScan, nlist = 1024, 2-dim
sub-vectors, 4-bit codes) under IndexRefineFlat over nprobe x k_factor. k = 10; recall@10 against
the exact ground truth of the data directory. Batch 1 (one query per call, cycling through
--batch1_queries queries) and batch 256 (all queries, 256 per call); medians of --repeats passes.
faiss.omp_set_num_threads(--threads). Trained indexes are cached in --cache (faiss.write_index),
with the build time measured when they were built (at --build_threads threads).

Prints one JSON object per line: first {"bench": "data", ...} with faiss.__version__ and
faiss.get_compile_options() (which SIMD module was loaded), then one per (index, parameters, batch).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import faiss
import numpy as np


def allowed_mask(b: int, n: int, frac: float) -> np.ndarray:
    """Item i allowed for query b iff splitmix64(((b + 1) * golden) ^ i) / 2^64 < frac (the same
    filter as benchmarks/tools/ivf_recall_qps.cpp)."""
    m64 = (1 << 64) - 1
    z = np.uint64(((b + 1) * 0x9E3779B97F4A7C15) & m64) ^ np.arange(n, dtype=np.uint64)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0) < frac


def recall_at(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    hits = 0
    for a, b in zip(ids[:, :k], gt[:, :k]):
        hits += len(set(a.tolist()) & set(b.tolist()))
    return hits / (k * len(ids))


def timed_search(index, xq: np.ndarray, k: int, batch: int, repeats: int, batch1_queries: int):
    """Median seconds per query over `repeats` passes, and the ids of all queries."""
    ids = index.search(xq, k)[1]  # warm-up, and the results for recall
    per_query = []
    for _ in range(repeats):
        if batch == 1:
            t0 = time.perf_counter()
            for i in range(batch1_queries):
                index.search(xq[i:i + 1], k)
            per_query.append((time.perf_counter() - t0) / batch1_queries)
        else:
            t0 = time.perf_counter()
            for a in range(0, len(xq), batch):
                index.search(xq[a:a + batch], k)
            per_query.append((time.perf_counter() - t0) / len(xq))
    return float(np.median(per_query)), ids


def cached(path: str | None, build, build_threads: int):
    """(index, build seconds) from the cache or a fresh build."""
    meta = path + ".json" if path else None
    if path and os.path.exists(path) and os.path.exists(meta):
        with open(meta) as f:
            info = json.load(f)
        return faiss.read_index(path), info["build_seconds"]
    faiss.omp_set_num_threads(build_threads)
    t0 = time.perf_counter()
    index = build()
    sec = time.perf_counter() - t0
    if path:
        faiss.write_index(index, path)
        with open(meta, "w") as f:
            json.dump({"build_seconds": sec, "build_threads": build_threads}, f)
    return index, sec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--build_threads", type=int, default=1)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch1_queries", type=int, default=200)
    ap.add_argument("--only", default="flat,sq8,hnsw,ivfpqfs,filters", help="comma-separated subset")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--k_factors", default="2,4,8,16,32,64", help="IndexRefineFlat k_factor values")
    ap.add_argument("--build_only", action="store_true", help="build (and cache) the indexes, measure nothing")
    args = ap.parse_args()
    k, n, d = 10, args.n, args.d
    xb = np.fromfile(os.path.join(args.data, f"base_{n}x{d}.f32"), dtype=np.float32).reshape(n, d)
    xq = np.fromfile(os.path.join(args.data, f"queries_1000x{d}.f32"), dtype=np.float32).reshape(-1, d)
    gt = np.fromfile(os.path.join(args.data, f"gt_1000x100_{n}x{d}.i32"), dtype=np.int32).reshape(len(xq), 100)
    if args.cache:
        os.makedirs(args.cache, exist_ok=True)
    cache = (lambda name: os.path.join(args.cache, f"{name}_{n}x{d}.faiss")) if args.cache else (lambda name: None)
    print(json.dumps({"bench": "data", "n": n, "d": d, "queries": len(xq), "faiss": faiss.__version__,
                      "compile_options": faiss.get_compile_options(), "threads": args.threads}), flush=True)
    only = set(args.only.split(","))
    repeats = 1 if args.quick else args.repeats

    def report(name: str, params: dict, index, build_seconds: float | None, queries: int = len(xq)):
        """queries < 1000: the exact scans, whose batch-256 pass over 1,000 queries takes minutes."""
        if args.build_only:
            return
        faiss.omp_set_num_threads(args.threads)
        for batch in (1, 256):
            sec, ids = timed_search(index, xq[:queries], k, batch, repeats, min(args.batch1_queries, queries))
            row = {"bench": name, **params, "batch": batch, "threads": args.threads, "seconds_per_query": sec,
                   "queries_per_second": 1.0 / sec, "recall@10": recall_at(ids, gt[:queries], k)}
            if build_seconds is not None:
                row["build_seconds"] = build_seconds
            print(json.dumps(row), flush=True)

    if "flat" in only:
        flat = faiss.IndexFlatIP(d)
        flat.add(xb)
        report("flatip", {}, flat, None, queries=256)
        # This wheel's default BLAS threshold (faiss.cvar.distance_compute_blas_threshold = 128,000
        # queries) keeps batch 256 on the per-query SIMD scan; with 20 (the old default) it takes
        # sgemm, ~3x faster here. Both are measured; the table takes FAISS's better one.
        default_threshold = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 20
        report("flatip_blas", {"blas_threshold": 20}, flat, None, queries=256)
        faiss.cvar.distance_compute_blas_threshold = default_threshold
        del flat
    if "sq8" in only:
        def build_sq8():
            sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
            sq.train(xb)
            sq.add(xb)
            return sq
        sq, sec = cached(cache("sq8"), build_sq8, args.build_threads)
        report("sq8", {}, sq, sec, queries=256)
        del sq
    if "ivfpqfs" in only:
        nlist, m = 1024, d // 2
        def build_ivf():
            ivf = faiss.index_factory(d, f"IVF{nlist},PQ{m}x4fs", faiss.METRIC_INNER_PRODUCT)
            ivf.train(xb)
            ivf.add(xb)
            return ivf
        ivf, sec = cached(cache(f"ivf{nlist}_pq{m}x4fs"), build_ivf, args.build_threads)
        refine = faiss.IndexRefineFlat(ivf, faiss.swig_ptr(xb))
        nprobes = [4, 16, 64] if args.quick else [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]
        factors = [4] if args.quick else [int(x) for x in args.k_factors.split(",")]
        for nprobe in nprobes:
            ivf.nprobe = nprobe
            for kf in factors:
                if kf > 16 and nprobe < 16:  # many candidates only pay with many lists
                    continue
                refine.k_factor = kf
                report("ivfpqfs_refine", {"nlist": nlist, "m": m, "nprobe": nprobe, "k_factor": kf}, refine, sec)
        del refine, ivf
    if "filters" in only and not args.build_only:
        # Per query an IDSelectorBitmap of the allowed items; batch 1, 100 queries; recall against
        # the exact filtered top 10 (IndexFlatIP with the same selector).
        faiss.omp_set_num_threads(args.threads)
        flat = faiss.IndexFlatIP(d)
        flat.add(xb)
        ivf, _ = cached(cache(f"ivf1024_pq{d // 2}x4fs"), None, args.build_threads)
        refine = faiss.IndexRefineFlat(ivf, faiss.swig_ptr(xb))
        hnsw, _ = cached(cache("hnsw32"), None, args.build_threads)
        fq = 100
        for frac in (0.01, 0.1, 0.5):
            sels = []
            for b in range(fq):
                bits = np.packbits(allowed_mask(b, n, frac), bitorder="little")
                sels.append((faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)), bits))

            def run(make_params, index):
                ids = np.empty((fq, k), dtype=np.int64)
                per = []
                for rep in range(repeats + 1):
                    t0 = time.perf_counter()
                    for b in range(fq):
                        ids[b] = index.search(xq[b:b + 1], k, params=make_params(sels[b][0]))[1][0]
                    if rep:
                        per.append((time.perf_counter() - t0) / fq)
                return float(np.median(per)), ids

            sec, gt_f = run(lambda sel: faiss.SearchParameters(sel=sel), flat)
            print(json.dumps({"bench": "flatip_filtered", "allowed": frac, "batch": 1, "threads": args.threads,
                              "seconds_per_query": sec, "queries_per_second": 1.0 / sec, "recall@10": 1.0}),
                  flush=True)

            def rec(ids):
                return sum(len(set(a.tolist()) & set(g.tolist())) for a, g in zip(ids, gt_f)) / (k * fq)

            for nprobe in (8, 16, 32):
                try:
                    sec, ids = run(lambda sel: faiss.IndexRefineSearchParameters(
                        k_factor=4, sel=sel, base_index_params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)),
                        refine)
                    row = {"seconds_per_query": sec, "queries_per_second": 1.0 / sec, "recall@10": rec(ids)}
                except RuntimeError as e:  # a FAISS build whose fast-scan IVF rejects selectors
                    row = {"error": str(e).splitlines()[0][:200]}
                print(json.dumps({"bench": "ivfpqfs_refine_filtered", "allowed": frac, "nprobe": nprobe, "k_factor": 4,
                                  "batch": 1, "threads": args.threads, **row}), flush=True)
            for ef in (64, 128):
                sec, ids = run(lambda sel: faiss.SearchParametersHNSW(sel=sel, efSearch=ef), hnsw)
                print(json.dumps({"bench": "hnswflat_filtered", "allowed": frac, "efSearch": ef, "batch": 1,
                                  "threads": args.threads, "seconds_per_query": sec, "queries_per_second": 1.0 / sec,
                                  "recall@10": rec(ids)}), flush=True)
        del flat, refine, ivf, hnsw
    if "hnsw" in only:
        def build_hnsw():
            h = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            h.hnsw.efConstruction = 40
            h.add(xb)
            return h
        hnsw, sec = cached(cache("hnsw32"), build_hnsw, args.build_threads)
        for ef in ([32, 128] if args.quick else [16, 32, 64, 128, 256, 512]):
            hnsw.hnsw.efSearch = ef
            report("hnswflat", {"M": 32, "efSearch": ef}, hnsw, sec)


if __name__ == "__main__":
    main()
