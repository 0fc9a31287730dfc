#!/usr/bin/env python3
"""Trains the PyTorch reference SASRec on ml-latest-small and writes two interop golden files:

    tests/golden/sasrec_trained_query_conv1d.safetensors   norm='query' (the authors' block), nn.Conv1d FFN
    tests/golden/sasrec_trained_pre_linear.safetensors     norm='pre' (the paper's text),   nn.Linear FFN

Usage (from the repository root; under a minute per variant on 1 thread):

    benchmarks/peers/.venv/bin/python tests/golden/make_trained_sasrec.py
    benchmarks/peers/.venv/bin/python tests/golden/make_trained_sasrec.py --variants pre_linear --epochs 5

The model is ``benchmarks/peers/torch_models.SASRec`` and the data pipeline, sampler and
initialisation are those of ``benchmarks/peers/sasrec_torch_train.py`` (imported, not copied):
hidden 32, maxlen 50, 2 blocks, 1 head, dropout 0.2, positions 'from_one', mask_padding_keys
false, LN eps 1e-8, Adam lr 1e-3 betas (0.9, 0.98), batch 128, BCE with one negative per step.

Each file is float32 and holds
  * the trained ``model.state_dict()`` under its PyTorch names, exactly as
    ``safetensors.torch.save_file(model.state_dict(), path)`` writes it (Conv1d weights
    [D, D, 1], Linear weights [D, D], packed ``in_proj_weight`` [3D, D]);
  * ``test.seq``    I64 [8, maxlen]: eight real users' histories (train + validation items,
    left-padded with 0; the users are listed in the metadata);
  * ``test.scores`` F32 [8, N]: ``model.score_all(test.seq)`` in eval mode (column j = item j + 1);
  * ``__metadata__``: the configuration, one JSON-encoded value per key (as make_golden.py),
    and the sampled-protocol test metrics of the trained model (seed 42), so that the C++
    evaluator (`sasrec --num_epochs 0 --load_pytorch FILE`) can be compared with PyTorch's.

tests/models/pytorch_trained_test.cpp loads the weights with io::load_pytorch_state and checks
that the float C++ model's scores equal ``test.scores`` to 1e-4 and that the top-10 agree.
Training uses torch's RNG and thread scheduling, so a rerun gives a slightly different model
(the test only needs the file to be self-consistent).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))
sys.path.insert(0, str(HERE))

VARIANTS = {  # name: (norm, ffn)
    "query_conv1d": ("query", "conv1d"),
    "pre_linear": ("pre", "linear"),
}
FORMAT = "recblocks-trained-1"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default=str(ROOT / "data" / "ml-latest-small" / "ratings.csv"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a shared 2-core machine)")
    ap.add_argument("--out_dir", default=str(HERE))
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from make_golden import write_safetensors  # sorted-key header, so reruns diff cleanly
    from sasrec_torch_train import NextItemBatches, evaluate, init_recblocks_, leave_one_out, left_pad, read_movielens_csv
    from torch_models import SASRec

    torch.set_num_threads(args.threads)
    hidden, maxlen, num_blocks, num_heads, dropout, lr, batch = 32, 50, 2, 1, 0.2, 1e-3, 128
    sequences, user_ids, item_ids = read_movielens_csv(args.dataset)
    num_items = len(item_ids) - 1
    split = leave_one_out(sequences)
    train, valid, test = split

    # Eight users with a test item: short histories (left padding) and long ones (truncated to maxlen).
    with_test = [u for u in range(len(train)) if test[u] != 0]
    by_len = sorted(with_test, key=lambda u: (len(train[u]), u))
    picks = [by_len[i * (len(by_len) - 1) // 7] for i in range(8)]
    histories = [np.concatenate([train[u], [valid[u]]]) for u in picks]
    test_seq = torch.from_numpy(np.stack([left_pad(h, maxlen) for h in histories]))

    for name in args.variants.split(","):
        norm, ffn = VARIANTS[name]
        torch.manual_seed(args.seed)
        model = SASRec(num_items, maxlen, hidden, num_blocks, num_heads, dropout, norm=norm, positions="from_one",
                       mask_padding_keys=False, ffn=ffn, ln_eps=1e-8)
        init_recblocks_(model)
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-8)
        sampler = NextItemBatches(train, num_items, maxlen, args.seed)
        t0 = time.perf_counter()
        step = 0
        for epoch in range(args.epochs):
            model.train()
            order = sampler.epoch_order(epoch)
            losses = []
            for b in range(sampler.batches_per_epoch(batch)):
                ids, pos, neg = (torch.from_numpy(a) for a in sampler.fill(order[b * batch : (b + 1) * batch], step))
                pos_logits, neg_logits = model(ids, pos, neg)
                loss = model.loss(pos_logits, neg_logits, pos)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                losses.append(float(loss.detach()))
            print(f"{name}: epoch {epoch + 1}  loss {np.mean(losses):.4f}", file=sys.stderr, flush=True)
        model.eval()
        with torch.inference_mode():
            scores = model.score_all(test_seq).float().contiguous()
            metrics = evaluate(model.score_all, split, num_items, maxlen, ["sampled"], args.seed)["sampled"]
        print(f"{name}: {args.epochs} epochs in {time.perf_counter() - t0:.1f} s; test (sampled, seed {args.seed}) "
              f"HR@10 {metrics['HR@10']:.4f} NDCG@10 {metrics['NDCG@10']:.4f}", flush=True)

        tensors = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}
        tensors["test.seq"] = test_seq.clone()
        tensors["test.scores"] = scores.clone()
        meta = {
            "format": FORMAT,
            "torch_version": torch.__version__,
            "description": f"SASRec trained in PyTorch on ml-latest-small, norm={norm}, ffn={ffn}",
            "num_items": num_items, "maxlen": maxlen, "hidden": hidden, "num_blocks": num_blocks,
            "num_heads": num_heads, "dropout": dropout, "ln_eps": 1e-8, "positions": "from_one",
            "mask_padding_keys": False, "norm": norm, "ffn": ffn, "epochs": args.epochs, "seed": args.seed,
            "dataset": "data/ml-latest-small/ratings.csv",
            "test_users": [int(user_ids[u]) for u in picks],
            "test_sampled_HR@10": round(metrics["HR@10"], 6), "test_sampled_NDCG@10": round(metrics["NDCG@10"], 6),
        }
        path = pathlib.Path(args.out_dir) / f"sasrec_trained_{name}.safetensors"
        write_safetensors(tensors, path, {k: json.dumps(v) for k, v in meta.items()})
        print(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
