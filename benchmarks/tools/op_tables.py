#!/usr/bin/env python3
"""The op-level tables of docs/benchmarks.md from one Google Benchmark JSON file of recblocks_bench.

Every figure comes from the file (the `*_median` aggregates, wall-clock `real_time`); every "% of limit" divides by
a limit measured by the same binary in the same run (BM_Limits_*, same thread count). Standard library only.

    build-bench/recblocks_bench --benchmark_filter='BM_(Limits|Gemm|Softmax|LayerNorm|Gelu|Relu|Embedding|TopK|Reduce)_' \\
        --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_min_time=0.2 \\
        --benchmark_out=ops.json --benchmark_out_format=json
    python3 benchmarks/tools/op_tables.py ops.json > tables.md

Byte counts are the benchmarks' own `bytes_per_second` counters: the minimal traffic of the op (docs/benchmarks.md,
"Conventions").
"""
from __future__ import annotations

import json
import re
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def fmt_time(ns: float) -> str:
    if ns < 1e3:
        return f"{ns / 1e3:.3f} µs"
    if ns < 1e5:
        return f"{ns / 1e3:.2f} µs" if ns < 1e4 else f"{ns / 1e3:.1f} µs"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns / 1e6:.2f} ms"


def parse(path: str):
    data = json.load(open(path))
    rows = []
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"])
        parts = name.split("/")
        family = parts[0]
        args = {}
        for p in parts[1:]:
            if ":" in p:
                k, v = p.split(":", 1)
                args[k] = v
            elif p not in ("real_time", "process_time") and not p.startswith(("min_time", "repeats")):
                args.setdefault("_", []).append(p)
        t_ns = b["real_time"] * UNIT_NS[b.get("time_unit", "ns")]
        rows.append({"family": family, "args": args, "ns": t_ns, "b": b})
    return data.get("context", {}), rows


def limit(rows, family, threads):
    for r in rows:
        if r["family"] == family and r["args"].get("threads", "1") == str(threads):
            return r
    return None


def gbs(r):
    return r["b"].get("bytes_per_second", 0.0) / 1e9


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ctx, rows = parse(sys.argv[1])
    out = []
    p = out.append
    p(f"Run: {ctx.get('date', '?')}, host `{ctx.get('host_name', '?')}`, {ctx.get('num_cpus', '?')} CPUs at "
      f"{ctx.get('mhz_per_cpu', '?')} MHz; recblocks_isa `{ctx.get('recblocks_isa', '?')}`, "
      f"compiled_for `{ctx.get('compiled_for', '?')}`. Medians of {ctx.get('repetitions', 3) or 3} repetitions, "
      "wall-clock.\n")

    triad = {t: limit(rows, "BM_Limits_Triad", t) for t in (1, 2)}
    triad_l3 = {t: limit(rows, "BM_Limits_TriadL3", t) for t in (1, 2)}
    read = {t: limit(rows, "BM_Limits_ReadBandwidth", t) for t in (1, 2)}
    recsys = limit(rows, "BM_Limits_EigenSgemm_Recsys", 1)
    big = limit(rows, "BM_Limits_EigenSgemm", 1)

    def pct(x, lim):
        return f"{100 * x / lim:.0f} %" if lim else "—"

    p("### Limits\n")
    p("| benchmark | arguments | threads | median | rate |")
    p("|---|---|---|---|---|")
    for r in rows:
        if not r["family"].startswith("BM_Limits_"):
            continue
        b = r["b"]
        if "GFLOP/s" in b:
            rate = f"{b['GFLOP/s'] / 1e9 if b['GFLOP/s'] > 1e6 else b['GFLOP/s']:.1f} GFLOP/s"
        elif "bytes_per_second" in b:
            rate = f"{gbs(r):.1f} GB/s"
        else:
            rate = ""
        extra = "/".join(f"{k}:{v}" for k, v in r["args"].items() if k not in ("threads", "_")) or "—"
        p(f"| {r['family'][3:]} | {extra} | {r['args'].get('threads', '1')} | {fmt_time(r['ns'])} | {rate} |")

    def gflops(r):
        v = r["b"].get("GFLOP/s", 0.0)
        return v / 1e9 if v > 1e6 else v

    p("\n### GEMM\n")
    p("| op | shape | thr | median | GFLOP/s | % Eigen recsys (1 thr) | % Eigen 1024³ (1 thr) |")
    p("|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["family"].startswith("BM_Gemm_"):
            continue
        a = r["args"]
        shape = "/".join(f"{k}:{v}" for k, v in a.items() if k not in ("threads", "_"))
        g = gflops(r)
        p(f"| {r['family'][3:]} | {shape} | {a.get('threads', '1')} | {fmt_time(r['ns'])} | {g:.1f} | "
          f"{pct(g, gflops(recsys) if recsys else 0)} | {pct(g, gflops(big) if big else 0)} |")

    def bandwidth_table(title, families, header, cells):
        sel = [r for r in rows if any(r["family"].startswith(f) for f in families)]
        if not sel:
            return
        p(f"\n### {title}\n")
        p("| " + " | ".join(header) + " |")
        p("|" + "---|" * len(header))
        for r in sel:
            p("| " + " | ".join(cells(r)) + " |")

    def thr(r):
        return int(r["args"].get("threads", "1"))

    def rowsxd(r):
        a = r["args"]
        return f"{a.get('rows', '?')}×{a.get('D', a.get('cols', '?'))}"

    def elem_cells(r):
        t = thr(r)
        items = r["b"].get("items_per_second", 0.0) / 1e9
        return [r["family"][3:], rowsxd(r), str(t), fmt_time(r["ns"]), f"{gbs(r):.1f}", f"{items:.2f}",
                pct(gbs(r), gbs(triad[t]) if triad[t] else 0), pct(gbs(r), gbs(triad_l3[t]) if triad_l3[t] else 0)]

    bandwidth_table("Element-wise and row-wise ops", ("BM_Softmax_", "BM_LayerNorm_", "BM_Gelu_", "BM_Relu_"),
                    ["op", "rows×D", "thr", "median", "GB/s", "Gelem/s", "% triad (DRAM)", "% triad (L3)"], elem_cells)

    def emb_cells(r):
        a, t = r["args"], thr(r)
        mrows = r["b"].get("items_per_second", 0.0) / 1e6
        return [r["family"][len("BM_Embedding_"):], a.get("ids", "?"), a.get("table_rows", "?"), str(t),
                fmt_time(r["ns"]), f"{gbs(r):.1f}", f"{mrows:.1f}", f"{r['b'].get('distinct_rows', 0):.0f}",
                pct(gbs(r), gbs(triad[t]) if triad[t] else 0)]

    bandwidth_table("Embedding: gather and scatter-add (D = 64)", ("BM_Embedding_",),
                    ["op", "ids", "table rows", "thr", "median", "GB/s", "Mrows/s", "distinct rows", "% triad (DRAM)"],
                    emb_cells)

    def topk_cells(r):
        a, t = r["args"], thr(r)
        gsc = r["b"].get("items_per_second", 0.0) / 1e9
        return [f"[{a.get('rows', '?')}, {a.get('N', '?')}]", a.get("k", "?"), str(t), fmt_time(r["ns"]),
                f"{gbs(r):.1f}", f"{gsc:.2f}", pct(gbs(r), gbs(read[t]) if read[t] else 0)]

    bandwidth_table("Top-k", ("BM_TopK_",), ["scores", "k", "thr", "median", "GB/s", "Gscores/s", "% read BW (DRAM)"],
                    topk_cells)

    def reduce_cells(r):
        a, t = r["args"], thr(r)
        op = r["family"][len("BM_Reduce_"):]
        size = a.get("n") or f"{a.get('rows', '?')}×{a.get('cols', '?')}"
        lim, what = (triad[t], "triad") if op == "Axpy" else (read[t], "read")
        return [op, size, str(t), fmt_time(r["ns"]), f"{gbs(r):.1f}", f"{gflops(r):.1f}",
                (pct(gbs(r), gbs(lim)) + " " + what) if lim else "—"]

    bandwidth_table("Reductions and BLAS-1", ("BM_Reduce_",),
                    ["op", "size", "thr", "median", "GB/s", "GFLOP/s", "% of limit (DRAM)"], reduce_cells)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
