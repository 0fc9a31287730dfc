// Top-k per row (k = 10) on backend::Cpu<isa::Dispatch>, f32:
//   BM_TopK_Rows/rows/N/k/threads   scores [rows, N] -> ids, values [rows, k]
// Scores are uniform random (fixed seed), so after the first few thousand
// entries almost nothing beats the heap root: the scan should run at read
// bandwidth (compare BM_Limits_ReadBandwidth). Bytes: the scores, 4 B each.
// [1, 1e6] is 4 MB (L2/L3-resident after the first pass); [128, 1e5] is 51 MB.
#include <benchmark/benchmark.h>

#include <random>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/top_k.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;

void BM_TopK_Rows(benchmark::State& state) {
    const rb::index_t rows = state.range(0), n = state.range(1), k = state.range(2);
    const Be be{&bench_pool(static_cast<int>(state.range(3)))};
    rb::Matrix<float> scores(rb::Shape<2>{{rows, n}}), values(rb::Shape<2>{{rows, k}});
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{rows, k}});
    std::mt19937 gen(11);
    std::normal_distribution<float> u(0.0f, 1.0f);
    for (float& v : scores) v = u(gen);
    for (auto _ : state) {
        rb::ops::top_k_rows<Be, float>(be, scores.cview(), k, ids.view(), values.view());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * rows * n * 4);
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * rows * n);  // scores scanned
}
BENCHMARK(BM_TopK_Rows)
    ->ArgNames({"rows", "N", "k", "threads"})
    ->ArgsProduct({{1}, {1000000}, {10}, {1, 2}})
    ->ArgsProduct({{128}, {10000, 100000}, {10}, {1, 2}})
    ->ArgsProduct({{1}, {16777216}, {10}, {1, 2}})  // DRAM-sized single row (64 MiB)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
