#!/usr/bin/env python3
"""Golden files for the checkpoint layouts (layouts/*.json, models/checkpoint_layout.hpp).

For each public implementation (benchmarks/peers/reference_models/, and recblocks' own
PyTorch models in benchmarks/peers/torch_models.py) this builds the model with random weights
and writes two files:

    tests/golden/layout_<variant>.safetensors      the state_dict (float32), exactly what
                                                   safetensors.torch.save_file(model.state_dict())
                                                   writes: what a user of that code would load
    tests/golden/layout_<variant>.io.safetensors   seq I64 [B, L]: the histories in the
                                                   reference's own padding convention (full-length
                                                   AND short ones); seq_len I64 [B]: real items
                                                   per row; scores F64 [B, N]: the reference's
                                                   scores of items 1..N (column j = item j + 1),
                                                   computed in float64 from the float32 weights;
                                                   __metadata__: sizes, the layout file, the
                                                   padding convention

Usage (from the repository root, a few seconds):

    benchmarks/peers/.venv/bin/python tests/golden/make_layout_goldens.py
    benchmarks/peers/.venv/bin/python tests/golden/make_layout_goldens.py --check   # compare, do not write

Random weights as make_golden.py: LayerNorm weights 1 + 0.2 N(0,1), biases 0.1 N(0,1), matrices
N(0, 1/fan_in), tables N(0, 1/D); rows the reference keeps at zero (padding_idx) are zero.
tests/models/checkpoint_layout_test.cpp loads each state_dict through its layout and requires the
float model's scores within 1e-5 (relative to max(1, |score|)) of these and the same top-10.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import pathlib
import sys

import torch
from safetensors.torch import save

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))

N_ITEMS, MAXLEN, HIDDEN, BLOCKS, HEADS = 50, 16, 32, 2, 2
LENGTHS = [MAXLEN, MAXLEN, 1, 2, 5, 9, MAXLEN - 1, 12]  # full-length and short histories
FORMAT = "recblocks-layout-golden-1"


def variant(module, cls, layout, padding, model, ffn_inner=None, **kw):
    def build():
        m = importlib.import_module(module)
        return getattr(m, cls)(N_ITEMS, MAXLEN, HIDDEN, BLOCKS, HEADS, **kw)

    return dict(build=build, layout=layout, padding=padding, model=model, ffn_inner=ffn_inner)


def sasrec_variant(module, layout, padding, **kw):
    return variant(module, "SASRec", layout, padding, "sasrec", **kw)


def recblocks_sasrec():
    import torch_models

    return torch_models.SASRec(N_ITEMS, MAXLEN, HIDDEN, BLOCKS, HEADS, 0.0, norm="query", positions="from_one")


def recblocks_bert4rec():
    import torch_models

    return torch_models.BERT4Rec(N_ITEMS, MAXLEN, HIDDEN, BLOCKS, HEADS, dropout=0.0)


VARIANTS = {
    "pmixer_current": sasrec_variant("reference_models.pmixer_sasrec_current", "pmixer_current.json", "left"),
    "pmixer_current_norm_first": sasrec_variant(
        "reference_models.pmixer_sasrec_current", "pmixer_current_norm_first.json", "left", norm_first=True
    ),
    "pmixer_2023": sasrec_variant("reference_models.pmixer_sasrec_2023", "pmixer_2023.json", "left"),
    "recblocks_sasrec": dict(build=recblocks_sasrec, layout="recblocks_sasrec.json", padding="left", model="sasrec"),
    "recbole_sasrec": variant(
        "reference_models.recbole_sasrec", "SASRec", "recbole_sasrec.json", "right", "sasrec", ffn_inner=2 * HIDDEN,
        inner_size=2 * HIDDEN,
    ),
    "recbole_bert4rec": variant(
        "reference_models.recbole_bert4rec", "BERT4Rec", "recbole_bert4rec.json", "right", "bert4rec",
        ffn_inner=4 * HIDDEN, output_head=True,
    ),
    "recbole_bert4rec_no_head": variant(
        "reference_models.recbole_bert4rec", "BERT4Rec", "recbole_bert4rec_no_head.json", "right", "bert4rec",
        ffn_inner=4 * HIDDEN, output_head=False,
    ),
    "recblocks_bert4rec": dict(
        build=recblocks_bert4rec, layout="recblocks_bert4rec.json", padding="left_mask_appended", model="bert4rec",
        ffn_inner=4 * HIDDEN,
    ),
}


def randomise_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """make_golden.py's random parameters; padding rows (padding_idx) zero."""
    with torch.no_grad():
        for mod in model.modules():
            for name, p in mod.named_parameters(recurse=False):
                if isinstance(mod, torch.nn.LayerNorm) or (p.dim() == 1 and "norm" in type(mod).__name__.lower()):
                    if name == "weight" or name == "a_2":
                        p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
                    else:
                        p.copy_(0.1 * torch.randn(p.shape, generator=gen))
                elif isinstance(mod, torch.nn.Embedding):
                    p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
                    if mod.padding_idx is not None:
                        p[mod.padding_idx].zero_()
                elif p.dim() == 1:
                    p.copy_(0.1 * torch.randn(p.shape, generator=gen))
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def histories(gen: torch.Generator, padding: str):
    """seq [B, L] in the reference's convention and the real items per row. 'left_mask_appended':
    left-padded with the [mask] id N + 1 in the last slot (the caller's job in torch_models.BERT4Rec),
    so a row holds at most L - 1 items."""
    room = MAXLEN - 1 if padding == "left_mask_appended" else MAXLEN
    lengths = [min(n, room) for n in LENGTHS]
    seq = torch.zeros(len(lengths), MAXLEN, dtype=torch.long)
    for b, n in enumerate(lengths):
        items = torch.randint(1, N_ITEMS + 1, (n,), generator=gen)
        if padding == "left":
            seq[b, MAXLEN - n :] = items
        elif padding == "left_mask_appended":
            seq[b, MAXLEN - 1 - n : MAXLEN - 1] = items
            seq[b, MAXLEN - 1] = N_ITEMS + 1
        else:
            seq[b, :n] = items
    return seq, torch.tensor(lengths, dtype=torch.long)


def blob(tensors: dict, metadata: dict) -> bytes:
    """safetensors bytes with a sorted JSON header, so a regeneration is byte-identical."""
    raw = save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + raw[8 + n :]


def make(name: str, spec: dict):
    gen = torch.Generator().manual_seed(20261207 + sum(map(ord, name)))
    model = spec["build"]().eval()
    randomise_(model, gen)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    # The reference's scores in float64 from exactly the float32 weights a user would save.
    model.load_state_dict(state)
    model = model.double()
    seq, seq_len = histories(gen, spec["padding"])
    with torch.no_grad():
        scores = (model.score_all(seq, seq_len) if spec["padding"] == "right" else model.score_all(seq)).double()
    assert scores.shape == (len(LENGTHS), N_ITEMS) and torch.isfinite(scores).all()
    meta = {
        "format": FORMAT,
        "layout": spec["layout"],
        "model": spec["model"],
        "padding": spec["padding"],
        "num_items": str(N_ITEMS),
        "max_len": str(MAXLEN),
        "d_model": str(HIDDEN),
        "num_blocks": str(BLOCKS),
        "heads": str(HEADS),
        "ffn_inner": str(spec.get("ffn_inner") or HIDDEN),
        "torch_version": torch.__version__.split("+")[0],
    }
    return blob(state, {"format": FORMAT, "layout": spec["layout"]}), blob(
        {"seq": seq, "seq_len": seq_len, "scores": scores.contiguous()}, meta
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--check", action="store_true", help="regenerate in memory and compare with the files")
    args = ap.parse_args()
    torch.set_num_threads(1)
    bad = 0
    for name in args.variants.split(","):
        weights, io = make(name, VARIANTS[name])
        for suffix, data in ((".safetensors", weights), (".io.safetensors", io)):
            path = HERE / f"layout_{name}{suffix}"
            if args.check:
                same = path.exists() and path.read_bytes() == data
                bad += not same
                print(f"{path.name}: {'same' if same else 'DIFFERS'}")
            else:
                tmp = path.with_suffix(path.suffix + ".tmp")
                tmp.write_bytes(data)
                tmp.replace(path)  # atomic
                print(f"wrote {path.name} ({len(data)} bytes)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
