#!/usr/bin/env bash
# Learning curves of SASRec: the C++ program (build/examples/sasrec, its defaults: pmixer's
# xavier-normal initialisation, query-norm blocks, timeline mask, BCE with one uniform negative,
# Adam 0.9/0.98) and the PyTorch trainer written with the reference's conventions
# (sasrec_torch_train.py --init pmixer), trained the same way, 3 seeds each, validation NDCG@10
# (sampled protocol, 100 negatives) every few epochs; then learning_curves.py plots both into
# docs/learning_curves.png and prints the per-epoch table.
#
#   benchmarks/peers/run_learning_curves.sh [OUT] [SEEDS...]
#
# Data sets and settings (the SASRec paper's: ML-1M's for MovieLens, Amazon's for Sports):
#   ml-latest-small  maxlen 200, dropout 0.2, 200 epochs, validation every 10
#   amazon-sports    maxlen 50,  dropout 0.5,  20 epochs, validation every 2
# common: D = 50, 2 blocks, 1 head, lr 1e-3, batch 128, one thread per run, two runs at a time.
# Needs build/examples/sasrec (./recblocks demo builds it) and benchmarks/peers/.venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-benchmarks/results/learning_curves}
shift $(( $# > 0 ? 1 : 0 )) || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
py=benchmarks/peers/.venv/bin/python
sasrec=${SASREC:-build/examples/sasrec}  # or another binary: SASREC=path
mkdir -p "$out"
{ date -u; lscpu | grep -E "Model name"; } > "$out/machine.txt"
run_pair() {  # name dataset format maxlen dropout epochs every seed
    local name=$1 data=$2 format=$3 maxlen=$4 dropout=$5 epochs=$6 every=$7 s=$8
    local common=(--dataset "$data" --maxlen "$maxlen" --hidden_units 50 --num_blocks 2 --num_heads 1
                  --dropout_rate "$dropout" --lr 0.001 --batch_size 128 --num_epochs "$epochs" --eval_every "$every"
                  --threads 1 --seed "$s")
    "$sasrec" "${common[@]}" --format "$format" --eval sampled > "$out/${name}_cpp_seed$s.log" 2>&1 &
    "$py" benchmarks/peers/sasrec_torch_train.py "${common[@]}" --format "$format" --init pmixer --attn sdpa \
        --eval sampled > "$out/${name}_torch_seed$s.log" 2>&1 &
    wait
    echo "$name seed $s: done"
}
datasets=${DATASETS:-ml-latest-small amazon-sports}  # a subset: DATASETS=ml-latest-small
for s in "${seeds[@]}"; do
    for d in $datasets; do
        case $d in
            ml-latest-small) run_pair ml-latest-small data/ml-latest-small/ratings.csv movielens-csv 200 0.2 200 10 "$s" ;;
            amazon-sports) run_pair amazon-sports data/amazon-sports/Sports_and_Outdoors.txt sequences 50 0.5 20 2 "$s" ;;
            *) echo "unknown data set $d" >&2; exit 2 ;;
        esac
    done
done
"$py" benchmarks/peers/learning_curves.py "$out" --png docs/learning_curves.png | tee "$out/table.md"
