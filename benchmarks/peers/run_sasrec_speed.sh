#!/usr/bin/env bash
# SASRec speed against PyTorch in ONE run on one machine: recblocks, then the
# PyTorch peer (every configuration of sasrec_torch_speed.py), then recblocks
# again (to bracket the peer: a drift in machine speed shows as a gap between
# the two recblocks passes), then a ratio table.
#
#   benchmarks/peers/run_sasrec_speed.sh OUT_DIR [--quick]
#
# Needs the bench build (see docs/benchmarks.md) and the venv of
# benchmarks/peers/README.md. Run it on an otherwise idle machine.
set -euo pipefail
out="${1:?usage: run_sasrec_speed.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="$root/build-bench/recblocks_bench"
py="$root/benchmarks/peers/.venv/bin/python"
[ -x "$bench" ] || { echo "missing $bench: build the recblocks_bench target in build-bench/" >&2; exit 1; }
[ -x "$py" ] || { echo "missing $py: see benchmarks/peers/README.md" >&2; exit 1; }
mkdir -p "$out"
unset OPENBLAS_CORETYPE  # DESIGN.md: halves OpenBLAS's sgemm where set

{ date -u; lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-200; uptime; } > "$out/machine.txt"
min_time=1
reps=3
torch_args=(--allocators glibc,tcmalloc --threads 1,2)
if [ "$quick" = "--quick" ]; then
    min_time=0.2
    reps=1
    torch_args+=(--quick)
fi
filter='SASRec_(Inference/B:(1|128)/N:9724|TrainStep/B:128/N:9724)/|Limits_EigenSgemm/'
run_recblocks() {
    "$bench" --benchmark_filter="$filter" --benchmark_min_time="$min_time" --benchmark_repetitions="$reps" \
        --benchmark_report_aggregates_only=true --benchmark_out="$1" --benchmark_out_format=json >/dev/null
}
echo "recblocks (1/2)..."
run_recblocks "$out/recblocks_before.json"
echo "PyTorch peer..."
"$py" "$root/benchmarks/peers/sasrec_torch_speed.py" "${torch_args[@]}" --out "$out/torch.json" > "$out/torch.txt"
echo "recblocks (2/2)..."
run_recblocks "$out/recblocks_after.json"
uptime >> "$out/machine.txt"

"$py" - "$out" <<'EOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def medians(name):
    d = json.load(open(out / name))
    return {b["run_name"]: b for b in d["benchmarks"] if b.get("aggregate_name") == "median"}
before, after = medians("recblocks_before.json"), medians("recblocks_after.json")
torch = json.load(open(out / "torch.json"))
rows = []
for kind, batch, bench in [("infer", 1, "BM_SASRec_Inference/B:1/N:9724"), ("infer", 128, "BM_SASRec_Inference/B:128/N:9724"),
                           ("train", 128, "BM_SASRec_TrainStep/B:128/N:9724")]:
    for threads in (1, 2):
        key = f"{bench}/threads:{threads}/real_time"
        ours = [m[key]["seq/s"] for m in (before, after) if key in m]
        peers = [r for r in torch["results"] if r["kind"] == kind and r["batch"] == batch and r["threads"] == threads
                 and "bf16" not in r["config"]]
        if not ours or not peers:
            continue
        best = max(peers, key=lambda r: r["seq_per_s"])
        ootb = [r["seq_per_s"] for r in peers if r["config"] == "eager-ref" and r["allocator"] == "glibc"]
        lo, hi = min(ours), max(ours)
        rows.append((kind, batch, threads, lo, hi, best["seq_per_s"], f'{best["config"]}, {best["allocator"]}',
                     ootb[0] if ootb else float("nan")))
print("| | B | threads | recblocks seq/s (slower / faster pass) | PyTorch best f32 | ratio (worse pass) | PyTorch out of the box |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for kind, batch, threads, lo, hi, best, cfg, ootb in rows:
    print(f"| {kind} | {batch} | {threads} | {lo:,.0f} / {hi:,.0f} | {best:,.0f} ({cfg}) | **{lo / best:.2f}x** | {ootb:,.0f} |")
EOF
