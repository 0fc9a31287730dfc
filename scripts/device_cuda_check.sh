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
# Then, from the repository root on the GPU machine: scripts/device_cuda_check.sh [OUTDIR]
# (OUTDIR defaults to $OUT, else ./device-out). Steps, each under `timeout`, the
# whole run bounded by TOTAL_S (default 420 s):
#   1. nvidia-smi -L / driver, nvcc --version, torch version
#   2. recblocks_cuda_tests (Catch2)                  -> OUTDIR/cuda_tests.txt
#   3. recblocks_cuda_bench (Google Benchmark, JSON)  -> OUTDIR/cuda_bench.json (+ .txt console)
#   4. benchmarks/peers/torch_cuda_ops.py             -> OUTDIR/torch_cuda_ops.json (+ .txt)
#   5. compute-sanitizer --tool memcheck on the tests, with what time is left (<= 90 s)
#                                                     -> OUTDIR/cuda_memcheck.txt
# Exit status: that of the test binary (0 pass, 1 failures, 77 no GPU).
set -uo pipefail

cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-device-out}}"
mkdir -p "$OUTDIR"
TOTAL_S="${TOTAL_S:-420}"
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
echo "== recblocks_cuda_tests (timeout $(budget 180 200) s)"
timeout "$(budget 180 200)" "$DEVRUN/recblocks_cuda_tests" --durations yes >"$OUTDIR/cuda_tests.txt" 2>&1
test_rc=$?
echo "recblocks_cuda_tests exit status: $test_rc" >>"$OUTDIR/cuda_tests.txt"
grep -v -E "^[0-9.]+ s: " "$OUTDIR/cuda_tests.txt" | tail -n 60
echo "-- slowest test cases:"
grep -E "^[0-9.]+ s: " "$OUTDIR/cuda_tests.txt" | sort -rn | head -n 5
echo "== tests exit status: $test_rc  (t=${SECONDS}s)"

# ---- 2. benchmark --------------------------------------------------------------
echo "== recblocks_cuda_bench (timeout $(budget 150 100) s)"
timeout "$(budget 150 100)" "$DEVRUN/recblocks_cuda_bench" --benchmark_min_time=0.2 --benchmark_repetitions=3 \
    --benchmark_report_aggregates_only=true --benchmark_out="$OUTDIR/cuda_bench.json" \
    --benchmark_out_format=json 2>&1 | tee "$OUTDIR/cuda_bench.txt" | grep -v -E "_(mean|stddev|cv) "
echo "== bench exit status: ${PIPESTATUS[0]}  (t=${SECONDS}s)"

# ---- 3. torch peer ---------------------------------------------------------------
echo "== torch_cuda_ops.py (timeout $(budget 100 60) s)"
PYTHONUNBUFFERED=1 timeout "$(budget 100 60)" python3 benchmarks/peers/torch_cuda_ops.py \
    --json "$OUTDIR/torch_cuda_ops.json" 2>&1 | tee "$OUTDIR/torch_cuda_ops.txt"
echo "== torch exit status: ${PIPESTATUS[0]}  (t=${SECONDS}s)"

# ---- 4. memcheck ------------------------------------------------------------------
SAN="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)"
if [[ -n "$SAN" ]] && (($(left) > 30)); then
    echo "== compute-sanitizer memcheck (timeout $(budget 90 5) s)"
    timeout "$(budget 90 5)" "$SAN" --tool memcheck --leak-check no --error-exitcode 3 \
        "$DEVRUN/recblocks_cuda_tests" >"$OUTDIR/cuda_memcheck.txt" 2>&1
    san_rc=$?
    tail -n 15 "$OUTDIR/cuda_memcheck.txt"
    echo "== memcheck exit status: $san_rc (124 = time limit)  (t=${SECONDS}s)"
else
    echo "== memcheck skipped (sanitizer '${SAN}', $(left) s left)"
fi

exit "$test_rc"
