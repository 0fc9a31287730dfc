#!/usr/bin/env python3
"""Clustered maximum-inner-product data for the approximate-index benchmarks (issue 16).

    benchmarks/peers/.venv/bin/python benchmarks/peers/make_mips_data.py --out DIR [--n 1000000] [--d 64 128]

A mixture of Gaussians with varied norms, not unit vectors, so inner product and cosine disagree:
  * C = 1024 cluster centres c_j ~ N(0, I / d) (norm ~ 1), cluster weights ~ Dirichlet(1) (uneven sizes);
  * item i of cluster j: x = s_i (c_j + sigma_j g / sqrt(d)), g ~ N(0, I), sigma_j ~ U(0.35, 0.7),
    s_i ~ lognormal(0, 0.35) (norms spread over ~0.5x .. 2x);
  * queries: the same mixture, another stream, norm 1 (a user vector; its norm does not change the ranking).
Fixed seed (numpy's PCG64, seed 20261207 + d), so the files are the same on every machine.

Writes, per d, little-endian raw arrays (no header; shapes in the names and in DIR/README.txt):
  base_{n}x{d}.f32        [n, d] float32 items
  queries_{q}x{d}.f32     [q, d] float32 queries (q = 1000)
  gt_{q}x100_{n}x{d}.i32  [q, 100] int32 exact top-100 ids by inner product (FAISS IndexFlatIP;
                          ties have probability ~0 with float data)
"""
from __future__ import annotations

import argparse
import os

import numpy as np


def make(n: int, d: int, q: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = 1024
    centres = rng.standard_normal((c, d)).astype(np.float32) / np.sqrt(d)
    weights = rng.dirichlet(np.ones(c))
    sigma = rng.uniform(0.35, 0.7, size=c).astype(np.float32)

    def draw(m: int, r: np.random.Generator, scale_norms: bool) -> np.ndarray:
        out = np.empty((m, d), dtype=np.float32)
        step = 65536
        for a in range(0, m, step):
            b = min(m, a + step)
            lab = r.choice(c, size=b - a, p=weights)
            x = centres[lab] + sigma[lab, None] * r.standard_normal((b - a, d), dtype=np.float32) / np.sqrt(d)
            if scale_norms:
                x *= r.lognormal(0.0, 0.35, size=(b - a, 1)).astype(np.float32)
            else:
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[a:b] = x
        return out

    base = draw(n, np.random.default_rng([seed, 1]), True)
    queries = draw(q, np.random.default_rng([seed, 2]), False)
    return base, queries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    import faiss  # only for the ground truth

    for d in args.d:
        base, queries = make(args.n, d, args.queries, 20261207 + d)
        base.tofile(os.path.join(args.out, f"base_{args.n}x{d}.f32"))
        queries.tofile(os.path.join(args.out, f"queries_{args.queries}x{d}.f32"))
        flat = faiss.IndexFlatIP(d)
        flat.add(base)
        _, gt = flat.search(queries, 100)
        gt.astype(np.int32).tofile(os.path.join(args.out, f"gt_{args.queries}x100_{args.n}x{d}.i32"))
        print(f"d={d}: n={args.n}, queries={args.queries}, norms {np.percentile(np.linalg.norm(base, axis=1), [5, 50, 95])}",
              flush=True)
    with open(os.path.join(args.out, "README.txt"), "w") as f:
        f.write("written by benchmarks/peers/make_mips_data.py; raw little-endian arrays, shapes in the names\n")


if __name__ == "__main__":
    main()
