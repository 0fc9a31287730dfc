#!/usr/bin/env python3
"""PyTorch on the GPU, timing the ops that benchmarks/cuda/bench_cuda.cpp times
for recblocks' CUDA backend, with the same shapes (f32).

Timing: for every op, `--warmup` untimed calls, then two measurements with
torch.cuda events on the current stream (as bench_cuda.cpp's b2b argument):
"b2b" = 20 calls back to back between two events, time / 20, median over
reps/20 groups (GPU time per call; median_us, GB/s and GFLOP/s use it), and
"single" = `--reps` calls each alone between two events on an idle GPU, median
(latency of one call including Python/dispatcher launch overhead). TF32 is DISABLED
(torch.backends.cuda.matmul.allow_tf32 = False, cudnn.allow_tf32 = False,
float32 matmul precision "highest"), so matmul/bmm run true FP32 as cuBLAS's
default math mode does for recblocks' gemm.

Byte counts follow bench_cuda.cpp (minimal traffic: inputs read once, outputs
written once; gather/scatter count the 4-B ids and each distinct table row once,
twice for index_add_). A device-to-device copy of 256 MiB (tensor.copy_) is the
bandwidth reference (bytes read + written).

Notes on equivalence:
  * sum: torch.sum returns a device tensor; recblocks returns the value on the
    host (a synchronising copy). "sum" here is torch.sum alone; "sum+item" adds
    .item(), which is what recblocks' sum does.
  * index_add_ uses atomics (non-deterministic order of additions); recblocks
    sorts the ids and adds in a fixed order (bit-identical to its Reference).
  * topk is torch.topk(sorted=True); recblocks also checks for NaN rows.
  * gather/scatter: recblocks checks the ids on the device and synchronises
    (raising IndexError for a bad id); torch's index_select/index_add_ only
    assert asynchronously.
  * layer_norm backward is aten.native_layer_norm_backward (dx, dgamma, dbeta)
    from saved mean/rstd, the same contract as recblocks' layer_norm_backward.

Usage: python3 benchmarks/peers/torch_cuda_ops.py [--json out.json] [--reps 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default="torch_cuda_ops.json", help="output JSON path")
    ap.add_argument("--reps", type=int, default=200, help="timed calls per op")
    ap.add_argument("--warmup", type=int, default=20, help="untimed calls per op")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("torch_cuda_ops: no CUDA device", file=sys.stderr)
        return 77

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev)
    gen.manual_seed(1234)
    f32 = torch.float32

    def uniform(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, device=dev, dtype=f32, generator=gen) * (hi - lo) + lo

    def time_op(fn, reps=args.reps, warmup=args.warmup, b2b=20):
        """Per-call times two ways, each the median over its samples:
        single: one call between two events, the GPU idle at the start event
                (latency of a call, Python/dispatcher launch overhead included);
        b2b:    `b2b` calls back to back between two events, time / b2b (GPU time
                per call once the launch queue is full)."""
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        ev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        single = []
        for _ in range(reps):
            a, b = ev(), ev()
            a.record()
            fn()
            b.record()
            b.synchronize()  # one call at a time, as bench_cuda.cpp's b2b:0
            single.append(a.elapsed_time(b))
        groups = []
        for _ in range(max(5, reps // b2b)):
            a, b = ev(), ev()
            a.record()
            for _ in range(b2b):
                fn()
            b.record()
            b.synchronize()
            groups.append(a.elapsed_time(b) / b2b)
        single.sort()
        return {
            "median_us": 1e3 * statistics.median(groups),
            "b2b_min_us": 1e3 * min(groups),
            "single_median_us": 1e3 * statistics.median(single),
            "single_min_us": 1e3 * single[0],
            "single_p90_us": 1e3 * single[int(0.9 * (len(single) - 1))],
            "reps": reps,
            "b2b_calls": b2b,
        }

    results = []

    def record(name, shape, fn, nbytes, flops=0.0, reps=args.reps):
        t = time_op(fn, reps=reps)
        sec = t["median_us"] * 1e-6
        row = {"op": name, "shape": shape, **t, "bytes": nbytes, "GBps": nbytes / sec / 1e9}
        if flops:
            row["flops"] = flops
            row["GFLOPs"] = flops / sec / 1e9
        results.append(row)
        extra = f"  {row['GFLOPs']:9.1f} GFLOP/s" if flops else ""
        print(f"{name:16s} {shape:32s} b2b {t['median_us']:9.2f} us  single {t['single_median_us']:9.2f} us  "
              f"{row['GBps']:8.1f} GB/s{extra}", flush=True)
        return row

    # ---- reference: device-to-device copy ------------------------------------
    for nbytes in (8 << 20, 256 << 20):
        a = torch.ones(nbytes // 4, device=dev, dtype=f32)
        b = torch.empty_like(a)
        record("copy_", f"{nbytes >> 20} MiB", lambda: b.copy_(a), 2.0 * nbytes, reps=min(args.reps, 100))
        del a, b
    copy_bw = results[-1]["GBps"]

    # ---- matmul --------------------------------------------------------------
    m, n, k = 25600, 192, 64
    a, b = uniform(m, k), uniform(k, n)
    record("matmul", f"[{m}x{k}]x[{k}x{n}]", lambda: torch.mm(a, b), 4.0 * (m * k + k * n + m * n), 2.0 * m * n * k)
    m, n, k = 128, 10000, 50
    users, items = uniform(m, k), uniform(n, k)
    record("matmul (B^T)", f"[{m}x{k}]x[{n}x{k}]^T", lambda: torch.mm(users, items.t()),
           4.0 * (m * k + k * n + m * n), 2.0 * m * n * k)
    batch, L, dh = 128, 200, 50
    q, kk = uniform(batch, L, dh), uniform(batch, L, dh)
    record("bmm (Q K^T)", f"{batch}x[{L}x{dh}]x[{L}x{dh}]^T", lambda: torch.bmm(q, kk.transpose(1, 2)),
           4.0 * batch * (2 * L * dh + L * L), 2.0 * batch * L * L * dh)
    del a, b, users, items, q, kk

    # ---- softmax, layer norm -------------------------------------------------
    rows, cols = 25600, 200
    x = uniform(rows, cols, lo=-3, hi=3)
    record("softmax", f"{rows}x{cols}", lambda: torch.softmax(x, dim=1), 8.0 * rows * cols)
    rows, d = 25600, 64
    x = uniform(rows, d, lo=-3, hi=3)
    w, bias = uniform(d, lo=0.5, hi=1.5), uniform(d)
    dy = uniform(rows, d)
    eps = 1e-5
    record("layer_norm fwd", f"{rows}x{d}", lambda: torch.ops.aten.native_layer_norm(x, [d], w, bias, eps),
           8.0 * rows * d + 8.0 * rows)
    _, mean, rstd = torch.ops.aten.native_layer_norm(x, [d], w, bias, eps)
    record("layer_norm bwd", f"{rows}x{d}",
           lambda: torch.ops.aten.native_layer_norm_backward(dy, x, [d], mean, rstd, w, bias, [True, True, True]),
           12.0 * rows * d + 8.0 * rows)
    del x, dy

    # ---- embedding: gather and scatter-add -------------------------------------
    table_rows, d, nid = 1_000_000, 64, 25600
    table = uniform(table_rows, d)
    ids = torch.randint(0, table_rows, (nid,), device=dev, generator=gen, dtype=torch.int64)
    ids32 = ids.to(torch.int32)
    distinct = int(torch.unique(ids).numel())
    dense = uniform(nid, d)
    gbytes = 4.0 * nid + 4.0 * nid * d + 4.0 * distinct * d
    record("index_select", f"[{table_rows}x{d}], {nid} ids", lambda: torch.index_select(table, 0, ids32), gbytes)
    record("index_add_", f"[{table_rows}x{d}], {nid} ids", lambda: table.index_add_(0, ids32, dense),
           gbytes + 4.0 * distinct * d)
    del table, dense

    # ---- top-k, sum -----------------------------------------------------------
    for r, n_items in ((1, 1_000_000), (128, 100_000)):
        s = uniform(r, n_items)
        record("topk k=10", f"[{r}x{n_items}]", lambda: torch.topk(s, 10, dim=1), 4.0 * r * n_items)
        del s
    # exact maximum-inner-product search: torch.topk(queries @ items^T) (bytes = the item table once)
    for bq, n_items in ((1, 1_000_000), (1, 10_000_000), (256, 1_000_000)):
        qs, items = uniform(bq, 64), uniform(n_items, 64)
        record("mips k=10", f"[{bq}x64]x[{n_items}x64]^T", lambda: torch.topk(qs @ items.t(), 10, dim=1),
               4.0 * n_items * 64, 2.0 * bq * n_items * 64)
        del qs, items
    n = 10_000_000
    v = uniform(1, n)
    record("sum", f"[1x{n}]", lambda: torch.sum(v), 4.0 * n)
    record("sum+item", f"[1x{n}]", lambda: torch.sum(v).item(), 4.0 * n)

    for row in results:
        row["pct_copy_bw"] = 100.0 * row["GBps"] / copy_bw
    props = torch.cuda.get_device_properties(0)
    out = {
        "device": torch.cuda.get_device_name(0),
        "sm": f"{props.major}{props.minor}",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tf32": False,
        "timing": f"median_us: 20 calls back to back per event pair, median of {max(5, args.reps // 20)} groups; "
                  f"single_*: median of {args.reps} one-call event pairs; {args.warmup} warm-ups",
        "copy_GBps_256MiB": copy_bw,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"device {out['device']}, torch {out['torch']} (CUDA {out['cuda']}), TF32 off; copy {copy_bw:.1f} GB/s; "
          f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
