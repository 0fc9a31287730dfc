#!/usr/bin/env python3
"""Markdown table of run_matryoshka_accuracy.sh results: NDCG@10 / HR@10 per width, from the single MRL run
and from the plain models trained at each width, every seed found, under both protocols.

    python3 benchmarks/peers/matryoshka_accuracy_table.py DIR [DIR ...]
"""
import glob
import json
import os
import re
import statistics
import sys

runs = {}  # (kind, width) -> list of per-width dicts
for d in sys.argv[1:]:
    for f in sorted(glob.glob(os.path.join(d, "*.txt"))):
        m = re.match(r"(mrl|plain_d(\d+)|plain_d64_trunc)_seed(\d+)\.txt", os.path.basename(f))
        if not m:
            continue
        kind = {"mrl": "mrl", "plain_d64_trunc": "trunc"}.get(m.group(1), "plain")
        lines = [l for l in open(f) if l.startswith("{")]
        if not lines:
            continue
        j = json.loads(lines[-1])
        for w, v in j["widths"].items():
            runs.setdefault((kind, int(w)), []).append((int(m.group(3)), v, j["epochs"]))


def cell(kind, w, proto, metric):
    rs = runs.get((kind, w), [])
    if not rs:
        return "–"
    vals = [v[proto][metric] for _, v, _ in rs]
    s = " / ".join(f"{x:.4f}" for x in vals)
    return s + (f" (mean {statistics.mean(vals):.4f})" if len(vals) > 1 else "")


widths = sorted({w for (_, w) in runs})
seeds = sorted({s for rs in runs.values() for s, _, _ in rs})
print(f"seeds {', '.join(map(str, seeds))} (values listed per seed)\n")
print("| width m | MRL-E run (D = 64), NDCG@10 sampled | separate model D = m, NDCG@10 sampled | plain D = 64 truncated to m, NDCG@10 sampled | MRL-E, NDCG@10 full | separate, NDCG@10 full | MRL-E, HR@10 sampled | separate, HR@10 sampled |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for w in widths:
    print(f"| {w} | {cell('mrl', w, 'sampled', 'NDCG@10')} | {cell('plain', w, 'sampled', 'NDCG@10')} | "
          f"{cell('trunc', w, 'sampled', 'NDCG@10')} | {cell('mrl', w, 'full', 'NDCG@10')} | {cell('plain', w, 'full', 'NDCG@10')} | "
          f"{cell('mrl', w, 'sampled', 'HR@10')} | {cell('plain', w, 'sampled', 'HR@10')} |")
