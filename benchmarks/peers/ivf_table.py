#!/usr/bin/env python3
"""Table and recall-QPS curves of one run_ivf_bars.sh run.

    benchmarks/peers/.venv/bin/python benchmarks/peers/ivf_table.py OUT_DIR [--png docs/ivf_recall_qps.png]

Reads OUT_DIR/{recblocks,faiss}_*.jsonl (one JSON object per line) and prints markdown:
  * approximate: per data set, thread count and batch, the best queries/s of each family at
    recall@10 >= 0.95 and >= 0.99 (over all its parameters), and our ratio to FAISS's
    IVFPQFastScan + refine and to HNSWFlat;
  * exact scans: ExactIndex f32 / bf16 / int8 against IndexFlatIP and SQ8;
  * filtered (batch 1, one thread): per allowed fraction, ours against FAISS with an IDSelector;
  * build times.
The PNG draws every configuration's (recall@10, queries/s) point, one panel per data set and
batch (one thread), each family's Pareto front as a line.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re

FAMILIES = {  # bench name -> label
    "ivf_pq4": "recblocks IVF pq4 + re-rank",
    "ivf_int8": "recblocks IVF int8 + re-rank",
    "ivfpqfs_refine": "FAISS IVF1024,PQ(d/2)x4fs + RefineFlat",
    "hnswflat": "FAISS HNSWFlat M=32",
}


def load(out: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "*.jsonl"))):
        m = re.search(r"_d(\d+)_t(\d+)\.jsonl$", path)
        if not m:
            continue
        who = "faiss" if os.path.basename(path).startswith("faiss") else "recblocks"
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            r.update({"d": int(m.group(1)), "who": who, "file_threads": int(m.group(2))})
            rows.append(r)
    return rows


def best_at(rows, bench, target, **where):
    c = [r for r in rows if r["bench"] == bench and r.get("recall@10", 0) >= target and "queries_per_second" in r
         and all(r.get(k) == v for k, v in where.items())]
    return max(c, key=lambda r: r["queries_per_second"]) if c else None


def fmt(r, keys):
    if r is None:
        return "—"
    p = ", ".join(f"{k} {r[k]}" for k in keys if k in r)
    return f"{r['queries_per_second']:,.0f} ({r['recall@10']:.3f}" + (f"; {p})" if p else ")")


def ratio(a, b):
    return f"{a['queries_per_second'] / b['queries_per_second']:.2f}×" if a and b else "—"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--png", default=None)
    args = ap.parse_args()
    rows = load(args.out)
    print("### Approximate top-10: best queries/s at a recall@10 bar (recall; parameters)\n")
    print("| data | threads | batch | bar | recblocks pq4 | recblocks int8 | FAISS IVFPQfs+refine | FAISS HNSW | "
          "best ours / FAISS IVF | best ours / HNSW |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in (64, 128):
        for t in (1, 2):
            for batch in (1, 256):
                for target in (0.95, 0.99):
                    w = {"d": d, "threads": t, "batch": batch}
                    pq = best_at(rows, "ivf_pq4", target, **w)
                    i8 = best_at(rows, "ivf_int8", target, **w)
                    fi = best_at(rows, "ivfpqfs_refine", target, **w)
                    hn = best_at(rows, "hnswflat", target, **w)
                    ours = max([r for r in (pq, i8) if r], key=lambda r: r["queries_per_second"], default=None)
                    print(f"| 1e6×{d} | {t} | {batch} | {target} | {fmt(pq, ['nprobe', 'rerank'])} | "
                          f"{fmt(i8, ['nprobe', 'rerank'])} | {fmt(fi, ['nprobe', 'k_factor'])} | "
                          f"{fmt(hn, ['efSearch'])} | {ratio(ours, fi)} | {ratio(ours, hn)} |")
    print("\n### Exact scans (recall@10; queries/s)\n")
    print("| data | batch | ExactIndex f32 | FAISS FlatIP (better of default / BLAS) | ratio | ExactIndex bf16 | ExactIndex int8 | FAISS SQ8 | "
          "int8 / SQ8 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in (64, 128):
        for batch in (1, 256):
            w = {"d": d, "threads": 1, "batch": batch}
            f32 = best_at(rows, "exact_f32", 0, **w)
            flat = max([r for r in (best_at(rows, "flatip", 0, **w), best_at(rows, "flatip_blas", 0, **w)) if r],
                       key=lambda r: r["queries_per_second"], default=None)
            bf, i8, sq = best_at(rows, "exact_bf16", 0, **w), best_at(rows, "exact_int8", 0, **w), best_at(rows, "sq8", 0, **w)
            print(f"| 1e6×{d} | {batch} | {fmt(f32, [])} | {fmt(flat, [])} | {ratio(f32, flat)} | {fmt(bf, [])} | "
                  f"{fmt(i8, [])} | {fmt(sq, [])} | {ratio(i8, sq)} |")
    print("\n### Filtered, batch 1, one thread (allowed = fraction of items; recall@10 against the exact filtered top 10)\n")
    print("| data | allowed | ExactIndex filtered | FAISS FlatIP + IDSelector | ratio | recblocks IVF pq4 (best >= 0.95) | "
          "FAISS IVFPQfs+refine + IDSelector (best >= 0.95, else best recall) | FAISS HNSW + IDSelector (same) | ours / FAISS IVF |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in (64, 128):
        for frac in (0.01, 0.1, 0.5):
            def near(r):
                return abs(r.get("allowed", -1) - frac) < 1e-9

            sub = [r for r in rows if r["d"] == d and near(r)]
            ex, fl = best_at(sub, "exact_f32_filtered", 0), best_at(sub, "flatip_filtered", 0)
            ours = best_at(sub, "ivf_pq4_filtered", 0.95)

            def peer(bench):
                r = best_at(sub, bench, 0.95)
                if r is None:
                    c = [x for x in sub if x["bench"] == bench and "recall@10" in x]
                    r = max(c, key=lambda x: x["recall@10"], default=None)
                return r

            fi, hn = peer("ivfpqfs_refine_filtered"), peer("hnswflat_filtered")
            print(f"| 1e6×{d} | {frac} | {fmt(ex, [])} | {fmt(fl, [])} | {ratio(ex, fl)} | {fmt(ours, ['nprobe'])} | "
                  f"{fmt(fi, ['nprobe'])} | {fmt(hn, ['efSearch'])} | {ratio(ours, fi)} |")
    print("\n### Build (seconds; as cached, one thread unless said)\n")
    for d in (64, 128):
        b, threads = {}, {}
        for r in rows:
            if r["d"] == d and "build_seconds" in r:
                b[r["bench"]] = r["build_seconds"]
                if "build_threads" in r:
                    threads[r["bench"]] = r["build_threads"]
        note = "".join(f" ({k} built on {t} threads)" for k, t in sorted(threads.items()) if t != 1)
        print(f"- 1e6×{d}: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(b.items())) + note)
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(2, 2, figsize=(12, 9))
        for i, d in enumerate((64, 128)):
            for j, batch in enumerate((1, 256)):
                ax = axes[i][j]
                for bench, label in FAMILIES.items():
                    pts = sorted((r["recall@10"], r["queries_per_second"]) for r in rows
                                 if r["bench"] == bench and r["d"] == d and r["batch"] == batch and r["threads"] == 1)
                    if not pts:
                        continue
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=8, alpha=0.4)
                    front, best = [], 0.0
                    for rc, qps in sorted(pts, reverse=True):  # Pareto front: best qps at >= recall
                        if qps > best:
                            best = qps
                            front.append((rc, qps))
                    ax.plot([p[0] for p in front], [p[1] for p in front], marker="o", ms=3,
                            label=label, color=ax.collections[-1].get_facecolor()[0])
                for bench, label in (("exact_f32", "recblocks exact f32"), ("flatip", "FAISS FlatIP (better of default / BLAS)")):
                    cands = [best_at(rows, b, 0, d=d, batch=batch, threads=1) for b in (bench, bench + "_blas")]
                    r = max([c for c in cands if c], key=lambda c: c["queries_per_second"], default=None)
                    if r:
                        ax.scatter([r["recall@10"]], [r["queries_per_second"]], marker="*", s=80, label=label)
                ax.set_yscale("log")
                ax.set_xlim(0.8, 1.001)
                ax.axvline(0.95, color="gray", lw=0.5)
                ax.axvline(0.99, color="gray", lw=0.5)
                ax.set_title(f"1e6 × {d}, batch {batch}, 1 thread")
                ax.set_xlabel("recall@10")
                ax.set_ylabel("queries / s")
                ax.grid(True, which="both", lw=0.3)
                ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)


if __name__ == "__main__":
    main()
