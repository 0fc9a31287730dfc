// The one main() of recblocks_bench; every other benchmarks/*.cpp only
// registers benchmarks (BM_<Component>_<Variant>, see docs/benchmarks.md).
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
