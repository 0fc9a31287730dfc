#!/bin/bash
# Baseline (a31d02c) vs HEAD, alternating: base, head, base, head.
# Other people's cc1plus / make / gmake / cmake are SIGSTOPped for each timed run and SIGCONTed right after.
set -u
OUT=$(cd "$(dirname "$0")" && pwd)
BASE=/work/wt-baseline/build-regress/recblocks_bench
HEAD=/work/main/build-regress/recblocks_bench
FILTER="$1"
MYPID=$$
STOPPED=""
resume() { if [ -n "$STOPPED" ]; then kill -CONT $STOPPED 2>/dev/null; echo "resumed: $STOPPED" >> "$OUT/pause.log"; STOPPED=""; fi; }
trap 'resume' EXIT
trap 'exit 130' INT TERM
pause() {
  # repeat until no new pid appears (a make could spawn a compiler between scan and stop)
  for pass in 1 2 3; do
    local pids
    pids=$(pgrep -x 'cc1plus|make|gmake|cmake' | while read p; do
      # skip this script's own descendants (none expected)
      a=$p; mine=0; while [ "$a" -gt 1 ]; do [ "$a" = "$MYPID" ] && mine=1 && break; a=$(ps -o ppid= -p "$a" 2>/dev/null | tr -d ' '); [ -z "$a" ] && break; done
      [ $mine = 0 ] && echo $p; done)
    local new=""
    for p in $pids; do case " $STOPPED " in *" $p "*) ;; *) new="$new $p";; esac; done
    [ -z "$new" ] && break
    kill -STOP $new 2>/dev/null
    STOPPED="$STOPPED$new"
  done
  echo "$(date -u +%T) paused:$STOPPED" >> "$OUT/pause.log"
}
run() {  # tag binary
  pause
  sleep 1
  echo "$(date -u +%T) start $1  load: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/pause.log"
  ps -eo pid,stat,pcpu,comm --sort=-pcpu | head -6 >> "$OUT/pause.log"
  "$2" --benchmark_filter="$FILTER" --benchmark_repetitions=3 --benchmark_min_time=0.3 \
       --benchmark_out="$OUT/$1.json" --benchmark_out_format=json > "$OUT/$1.txt" 2>&1
  echo "$(date -u +%T) end $1 rc=$?" >> "$OUT/pause.log"
  resume
}
