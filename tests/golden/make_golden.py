#!/usr/bin/env python3
"""Generates the golden files tests/golden/*.safetensors from the PyTorch references.

    benchmarks/peers/.venv/bin/python tests/golden/make_golden.py            # (re)write the files
    benchmarks/peers/.venv/bin/python tests/golden/make_golden.py --check    # compare with the files on disk

Everything is float64 with fixed seeds, dropout 0 and eval mode. Each file holds the
inputs, the parameters under their torch state_dict names, the outputs, and the
gradients ``grad.<parameter>`` / ``grad.<input>``; ``__metadata__`` holds the
configuration, one JSON-encoded value per key. tests/golden/README.md lists every
tensor. Takes a few seconds on one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import struct
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "benchmarks" / "peers"))
from torch_models import BERT4Rec, SASRec  # noqa: E402

DTYPE = torch.float64
FORMAT = "recblocks-golden-1"


def randomize_(module: nn.Module, gen: torch.Generator) -> None:
    """Every parameter random (so every term of every gradient is exercised):
    LayerNorm weights 1 + 0.2 N(0,1); 1-D parameters (biases) 0.1 N(0,1);
    matrices N(0, 1/fan_in) with fan_in = numel / rows. Padding rows are zeroed
    by the callers."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=DTYPE)
            if p.dim() == 1 and ("layernorm" in name or name == "weight") and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / math.sqrt(p.numel() / p.shape[0]))


def write_safetensors(tensors: dict, path: pathlib.Path, metadata: dict[str, str]) -> None:
    """safetensors.torch.save, with the JSON header re-written with sorted keys: the
    library orders ``__metadata__`` by hash, which would make every regeneration a
    binary diff. Data bytes and offsets are unchanged; the header is padded with
    spaces to a multiple of 8 bytes, as the format allows."""
    blob = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.dumps(json.loads(blob[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + blob[8 + n :])


def meta(**kv) -> dict[str, str]:
    out = {"format": json.dumps(FORMAT), "torch_version": json.dumps(torch.__version__)}
    out.update({k: json.dumps(v) for k, v in kv.items()})
    return out


def pack(inputs: dict, module: nn.Module | None, outputs: dict, input_grads: dict, prefix: str = "") -> dict:
    t = {}
    t.update(inputs)
    if module is not None:
        for name, p in module.named_parameters():
            t[prefix + name] = p.detach()
            t["grad." + prefix + name] = p.grad.detach()
    t.update(outputs)
    for name, g in input_grads.items():
        t["grad." + name] = g
    return {k: v.detach().contiguous().clone() for k, v in t.items()}


# ----------------------------------------------------------------------------- layer norm
def make_layer_norm():
    gen = torch.Generator().manual_seed(101)
    d, eps = 16, 1e-8
    ln = nn.LayerNorm(d, eps=eps).to(DTYPE)
    randomize_(ln, gen)
    # x[i] ~ offset_i + scale_i N(0, 1) with (offset, scale) = (0, 1), (-2, 3), (3, 0.05):
    # the last has a large mean and small spread (cancellation in the variance) while
    # staying well-conditioned enough for a float32 comparison at 1e-4.
    x = torch.randn(3, 5, d, generator=gen, dtype=DTYPE) * torch.tensor([1.0, 3.0, 0.05], dtype=DTYPE)[:, None, None]
    x = x + torch.tensor([0.0, -2.0, 3.0], dtype=DTYPE)[:, None, None]
    x.requires_grad_(True)
    dy = torch.randn(3, 5, d, generator=gen, dtype=DTYPE)
    y = ln(x)
    y.backward(dy)
    tensors = pack({"x": x, "dy": dy}, ln, {"y": y}, {"x": x.grad})
    return tensors, meta(d_model=d, eps=eps, shape=[3, 5, d],
                         description="nn.LayerNorm(16, eps=1e-8): y = LN(x); grads of sum(y * dy)")


# ----------------------------------------------------------------------------- attention
def _mha(gen: torch.Generator, d: int = 16, h: int = 2) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(d, h, batch_first=True).to(DTYPE)
    randomize_(mha, gen)
    return mha


def _causal(length: int) -> torch.Tensor:
    return torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)  # True = blocked


def make_mha_causal():
    gen = torch.Generator().manual_seed(201)
    b, length, d, h = 2, 6, 16, 2
    mha = _mha(gen, d, h)
    x = torch.randn(b, length, d, generator=gen, dtype=DTYPE, requires_grad=True)
    dy = torch.randn(b, length, d, generator=gen, dtype=DTYPE)
    y, attn = mha(x, x, x, attn_mask=_causal(length), need_weights=True, average_attn_weights=False)
    y.backward(dy)
    tensors = pack({"x": x, "dy": dy}, mha, {"y": y, "attn": attn}, {"x": x.grad})
    return tensors, meta(d_model=d, heads=h, batch=b, seq_len=length, causal=True, key_padding=False,
                         description="nn.MultiheadAttention(16, 2, batch_first=True), y = MHA(x, x, x) with a causal mask")


def make_mha_bidirectional_padded():
    gen = torch.Generator().manual_seed(301)
    b, length, d, h = 2, 6, 16, 2
    mha = _mha(gen, d, h)
    x = torch.randn(b, length, d, generator=gen, dtype=DTYPE, requires_grad=True)
    dy = torch.randn(b, length, d, generator=gen, dtype=DTYPE)
    key_keep = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.uint8)
    y, attn = mha(x, x, x, key_padding_mask=key_keep == 0, need_weights=True, average_attn_weights=False)
    assert torch.isfinite(y).all()
    y.backward(dy)
    tensors = pack({"x": x, "dy": dy, "key_keep": key_keep}, mha, {"y": y, "attn": attn}, {"x": x.grad})
    return tensors, meta(d_model=d, heads=h, batch=b, seq_len=length, causal=False, key_padding=True,
                         description="nn.MultiheadAttention(16, 2), y = MHA(x, x, x), no causal mask, "
                                     "key_padding_mask = (key_keep == 0); left padding (2 slots in sequence 0)")


def make_mha_cross():
    gen = torch.Generator().manual_seed(401)
    b, length, d, h = 2, 6, 16, 2
    mha = _mha(gen, d, h)
    q = torch.randn(b, length, d, generator=gen, dtype=DTYPE, requires_grad=True)
    kv = torch.randn(b, length, d, generator=gen, dtype=DTYPE, requires_grad=True)
    dy = torch.randn(b, length, d, generator=gen, dtype=DTYPE)
    y, attn = mha(q, kv, kv, attn_mask=_causal(length), need_weights=True, average_attn_weights=False)
    y.backward(dy)
    tensors = pack({"q": q, "kv": kv, "dy": dy}, mha, {"y": y, "attn": attn}, {"q": q.grad, "kv": kv.grad})
    return tensors, meta(d_model=d, heads=h, batch=b, seq_len=length, causal=True, key_padding=False,
                         description="nn.MultiheadAttention(16, 2), y = MHA(q, kv, kv) with a causal mask "
                                     "(SASRec's 'query' block attends from LN(x) to x)")


# ----------------------------------------------------------------------------- SASRec
# Full user histories u (time order); seq = left-pad(u[:-1]), pos = left-pad(u[1:]).
SASREC_HISTORIES = [
    [4, 17, 9, 23, 2, 11],               # 5 steps -> 3 padded slots
    [5, 12, 5, 30, 1, 8, 19, 27, 14],    # 8 steps, no padding; item 5 repeats
    [7, 21, 3],                          # 2 steps -> 6 padded slots
]


def sasrec_batch(num_items: int, maxlen: int, gen: torch.Generator):
    bsz = len(SASREC_HISTORIES)
    seq = torch.zeros(bsz, maxlen, dtype=torch.int64)
    pos = torch.zeros_like(seq)
    neg = torch.zeros_like(seq)
    for b, u in enumerate(SASREC_HISTORIES):
        n = len(u) - 1
        seq[b, maxlen - n:] = torch.tensor(u[:-1])
        pos[b, maxlen - n:] = torch.tensor(u[1:])
        for t in range(maxlen - n, maxlen):  # one negative per step, never in the user's history
            while True:
                cand = int(torch.randint(1, num_items + 1, (1,), generator=gen))
                if cand not in u:
                    break
            neg[b, t] = cand
    return seq, pos, neg


def make_sasrec(norm: str, mask_padding_keys: bool, seed: int):
    cfg = dict(num_items=30, maxlen=8, hidden=16, num_blocks=2, num_heads=2, dropout=0.0, norm=norm,
               positions="from_one", mask_padding_keys=mask_padding_keys, ffn="conv1d", ln_eps=1e-8)
    gen = torch.Generator().manual_seed(seed)
    model = SASRec(**cfg).to(DTYPE)
    randomize_(model, gen)
    with torch.no_grad():
        model.item_emb.weight[0].zero_()
        model.pos_emb.weight[0].zero_()
    model.eval()
    seq, pos, neg = sasrec_batch(cfg["num_items"], cfg["maxlen"], gen)
    feats = model.log2feats(seq)
    pos_logits = (feats * model.item_emb(pos)).sum(-1)
    neg_logits = (feats * model.item_emb(neg)).sum(-1)
    loss = model.loss(pos_logits, neg_logits, pos, l2_emb=0.0)
    loss.backward()
    score_all = feats[:, -1, :] @ model.item_emb.weight[1:].T
    # The module's own methods agree (under no_grad, 'pre'/'post' self-attention takes
    # PyTorch's inference fast path, which rounds differently: ~1e-15).
    with torch.no_grad():
        ref_p, ref_n = model(seq, pos, neg)
        assert torch.allclose(ref_p, pos_logits, rtol=0, atol=1e-12)
        assert torch.allclose(ref_n, neg_logits, rtol=0, atol=1e-12)
        assert torch.allclose(model.score_all(seq), score_all, rtol=0, atol=1e-12)
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    tensors = pack({"seq": seq, "pos": pos, "neg": neg}, model,
                   {"log_feats": feats, "pos_logits": pos_logits, "neg_logits": neg_logits, "loss": loss,
                    "score_all": score_all}, {})
    return tensors, meta(**cfg, l2_emb=0.0, scale_by_sqrt_d=True, batch=seq.shape[0],
                         description=f"SASRec, norm='{norm}', positions 'from_one', conv1d FFN, "
                                     f"mask_padding_keys={mask_padding_keys}; loss = BCE (pmixer), l2_emb = 0")


# ----------------------------------------------------------------------------- BERT4Rec
def make_bert4rec():
    cfg = dict(num_items=30, maxlen=8, hidden=16, num_blocks=2, num_heads=2, inner=64, dropout=0.0, ln_eps=1e-12)
    gen = torch.Generator().manual_seed(701)
    model = BERT4Rec(**cfg).to(DTYPE)
    randomize_(model, gen)
    with torch.no_grad():
        model.item_emb.weight[0].zero_()
    model.eval()
    m = model.mask_token  # 31
    seq = torch.tensor([
        [0, 0, 4, m, 9, 23, m, 11],
        [5, 12, m, 30, 1, 8, 19, m],
        [0, 0, 0, 0, 0, 7, 21, m],
    ], dtype=torch.int64)
    labels = torch.tensor([
        [0, 0, 0, 17, 0, 0, 2, 0],
        [0, 0, 5, 0, 0, 0, 0, 27],   # item 5 also appears unmasked at slot 0
        [0, 0, 0, 0, 0, 0, 0, 3],    # inference-like: [mask] appended at the end
    ], dtype=torch.int64)
    feats = model.encode(seq)
    flat = labels.reshape(-1)
    target_rows = torch.nonzero(flat != 0).squeeze(-1)
    logits = model.logits(feats.reshape(-1, cfg["hidden"])[target_rows])
    loss = torch.nn.functional.cross_entropy(logits, flat[target_rows] - 1)
    loss.backward()
    with torch.no_grad():
        ref_loss, ref_logits, ref_rows = model.loss(seq, labels)
        assert torch.equal(ref_rows, target_rows)
        assert torch.allclose(ref_logits, logits, rtol=0, atol=1e-12) and abs(float(ref_loss - loss)) < 1e-12
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), name
    tensors = pack({"seq": seq, "labels": labels}, model,
                   {"feats": feats, "target_rows": target_rows, "logits": logits, "loss": loss}, {})
    return tensors, meta(**cfg, mask_token=m, batch=seq.shape[0], gelu="erf",
                         description="BERT4Rec (post-norm, bidirectional, padded keys masked), "
                                     "loss = mean CE over the targets (labels != 0) among items 1..N")


GENERATORS = {
    "layer_norm": make_layer_norm,
    "mha_causal": make_mha_causal,
    "mha_bidirectional_padded": make_mha_bidirectional_padded,
    "mha_cross": make_mha_cross,
    "sasrec_query": lambda: make_sasrec("query", False, 501),
    "sasrec_pre": lambda: make_sasrec("pre", True, 502),
    "sasrec_post": lambda: make_sasrec("post", True, 503),
    "bert4rec": make_bert4rec,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="regenerate in memory and compare with the files")
    ap.add_argument("--out", type=pathlib.Path, default=HERE)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    worst = 0.0
    total = 0
    for name, make in GENERATORS.items():
        tensors, metadata = make()
        path = args.out / f"{name}.safetensors"
        if args.check:
            disk = load_file(path)
            assert sorted(disk) == sorted(tensors), f"{name}: tensor names differ"
            diff = max(float((disk[k].double() - tensors[k].double()).abs().max()) if tensors[k].numel() else 0.0
                       for k in tensors)
            worst = max(worst, diff)
            print(f"{name}: {len(tensors)} tensors, max |disk - now| = {diff:.3g}")
        else:
            write_safetensors(tensors, path, metadata)
            size = path.stat().st_size
            total += size
            print(f"{path.name}: {len(tensors)} tensors, {size} bytes")
    if args.check:
        return 0 if worst <= 1e-12 else 1
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
