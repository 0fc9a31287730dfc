#!/usr/bin/env bash
# SASRec serving speed against the CPU inference engines (PyTorch eager, ONNX Runtime,
# OpenVINO f32 and OpenVINO's default precision) in ONE run on one machine: recblocks,
# the engines (sasrec_inference_engines.py), recblocks again (a drift in machine speed
# shows as a gap between the two passes), then a ratio table.
#
#   benchmarks/peers/run_sasrec_engines.sh OUT_DIR [--quick]
#
# Needs build-bench/recblocks_bench_sasrec (docs/benchmarks.md: configure build-bench, then
# `cmake --build build-bench --target recblocks_bench_sasrec`) and the peers venv of
# benchmarks/peers/README.md (torch, onnxruntime, openvino pinned in requirements.txt).
# Run it on an otherwise idle machine.
set -euo pipefail
out="${1:?usage: run_sasrec_engines.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="$root/build-bench/recblocks_bench_sasrec"
py="$root/benchmarks/peers/.venv/bin/python"
[ -x "$bench" ] || { echo "missing $bench: build the recblocks_bench_sasrec target in build-bench/" >&2; exit 1; }
[ -x "$py" ] || { echo "missing $py: see benchmarks/peers/README.md" >&2; exit 1; }
mkdir -p "$out"
unset OPENBLAS_CORETYPE
{ date -u; lscpu | grep -E "Model name|^CPU family|^Model:|^CPU\(s\)"
  echo "ISA flags: $(grep -o -w -E 'avx2|fma|avx512[a-z_0-9]*|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  uptime; } > "$out/machine.txt"
min_time=1
reps=3
engine_args=()
if [ "$quick" = "--quick" ]; then
    min_time=0.2
    reps=1
    engine_args+=(--quick)
fi
filter='SASRec_Inference/B:(1|128)/N:9724/'
run_recblocks() {
    "$bench" --benchmark_filter="$filter" --benchmark_min_time="$min_time" --benchmark_repetitions="$reps" \
        --benchmark_report_aggregates_only=true --benchmark_out="$1" --benchmark_out_format=json >/dev/null
}
echo "recblocks (1/2)..."
run_recblocks "$out/recblocks_before.json"
echo "engines..."
"$py" "$root/benchmarks/peers/sasrec_inference_engines.py" "${engine_args[@]}" --out "$out/engines.json" \
    > "$out/engines.txt"
echo "recblocks (2/2)..."
run_recblocks "$out/recblocks_after.json"
uptime >> "$out/machine.txt"

"$py" - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def medians(name):
    d = json.load(open(out / name))
    return {b["run_name"]: b for b in d["benchmarks"] if b.get("aggregate_name") == "median"}
before, after = medians("recblocks_before.json"), medians("recblocks_after.json")
engines = json.load(open(out / "engines.json"))["results"]
print("| B | threads | recblocks seq/s (slower / faster pass) | best f32 engine seq/s | ratio (slower pass) "
      "| OpenVINO default precision seq/s | ratio |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for batch in (1, 128):
    for threads in (1, 2):
        key = f"BM_SASRec_Inference/B:{batch}/N:9724/threads:{threads}/real_time"
        ours = [m[key]["seq/s"] for m in (before, after) if key in m]
        rows = [r for r in engines if r["batch"] == batch and r["threads"] == threads]
        f32 = [r for r in rows if r["engine"] != "ov-default"]
        dflt = [r for r in rows if r["engine"] == "ov-default"]
        if not ours or not f32:
            continue
        best = max(f32, key=lambda r: r["seq_per_s"])
        lo, hi = min(ours), max(ours)
        d = dflt[0] if dflt else None
        dtxt = f'{d["seq_per_s"]:,.0f} ({d.get("precision", "?")})' if d else "n/a"
        dratio = f'{lo / d["seq_per_s"]:.2f}x' if d else "n/a"
        print(f'| {batch} | {threads} | {lo:,.0f} / {hi:,.0f} | {best["seq_per_s"]:,.0f} ({best["engine"]}) | '
              f'**{lo / best["seq_per_s"]:.2f}x** | {dtxt} | {dratio} |')
PY
