#!/usr/bin/env bash
# The accuracy bar of BERT4Rec: C++ (examples/bert4rec) and the PyTorch reference
# (benchmarks/peers/bert4rec_torch_train.py) trained the same way on ml-latest-small — same
# batches and masks (bit-identical sampler), same optimiser and schedule — and evaluated on every
# user's test item under the sampled protocol (100 uniform negatives) and, for PyTorch, full ranking
# too. All seeds run side by side (C++ with THREADS threads each, PyTorch on DEVICE).
# One JSON line per run in OUT/{cpp,torch}_seed<S>.json, a summary in OUT/summary.txt.
#
#   benchmarks/peers/run_bert4rec_accuracy.sh [OUT] [EPOCHS] [THREADS] [DEVICE] [SEEDS...]
# Environment: CPP_BIN (default build/examples/bert4rec), PYTHON (default benchmarks/peers/.venv/bin/python).
# Hyper-parameters: the paper's model (L 200, D 64, 2 blocks, 2 heads, dropout 0.2, mask 0.2,
# AdamW wd 0.01, 100 warm-up steps, linear decay, clip 5) with lr 1e-3 and batch 64, because
# ml-latest-small has 610 users (3 steps per epoch at the paper's batch 256 and lr 1e-4 would not train).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benchmarks/results/bert4rec_accuracy_ml-latest-small}
epochs=${2:-120}
threads=${3:-2}
device=${4:-cpu}
shift $(( $# > 4 ? 4 : $# )) || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4 5)
cpp=${CPP_BIN:-build/examples/bert4rec}
py=${PYTHON:-benchmarks/peers/.venv/bin/python}
mkdir -p "$out"
common=(--dataset data/ml-latest-small/ratings.csv --maxlen 200 --hidden_units 64 --num_blocks 2 --num_heads 2
        --dropout_rate 0.2 --mask_prob 0.2 --lr 0.001 --batch_size 64 --num_epochs "$epochs" --warmup_steps 100
        --weight_decay 0.01 --clip_norm 5)
pids=()
for s in "${seeds[@]}"; do
    "$cpp" "${common[@]}" --format movielens-csv --eval sampled --eval_every 0 --threads "$threads" --seed "$s" \
        > "$out/cpp_seed$s.log" 2>&1 & pids+=($!)
    PYTHONUNBUFFERED=1 "$py" benchmarks/peers/bert4rec_torch_train.py "${common[@]}" --eval both --threads 1 \
        --device "$device" --seed "$s" > "$out/torch_seed$s.log" 2>&1 & pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for s in "${seeds[@]}"; do
    tail -n 1 "$out/cpp_seed$s.log" > "$out/cpp_seed$s.json"
    tail -n 1 "$out/torch_seed$s.log" > "$out/torch_seed$s.json"
done
"$py" - "$out" "${seeds[@]}" <<'PY' | tee "$out/summary.txt"
import json, statistics as st, sys
out, seeds = sys.argv[1], sys.argv[2:]
for side in ("cpp", "torch"):
    rows = []
    for s in seeds:
        try:
            rows.append(json.loads(open(f"{out}/{side}_seed{s}.json").read()))
        except Exception as e:
            print(f"{side} seed {s}: no result ({e})")
    for m in ("NDCG@10", "HR@10", "MRR@10"):
        v = [r[m] for r in rows]
        if len(v) >= 2:
            print(f"{side:5s} {m:8s} {st.mean(v):.4f} ± {st.stdev(v):.4f}  (n={len(v)}: {', '.join(f'{x:.4f}' for x in v)})")
PY
exit $rc
