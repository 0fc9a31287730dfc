#!/usr/bin/env python3
"""DARE two-stage target attention in PyTorch: the golden-file reference
(tests/golden/make_dare_golden.py) and the speed peer of benchmarks/bench_dare.cpp.

    benchmarks/peers/.venv/bin/python benchmarks/peers/torch_dare.py [--threads 1] [--quick]

Model (thuml/DARE din_pytorch.py semantics, as models/dare.hpp): logits
<E_att(t), E_att(b)>/sqrt(d_a) over the history, top-k, softmax over the kept
logits, u = sum w E_repr(b), MLP on [E_repr(t), u, E_repr(t)*u] (ReLU), one
logit, BCE with logits. coupled=True: one table plays both roles.

Speed cases (same shapes as bench_dare.cpp, f32, eager, the best of 5 rounds):
  search   top-32 of 10,000 behaviours gathered from a 1,000,000-row table, d_a 16/32/64, one target
           per call, cycling over 64 histories (rows come from DRAM, as in BM_Dare_Search)
  agg_mlp  stage 2 + MLP forward and backward, batch 256, histories of 32, d_r 64
  train    forward + backward + Adam, batch 256, histories of 1,000, 100,000 items, d_r 64, d_a 16/64
Prints one JSON object per line: {"case":..., "d_a":..., "us": ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn as nn


class Dare(nn.Module):
    def __init__(self, num_items: int, d_a: int, d_r: int, k: int, hidden=(200, 80), coupled: bool = False,
                 dtype=torch.float32):
        super().__init__()
        self.k, self.coupled = k, coupled
        self.d_a = d_r if coupled else d_a
        self.embedding = nn.Module()
        if not coupled:
            self.embedding.attention = nn.Embedding(num_items, d_a, dtype=dtype)
        self.embedding.representation = nn.Embedding(num_items, d_r, dtype=dtype)
        layers, width = [], 3 * d_r
        for h in hidden:
            layers += [nn.Linear(width, h, dtype=dtype), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1, dtype=dtype))
        self.mlp = nn.Sequential(*layers)

    def attention_table(self) -> torch.Tensor:
        return self.embedding.representation.weight if self.coupled else self.embedding.attention.weight

    def search(self, targets: torch.Tensor, hist: torch.Tensor, lengths: torch.Tensor | None = None):
        """hist [B, L] (padded past lengths): kept logits [B, k] and positions [B, k]."""
        a = self.attention_table()
        logits = torch.einsum("bld,bd->bl", a[hist], a[targets]) / math.sqrt(self.d_a)
        if lengths is not None:
            pad = torch.arange(hist.shape[1], device=hist.device)[None, :] >= lengths[:, None]
            logits = logits.masked_fill(pad, float("-inf"))
        return torch.topk(logits, self.k, dim=1, sorted=True)

    def forward(self, targets: torch.Tensor, hist: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        kept, pos = self.search(targets, hist, lengths)
        w = torch.softmax(kept, dim=1)
        r = self.embedding.representation.weight
        v = r[torch.gather(hist, 1, pos)]                # [B, k, d_r]
        u = (w.unsqueeze(-1) * v).sum(1)
        et = r[targets]
        return self.mlp(torch.cat([et, u, et * u], dim=1)).squeeze(-1)


def best_us(fn, reps: int, rounds: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reps = 20 if args.quick else 200
    with torch.no_grad():
        for d in (16, 32, 64):
            items, n = 1_000_000, 10_000
            m = Dare(items, d, 8, 32, hidden=(8,))
            hists = torch.randint(0, items, (64, 1, n))
            state = {"i": 0}

            def search() -> None:
                h = hists[state["i"] % 64]
                state["i"] += 1
                m.search(h[:, 0], h)

            us = best_us(search, reps)
            print(json.dumps({"case": "search", "d_a": d, "us": us, "bytes_read": n * (4 * d + 8),
                              "threads": args.threads, "torch": torch.__version__}), flush=True)
            del m
    b, items = 256, 100_000
    m = Dare(items, 16, 64, 32)
    t = torch.randint(0, items, (b,))
    h = torch.randint(0, items, (b, 32))
    y = (torch.arange(b) % 2).float()
    loss_fn = nn.BCEWithLogitsLoss()

    def agg() -> None:
        loss_fn(m(t, h), y).backward()

    print(json.dumps({"case": "agg_mlp", "d_r": 64, "us": best_us(agg, max(5, reps // 10))}), flush=True)
    for d_a in (16, 64):
        m = Dare(items, d_a, 64, 32)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        h = torch.randint(0, items, (b, 1000))

        def step() -> None:
            opt.zero_grad(set_to_none=False)
            loss_fn(m(t, h), y).backward()
            opt.step()

        print(json.dumps({"case": "train", "d_a": d_a, "us": best_us(step, max(3, reps // 40))}), flush=True)


if __name__ == "__main__":
    main()
