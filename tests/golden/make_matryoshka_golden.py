#!/usr/bin/env python3
"""Golden file tests/golden/matryoshka.safetensors for the Matryoshka blocks, from PyTorch autograd.

    benchmarks/peers/.venv/bin/python tests/golden/make_matryoshka_golden.py            # (re)write the file
    benchmarks/peers/.venv/bin/python tests/golden/make_matryoshka_golden.py --check    # compare with the file

float64, fixed seed. Widths 3, 5, 8 (D = 8) with weights c = 0.5, 1, 2, so uneven slices and
non-unit weights are exercised. The losses are written the way the MRL papers define them (a loop
over widths, each a plain loss on the prefix), not the way recblocks computes them (slice sums):

  mrl_bce.*      L = sum_i c_i BCE(hidden[:, :m_i], table[:, :m_i])  (MRL-E, shared table), grads of hidden, table
  mrl_bce_sep.*  the same with one table per width (MRL)
  mrl_ce.*       L = sum_i c_i CE(hidden[:, :m_i] @ table[1:, :m_i]^T + bias[1:])  (MRL-E, shared bias)
  mrl_ce_sep.*   the same with one table per width, no bias (MRL)
  nested.*       fMRLRec's block lower-triangular linear: y = x W^T + b with W masked; y at every width
                 (the top-left m x m block), and for the full width the gradients of x, W, b under dy.
"""

from __future__ import annotations

import argparse
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "matryoshka.safetensors"
DT = torch.float64
WIDTHS = [3, 5, 8]
WEIGHTS = [0.5, 1.0, 2.0]
R, N, D = 6, 9, 8


def bce_width(h, t, pos, neg, m):
    mask = pos != 0
    count = int(mask.sum())
    hp = h[mask, :m]
    sp = (hp * t[pos[mask], :m]).sum(-1)
    sn = (hp[:, None, :] * t[neg[mask], :m]).sum(-1)
    return (F.softplus(-sp).sum() + F.softplus(sn).sum()) / count


def ce_width(h, t, bias, targets, m):
    mask = targets != 0
    logits = h[mask, :m] @ t[1:, :m].T
    if bias is not None:
        logits = logits + bias[1:]
    return F.cross_entropy(logits, targets[mask] - 1)


def make() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2022)
    out: dict[str, torch.Tensor] = {}
    hidden = torch.randn(R, D, generator=g, dtype=DT)
    table = torch.randn(N + 1, D, generator=g, dtype=DT) * 0.5
    table[0] = 0
    pos = torch.tensor([3, 0, 9, 1, 3, 0])
    neg = torch.tensor([[2, 5], [1, 1], [4, 7], [9, 2], [6, 3], [8, 8]])
    targets = pos.clone()
    bias = torch.randn(N + 1, generator=g, dtype=DT) * 0.1
    seps = [torch.randn(N + 1, m, generator=g, dtype=DT) * 0.5 for m in WIDTHS]
    out.update(hidden=hidden, table=table, pos=pos, neg=neg, targets=targets, bias=bias)
    for i, s in enumerate(seps):
        out[f"sep_table.{i}"] = s

    def run(name, fn, leaves):
        ls = [x.clone().requires_grad_(True) for x in leaves]
        per = fn(*ls)
        loss = sum(c * l for c, l in zip(WEIGHTS, per))
        loss.backward()
        out[f"{name}.loss"] = loss.detach().reshape(())
        out[f"{name}.per_width"] = torch.stack([p.detach() for p in per])
        return [x.grad for x in ls]

    gh, gt = run("mrl_bce", lambda h, t: [bce_width(h, t, pos, neg, m) for m in WIDTHS], [hidden, table])
    out["mrl_bce.grad.hidden"], out["mrl_bce.grad.table"] = gh, gt
    grads = run("mrl_bce_sep", lambda h, *ts: [bce_width(h, t, pos, neg, m) for t, m in zip(ts, WIDTHS)],
                [hidden, *seps])
    out["mrl_bce_sep.grad.hidden"] = grads[0]
    for i, gsep in enumerate(grads[1:]):
        out[f"mrl_bce_sep.grad.sep_table.{i}"] = gsep
    gh, gt, gb = run("mrl_ce", lambda h, t, b: [ce_width(h, t, b, targets, m) for m in WIDTHS], [hidden, table, bias])
    out["mrl_ce.grad.hidden"], out["mrl_ce.grad.table"], out["mrl_ce.grad.bias"] = gh, gt, gb
    grads = run("mrl_ce_sep", lambda h, *ts: [ce_width(h, t, None, targets, m) for t, m in zip(ts, WIDTHS)],
                [hidden, *seps])
    out["mrl_ce_sep.grad.hidden"] = grads[0]
    for i, gsep in enumerate(grads[1:]):
        out[f"mrl_ce_sep.grad.sep_table.{i}"] = gsep

    # Nested linear: mask[o, c] = 1 where c < m_i for the slice i holding output o.
    mask = torch.zeros(D, D, dtype=DT)
    lo = 0
    for m in WIDTHS:
        mask[lo:m, :m] = 1
        lo = m
    w = torch.randn(D, D, generator=g, dtype=DT) * mask / 2
    b = torch.randn(D, generator=g, dtype=DT) * 0.1
    x = torch.randn(R, D, generator=g, dtype=DT)
    dy = torch.randn(R, D, generator=g, dtype=DT)
    out.update({"nested.weight": w, "nested.bias": b, "nested.x": x, "nested.dy": dy})
    for m in WIDTHS:
        out[f"nested.y.{m}"] = x[:, :m] @ w[:m, :m].T + b[:m]
    wl, bl, xl = (t.clone().requires_grad_(True) for t in (w, b, x))
    y = xl @ (wl * mask).T + bl
    (y * dy).sum().backward()
    out.update({"nested.grad.x": xl.grad, "nested.grad.weight": wl.grad * mask, "nested.grad.bias": bl.grad})
    return {k: v.contiguous() for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    tensors = make()
    if args.check:
        old = load_file(str(OUT))
        bad = [k for k in tensors if k not in old or not torch.allclose(old[k], tensors[k], rtol=1e-12, atol=1e-14)]
        print("ok" if not bad else f"differs: {bad}")
        raise SystemExit(1 if bad else 0)
    OUT.write_bytes(save(tensors, metadata={"widths": "3,5,8", "weights": "0.5,1,2", "format": "recblocks-golden-1"}))
    print(f"wrote {OUT} ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
