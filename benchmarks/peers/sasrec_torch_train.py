#!/usr/bin/env python3
"""SASRec accuracy peer: train and evaluate the PyTorch reference SASRec
(benchmarks/peers/torch_models.py) on a MovieLens ratings CSV with the data
pipeline, sampler and evaluation protocol of the C++ program (examples/sasrec.cpp).

What is replicated from the C++ side, and how exactly
-----------------------------------------------------
* Reading (include/recblocks/data/sequence_dataset.hpp, read_movielens_csv): rows
  "userId,movieId,rating,timestamp" after a header; a stable sort by (userId,
  timestamp), so file order breaks timestamp ties; users in ascending userId
  (dense user index u = 0, 1, ...); movieIds remapped densely to 1..N in
  ASCENDING movieId order (not order of first appearance); 0 = padding.
* Split (data/leave_one_out.hpp): last item = test, second-to-last = validation,
  the rest = training; users with < 3 interactions keep everything for training
  and have no validation/test item.
* Batches (data/next_item_batches.hpp), bit-identical to the C++ sampler: every
  epoch visits each user with >= 2 training items once, in the order of a
  Fisher-Yates shuffle driven by Rng(seed, 1_000_000 + epoch); batch b of the
  epoch holds users [128 b, 128 b + 128) of that order; a row is
  ids = train[:-1], pos = train[1:] (last maxlen of each, left-padded with 0) and
  one negative per non-padded slot, uniform over 1..N minus the user's training
  items, by rejection with Rng(seed, 2_000_000).substream(step).substream(u).
  Rng is recblocks' counter-based Philox4x32-10 (core/rng.hpp), ported to numpy
  below, so the same --seed gives the same users, batches and negatives as the
  C++ trainer. (Weight initialisation and dropout masks come from torch's RNG:
  same distributions as the C++ model with --init recblocks, not the same values.)
* Model: SASRec(norm='query' (the authors' block), positions='from_one',
  mask_padding_keys=False, ffn='conv1d', ln_eps=1e-8), D 50, 2 blocks, 1 head,
  dropout 0.2, maxlen 200. Adam lr 1e-3, betas (0.9, 0.98), eps 1e-8, batch 128,
  BCE loss as pmixer: mean over non-padded slots of softplus(-pos) plus the same
  mean of softplus(neg) (SASRec.loss), l2_emb 0.
* Evaluation (eval/next_item_evaluation.hpp, eval/protocols.hpp): every user with
  a test item; input = train + validation item (last maxlen, left-padded);
  score = last position's features . item table. Excluded items ("history") =
  the user's train + validation items. Sampled protocol: the target against 100
  negatives drawn uniformly WITHOUT replacement from 1..N minus history minus the
  target (partial Fisher-Yates over the eligible ids in ascending order, driven by
  Rng(seed, u): the same candidates as the C++ evaluator). Full protocol: the
  target against every item not in history. Rank = number of candidates with a
  strictly greater score (ties favour the target); HR@K = [rank < K],
  NDCG@K = 1/log2(rank + 2), MRR@K = 1/(rank + 1) (0 when rank >= K).
  Validation (every --eval_every epochs, like the C++ program): input = train,
  target = validation item, history = train.

Initialisation (--init): 'recblocks' (default) = the C++ model's distributions:
item and position tables N(0, 1/D) (padding rows zero), attention in_proj
Xavier-uniform with zero biases, out_proj U(+-1/sqrt(D)) with zero bias,
feed-forward weights and biases U(+-1/sqrt(D)), LayerNorm 1/0 (torch's defaults
except the tables); 'pmixer' = xavier_normal_ on every >= 2-D parameter
(pmixer/SASRec.pytorch); 'torch' = torch's defaults (tables N(0, 1)).

--attn ref (default) runs torch_models.SASRec as written (nn.MultiheadAttention
with an explicit [B*H, L, L] mask); --attn sdpa computes the same function
(mask_padding_keys=False: causal mask only, so no query row is fully masked)
with F.scaled_dot_product_attention(is_causal=True) and F.linear for the 1x1
convolutions: the same parameters, faster, different dropout draws.

Output: one line per epoch on stdout ("epoch E  loss L  S seq/s ..."), progress
on stderr, and as the LAST stdout line one JSON object:
  {"model": "sasrec-torch", "protocol": "sampled", "seed": 42, "users": 610,
   "HR@10": .., "NDCG@10": .., "MRR@10": .., "epochs": 200,
   "train_sequences_per_second": .., "threads": 2, ...}
With --eval both the flat metrics are the sampled protocol's and a "full"
object holds the full-ranking ones.

Usage (from the repository root):
  benchmarks/peers/.venv/bin/python benchmarks/peers/sasrec_torch_train.py \\
      --dataset data/ml-latest-small/ratings.csv --num_epochs 200 --seed 42 --threads 2 --eval both
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# --------------------------------------------------------------------------------------
# recblocks' Rng (include/recblocks/core/rng.hpp): Philox4x32-10, counter
# {block lo, block hi, stream lo, stream hi}, key {seed lo, seed hi}. Vectorised over
# numpy arrays of uint64 holding 32-bit values (products of two 32-bit values fit).
# --------------------------------------------------------------------------------------
_M32 = np.uint64(0xFFFFFFFF)
_MUL0, _MUL1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_S32 = np.uint64(32)


def _philox(c0, c1, c2, c3, k0, k1):
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2, c3))
    k0, k1 = np.asarray(k0, dtype=np.uint64), np.asarray(k1, dtype=np.uint64)
    for rnd in range(10):
        if rnd > 0:
            k0 = (k0 + _W0) & _M32
            k1 = (k1 + _W1) & _M32
        p0 = _MUL0 * c0
        p1 = _MUL1 * c2
        c0, c1, c2, c3 = (p1 >> _S32) ^ c1 ^ k0, p1 & _M32, (p0 >> _S32) ^ c3 ^ k1, p0 & _M32
    return c0, c1, c2, c3


class Rng:
    """recblocks::Rng. `stream` may be a numpy uint64 array (one stream per element)."""

    def __init__(self, seed: int, stream=0):
        self.k0 = np.uint64(seed & 0xFFFFFFFF)
        self.k1 = np.uint64((seed >> 32) & 0xFFFFFFFF)
        self.stream = np.asarray(stream, dtype=np.uint64)

    def u32(self, i):
        """u32(i) for i an int or uint64 array (broadcast against the streams)."""
        i = np.asarray(i, dtype=np.uint64)
        blk = i >> np.uint64(2)
        out = _philox(blk & _M32, blk >> _S32, self.stream & _M32, self.stream >> _S32, self.k0, self.k1)
        lane = i & np.uint64(3)
        return np.select([lane == 0, lane == 1, lane == 2], out[:3], out[3]).astype(np.uint64)

    def below(self, i, n):
        """floor(u32(i) * n / 2^32): uniform in [0, n)."""
        return (self.u32(i) * np.asarray(n, dtype=np.uint64)) >> _S32

    def substream(self, child):
        child = np.asarray(child, dtype=np.uint64)
        h = _philox(child & _M32, child >> _S32, self.stream & _M32, self.stream >> _S32,
                    self.k0 ^ np.uint64(0x5BD1E995), self.k1 ^ np.uint64(0x1B873593))
        r = Rng.__new__(Rng)
        r.k0, r.k1 = self.k0, self.k1
        r.stream = (h[0] << _S32) | h[1]
        return r


# --------------------------------------------------------------------------------------
# Data: read_movielens_csv + leave_one_out
# --------------------------------------------------------------------------------------
def read_movielens_csv(path: str):
    """Returns (sequences per dense user, user_ids, item_ids with item_ids[0] = 0)."""
    with open(path, newline="") as f:
        header = f.readline()
        if not header.startswith("userId,movieId"):
            raise ValueError(f"{path}:1: expected the header 'userId,movieId,rating,timestamp', got {header!r}")
        users, movies, times = [], [], []
        for no, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split(",")
            if len(fields) != 4:
                raise ValueError(f"{path}:{no}: expected userId,movieId,rating,timestamp, got {line!r}")
            users.append(int(fields[0]))
            movies.append(int(fields[1]))
            times.append(int(fields[3]))
    users = np.asarray(users, dtype=np.int64)
    movies = np.asarray(movies, dtype=np.int64)
    times = np.asarray(times, dtype=np.int64)
    # stable sort by (user, time): lexsort is stable, the last key is the primary one
    order = np.lexsort((times, users))
    item_ids = np.concatenate([[0], np.unique(movies)])  # ascending movieId -> 1..N
    dense = np.searchsorted(item_ids[1:], movies) + 1
    users_sorted, dense_sorted = users[order], dense[order]
    user_ids, starts = np.unique(users_sorted, return_index=True)
    bounds = list(starts) + [len(order)]
    sequences = [dense_sorted[bounds[i] : bounds[i + 1]].astype(np.int64) for i in range(len(user_ids))]
    return sequences, user_ids, item_ids


def read_sequence_file(path: str):
    """S3-Rec's "user item item ..." lines (Amazon Sports, Beauty, ...), as data::read_sequence_file:
    users ordered by id (a user on several lines keeps the items of each, in file order), item ids
    remapped densely to 1..N in ascending order. Returns what read_movielens_csv returns."""
    by_user = {}
    with open(path) as f:
        for no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or not all(x.isdigit() and int(x) >= 1 for x in fields):
                raise ValueError(f"{path}:{no}: expected 'user item item ...' (ids >= 1), got {line.rstrip()!r}")
            by_user.setdefault(int(fields[0]), []).extend(int(x) for x in fields[1:])
    item_ids = np.concatenate([[0], np.unique(np.concatenate([np.asarray(v) for v in by_user.values()]))])
    user_ids = np.asarray(sorted(by_user), dtype=np.int64)
    sequences = [(np.searchsorted(item_ids[1:], np.asarray(by_user[u])) + 1).astype(np.int64) for u in user_ids]
    return sequences, user_ids, item_ids.astype(np.int64)


def leave_one_out(sequences):
    train, valid, test = [], [], []
    for s in sequences:
        if len(s) < 3:
            train.append(s)
            valid.append(0)
            test.append(0)
        else:
            train.append(s[:-2])
            valid.append(int(s[-2]))
            test.append(int(s[-1]))
    return train, valid, test


def left_pad(seq, maxlen):
    out = np.zeros(maxlen, dtype=np.int64)
    n = min(maxlen, len(seq))
    if n:
        out[maxlen - n :] = seq[len(seq) - n :]
    return out


# --------------------------------------------------------------------------------------
# Sampler: data::NextItemBatches
# --------------------------------------------------------------------------------------
def epoch_order(eligible, seed: int, epoch: int):
    """The users of an epoch (data::NextItemBatches / data::ClozeBatches::epoch_order): a
    Fisher-Yates shuffle of `eligible` driven by Rng(seed, 1_000_000 + epoch)."""
    order = list(eligible)
    n = len(order)
    if n > 1:
        rng = Rng(seed, 1_000_000 + epoch)
        i = np.arange(n, 1, -1, dtype=np.uint64)  # i = n .. 2
        js = rng.below(i, i).astype(np.int64)
        for i_, j in zip(range(n, 1, -1), js):
            order[i_ - 1], order[j] = order[j], order[i_ - 1]
    return order


class NextItemBatches:
    def __init__(self, train, num_items: int, maxlen: int, seed: int):
        self.train, self.num_items, self.maxlen, self.seed = train, num_items, maxlen, seed
        self.seen = [np.unique(s) for s in train]
        self.eligible = [u for u, s in enumerate(train) if len(s) >= 2]
        for u in self.eligible:
            if len(self.seen[u]) >= num_items:
                raise ValueError(f"user {u} has interacted with every item; no negative can be drawn")
        if not self.eligible:
            raise ValueError("no user has two or more training items")
        self.neg_root = Rng(seed, 2_000_000)

    def batches_per_epoch(self, batch: int) -> int:
        return (len(self.eligible) + batch - 1) // batch

    def epoch_order(self, epoch: int):
        return epoch_order(self.eligible, self.seed, epoch)

    def _negatives(self, u: int, rng: Rng, count: int):
        """`count` draws of rng.below(draw++, N) + 1, rejecting the user's training items."""
        out = np.empty(0, dtype=np.int64)
        draw = 0
        seen = self.seen[u]
        while len(out) < count:
            want = count - len(out)
            chunk = want + want // 4 + 16
            items = rng.below(np.arange(draw, draw + chunk, dtype=np.uint64), self.num_items).astype(np.int64) + 1
            keep = items[~np.isin(items, seen, assume_unique=False)]
            out = np.concatenate([out, keep[:want]])
            draw += chunk
        return out

    def fill(self, users, step: int):
        b, L = len(users), self.maxlen
        ids = np.zeros((b, L), dtype=np.int64)
        pos = np.zeros((b, L), dtype=np.int64)
        neg = np.zeros((b, L), dtype=np.int64)
        step_rng = self.neg_root.substream(step)
        for r, u in enumerate(users):
            s = self.train[u]
            n = min(L, len(s) - 1)
            ids[r, L - n :] = s[len(s) - 1 - n : len(s) - 1]
            pos[r, L - n :] = s[len(s) - n :]
            neg[r, L - n :] = self._negatives(u, step_rng.substream(u), n)
        return ids, pos, neg


# --------------------------------------------------------------------------------------
# Evaluation protocols: eval/protocols.hpp
# --------------------------------------------------------------------------------------
def sampled_candidates(num_items: int, target: int, history, seed: int, user: int, num_negatives: int = 100):
    taken = np.zeros(num_items + 1, dtype=bool)
    taken[np.asarray(history, dtype=np.int64)] = True
    taken[0] = True
    taken[target] = True
    eligible = np.nonzero(~taken)[0].astype(np.int64)  # ascending ids
    e = len(eligible)
    if e < num_negatives:
        raise ValueError(f"user {user} has {e} eligible negatives but {num_negatives} are needed")
    rng = Rng(seed, user)
    i = np.arange(num_negatives, dtype=np.uint64)
    js = (i + rng.below(i, np.uint64(e) - i)).astype(np.int64)
    for a, j in enumerate(js):  # partial Fisher-Yates, swaps in draw order
        eligible[a], eligible[j] = eligible[j], eligible[a]
    return np.concatenate([[target], eligible[:num_negatives]])


class Metrics:
    def __init__(self, ks=(1, 5, 10, 20)):
        self.ks = ks
        self.ranks = []

    def add(self, rank: int):
        self.ranks.append(rank)

    def result(self):
        r = np.asarray(self.ranks, dtype=np.float64)
        out = {"users": len(self.ranks)}
        for k in self.ks:
            hit = r < k
            out[f"HR@{k}"] = float(hit.mean())
            out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(r + 2.0), 0.0).mean())
            out[f"MRR@{k}"] = float(np.where(hit, 1.0 / (r + 1.0), 0.0).mean())
        return out


def evaluate(score_all, split, num_items: int, maxlen: int, protocols, seed: int, validation: bool = False,
             batch_size: int = 256):
    """score_all: LongTensor [B, L] -> FloatTensor [B, N] (column j = item j+1)."""
    import torch

    train, valid, test = split
    users = [u for u in range(len(test)) if test[u] != 0]
    acc = {p: Metrics() for p in protocols}
    for b0 in range(0, len(users), batch_size):
        chunk = users[b0 : b0 + batch_size]
        inputs = []
        for u in chunk:
            inputs.append(train[u] if validation else np.concatenate([train[u], [valid[u]]]))
        ids = torch.from_numpy(np.stack([left_pad(s, maxlen) for s in inputs]))
        with torch.inference_mode():
            scores = score_all(ids).float().numpy()
        scores = np.concatenate([np.full((len(chunk), 1), -np.inf, dtype=np.float32), scores], axis=1)  # [B, N+1]
        for i, u in enumerate(chunk):
            target = valid[u] if validation else test[u]
            row = scores[i]
            t = row[target]
            if np.isnan(t):
                raise ValueError(f"user {u}: the target's score is NaN")
            hist = inputs[i]
            if "sampled" in acc:
                cand = sampled_candidates(num_items, target, hist, seed, u)
                cs = row[cand[1:]]
                if np.isnan(cs).any():
                    raise ValueError(f"user {u}: a candidate's score is NaN")
                acc["sampled"].add(int((cs > t).sum()))
            if "full" in acc:
                masked = row.copy()
                masked[hist] = -np.inf
                masked[0] = -np.inf
                masked[target] = -np.inf  # never counted (not > t anyway)
                acc["full"].add(int((masked > t).sum()))
    return {p: a.result() for p, a in acc.items()}


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------
def init_recblocks_(model):
    """The C++ model's initial distributions (see the module docstring)."""
    import torch
    import torch.nn as nn

    d = model.hidden
    with torch.no_grad():
        model.item_emb.weight.normal_(0.0, 1.0 / math.sqrt(d))
        model.item_emb.weight[0].zero_()
        model.pos_emb.weight.normal_(0.0, 1.0 / math.sqrt(d))
        if model.positions == "from_one":
            model.pos_emb.weight[0].zero_()
        for mha in model.attention_layers:
            nn.init.xavier_uniform_(mha.in_proj_weight)
            mha.in_proj_bias.zero_()
            bound = 1.0 / math.sqrt(d)
            mha.out_proj.weight.uniform_(-bound, bound)
            mha.out_proj.bias.zero_()
        for ffn in model.forward_layers:
            for layer in ([ffn.conv1, ffn.conv2] if ffn.ffn == "conv1d" else [ffn.linear1, ffn.linear2]):
                bound = 1.0 / math.sqrt(d)
                layer.weight.uniform_(-bound, bound)
                layer.bias.uniform_(-bound, bound)
        for ln in list(model.attention_layernorms) + list(model.forward_layernorms) + [model.last_layernorm]:
            ln.weight.fill_(1.0)
            ln.bias.zero_()
    return model


def sdpa_log2feats(model, seq):
    """torch_models.SASRec.log2feats for norm='query', mask_padding_keys=False with
    F.scaled_dot_product_attention(is_causal=True) and F.linear for the 1x1 convolutions."""
    import torch
    import torch.nn.functional as F

    assert model.norm == "query" and not model.mask_padding_keys
    keep_f = (seq != 0).unsqueeze(-1).to(model.item_emb.weight.dtype)
    x = model.embed(seq)
    bsz, L, D = x.shape
    p_attn = model.attention_layers[0].dropout if model.training else 0.0
    for ln_a, mha, ln_f, ffn in zip(model.attention_layernorms, model.attention_layers, model.forward_layernorms,
                                    model.forward_layers):
        H = mha.num_heads
        w, b = mha.in_proj_weight, mha.in_proj_bias
        q = ln_a(x)
        qh = F.linear(q, w[:D], b[:D]).view(bsz, L, H, D // H).transpose(1, 2)
        kv = F.linear(x, w[D:], b[D:])
        kh = kv[..., :D].reshape(bsz, L, H, D // H).transpose(1, 2)
        vh = kv[..., D:].reshape(bsz, L, H, D // H).transpose(1, 2)
        a = F.scaled_dot_product_attention(qh, kh, vh, dropout_p=p_attn, is_causal=True)
        a = F.linear(a.transpose(1, 2).reshape(bsz, L, D), mha.out_proj.weight, mha.out_proj.bias)
        x = ln_f(q + a)
        if ffn.ffn == "conv1d":
            w1, b1, w2, b2 = ffn.conv1.weight[:, :, 0], ffn.conv1.bias, ffn.conv2.weight[:, :, 0], ffn.conv2.bias
        else:
            w1, b1, w2, b2 = ffn.linear1.weight, ffn.linear1.bias, ffn.linear2.weight, ffn.linear2.bias
        h = ffn.dropout1(torch.relu(F.linear(x, w1, b1)))
        x = x + ffn.dropout2(F.linear(h, w2, b2))
        x = x * keep_f
    return model.last_layernorm(x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/ml-latest-small/ratings.csv")
    ap.add_argument("--format", choices=["auto", "movielens-csv", "sequences"], default="auto",
                    help="auto: .csv = MovieLens ratings, else S3-Rec 'user item item ...' lines")
    ap.add_argument("--maxlen", type=int, default=200)
    ap.add_argument("--hidden_units", type=int, default=50)
    ap.add_argument("--num_blocks", type=int, default=2)
    ap.add_argument("--num_heads", type=int, default=1)
    ap.add_argument("--dropout_rate", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch_size", type=int, default=128)
    ap.add_argument("--num_epochs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42, help="batches, negatives, evaluation draws and torch's RNG")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--eval", choices=["sampled", "full", "both"], default="sampled")
    ap.add_argument("--eval_every", type=int, default=20, help="validation every E epochs (0 = never)")
    ap.add_argument("--init", choices=["recblocks", "pmixer", "torch"], default="recblocks")
    ap.add_argument("--attn", choices=["ref", "sdpa"], default="ref")
    ap.add_argument("--save", default="", help="write the final state_dict (safetensors)")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda (the accuracy runs may use a GPU)")
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(args.threads))
    import torch

    from torch_models import SASRec, init_pmixer_

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    t_load = time.perf_counter()
    if args.format == "sequences" or (args.format == "auto" and not args.dataset.endswith(".csv")):
        sequences, user_ids, item_ids = read_sequence_file(args.dataset)
    else:
        sequences, user_ids, item_ids = read_movielens_csv(args.dataset)
    num_items = len(item_ids) - 1
    split = leave_one_out(sequences)
    train, valid, test = split
    sampler = NextItemBatches(train, num_items, args.maxlen, args.seed)
    print(f"sasrec-torch: {len(sequences)} users, {num_items} items, {sum(len(s) for s in sequences)} interactions; "
          f"D={args.hidden_units} L={args.maxlen} blocks={args.num_blocks} heads={args.num_heads} "
          f"threads={torch.get_num_threads()} init={args.init} attn={args.attn} torch={torch.__version__} "
          f"(data {time.perf_counter() - t_load:.1f} s)", flush=True)

    model = SASRec(num_items, args.maxlen, args.hidden_units, args.num_blocks, args.num_heads, args.dropout_rate,
                   norm="query", positions="from_one", mask_padding_keys=False, ffn="conv1d", ln_eps=1e-8)
    if args.init == "recblocks":
        init_recblocks_(model)
    elif args.init == "pmixer":
        init_pmixer_(model)
    device = torch.device(args.device)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-8)

    feats = (lambda s: sdpa_log2feats(model, s)) if args.attn == "sdpa" else model.log2feats

    def score_all(seq):
        last = feats(seq.to(device))[:, -1, :]
        return (last @ model.item_emb.weight[1:].T).cpu()

    protocols = ["sampled", "full"] if args.eval == "both" else [args.eval]
    per_epoch = sampler.batches_per_epoch(args.batch_size)
    step = 0
    train_seconds, train_sequences = 0.0, 0
    tty = sys.stderr.isatty()
    for epoch in range(args.num_epochs):
        model.train()
        t0 = time.perf_counter()
        order = sampler.epoch_order(epoch)
        loss_sum, n_steps, seqs = 0.0, 0, 0
        for b in range(per_epoch):
            users = order[b * args.batch_size : (b + 1) * args.batch_size]
            ids, pos, neg = (torch.from_numpy(a).to(device) for a in sampler.fill(users, step))
            f = feats(ids)
            pos_logits = (f * model.item_emb(pos)).sum(dim=-1)
            neg_logits = (f * model.item_emb(neg)).sum(dim=-1)
            loss = model.loss(pos_logits, neg_logits, pos)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"training step {step}: the loss is {lv}")
            opt.step()
            step += 1
            loss_sum += lv
            n_steps += 1
            seqs += len(users)
            if tty:
                print(f"\repoch {epoch + 1}  batch {b + 1}/{per_epoch}  loss {loss_sum / n_steps:.4f}   ", end="",
                      file=sys.stderr, flush=True)
        dt = time.perf_counter() - t0
        train_seconds += dt
        train_sequences += seqs
        if tty:
            print("\r", end="", file=sys.stderr)
        line = (f"epoch {epoch + 1}  loss {loss_sum / n_steps:.6g}  {seqs / dt:.6g} seq/s  "
                f"ETA {dt * (args.num_epochs - epoch - 1):.4g} s")
        if args.eval_every > 0 and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.num_epochs):
            model.eval()
            m = evaluate(score_all, split, num_items, args.maxlen, protocols[:1], args.seed, validation=True)
            line += f"  valid NDCG@10 {m[protocols[0]]['NDCG@10']:.6g} HR@10 {m[protocols[0]]['HR@10']:.6g}"
        print(line, flush=True)

    model.eval()
    t_eval = time.perf_counter()
    res = evaluate(score_all, split, num_items, args.maxlen, protocols, args.seed)
    eval_seconds = time.perf_counter() - t_eval
    if args.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.save)
    first = res[protocols[0]]
    out = {"model": "sasrec-torch", "protocol": protocols[0], "seed": args.seed, "users": first["users"],
           "HR@10": first["HR@10"], "NDCG@10": first["NDCG@10"], "MRR@10": first["MRR@10"],
           "epochs": args.num_epochs,
           "train_sequences_per_second": round(train_sequences / train_seconds, 1) if train_seconds > 0 else 0.0,
           "train_seconds": round(train_seconds, 2), "eval_seconds": round(eval_seconds, 2),
           "threads": torch.get_num_threads(), "init": args.init, "attn": args.attn, "torch": torch.__version__}
    for k in (1, 5, 20):
        out[f"HR@{k}"], out[f"NDCG@{k}"] = first[f"HR@{k}"], first[f"NDCG@{k}"]
    if len(protocols) > 1:
        out["full"] = {k: v for k, v in res["full"].items()}
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
