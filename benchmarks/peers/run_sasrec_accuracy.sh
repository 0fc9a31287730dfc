#!/usr/bin/env bash
# The accuracy bar of SASRec: C++ (build/examples/sasrec) and the PyTorch reference
# (benchmarks/peers/sasrec_torch_train.py) trained the same way on ml-latest-small with the
# paper's hyperparameters (L = 200, D = 50, 2 blocks, 1 head, dropout 0.2, Adam 1e-3, batch 128,
# 200 epochs), evaluated on every user's test item under the sampled protocol (and full ranking
# for the C++ model), for seeds 1..3. One JSON line per run in OUT/{cpp,torch}_seed<S>.json.
#
#   benchmarks/peers/run_sasrec_accuracy.sh [OUT] [EPOCHS] [SEEDS...]
# Needs build/examples/sasrec (./recblocks demo builds it) and benchmarks/peers/.venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benchmarks/results/accuracy_ml-latest-small}
epochs=${2:-200}
shift $(( $# > 2 ? 2 : $# )) || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
mkdir -p "$out"
common=(--dataset data/ml-latest-small/ratings.csv --maxlen 200 --hidden_units 50 --num_blocks 2 --num_heads 1
        --dropout_rate 0.2 --lr 0.001 --batch_size 128 --num_epochs "$epochs" --eval_every 0 --threads 1)
for s in "${seeds[@]}"; do
    # The two runs of a seed side by side, one core each.
    build/examples/sasrec "${common[@]}" --format movielens-csv --eval sampled --seed "$s" \
        > "$out/cpp_seed$s.log" 2>&1 &
    benchmarks/peers/.venv/bin/python benchmarks/peers/sasrec_torch_train.py "${common[@]}" --eval both --seed "$s" \
        > "$out/torch_seed$s.log" 2>&1 &
    wait
    tail -n 1 "$out/cpp_seed$s.log" > "$out/cpp_seed$s.json"
    tail -n 1 "$out/torch_seed$s.log" > "$out/torch_seed$s.json"
    echo "seed $s: C++ $(cat "$out/cpp_seed$s.json")"
    echo "seed $s: torch $(cat "$out/torch_seed$s.json")"
done
