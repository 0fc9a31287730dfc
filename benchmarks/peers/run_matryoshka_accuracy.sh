#!/usr/bin/env bash
# The accuracy table of docs/matryoshka.md: SASRec on ml-latest-small trained
# once with the Matryoshka (MRL-E) loss over widths 8/16/32/64 at D = 64, next
# to plain SASRec models trained separately at D = 8, 16, 32, 64 (same flags,
# same seed), each evaluated under the sampled and the full protocol.
#
#   benchmarks/peers/run_matryoshka_accuracy.sh OUT_DIR "SEEDS" [PARALLEL]
#
# PARALLEL runs at once (default 1: one at a time, as on the shared 2-core
# machine, where it should run under `flock /tmp/recblocks-bench.lock`); each
# run uses --threads 1. Needs the sasrec example (SASREC, default
# build-dev/examples/sasrec or build-dev/sasrec). LOCK=FILE runs each training
# under `flock FILE` (one run at a time among everyone sharing the lock). The last line of each
# <name>.txt is the run's JSON; the MRL run of every seed also writes its item
# table and user vectors (--save_embeddings) to mrl_seed<S>_embeddings.safetensors.
set -euo pipefail
out="${1:?usage: run_matryoshka_accuracy.sh OUT_DIR SEEDS [PARALLEL]}"
seeds="${2:-1}"
parallel="${3:-1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
sasrec="${SASREC:-}"
for c in "$root/build-dev/examples/sasrec" "$root/build-dev/sasrec"; do
    [ -z "$sasrec" ] && [ -x "$c" ] && sasrec="$c"
done
[ -x "$sasrec" ] || { echo "missing the sasrec example: build it (RECBLOCKS_BUILD_EXAMPLES=ON) or set SASREC" >&2; exit 1; }
mkdir -p "$out"
epochs="${EPOCHS:-200}"
max_seconds="${MAX_SECONDS:-0}"
common=(--dataset "$root/data/ml-latest-small/ratings.csv" --format movielens-csv --maxlen 200 --num_blocks 2
        --num_heads 1 --dropout_rate 0.2 --lr 0.001 --batch_size 128 --num_epochs "$epochs" --eval sampled
        --eval_every 0 --threads 1 --max_seconds "$max_seconds")
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)"; uptime; } > "$out/machine.txt"
jobs_file="$out/commands.txt"
: > "$jobs_file"
for s in $seeds; do
    echo "$sasrec ${common[*]} --seed $s --hidden_units 64 --matryoshka 8,16,32,64 --save_embeddings $out/mrl_seed${s}_embeddings.safetensors > $out/mrl_seed$s.txt 2> $out/mrl_seed$s.err" >> "$jobs_file"
    for d in 8 16 32 64; do
        echo "$sasrec ${common[*]} --seed $s --hidden_units $d --matryoshka $d > $out/plain_d${d}_seed$s.txt 2> $out/plain_d${d}_seed$s.err" >> "$jobs_file"
    done
done
lock_prefix=""
[ -n "${LOCK:-}" ] && lock_prefix="flock $LOCK "
sed "s|^|$lock_prefix|" "$jobs_file" | xargs -P "$parallel" -I{} sh -c '{}'
uptime >> "$out/machine.txt"
for f in "$out"/*.txt; do case "$f" in *commands.txt|*machine.txt) ;; *) tail -n 1 "$f" > "${f%.txt}.json";; esac; done
echo "done: $out"
