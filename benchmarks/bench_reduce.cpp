// BLAS-1 and reductions on backend::Cpu<isa::Dispatch>, f32:
//   BM_Reduce_Dot/n/threads       x . y              8 B/elem, 2 flop/elem
//   BM_Reduce_Axpy/n/threads      y += a x           12 B/elem, 2 flop/elem
//   BM_Reduce_Sum/rows/cols/threads        sum of all elements   4 B/elem
//   BM_Reduce_SumRows/rows/cols/threads    column sums (bias grad) 4 B/elem
// n = 1e6 (8-12 MB, L3-resident) and 1e7 (80-120 MB, DRAM).
#include <benchmark/benchmark.h>

#include <random>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/reduce.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
using bench::fill_uniform;


void counters(benchmark::State& state, double elems, double bytes_per_elem, double flops_per_elem) {
    state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * elems * bytes_per_elem));
    state.SetItemsProcessed(static_cast<int64_t>(double(state.iterations()) * elems));
    if (flops_per_elem > 0)
        state.counters["GFLOP/s"] =
            benchmark::Counter(elems * flops_per_elem * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Reduce_Dot(benchmark::State& state) {
    const rb::index_t n = state.range(0);
    const Be be{&bench_pool(static_cast<int>(state.range(1)))};
    rb::Vector<float> x(rb::Shape<1>{{n}}), y(rb::Shape<1>{{n}});
    fill_uniform(x, 1);
    fill_uniform(y, 2);
    for (auto _ : state) benchmark::DoNotOptimize(rb::ops::dot(be, x.cview(), y.cview()));
    counters(state, double(n), 8, 2);
}

void BM_Reduce_Axpy(benchmark::State& state) {
    const rb::index_t n = state.range(0);
    const Be be{&bench_pool(static_cast<int>(state.range(1)))};
    rb::Vector<float> x(rb::Shape<1>{{n}}), y(rb::Shape<1>{{n}});
    fill_uniform(x, 1);
    float alpha = 1e-7f;
    for (auto _ : state) {
        rb::ops::axpy<Be, float>(be, alpha, x.cview(), y.view());
        alpha = -alpha;  // keep y bounded
        benchmark::ClobberMemory();
    }
    counters(state, double(n), 12, 2);
}

void BM_Reduce_Sum(benchmark::State& state) {
    const rb::index_t rows = state.range(0), cols = state.range(1);
    const Be be{&bench_pool(static_cast<int>(state.range(2)))};
    rb::Matrix<float> x(rb::Shape<2>{{rows, cols}});
    fill_uniform(x, 3);
    for (auto _ : state) benchmark::DoNotOptimize(rb::ops::sum(be, x.cview()));
    counters(state, double(rows) * double(cols), 4, 1);
}

void BM_Reduce_SumRows(benchmark::State& state) {
    const rb::index_t rows = state.range(0), cols = state.range(1);
    const Be be{&bench_pool(static_cast<int>(state.range(2)))};
    rb::Matrix<float> x(rb::Shape<2>{{rows, cols}});
    rb::Vector<float> out(rb::Shape<1>{{cols}});
    fill_uniform(x, 4);
    for (auto _ : state) {
        rb::ops::sum_rows<Be, float>(be, x.cview(), out.view());
        benchmark::ClobberMemory();
    }
    counters(state, double(rows) * double(cols), 4, 1);
}

BENCHMARK(BM_Reduce_Dot)->ArgNames({"n", "threads"})->ArgsProduct({{1000000, 10000000}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Reduce_Axpy)->ArgNames({"n", "threads"})->ArgsProduct({{1000000, 10000000}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
// [25600, 64] (bias gradient of a d=64 layer over B*L rows) and 1e7 elements as [156250, 64].
BENCHMARK(BM_Reduce_Sum)->ArgNames({"rows", "cols", "threads"})->ArgsProduct({{25600, 156250}, {64}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Reduce_SumRows)->ArgNames({"rows", "cols", "threads"})
    ->ArgsProduct({{25600}, {50, 64, 128}, {1, 2}})->ArgsProduct({{156250}, {64}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
