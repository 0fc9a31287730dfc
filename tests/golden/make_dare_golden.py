#!/usr/bin/env python3
"""Writes tests/golden/dare.safetensors: the DARE model (benchmarks/peers/torch_dare.py)
in float64, both policies, a small config, for tests/models/dare_golden_test.cpp.

    benchmarks/peers/.venv/bin/python tests/golden/make_dare_golden.py

Config: 12 items, d_a 3, d_r 4, top_k 3, MLP 5-4-1, a batch of 3 targets with
histories of 5, 8 and 6 behaviours (flattened, offsets [0, 5, 13, 19]), labels
[0, 1, 0]. Embeddings N(0, 0.7^2), MLP nn.Linear's default, torch seed 0 (decoupled) / 1 (coupled).
Tensors, per policy prefix P in {decoupled., coupled.}: P<param> under the C++
names (embedding.attention.weight, embedding.representation.weight,
mlp.<i>.weight/bias), P logits [3], P loss [], P grad.<param>. Shared: targets,
offsets, history (int64), labels (float64).
"""

from __future__ import annotations

import pathlib
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks" / "peers"))
from torch_dare import Dare  # noqa: E402

targets = torch.tensor([7, 2, 11])
offsets = torch.tensor([0, 5, 13, 19])
history = torch.tensor([1, 3, 3, 9, 0, 4, 6, 8, 10, 2, 5, 7, 11, 0, 1, 2, 9, 6, 5])
labels = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)

out: dict[str, torch.Tensor] = {"targets": targets, "offsets": offsets, "history": history, "labels": labels}
for seed, coupled in ((0, False), (1, True)):
    torch.manual_seed(seed)
    m = Dare(12, 3, 4, 3, hidden=(5, 4), coupled=coupled, dtype=torch.float64)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("embedding."):
                p.normal_(0.0, 0.7)
    logits = []
    for i in range(3):  # one sample at a time: histories have different lengths
        h = history[offsets[i]:offsets[i + 1]].unsqueeze(0)
        logits.append(m(targets[i:i + 1], h))
    logits = torch.cat(logits)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    loss.backward()
    prefix = "coupled." if coupled else "decoupled."
    linear = 0
    for name, p in m.named_parameters():
        cname = name
        if name.startswith("mlp."):
            idx, kind = name.split(".")[1:]
            cname = f"mlp.{int(idx) // 2}.{kind}"  # nn.Sequential counts the ReLUs
        out[prefix + cname] = p.detach().clone()
        out[prefix + "grad." + cname] = p.grad.detach().clone()
    out[prefix + "logits"] = logits.detach()
    out[prefix + "loss"] = loss.detach()

save_file({k: v.contiguous() for k, v in out.items()}, str(HERE / "dare.safetensors"))
print("wrote", HERE / "dare.safetensors", len(out), "tensors")
