#!/usr/bin/env bash
# SASRec serving and training in a consumer's default build (no -march: the
# code between the runtime-dispatched kernels is SSE2) against a
# RECBLOCKS_NATIVE=ON build (-march=native everywhere), in one run on one host:
# the two binaries alternate, A B A B, so drift hits both alike.
#
#   benchmarks/run_default_vs_native.sh [out_dir]     (default: benchmarks/results/default_vs_native_<date>)
#
# Writes default_<i>.json and native_<i>.json (Google Benchmark JSON), lscpu.txt
# and summary.md (medians over all repetitions of all rounds, ratio default / native:
# below 1 means the default build is slower). RECBLOCKS_BENCH_ROUNDS sets the rounds (default 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-benchmarks/results/default_vs_native_$(date -u +%Y-%m-%d)}"
mkdir -p "$out"
common=(-DCMAKE_BUILD_TYPE=Release -DRECBLOCKS_BUILD_TESTS=OFF -DRECBLOCKS_BUILD_EXAMPLES=OFF
        -DRECBLOCKS_WITH_CUDA=OFF -DRECBLOCKS_BUILD_BENCHMARKS=ON)
for kind in default native; do
    native=OFF; [[ $kind == native ]] && native=ON
    cmake -S . -B "build-bench-$kind" "${common[@]}" -DRECBLOCKS_NATIVE=$native >/dev/null
    cmake --build "build-bench-$kind" -j"${RECBLOCKS_JOBS:-2}" --target recblocks_bench_sasrec
done
lscpu > "$out/lscpu.txt"
filter="${RECBLOCKS_BENCH_FILTER:-SASRec}"
for round in $(seq 1 "${RECBLOCKS_BENCH_ROUNDS:-2}"); do
    for kind in default native; do
        "build-bench-$kind/recblocks_bench_sasrec" --benchmark_filter="$filter" --benchmark_min_time=0.5 \
            --benchmark_repetitions=3 --benchmark_out="$out/${kind}_${round}.json" --benchmark_out_format=json \
            >/dev/null
    done
done
python3 - "$out" <<'PY'
import json, statistics, sys, glob, os
out = sys.argv[1]
runs = {}
for kind in ("default", "native"):
    for f in sorted(glob.glob(os.path.join(out, f"{kind}_*.json"))):
        for b in json.load(open(f))["benchmarks"]:
            if b.get("run_type") == "iteration":
                runs.setdefault(b["run_name"], {}).setdefault(kind, []).append(b["seq/s"])
cpu = next((l.split(":", 1)[1].strip() for l in open(os.path.join(out, "lscpu.txt")) if l.startswith("Model name")), "?")
lines = [f"CPU: {cpu}", "", "| benchmark | default build (seq/s) | native build (seq/s) | default / native |", "| --- | ---: | ---: | ---: |"]
for name, r in sorted(runs.items()):
    d, n = statistics.median(r["default"]), statistics.median(r["native"])
    lines.append(f"| {name} | {d:,.0f} | {n:,.0f} | {d / n:.3f} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
