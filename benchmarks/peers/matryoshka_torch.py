#!/usr/bin/env python3
"""PyTorch peer of benchmarks/bench_matryoshka.cpp: the same shapes, forward + backward, f32 on the CPU.

    benchmarks/peers/.venv/bin/python benchmarks/peers/matryoshka_torch.py [--threads 1,2] [--quick] [--out FILE]

The losses are written the way MRL implementations write them (RAIVNLab/MRL, fMRLRec): a loop over the
widths, each a plain loss on the prefix h[:, :m] and E[:, :m]; the nested linear the way fMRLRec does
it, a dense nn.Linear-style product with the block mask applied to W. Prints one JSON object per
configuration (median of `reps` timings, each the mean over enough iterations to fill `min_time`).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

WIDTHS = [8, 16, 32, 64]
D = 64


def bce_case(rows, n):
    g = torch.Generator().manual_seed(1)
    h = (torch.rand(rows, D, generator=g) - 0.5).requires_grad_(True)
    table = (torch.rand(n + 1, D, generator=g) - 0.5).requires_grad_(True)
    r = torch.arange(rows)
    pos = 1 + (r * 7919) % n
    neg = 1 + (r * 104729 + 17) % n

    def step():
        h.grad = None
        table.grad = None
        ep, en = table[pos], table[neg]
        loss = 0
        for m in WIDTHS:
            sp = (h[:, :m] * ep[:, :m]).sum(-1)
            sn = (h[:, :m] * en[:, :m]).sum(-1)
            loss = loss + (F.softplus(-sp).sum() + F.softplus(sn).sum()) / rows
        loss.backward()

    return step, rows * 2.0 * 6.0 * D


def ce_case(rows, n):
    g = torch.Generator().manual_seed(1)
    h = (torch.rand(rows, D, generator=g) - 0.5).requires_grad_(True)
    table = (torch.rand(n + 1, D, generator=g) - 0.5).requires_grad_(True)
    targets = (torch.arange(rows) * 7919) % n

    def step():
        h.grad = None
        table.grad = None
        items = table[1:]
        loss = 0
        for m in WIDTHS:
            loss = loss + F.cross_entropy(h[:, :m] @ items[:, :m].T, targets)
        loss.backward()

    return step, 6.0 * rows * n * D


def nested_case(rows, n):
    del n
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(D, D)
    lo = 0
    for m in WIDTHS:
        mask[lo:m, :m] = 1
        lo = m
    w = (torch.rand(D, D, generator=g) * mask).requires_grad_(True)
    b = torch.zeros(D, requires_grad=True)
    x = (torch.rand(rows, D, generator=g) * 2 - 1).requires_grad_(True)
    dy = torch.rand(rows, D, generator=g) * 2 - 1

    def step():
        w.grad = b.grad = x.grad = None
        y = F.linear(x, w * mask, b)
        y.backward(dy)

    useful = sum(2.0 * (m - lo) * m for lo, m in zip([0] + WIDTHS[:-1], WIDTHS))
    return step, 3.0 * rows * useful


def timeit(step, min_time, reps):
    step()
    times = []
    for _ in range(reps):
        iters, t0 = 0, time.perf_counter()
        while True:
            step()
            iters += 1
            el = time.perf_counter() - t0
            if el >= min_time:
                break
        times.append(el / iters)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    min_time, reps = (0.2, 1) if a.quick else (1.0, 3)
    cases = [("bce", bce_case, 25600, 10000), ("softmax_ce", ce_case, 2560, 10000), ("nested_linear", nested_case, 25600, 0)]
    results = []
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, make, rows, n in cases:
            step, flops = make(rows, n)
            sec = timeit(step, min_time, reps)
            r = {"case": name, "rows": rows, "N": n, "threads": threads, "seconds": sec,
                 "GFLOP/s": flops / sec * 1e-9, "positions/s": rows / sec, "torch": torch.__version__}
            print(json.dumps(r), flush=True)
            results.append(r)
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"results": results}, f, indent=1)


if __name__ == "__main__":
    main()
