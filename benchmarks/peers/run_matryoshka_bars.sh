#!/usr/bin/env bash
# Matryoshka blocks against PyTorch in ONE run on one machine: recblocks
# (bench_matryoshka.cpp), the PyTorch peer (matryoshka_torch.py, same shapes),
# recblocks again (a gap between the two passes shows the machine drifting),
# then a ratio table.
#
#   benchmarks/peers/run_matryoshka_bars.sh OUT_DIR [--quick]
#
# Builds nothing: needs build-bench/recblocks_bench (docs/benchmarks.md) and the
# venv of benchmarks/peers/README.md. Run it on an otherwise idle machine.
set -euo pipefail
out="${1:?usage: run_matryoshka_bars.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${RECBLOCKS_BENCH:-$root/build-bench/recblocks_bench}"
py="${RECBLOCKS_PY:-$root/benchmarks/peers/.venv/bin/python}"
[ -x "$bench" ] || { echo "missing $bench: build the recblocks_bench target in build-bench/" >&2; exit 1; }
[ -x "$py" ] || { echo "missing $py: see benchmarks/peers/README.md" >&2; exit 1; }
mkdir -p "$out"
unset OPENBLAS_CORETYPE

{ date -u; lscpu | grep -E "Model name|^CPU\(s\)" ; uptime; } > "$out/machine.txt"
min_time=1
reps=3
torch_args=(--threads 1,2)
if [ "$quick" = "--quick" ]; then
    min_time=0.2
    reps=1
    torch_args+=(--quick)
fi
run_recblocks() {
    "$bench" --benchmark_filter='Matryoshka' --benchmark_min_time="$min_time" --benchmark_repetitions="$reps" \
        --benchmark_report_aggregates_only=true --benchmark_out="$1" --benchmark_out_format=json >/dev/null
}
echo "recblocks (1/2)..."
run_recblocks "$out/recblocks_before.json"
echo "PyTorch peer..."
"$py" "$root/benchmarks/peers/matryoshka_torch.py" "${torch_args[@]}" --out "$out/torch.json" > "$out/torch.txt"
echo "recblocks (2/2)..."
run_recblocks "$out/recblocks_after.json"
uptime >> "$out/machine.txt"

"$py" - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def medians(name):
    d = json.load(open(out / name))
    return {b["run_name"]: b for b in d["benchmarks"] if b.get("aggregate_name") in ("median", None)}
before, after = medians("recblocks_before.json"), medians("recblocks_after.json")
torch = json.load(open(out / "torch.json"))["results"]
cases = [("bce", "BM_MatryoshkaBce_ForwardBackward/rows:25600/N:10000/real_time", [1]),
         ("softmax_ce", "BM_MatryoshkaSoftmaxCE_ForwardBackward/rows:2560/N:10000/threads:{t}/real_time", [1, 2]),
         ("nested_linear", "BM_MatryoshkaLinear_ForwardBackward/rows:25600/threads:{t}/real_time", [1, 2])]
print("| case (forward + backward) | threads | recblocks positions/s (slower / faster pass) | GFLOP/s | PyTorch positions/s | ratio (slower pass) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for case, key, threads in cases:
    for t in threads:
        k = key.format(t=t)
        ours = [m[k] for m in (before, after) if k in m]
        peer = [r for r in torch if r["case"] == case and r["threads"] == t]
        if not ours or not peer:
            continue
        lo = min(ours, key=lambda b: b["positions/s"])
        hi = max(b["positions/s"] for b in ours)
        p = peer[0]["positions/s"]
        print(f"| {case} | {t} | {lo['positions/s']:,.0f} / {hi:,.0f} | {lo['GFLOP/s']:.1f} | {p:,.0f} | **{lo['positions/s'] / p:.2f}x** |")
PY
