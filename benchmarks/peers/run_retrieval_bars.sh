#!/usr/bin/env bash
# Exact top-k retrieval against FAISS IndexFlatIP in ONE run on one machine:
# recblocks (bench_retrieval.cpp + the read-bandwidth limit), FAISS at 1 and 2
# threads (one process each, on OpenBLAS when /tmp/oblas holds it), then a
# table of the issue's bars.
#
#   benchmarks/peers/run_retrieval_bars.sh OUT_DIR [--quick]
#
# Builds nothing: needs build-bench/recblocks_bench (docs/benchmarks.md) and
# Debian's /usr/bin/python3 with python3-faiss. Trained embeddings for the
# funnel rows: RECBLOCKS_RETRIEVAL_EMBEDDINGS=FILE (examples/sasrec
# --save_embeddings; see docs/retrieval.md), else uniform random data.
# Run it on an otherwise idle machine.
set -euo pipefail
out="${1:?usage: run_retrieval_bars.sh OUT_DIR [--quick]}"
quick="${2:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bench="${RECBLOCKS_BENCH:-$root/build-bench/recblocks_bench}"
[ -x "$bench" ] || { echo "missing $bench: build the recblocks_bench target in build-bench/" >&2; exit 1; }
mkdir -p "$out"
oblas=/tmp/oblas/root/usr/lib/x86_64-linux-gnu/openblas-pthread
{ date -u; lscpu | grep -E "Model name|^CPU\(s\)" ; uptime; } > "$out/machine.txt"
min_time=0.5
repeats=5
[ "$quick" = "--quick" ] && { min_time=0.1; repeats=2; }
# Medians of 3 repetitions for every recblocks row.
reps=(--benchmark_repetitions=3 --benchmark_report_aggregates_only=true)
# Exact search, int8, bf16 and MaxSim on uniform data; the funnel rows on the trained embeddings.
echo "recblocks (uniform data)..."
env -u RECBLOCKS_RETRIEVAL_EMBEDDINGS "$bench" \
    --benchmark_filter='BM_Limits_ReadBandwidth|BM_Retrieval_(Query|Batch|I8Rerank|MaxSim)' \
    --benchmark_min_time="$min_time" "${reps[@]}" --benchmark_out="$out/recblocks.json" --benchmark_out_format=json \
    > "$out/recblocks.txt" 2>&1
echo "recblocks (funnel; RECBLOCKS_RETRIEVAL_EMBEDDINGS=${RECBLOCKS_RETRIEVAL_EMBEDDINGS:-unset: uniform data})..."
"$bench" --benchmark_filter='BM_Retrieval_(Funnel/(d1:16|d1:64)|FunnelCatalogue)' --benchmark_min_time="$min_time" "${reps[@]}" \
    --benchmark_out="$out/recblocks_funnel.json" --benchmark_out_format=json > "$out/recblocks_funnel.txt" 2>&1 || true
for t in 1 2; do
    echo "FAISS, $t thread(s)..."
    if [ -d "$oblas" ]; then
        LD_LIBRARY_PATH="$oblas" OPENBLAS_NUM_THREADS=$t /usr/bin/python3 "$root/benchmarks/peers/faiss_retrieval.py" \
            --threads $t --repeats $repeats > "$out/faiss_t$t.jsonl"
    else
        /usr/bin/python3 "$root/benchmarks/peers/faiss_retrieval.py" --threads $t --repeats $repeats > "$out/faiss_t$t.jsonl"
    fi
done
uptime >> "$out/machine.txt"

/usr/bin/python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
def medians(path):  # run name -> its median row
    return {x["run_name"]: x for x in json.load(open(path))["benchmarks"] if x.get("aggregate_name") == "median"}
b = medians(out / "recblocks.json")
if (out / "recblocks_funnel.json").exists():
    b.update(medians(out / "recblocks_funnel.json"))
def get(name, key="items_per_second"):
    return b[name][key] if name in b else float("nan")
faiss = {}
for t in (1, 2):
    for line in open(out / f"faiss_t{t}.jsonl"):
        r = json.loads(line)
        if r["bench"] == "flatip":
            faiss[(r["batch"], t)] = r["queries_per_second"]
print(open(out / "machine.txt").read().strip())
print()
print("| what | threads | recblocks | reference | ratio | bar |")
print("|---|---|---|---|---|---|")
for t in (1, 2):
    bw = get(f"BM_Limits_ReadBandwidth/threads:{t}/real_time", "bytes_per_second")
    q = f"BM_Retrieval_Query/threads:{t}/dtype:0/real_time"
    print(f"| f32 1e6x64 one query, GB/s vs read bandwidth | {t} | {get(q, 'bytes_per_second')/1e9:.2f} | "
          f"{bw/1e9:.2f} | {get(q, 'bytes_per_second')/bw:.2f} | >= 0.80 (1 thread) |")
    for batch, name in ((1, q), (256, f"BM_Retrieval_Batch/threads:{t}/dtype:0/real_time")):
        ours, peer = get(name), faiss.get((batch, t), float("nan"))
        print(f"| f32 queries/s batch {batch} vs FAISS IndexFlatIP | {t} | {ours:.1f} | {peer:.1f} | {ours/peer:.2f} | >= 1 |")
    for dt, label in ((1, "bf16"), (2, "int8")):
        n = f"BM_Retrieval_Query/threads:{t}/dtype:{dt}/real_time"
        bar = ">= 3 at recall >= 0.99" if dt == 2 else "-"
        print(f"| {label} one query vs f32 (recall@10 {b.get(n, {}).get('recall@10', float('nan')):.3f}) | {t} | "
              f"{get(n):.1f} | {get(q):.1f} | {get(n)/get(q):.2f} | {bar} |")
    for sl in (20, 50):
        n = f"BM_Retrieval_I8Rerank/threads:{t}/shortlist:{sl}/real_time"
        print(f"| int8 shortlist {sl} + f32 re-rank vs f32 (recall@10 {b.get(n, {}).get('recall@10', float('nan')):.3f}) | "
              f"{t} | {get(n):.1f} | {get(q):.1f} | {get(n)/get(q):.2f} | >= 3 at recall >= 0.99 |")
    n = f"BM_Retrieval_MaxSim/threads:{t}/real_time"
    print(f"| MaxSim items/s (16 query vectors, 10k items x 16 vectors, D 64) | {t} | {get(n):.0f} | - | - | - |")
# Funnel rows against ExactIndex<float>::search on the same table (shortlist 0).
exact = get("BM_Retrieval_Funnel/d1:64/shortlist:0/threads:1/real_time")
for name, x in sorted(b.items()):
    if name.startswith("BM_Retrieval_Funnel/") and "d1:64" not in name and "threads:1" in name:
        print(f"| funnel {name.split('/')[1]} {name.split('/')[2]} 1e6 ({x.get('label','')}, recall@10 "
              f"{x.get('recall@10', float('nan')):.3f}) | 1 | {x['items_per_second']:.1f} | {exact:.1f} | "
              f"{x['items_per_second']/exact:.2f} | d1=16: >= 3 at recall >= 0.95 |")
exact = get("BM_Retrieval_FunnelCatalogue/d1:64/shortlist:0/real_time")
for name, x in sorted(b.items()):
    if name.startswith("BM_Retrieval_FunnelCatalogue/") and "d1:64" not in name and not x.get("error_occurred"):
        print(f"| trained catalogue funnel {name.split('/')[1]} {name.split('/')[2]} (recall@10 "
              f"{x.get('recall@10', float('nan')):.3f}) | 1 | {x['items_per_second']:.0f} | {exact:.0f} | "
              f"{x['items_per_second']/exact:.2f} | d1=16: >= 3 at recall >= 0.95 |")
PY
