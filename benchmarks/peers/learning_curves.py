#!/usr/bin/env python3
"""Learning curves of run_learning_curves.sh: validation NDCG@10 per evaluated epoch of the C++
program and of the PyTorch reference trainer, mean and standard deviation over seeds, for each
data set; a PNG (one panel per data set, a band of +-1 sd around each mean) and a markdown table.

An epoch's curves "overlap within seed noise" when |mean_cpp - mean_torch| <= 2 * sqrt(sd_cpp^2 +
sd_torch^2) (two standard errors of the difference of two seed samples, taking the seed-to-seed
spread of each side as its noise). The table marks each epoch and says whether every epoch does.

  benchmarks/peers/.venv/bin/python benchmarks/peers/learning_curves.py OUT [--png docs/learning_curves.png]
"""
from __future__ import annotations

import argparse
import math
import pathlib
import re
import statistics
import sys

LINE = re.compile(r"^epoch (\d+) .*valid NDCG@10 ([0-9.eE+-]+)")
NAME = re.compile(r"^(?P<data>.+)_(?P<impl>cpp|torch)_seed(?P<seed>\d+)\.log$")


def read_curves(out: pathlib.Path):
    """{data: {impl: {seed: {epoch: ndcg}}}} from the run's logs."""
    curves: dict = {}
    for log in sorted(out.glob("*_seed*.log")):
        m = NAME.match(log.name)
        if not m:
            continue
        points = {}
        for line in log.read_text(errors="replace").splitlines():
            hit = LINE.match(line.strip())
            if hit:
                points[int(hit.group(1))] = float(hit.group(2))
        if points:
            curves.setdefault(m["data"], {}).setdefault(m["impl"], {})[int(m["seed"])] = points
    return curves


def summary(by_seed: dict, epoch: int):
    vals = [p[epoch] for p in by_seed.values() if epoch in p]
    if not vals:
        return None
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--png", default="")
    args = ap.parse_args()
    curves = read_curves(pathlib.Path(args.out))
    if not curves:
        print(f"no curves in {args.out}", file=sys.stderr)
        return 1
    all_overlap = True
    for data, impls in curves.items():
        cpp, torch = impls.get("cpp", {}), impls.get("torch", {})
        epochs = sorted({e for p in list(cpp.values()) + list(torch.values()) for e in p})
        print(f"\n### {data}: validation NDCG@10 (sampled, 100 negatives), mean ± sd over seeds\n")
        print("| epoch | C++ (recblocks) | PyTorch (reference conventions) | difference | within 2 sd |")
        print("| ---: | ---: | ---: | ---: | --- |")
        for e in epochs:
            c, t = summary(cpp, e), summary(torch, e)
            if c is None or t is None:
                continue
            diff = c[0] - t[0]
            if min(c[2], t[2]) < 2:  # no seed noise to compare with
                verdict = "n/a (one seed)"
                all_overlap = None if all_overlap is not False else False
            else:
                ok = abs(diff) <= 2 * math.sqrt(c[1] ** 2 + t[1] ** 2)
                verdict = "yes" if ok else "**no**"
                if all_overlap is not None:
                    all_overlap = all_overlap and ok
            print(f"| {e} | {c[0]:.4f} ± {c[1]:.4f} (n={c[2]}) | {t[0]:.4f} ± {t[1]:.4f} (n={t[2]}) | "
                  f"{diff:+.4f} | {verdict} |")
    summary_text = {True: "yes", False: "no", None: "not decided (fewer than two seeds on a side)"}[all_overlap]
    print(f"\nEvery evaluated epoch within seed noise: {summary_text}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4.2), squeeze=False)
        for ax, (data, impls) in zip(axes[0], curves.items()):
            for impl, label, colour in (("cpp", "recblocks (C++)", "tab:blue"),
                                        ("torch", "PyTorch, reference conventions", "tab:orange")):
                by_seed = impls.get(impl, {})
                epochs = sorted({e for p in by_seed.values() for e in p})
                stats = [summary(by_seed, e) for e in epochs]
                mean = [s[0] for s in stats]
                sd = [s[1] for s in stats]
                ax.plot(epochs, mean, label=f"{label} ({len(by_seed)} seeds)", color=colour)
                ax.fill_between(epochs, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)],
                                color=colour, alpha=0.25)
            ax.set_title(data)
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation NDCG@10 (sampled)")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
