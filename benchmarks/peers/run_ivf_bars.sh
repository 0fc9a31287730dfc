#!/usr/bin/env bash
# The approximate index against FAISS (PyPI faiss-cpu) in ONE run on one machine (issue 16):
# recblocks_ivf_recall_qps (pq4 and int8 IVF, the exact f32 / bf16 / int8 scans, filters) and
# benchmarks/peers/faiss_ivf_peers.py (IndexFlatIP, SQ8, HNSWFlat, IVFPQFastScan + refine,
# IDSelector filters), both data sets, 1 and 2 threads; then the table (ivf_table.py) and the
# recall-QPS curves (docs/ivf_recall_qps.png).
#
#   benchmarks/peers/run_ivf_bars.sh OUT_DIR [--quick]
#
# Needs: build-bench/recblocks_ivf_recall_qps (make recblocks_ivf_recall_qps in a Release build
# dir build-bench/), the peers venv (benchmarks/peers/requirements.txt, section 4) and the data
# (benchmarks/peers/make_mips_data.py; DATA below, default build-data/mips). Trained indexes are
# cached in build-data/ (theirs and ours), with the build time measured when they were built
# (one thread each). Every timing step holds /work/.bench.lock when that file's directory exists.
set -euo pipefail
out="${1:?usage: run_ivf_bars.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tool="${RECBLOCKS_IVF_TOOL:-$root/build-bench/recblocks_ivf_recall_qps}"
py="$root/benchmarks/peers/.venv/bin/python"
data="${DATA:-$root/build-data/mips}"
cache="${CACHE:-$root/build-data}"
[ -x "$tool" ] || { echo "missing $tool: make recblocks_ivf_recall_qps in build-bench/" >&2; exit 1; }
[ -x "$py" ] || { echo "missing $py: see benchmarks/peers/requirements.txt" >&2; exit 1; }
[ -f "$data/base_1000000x64.f32" ] || "$py" "$root/benchmarks/peers/make_mips_data.py" --out "$data"
mkdir -p "$out" "$cache/faiss" "$cache/ours"
lock=(); [ -d /work ] && lock=(flock /work/.bench.lock)
q=(); [ "$quick" = "--quick" ] && q=(--quick)
unset OPENBLAS_CORETYPE  # a Haswell override halves OpenBLAS's sgemm (shared/DESIGN.md)
{ date -u; lscpu; uptime; "$py" -c 'import faiss; print("faiss", faiss.__version__, faiss.get_compile_options())'; } \
    > "$out/machine.txt"
threads_list="${THREADS:-1 2}"
for d in ${DIMS:-64 128}; do
    for t in $threads_list; do
        echo "d=$d threads=$t: recblocks..."
        extra=(); [ "$t" = 1 ] && extra=(--exact --filters)
        "${lock[@]}" "$tool" --data "$data" --d $d --threads $t --codes pq4 --cache "$cache/ours/pq4_$d.ivf" \
            "${extra[@]}" "${q[@]}" > "$out/recblocks_pq4_d${d}_t${t}.jsonl"
        # Two threads: the pq4 index and FAISS's flat, IVF and HNSW only (time).
        [ "$t" = 1 ] && "${lock[@]}" "$tool" --data "$data" --d $d --threads $t --codes int8 \
            --cache "$cache/ours/int8_$d.ivf" "${q[@]}" > "$out/recblocks_int8_d${d}_t${t}.jsonl"
        echo "d=$d threads=$t: FAISS..."
        only="flat,hnsw,ivfpqfs"; [ "$t" = 1 ] && only="flat,sq8,hnsw,ivfpqfs,filters"
        # OpenBLAS (bundled in the wheel, FAISS's batch >= 20 path) on as many threads as OpenMP:
        # its idle threads otherwise spin against the measured one on two cores.
        OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t \
        "${lock[@]}" "$py" "$root/benchmarks/peers/faiss_ivf_peers.py" --data "$data" --d $d --threads $t \
            --cache "$cache/faiss" --only "$only" "${q[@]}" > "$out/faiss_d${d}_t${t}.jsonl"
    done
done
"$py" "$root/benchmarks/peers/ivf_table.py" "$out" --png "$root/docs/ivf_recall_qps.png" | tee "$out/table.md"
