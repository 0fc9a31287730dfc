#!/usr/bin/env bash
# DARE search stage vs the machine's read and gather ceilings, in ONE run (builds nothing):
#   BM_Dare_Search d_a 16 / 64 (1e6-row table, with and without huge pages),
#   BM_Limits_ReadBandwidth/threads:1 (sequential 256 MiB sum: the bar's denominator) and
#   BM_Limits_GatherBandwidth (random 64 / 256 B rows of a 256 MiB table, per-row vs blocked prefetch),
# 5 repetitions (1 with --quick), medians, then a table: GB/s and % of read bandwidth, and the
# d_a = 16 vs 64 speed-up. Bars: d_a 16 >= 2x faster than d_a 64; d_a 64 >= 70 % of read bandwidth.
#
#   benchmarks/peers/run_dare_gather_bars.sh OUT_DIR [--quick]
#
# Needs build-bench/recblocks_bench (or BENCH=path). Run it on an otherwise idle machine.
set -euo pipefail
out="${1:?usage: run_dare_gather_bars.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${RECBLOCKS_BENCH:-${BENCH:-$root/build-bench/recblocks_bench}}"
[ -x "$bench" ] || { echo "missing $bench: build the recblocks_bench target in build-bench/ (or set BENCH)" >&2; exit 1; }
mkdir -p "$out"
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)|Hypervisor"; uptime; } > "$out/machine.txt"
reps=5; min_time=0.5
if [ "$quick" = "--quick" ]; then reps=1; min_time=0.2; fi
"$bench" --benchmark_filter='BM_Dare_Search/d_a:(16|64)/items:1000000|BM_Limits_ReadBandwidth/threads:1|BM_Limits_GatherBandwidth' \
    --benchmark_min_time="$min_time" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/recblocks.json" --benchmark_out_format=json >/dev/null
uptime >> "$out/machine.txt"
python3 - "$out" "$reps" <<'PYEOF'
import json, sys, pathlib
out, reps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
d = json.load(open(out / "recblocks.json"))
agg = "median" if reps > 1 else None
med = {b["run_name"]: b for b in d["benchmarks"] if b.get("aggregate_name", "median") == "median" or agg is None}
cpu = [l for l in open(out / "machine.txt") if "Model name" in l]
bw = med["BM_Limits_ReadBandwidth/threads:1/real_time"]["bytes_per_second"]
print("CPU:", cpu[0].split(":", 1)[1].strip() if cpu else "?", f"| {reps} repetitions, medians",
      f"| read bandwidth (1 thread, 256 MiB sum): {bw / 1e9:.2f} GB/s")
print()
print("| case | us / iteration | GB/s (useful bytes) | % of read bandwidth |")
print("| --- | ---: | ---: | ---: |")
scale = {"ns": 1e-3, "us": 1, "ms": 1e3}
us = {}
for name, b in sorted(med.items()):
    if "ReadBandwidth" in name:
        continue
    t = b["real_time"] * scale[b["time_unit"]]
    us[name] = t
    print(f"| {name.replace('/real_time', '')} | {t:.1f} | {b['bytes_per_second'] / 1e9:.2f} | {100 * b['bytes_per_second'] / bw:.0f} % |")
print()
for huge in (0, 1):
    a, b = (us.get(f"BM_Dare_Search/d_a:{d}/items:1000000/huge:{huge}/real_time") for d in (16, 64))
    if a and b:
        print(f"d_a = 16 vs 64, huge pages {'yes' if huge else 'no'}: {b / a:.2f}x (bar >= 2x)")
PYEOF
