#!/usr/bin/env bash
# Data-parallel SASRec against PyTorch DDP (gloo) in ONE run on one machine:
# recblocks over MPI, then the PyTorch peer, then recblocks again (a drift in
# machine speed shows as a gap between the two recblocks passes). Each side:
# 2 ranks x 1 thread, D 50, L 200, batch 128 per rank, ml-latest-small.
#
#   benchmarks/peers/run_sasrec_ddp.sh OUT_DIR [BUILD_DIR (default: build)]
#
# Needs a build with RECBLOCKS_WITH_MPI (examples/sasrec_mpi) and the venv of
# benchmarks/peers/README.md. Run it on an otherwise idle machine (or under
# `chrt -f 50`, as docs/distributed.md's figures were).
set -euo pipefail
out="${1:?usage: run_sasrec_ddp.sh OUT_DIR [BUILD_DIR]}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-$root/build}"
prog="$build/examples/sasrec_mpi"
py="${PY:-$root/benchmarks/peers/.venv/bin/python}"  # PY=...: a venv elsewhere
[ -x "$prog" ] || { echo "missing $prog: configure with -DRECBLOCKS_WITH_MPI=ON and build recblocks_example_sasrec_mpi" >&2; exit 1; }
[ -x "$py" ] || { echo "missing $py: see benchmarks/peers/README.md" >&2; exit 1; }
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers and CI run as root
data="$root/data/ml-latest-small/ratings.csv"
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)" ; uptime; mpirun --version | head -1; } > "$out/machine.txt"
steps="${STEPS:-15}"
run_recblocks() {
    mpirun -np 2 --bind-to core "$prog" --dataset "$data" --maxlen 200 --hidden_units 50 --batch_size 128 \
        --threads 1 --max_steps "$steps" | tail -1 > "$1"
}
echo "recblocks (1/2)..."
run_recblocks "$out/recblocks_before.json"
echo "PyTorch DDP..."
"$py" "$root/benchmarks/peers/sasrec_ddp.py" --dataset "$data" --ranks 2 --threads 1 --batch_size 128 \
    --steps "$steps" --warmup 2 > "$out/ddp.json"
echo "recblocks (2/2)..."
run_recblocks "$out/recblocks_after.json"
cat "$out/machine.txt" "$out/recblocks_before.json" "$out/ddp.json" "$out/recblocks_after.json"
