#!/usr/bin/env python3
"""BERT4Rec accuracy peer: train and evaluate the PyTorch reference BERT4Rec
(benchmarks/peers/torch_models.py, class BERT4Rec) on a MovieLens ratings CSV with
the data pipeline, masking, optimiser and evaluation protocol of the C++ program
(examples/bert4rec.cpp).

What is replicated from the C++ side
------------------------------------
* Reading, leave-one-out split, left padding and the evaluation protocols: the
  functions of sasrec_torch_train.py (see its docstring), shared, not copied.
* Batches and masks (data/cloze_batches.hpp), bit-identical to the C++ sampler:
  epoch e visits every user with >= 2 training items once, in the order of a
  Fisher-Yates shuffle driven by Rng(seed, 1_000_000 + e); batch b of the epoch
  holds users [B b, B b + B) of that order. A row is the last maxlen training items,
  left-padded; with r = Rng(seed, 3_000_000).substream(step).substream(user), slot t
  is masked when r.uniform(t) < mask_prob (float32 compare); with mask_last_prob Q > 0,
  r.uniform(maxlen + 1) < Q makes the row mask only its last item; a row with no
  masked slot masks slot pad + r.below(maxlen, n). Masked slots hold [mask] = N + 1
  and their label is the item.
* Model: BERT4Rec(D, blocks, heads, inner 4D, dropout, ln_eps 1e-12), BERT's
  initialisation (truncated normal std 0.02 at 2 sigma, biases 0; the C++ model's
  distribution, not its values). Loss: mean cross-entropy over the masked slots,
  softmax over the N items.
* Optimiser (train/cloze_trainer.hpp): AdamW (betas 0.9/0.999, eps 1e-6), decoupled
  weight decay on >= 2-D parameters (weights and tables) only, not on biases, norms or
  out_bias; global-norm clipping; lr(s) = lr (s+1)/warmup for s < warmup, then linear
  decay to 0 at total_steps = epochs x batches per epoch.
* Evaluation: input = train + validation item, left-padded to maxlen, shifted left by
  one slot with [mask] in the last slot (BERT4Rec::score_all); scores of items 1..N
  at that slot. Sampled (100 uniform negatives, the C++ candidates) and full ranking.

Weights and dropout come from torch's RNG: the same distributions as the C++ model,
not the same values, so runs agree in distribution over seeds, not bit for bit.

Output: one line per epoch on stdout, progress on stderr, and as the LAST stdout
line one JSON object ({"model": "bert4rec-torch", "protocol": "sampled", "seed": ..,
"HR@10": .., "NDCG@10": .., "MRR@10": .., "full": {...}, ...}).

Usage (from the repository root):
  benchmarks/peers/.venv/bin/python benchmarks/peers/bert4rec_torch_train.py \\
      --dataset data/ml-latest-small/ratings.csv --num_epochs 150 --batch_size 64 --lr 1e-3 --seed 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sasrec_torch_train import Rng, epoch_order, evaluate, leave_one_out, read_movielens_csv  # noqa: E402


class ClozeBatches:
    """data::ClozeBatches: the users of each step and their masked rows."""

    def __init__(self, train, num_items: int, maxlen: int, mask_prob: float, seed: int, mask_last_prob: float = 0.0):
        self.train, self.num_items, self.maxlen, self.seed = train, num_items, maxlen, seed
        self.mask_prob = np.float32(mask_prob)
        self.mask_last_prob = np.float32(mask_last_prob)
        self.eligible = [u for u, s in enumerate(train) if len(s) >= 2]
        if not self.eligible:
            raise ValueError("no user has two or more training items")
        self.root = Rng(seed, 3_000_000)

    def batches_per_epoch(self, batch: int) -> int:
        return (len(self.eligible) + batch - 1) // batch

    def epoch_order(self, epoch: int):
        return epoch_order(self.eligible, self.seed, epoch)

    @staticmethod
    def _uniform(rng: Rng, i):
        """Rng::uniform: (u32 >> 8) * 2^-24 as float32."""
        return ((rng.u32(i) >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)).astype(np.float32)

    def fill(self, users, step: int):
        b, L = len(users), self.maxlen
        ids = np.zeros((b, L), dtype=np.int64)
        labels = np.zeros((b, L), dtype=np.int64)
        step_rng = self.root.substream(step)
        mask = self.num_items + 1
        slots = np.arange(L, dtype=np.uint64)
        for r, u in enumerate(users):
            s = self.train[u]
            n = min(L, len(s))
            pad = L - n
            rng = step_rng.substream(u)
            ids[r, pad:] = s[len(s) - n :]
            last_only = self.mask_last_prob > 0 and self._uniform(rng, L + 1) < self.mask_last_prob
            if last_only:
                hit = np.zeros(L, dtype=bool)
                hit[L - 1] = n > 0
            else:
                hit = self._uniform(rng, slots) < self.mask_prob
                hit[:pad] = False
            if not hit.any() and n > 0:
                hit[pad + int(rng.below(L, n))] = True
            labels[r, hit] = ids[r, hit]
            ids[r, hit] = mask
        return ids, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/ml-latest-small/ratings.csv")
    ap.add_argument("--maxlen", type=int, default=200)
    ap.add_argument("--hidden_units", type=int, default=64)
    ap.add_argument("--num_blocks", type=int, default=2)
    ap.add_argument("--num_heads", type=int, default=2)
    ap.add_argument("--dropout_rate", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch_size", type=int, default=256)
    ap.add_argument("--num_epochs", type=int, default=200)
    ap.add_argument("--mask_prob", type=float, default=0.2)
    ap.add_argument("--mask_last_prob", type=float, default=0.0)
    ap.add_argument("--warmup_steps", type=int, default=100)
    ap.add_argument("--weight_decay", type=float, default=0.01)
    ap.add_argument("--clip_norm", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--eval", choices=["sampled", "full", "both"], default="both")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from torch_models import BERT4Rec, init_bert_

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)

    sequences, _, item_ids = read_movielens_csv(args.dataset)
    n_items = len(item_ids) - 1
    split = leave_one_out(sequences)
    train = split[0]
    batches = ClozeBatches(train, n_items, args.maxlen, args.mask_prob, args.seed, args.mask_last_prob)
    per_epoch = batches.batches_per_epoch(args.batch_size)
    total = args.num_epochs * per_epoch
    if total <= args.warmup_steps:
        raise SystemExit(f"the run has {total} steps but --warmup_steps is {args.warmup_steps}")

    model = init_bert_(BERT4Rec(n_items, args.maxlen, args.hidden_units, args.num_blocks, args.num_heads,
                                dropout=args.dropout_rate)).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-6)

    def lr_at(s: int) -> float:
        if s < args.warmup_steps:
            return args.lr * (s + 1) / args.warmup_steps
        return args.lr * max(0.0, 1.0 - (s - args.warmup_steps) / (total - args.warmup_steps))

    step = 0
    t_train = 0.0
    seqs = 0
    for epoch in range(args.num_epochs):
        model.train()
        order = batches.epoch_order(epoch)
        t0 = time.perf_counter()
        loss_sum = 0.0
        for b in range(per_epoch):
            users = order[b * args.batch_size : (b + 1) * args.batch_size]
            ids, labels = batches.fill(users, step)
            ids_t = torch.from_numpy(ids).to(dev)
            labels_t = torch.from_numpy(labels).to(dev)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss, _, _ = model.loss(ids_t, labels_t)
            if not torch.isfinite(loss):
                raise SystemExit(f"training step {step}: the loss is {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_norm)
            opt.step()
            with torch.no_grad():
                model.item_emb.weight[0].zero_()  # padding row (padding_idx keeps its gradient 0; decay would not move it either)
            loss_sum += float(loss.item())
            seqs += len(users)
            step += 1
        dt = time.perf_counter() - t0
        t_train += dt
        print(f"epoch {epoch + 1}  loss {loss_sum / per_epoch:.5f}  lr {lr_at(step - 1):.3g}  "
              f"{per_epoch * args.batch_size / dt:.1f} seq/s", flush=True)

    model.eval()
    mask = n_items + 1

    def score_all(ids):
        shifted = torch.cat([ids[:, 1:], torch.full((ids.shape[0], 1), mask, dtype=ids.dtype)], dim=1).to(dev)
        return model.score_all(shifted).float().cpu()

    protocols = ["sampled", "full"] if args.eval == "both" else [args.eval]
    res = evaluate(score_all, split, n_items, args.maxlen, protocols, args.seed)
    first = protocols[0]
    out = {"model": "bert4rec-torch", "protocol": first, "seed": args.seed}
    out.update({k: v for k, v in res[first].items()})
    if len(protocols) > 1:
        out["full"] = res["full"]
    out.update({"epochs": args.num_epochs, "steps": step, "train_sequences_per_second": seqs / max(t_train, 1e-9),
                "device": str(dev), "torch": torch.__version__})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
