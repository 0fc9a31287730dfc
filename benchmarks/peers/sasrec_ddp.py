#!/usr/bin/env python3
"""Data-parallel SASRec peer: PyTorch DistributedDataParallel on the gloo
backend, the model, sampler and optimiser of sasrec_torch_train.py (the
reference SASRec of torch_models.py, query norm, D 50, L 200 by default), each
of --ranks processes with --threads torch threads and --batch_size sequences
of every global batch (rank r takes users [r b, (r + 1) b) of it).

Prints one JSON line: the median step time (batch fill, forward, backward with
DDP's overlapped gradient allreduce, Adam) over --steps steps after --warmup,
the median batch fill alone (the numpy sampler), and the global samples per
second. The C++ counterpart is
`mpirun -np 2 sasrec_mpi --max_steps S --threads 1 ...` (docs/distributed.md).

    .venv/bin/python benchmarks/peers/sasrec_ddp.py --ranks 2 --threads 1 --batch_size 128
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def worker(rank: int, args, result_queue) -> None:
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from sasrec_torch_train import NextItemBatches, init_recblocks_, leave_one_out, read_movielens_csv
    from torch_models import SASRec

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    sequences, _, item_ids = read_movielens_csv(args.dataset)
    num_items = len(item_ids) - 1
    train, _, _ = leave_one_out(sequences)
    sampler = NextItemBatches(train, num_items, args.maxlen, args.seed)
    model = SASRec(num_items, args.maxlen, args.hidden_units, args.num_blocks, args.num_heads, args.dropout_rate,
                   norm="query", positions="from_one", mask_padding_keys=False, ffn="conv1d", ln_eps=1e-8)
    init_recblocks_(model)
    ddp = DDP(model)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-8)
    global_batch = args.batch_size * args.ranks
    order = sampler.epoch_order(0)
    per_epoch = (len(order) + global_batch - 1) // global_batch
    times, fills = [], []  # whole steps; the batch fill (numpy sampler) alone
    for step in range(args.warmup + args.steps):
        b = step % per_epoch
        if b == per_epoch - 1 and len(order) % global_batch:  # keep full batches: wrap to the first
            b = 0
        dist.barrier()
        t0 = time.perf_counter()
        users = order[b * global_batch + rank * args.batch_size: b * global_batch + (rank + 1) * args.batch_size]
        ids, pos, neg = (torch.from_numpy(a) for a in sampler.fill(users, step))
        t_fill = time.perf_counter() - t0
        # Through the DDP wrapper so that the gradient hooks fire: forward returns the logits.
        pos_logits, neg_logits = ddp(ids, pos, neg)
        loss = model.loss(pos_logits, neg_logits, pos)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if step >= args.warmup:
            times.append(dt)
            fills.append(t_fill)
    times.sort()
    fills.sort()
    med = times[len(times) // 2]
    if rank == 0:
        result_queue.put({"peer": "pytorch-ddp-gloo", "torch": torch.__version__, "ranks": args.ranks,
                          "threads": args.threads, "batch_per_rank": args.batch_size, "steps": args.steps,
                          "step_ms": round(1e3 * med, 2),
                          "fill_ms": round(1e3 * fills[len(fills) // 2], 2), "samples_per_second": round(global_batch / med, 1)})
    dist.destroy_process_group()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/ml-latest-small/ratings.csv")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--batch_size", type=int, default=128, help="per rank")
    ap.add_argument("--maxlen", type=int, default=200)
    ap.add_argument("--hidden_units", type=int, default=50)
    ap.add_argument("--num_blocks", type=int, default=2)
    ap.add_argument("--num_heads", type=int, default=1)
    ap.add_argument("--dropout_rate", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--port", type=int, default=29517)
    args = ap.parse_args()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(args.port))
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, args, q)) for r in range(args.ranks)]
    for p in procs:
        p.start()
    result = q.get()
    for p in procs:
        p.join()
    print(json.dumps(result))
    return 0 if all(p.exitcode == 0 for p in procs) else 1


if __name__ == "__main__":
    sys.exit(main())
