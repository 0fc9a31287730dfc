#!/usr/bin/env bash
# Third device run: verify the softmax-forward normalisation change and time it against
# the run-1 kernels (v1) and the pre-change kernels (before), same GPU.
set -uo pipefail
export LD_LIBRARY_PATH=$PWD/.devrun:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi -L
timeout 60 .devrun/recblocks_cuda_tests --durations yes >"$OUT/cuda_tests.txt" 2>&1
rc=$?
echo "recblocks_cuda_tests exit status: $rc" >>"$OUT/cuda_tests.txt"
grep -v -E "^[0-9.]+ s: " "$OUT/cuda_tests.txt" | tail -25
for b in recblocks_cuda_bench recblocks_cuda_bench_v1 recblocks_cuda_bench_before; do
    timeout 30 .devrun/$b --benchmark_filter='BM_Cuda_Softmax' --benchmark_min_time=0.2 --benchmark_repetitions=3 \
        --benchmark_report_aggregates_only=true --benchmark_out="$OUT/$b.softmax.json" --benchmark_out_format=json 2>&1 |
        grep -E "_median"
    echo "== $b done (t=${SECONDS}s)"
done
PYTHONUNBUFFERED=1 timeout 40 python3 benchmarks/peers/torch_cuda_ops.py --json "$OUT/torch_cuda_ops.json" 2>&1 | grep -E "copy_|softmax|layer_norm"
PYTHONUNBUFFERED=1 timeout 30 python3 benchmarks/results/cuda_h200_2026-11-26_kernels/torch_softmax_backward.py --json "$OUT/torch_softmax_backward.json"
echo "== torch done (t=${SECONDS}s)"
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 60 "$SAN" --tool memcheck --leak-check no --error-exitcode 3 .devrun/recblocks_cuda_tests "~[large]" >"$OUT/cuda_memcheck.txt" 2>&1
echo "memcheck exit status: $?" | tee -a "$OUT/cuda_memcheck.txt"
tail -4 "$OUT/cuda_memcheck.txt"
exit $rc
