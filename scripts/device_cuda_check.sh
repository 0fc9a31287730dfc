#!/usr/bin/env bash
# GPU check of the CUDA backend on a machine WITHOUT a build toolchain for the
# project (no Eigen / Catch2 / Google Benchmark there): runs binaries that were
# built elsewhere and copied, with the non-CUDA shared libraries they need, to
# .devrun/ in the repository root:
#
#   cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DRECBLOCKS_WITH_CUDA=ON \
#         -DCMAKE_CUDA_ARCHITECTURES=90 -DRECBLOCKS_BUILD_EXAMPLES=OFF
#   cmake --build build-cuda -j2 --target recblocks_cuda_tests recblocks_cuda_bench
#   mkdir -p .devrun && cp build-cuda/recblocks_cuda_tests build-cuda/recblocks_cuda_bench .devrun/
#   cp "$(ldd build-cuda/recblocks_cuda_bench | awk '/libbenchmark/ {print $3}')" .devrun/
#
# Optionally also a benchmark binary built from an earlier tree, for before/after
# figures on the same GPU: cp build-cuda/recblocks_cuda_bench .devrun/recblocks_cuda_bench_before
# (built before the change), and extra PyTorch scripts in EXTRA_PEERS (space-separated
# paths, each run as `python3 SCRIPT --json OUTDIR/<name>.json`).
#
# Then, from the repository root on the GPU machine: scripts/device_cuda_check.sh [OUTDIR]
# (OUTDIR defaults to $OUT, else ./device-out; console copies go to LOGDIR, default
# OUTDIR). Steps, each under `timeout`, the whole run bounded by TOTAL_S (default 420 s;
# the per-step limits below shrink to fit it):
#   1. nvidia-smi -L / driver, nvcc --version
#   2. recblocks_cuda_tests (Catch2)                  -> OUTDIR/cuda_tests.txt
#   3. recblocks_cuda_bench (Google Benchmark, JSON)  -> OUTDIR/cuda_bench.json (+ LOGDIR/cuda_bench.txt)
#   3b. .devrun/recblocks_cuda_bench_before, if present, on the rows matching BEFORE_FILTER
#                                                     -> OUTDIR/cuda_bench_before.json
#   4. benchmarks/peers/torch_cuda_ops.py             -> OUTDIR/torch_cuda_ops.json (+ LOGDIR/.txt)
#   4b. EXTRA_PEERS                                   -> OUTDIR/<script name>.json
#   5. compute-sanitizer --tool memcheck on the tests (without those tagged [large]),
#      with what time is left (<= 90 s)             -> OUTDIR/cuda_memcheck.txt
# Exit status: that of the test binary (0 pass, 1 failures, 77 no GPU).
set -uo pipefail

cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-device-out}}"
LOGDIR="${LOGDIR:-$OUTDIR}"
mkdir -p "$OUTDIR" "$LOGDIR"
TOTAL_S="${TOTAL_S:-420}"
BEFORE_FILTER="${BEFORE_FILTER:-BM_Cuda_(Softmax|LayerNorm|GatherRows|ScatterAddRows|TopK|Sum)}"
DEVRUN="$PWD/.devrun"

left() { echo $((TOTAL_S - SECONDS)); }
# timeout of min($1, time left - reserve $2)
budget() {
    local want=$1 reserve=${2:-0} l
    l=$(($(left) - reserve))
    ((l < want)) && want=$l
    ((want < 1)) && want=1
    echo "$want"
}

{
    echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -srm)"
    echo "== nvidia-smi -L"
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv
    echo "== nvcc --version"
    NVCC="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
    "$NVCC" --version | tail -n 2
} 2>&1 | tee "$OUTDIR/device_env.txt"

# ---- shared libraries: .devrun, then the toolkit's cuBLAS / cudart -------------
find_lib_dir() {  # directory holding $1, searched in the usual places
    local name=$1 d
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu; do
        [[ -e "$d/$name" ]] && { echo "$d"; return 0; }
    done
    local sp
    sp="$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)"
    local f
    f="$(find $sp /usr/local /opt -name "$name" -print -quit 2>/dev/null)"
    [[ -n "$f" ]] && dirname "$f"
}
LIBPATH="$DEVRUN"
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    d="$(find_lib_dir "$lib")"
    if [[ -n "$d" ]]; then
        [[ ":$LIBPATH:" == *":$d:"* ]] || LIBPATH="$LIBPATH:$d"
    else
        echo "device_cuda_check: $lib not found" | tee -a "$OUTDIR/device_env.txt"
    fi
done
export LD_LIBRARY_PATH="$LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "== LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$OUTDIR/device_env.txt"
ldd "$DEVRUN/recblocks_cuda_bench" | grep -E "not found|cublas|cudart|benchmark" | tee -a "$OUTDIR/device_env.txt"

# ---- 1. tests ------------------------------------------------------------------
t_tests=$(budget 90 "$((TOTAL_S * 45 / 100))")
echo "== recblocks_cuda_tests (timeout $t_tests s)"
timeout "$t_tests" "$DEVRUN/recblocks_cuda_tests" --durations yes >"$OUTDIR/cuda_tests.txt" 2>&1
test_rc=$?
echo "recblocks_cuda_tests exit status: $test_rc" >>"$OUTDIR/cuda_tests.txt"
grep -v -E "^[0-9.]+ s: " "$OUTDIR/cuda_tests.txt" | tail -n 60
echo "-- slowest test cases:"
grep -E "^[0-9.]+ s: " "$OUTDIR/cuda_tests.txt" | sort -rn | head -n 5
echo "== tests exit status: $test_rc  (t=${SECONDS}s)"

# ---- 2. benchmark --------------------------------------------------------------
t_bench=$(budget 150 "$((TOTAL_S * 30 / 100))")
echo "== recblocks_cuda_bench (timeout $t_bench s)"
timeout "$t_bench" "$DEVRUN/recblocks_cuda_bench" --benchmark_min_time=0.2 --benchmark_repetitions=3 \
    --benchmark_report_aggregates_only=true --benchmark_out="$OUTDIR/cuda_bench.json" \
    --benchmark_out_format=json 2>&1 | tee "$LOGDIR/cuda_bench.txt" | grep -v -E "_(mean|stddev|cv) "
echo "== bench exit status: ${PIPESTATUS[0]}  (t=${SECONDS}s)"

if [[ -x "$DEVRUN/recblocks_cuda_bench_before" ]]; then
    t_before=$(budget 60 "$((TOTAL_S * 22 / 100))")
    echo "== recblocks_cuda_bench_before, filter $BEFORE_FILTER (timeout $t_before s)"
    timeout "$t_before" "$DEVRUN/recblocks_cuda_bench_before" --benchmark_filter="$BEFORE_FILTER" \
        --benchmark_min_time=0.2 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
        --benchmark_out="$OUTDIR/cuda_bench_before.json" --benchmark_out_format=json 2>&1 |
        tee "$LOGDIR/cuda_bench_before.txt" | grep -v -E "_(mean|stddev|cv) "
    echo "== bench (before) exit status: ${PIPESTATUS[0]}  (t=${SECONDS}s)"
fi

# ---- 3. torch peer ---------------------------------------------------------------
t_torch=$(budget 100 "$((TOTAL_S * 12 / 100))")
echo "== torch_cuda_ops.py (timeout $t_torch s)"
PYTHONUNBUFFERED=1 timeout "$t_torch" python3 benchmarks/peers/torch_cuda_ops.py \
    --json "$OUTDIR/torch_cuda_ops.json" 2>&1 | tee "$LOGDIR/torch_cuda_ops.txt"
echo "== torch exit status: ${PIPESTATUS[0]}  (t=${SECONDS}s)"
for peer in ${EXTRA_PEERS:-}; do
    name="$(basename "$peer" .py)"
    t_peer=$(budget 40 "$((TOTAL_S * 8 / 100))")
    echo "== $peer (timeout $t_peer s)"
    PYTHONUNBUFFERED=1 timeout "$t_peer" python3 "$peer" --json "$OUTDIR/$name.json" 2>&1
    echo "== $name exit status: $?  (t=${SECONDS}s)"
done

# ---- 4. memcheck ------------------------------------------------------------------
SAN="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)"
if [[ -n "$SAN" ]] && (($(left) > 30)); then
    echo "== compute-sanitizer memcheck (timeout $(budget 90 5) s)"
    timeout "$(budget 90 5)" "$SAN" --tool memcheck --leak-check no --error-exitcode 3 \
        "$DEVRUN/recblocks_cuda_tests" "~[large]" >"$OUTDIR/cuda_memcheck.txt" 2>&1
    san_rc=$?
    tail -n 15 "$OUTDIR/cuda_memcheck.txt"
    echo "== memcheck exit status: $san_rc (124 = time limit)  (t=${SECONDS}s)"
else
    echo "== memcheck skipped (sanitizer '${SAN}', $(left) s left)"
fi

exit "$test_rc"
