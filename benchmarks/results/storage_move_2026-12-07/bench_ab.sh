#!/usr/bin/env bash
# A/B: before (5f27052) vs after (HEAD) SASRec benchmarks, alternating; other heavy processes kept paused.
set -u
out=${OUT:-/work/main/benchmarks/results/storage_move_2026-12-07}
filter=${FILTER:-SASRec}
rounds=${ROUNDS:-3}
mkdir -p $out
pat='cc1plus|nvcc|cicc|ptxas|recblocks_tests|bench_retrieval|recblocks_bench |/ld |collect2|recblocks_cuda'
( while true; do for p in $(pgrep -f "$pat"); do kill -STOP $p 2>/dev/null; echo $p >> /tmp/paused_pids; done; sleep 0.3; done ) &
pauser=$!
trap 'kill $pauser; sleep 0.5; for p in $(sort -u /tmp/paused_pids); do kill -CONT $p 2>/dev/null; done; rm -f /tmp/paused_pids' EXIT
sleep 1
lscpu > $out/lscpu.txt
uptime > $out/uptime.txt
for round in $(seq 1 $rounds); do
  for kind in before after; do
    bin=/work/wt-before/build-bench/recblocks_bench_sasrec
    [[ $kind == after ]] && bin=/work/main/build-bench-default/recblocks_bench_sasrec
    $bin --benchmark_filter="$filter" --benchmark_min_time=0.3 --benchmark_repetitions=3 \
        --benchmark_out=$out/${kind}_${round}.json --benchmark_out_format=json > /dev/null 2>&1
  done
done
uptime >> $out/uptime.txt
