#!/usr/bin/env bash
# DARE bars and PyTorch peer in ONE run on one machine (builds nothing):
#   1. recblocks: BM_Dare_* and BM_Limits_ReadBandwidth/threads:1 (the read bandwidth the search is measured against)
#   2. the PyTorch peer (torch_dare.py, same shapes, 1 thread, eager)
#   3. a table: search time at d_a = 16/32/64, the d_a = 16 vs 64 speed-up (bar >= 2x), the bytes read per
#      second as % of read bandwidth (bar >= 70 % at d_a = 64, DRAM-sized table), and recblocks / PyTorch ratios.
#
#   benchmarks/peers/run_dare_bars.sh OUT_DIR [--quick]
#
# Needs build-bench/recblocks_bench (or RECBLOCKS_BENCH=path, as the other run_*_bars.sh) and the venv of benchmarks/peers/README.md
# (or PY=path). Run it on an otherwise idle machine.
set -euo pipefail
out="${1:?usage: run_dare_bars.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${RECBLOCKS_BENCH:-${BENCH:-$root/build-bench/recblocks_bench}}"
py="${PY:-$root/benchmarks/peers/.venv/bin/python}"
[ -x "$bench" ] || { echo "missing $bench: build the recblocks_bench target in build-bench/ (or set BENCH)" >&2; exit 1; }
[ -x "$py" ] || { echo "missing $py: see benchmarks/peers/README.md (or set PY)" >&2; exit 1; }
mkdir -p "$out"
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)" ; uptime; } > "$out/machine.txt"
min_time=0.5; reps=3; torch_args=()
if [ "$quick" = "--quick" ]; then min_time=0.1; reps=1; torch_args+=(--quick); fi
echo "recblocks..."
"$bench" --benchmark_filter='BM_Dare_|BM_Limits_ReadBandwidth/threads:1' --benchmark_min_time="$min_time" \
    --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/recblocks.json" --benchmark_out_format=json >/dev/null
echo "PyTorch peer..."
"$py" "$root/benchmarks/peers/torch_dare.py" --threads 1 "${torch_args[@]}" > "$out/torch.jsonl"
uptime >> "$out/machine.txt"

"$py" - "$out" <<'PYEOF'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
d = json.load(open(out / "recblocks.json"))
med = {b["run_name"]: b for b in d["benchmarks"] if b.get("aggregate_name", "median") == "median"}
def us(b):
    scale = {"ns": 1e-3, "us": 1, "ms": 1e3}[b["time_unit"]]
    return b["real_time"] * scale
bw = med["BM_Limits_ReadBandwidth/threads:1/real_time"]["bytes_per_second"]
torch = [json.loads(l) for l in open(out / "torch.jsonl") if l.strip()]
peer = {(t["case"], t.get("d_a", t.get("d_r"))): t["us"] for t in torch}
cpu = [l for l in open(out / "machine.txt") if "Model name" in l]
print("CPU:", cpu[0].split(":", 1)[1].strip() if cpu else "?", "| read bandwidth (1 thread, 256 MiB sum):", f"{bw / 1e9:.1f} GB/s")
print()
print("| search, top-32 of 10,000 | table rows | huge pages | recblocks us | GB/s read | % of read bw | PyTorch us | PyTorch / recblocks |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
t = {}
for items, huge in ((1000000, 0), (1000000, 1), (20000, 0)):
    for da in (16, 32, 64):
        b = med.get(f"BM_Dare_Search/d_a:{da}/items:{items}/huge:{huge}/real_time")
        if not b:
            continue
        t[(da, items, huge)] = us(b)
        p = peer.get(("search", da)) if (items, huge) == (1000000, 0) else None
        ratio = f"{p / us(b):.1f}x" if p else "-"
        print(f"| d_a = {da} | {items:,} | {'yes' if huge else 'no'} | {us(b):.1f} | {b['bytes_per_second'] / 1e9:.2f} | "
              f"{100 * b['bytes_per_second'] / bw:.0f} % | {p if p else float('nan'):.1f} | {ratio} |")
print()
for items, huge in ((1000000, 0), (1000000, 1), (20000, 0)):
    if (16, items, huge) in t and (64, items, huge) in t:
        print(f"bar: d_a=16 vs d_a=64 speed-up ({items:,} rows, huge pages {'yes' if huge else 'no'}): "
              f"{t[(64, items, huge)] / t[(16, items, huge)]:.2f}x (need >= 2x)")
for huge in (0, 1):
    b64 = med.get(f"BM_Dare_Search/d_a:64/items:1000000/huge:{huge}/real_time")
    if b64:
        print(f"bar: d_a=64 search (1,000,000 rows, huge pages {'yes' if huge else 'no'}) reads at "
              f"{100 * b64['bytes_per_second'] / bw:.0f} % of read bandwidth (need >= 70 %)")
print()
print("| case | recblocks ms | PyTorch ms | PyTorch / recblocks |")
print("| --- | ---: | ---: | ---: |")
for name, key in (("stage 2 + MLP fwd+bwd, B=256, d_r=64", ("agg_mlp", 64)),):
    b = med.get("BM_Dare_AggregateMlp/d_r:64/real_time")
    if b and key in peer:
        print(f"| {name} | {us(b) / 1e3:.2f} | {peer[key] / 1e3:.2f} | {peer[key] / us(b):.2f}x |")
for da in (16, 64):
    b = med.get(f"BM_Dare_TrainStep/d_a:{da}/real_time")
    if b and ("train", da) in peer:
        print(f"| train step, B=256, L=1,000, 100k items, d_a={da} | {us(b) / 1e3:.2f} | {peer[('train', da)] / 1e3:.2f} | "
              f"{peer[('train', da)] / us(b):.2f}x |")
PYEOF
