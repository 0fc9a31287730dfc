#!/usr/bin/env python3
"""PyTorch peer of bench_cuda.cpp's BM_Cuda_SoftmaxBackward (not in
benchmarks/peers/torch_cuda_ops.py): aten._softmax_backward_data(dy, y, dim=1,
f32) on [25600, 200], timed as torch_cuda_ops.py times every op (b2b = 20 calls
between two events, median of 10 groups; single = median of 200 one-call event
pairs; 20 warm-ups). Bytes: y and dy read, dx written (12 B per element).

Usage: python3 torch_softmax_backward.py [--json out.json]
"""
import argparse
import json
import statistics
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="torch_softmax_backward.json")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 77
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev)
    gen.manual_seed(1234)
    rows, cols = 25600, 200
    y = torch.softmax(torch.rand(rows, cols, device=dev, generator=gen) * 6 - 3, dim=1)
    dy = torch.rand(rows, cols, device=dev, generator=gen) * 2 - 1
    fn = lambda: torch.ops.aten._softmax_backward_data(dy, y, 1, torch.float32)  # noqa: E731
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    ev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
    single, groups = [], []
    for _ in range(200):
        a, b = ev(), ev()
        a.record()
        fn()
        b.record()
        b.synchronize()
        single.append(a.elapsed_time(b))
    for _ in range(10):
        a, b = ev(), ev()
        a.record()
        for _ in range(20):
            fn()
        b.record()
        b.synchronize()
        groups.append(a.elapsed_time(b) / 20)
    b2b_us = 1e3 * statistics.median(groups)
    row = {"op": "_softmax_backward_data", "shape": f"{rows}x{cols}", "median_us": b2b_us,
           "single_median_us": 1e3 * statistics.median(single), "bytes": 12.0 * rows * cols,
           "GBps": 12.0 * rows * cols / (b2b_us * 1e-6) / 1e9, "device": torch.cuda.get_device_name(0),
           "torch": torch.__version__}
    print(json.dumps(row))
    with open(args.json, "w") as f:
        json.dump(row, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
