#!/usr/bin/env bash
# The dare_ctr example (full, not --quick) at 3 seeds, one after another, and a
# summary: AUC / GAUC per model, and decoupled - coupled AUC with its mean and
# spread (sample standard deviation, min..max) over the seeds.
#
#   benchmarks/peers/run_dare_accuracy.sh OUT_DIR [extra dare_ctr flags...]
#
# Needs build-dev/examples/dare_ctr (or EXAMPLE=path); python3 for the summary.
set -euo pipefail
out="${1:?usage: run_dare_accuracy.sh OUT_DIR [flags]}"; shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ex="${EXAMPLE:-$root/build-dev/examples/dare_ctr}"
[ -x "$ex" ] || { echo "missing $ex" >&2; exit 1; }
mkdir -p "$out"
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)"; uptime; } > "$out/machine.txt"
for seed in 1 2 3; do
    echo "seed $seed..."
    "$ex" --seed "$seed" "$@" > "$out/seed$seed.txt" 2> "$out/seed$seed.log"
done
uptime >> "$out/machine.txt"
python3 - "$out" <<'PYEOF'
import json, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
runs = [json.loads(open(out / f"seed{s}.txt").read().strip().splitlines()[-1]) for s in (1, 2, 3)]
names = [m["name"] for m in runs[0]["models"]]
print("| model | d_a | AUC (seeds 1/2/3) | GAUC (seeds 1/2/3) |")
print("| --- | ---: | --- | --- |")
for i, n in enumerate(names):
    ms = [r["models"][i] for r in runs]
    print(f"| {n} | {ms[0]['d_a']} | " + " / ".join(f"{m['auc']:.4f}" for m in ms) + " | " +
          " / ".join(f"{m['gauc']:.4f}" for m in ms) + " |")
print()
for i, n in enumerate(names[1:], start=1):
    for metric in ("auc", "gauc"):
        diffs = [r["models"][i][metric] - r["models"][0][metric] for r in runs]
        print(f"{n} - coupled {metric.upper()}: mean {statistics.mean(diffs):+.4f}, sd {statistics.stdev(diffs):.4f}, "
              f"min {min(diffs):+.4f}, max {max(diffs):+.4f}  (per seed: " + ", ".join(f"{x:+.4f}" for x in diffs) + ")")
PYEOF
