#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz/ (clang++, ASan + UBSan) in
# build-fuzz/ and runs each one for a bounded time (docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]
#       SECONDS_PER_HARNESS  default 60; CI (./recblocks test) runs 30
#       HARNESS              fuzz_safetensors, fuzz_checkpoint, ... (default: all)
#
# Long run (the figures in docs/fuzzing.md): scripts/fuzz.sh 3600
#
# Environment: RECBLOCKS_FUZZ_DIR (default build-fuzz), RECBLOCKS_JOBS (build jobs, default 2).
# The corpora grow across runs in $RECBLOCKS_FUZZ_DIR/fuzz/corpus/<harness>/ (seeded from
# .../fuzz/seeds/, written by the library's own writers). A harness that finds a crash, an
# out-of-memory (one allocation over 1 GiB, or 2 GiB resident) or a timeout (10 s on one input)
# leaves the input in $RECBLOCKS_FUZZ_DIR/fuzz/artifacts/ and makes this script exit 1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-60}"
shift || true
build="${RECBLOCKS_FUZZ_DIR:-build-fuzz}"
jobs="${RECBLOCKS_JOBS:-2}"

if ! command -v clang++ >/dev/null 2>&1; then
    echo "fuzz: clang++ not found (Debian: apt-get install clang libclang-rt-dev; scripts/setup.sh installs them)" >&2
    exit 1
fi

launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DRECBLOCKS_BUILD_FUZZERS=ON -DRECBLOCKS_BUILD_TESTS=OFF -DRECBLOCKS_BUILD_BENCHMARKS=OFF \
    -DRECBLOCKS_BUILD_EXAMPLES=OFF -DRECBLOCKS_WITH_CUDA=OFF -DRECBLOCKS_INSTALL=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" --parallel "$jobs" --target recblocks_fuzzers

dir="$build/fuzz"
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
    for bin in "$dir"/fuzz_*; do harnesses+=("$(basename "$bin")"); done
fi

# As for the ASan tests (./recblocks): no address randomisation, which some kernels' high
# vm.mmap_rnd_bits make ASan's shadow mapping fail on.
norandom=()
if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
    norandom=(setarch "$(uname -m)" -R)
fi

mkdir -p "$dir/artifacts" "$dir/logs"
total=0
failed=0
for name in "${harnesses[@]}"; do
    seeds="$dir/seeds/${name#fuzz_}"
    corpus="$dir/corpus/$name"
    mkdir -p "$corpus"
    log="$dir/logs/$name.log"
    set +e
    "${norandom[@]}" "$dir/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    execs=${execs:-0}
    total=$((total + execs))
    units=$(find "$corpus" -type f | wc -l)
    if ((rc == 0)); then
        printf 'fuzz: %-22s %12d executions in %5d s, corpus %5d files: ok\n' "$name" "$execs" "$seconds" "$units"
    else
        failed=1
        kind=$(grep -m1 -oE 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer): [a-z -]+|runtime error|out-of-memory|timeout' "$log" || true)
        printf 'fuzz: %-22s FAILED (exit %d: %s); input in %s/artifacts/, log %s\n' "$name" "$rc" "${kind:-see log}" "$dir" "$log"
        tail -40 "$log" >&2
    fi
done
printf 'fuzz: %d executions in total\n' "$total"
exit "$failed"
