// GEMM through ops::gemm / ops::gemm_batched on backend::Cpu<isa::Dispatch>.
// The product itself is Eigen's, vectorised for the ISA this file is compiled
// for (build with -march=native / RECBLOCKS_NATIVE=ON); compare with
// BM_Limits_EigenSgemm_Recsys (Eigen called directly, one thread).
//   BM_Gemm_NN/M/K/N/threads       c[M,N] = a[M,K] * b[K,N]
//   BM_Gemm_Batched/B/M/K/N/threads  B independent products (attention scores)
#include <benchmark/benchmark.h>

#include <random>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/gemm.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
using bench::fill_uniform;


void BM_Gemm_NN(benchmark::State& state) {
    const rb::index_t m = state.range(0), k = state.range(1), n = state.range(2);
    const Be be{&bench_pool(static_cast<int>(state.range(3)))};
    rb::Matrix<float> a(rb::Shape<2>{{m, k}}), b(rb::Shape<2>{{k, n}}), c(rb::Shape<2>{{m, n}});
    fill_uniform(a, 1);
    fill_uniform(b, 2);
    for (auto _ : state) {
        rb::ops::gemm<Be, float>(be, rb::Trans::no, rb::Trans::no, 1.0f, a.cview(), b.cview(), 0.0f, c.view());
        benchmark::ClobberMemory();
    }
    const double flops = 2.0 * double(m) * double(n) * double(k);
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * int64_t(4 * (m * k + k * n + m * n)));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * m);  // rows of c
}
BENCHMARK(BM_Gemm_NN)
    ->ArgNames({"M", "K", "N", "threads"})
    ->ArgsProduct({{25600}, {64}, {192}, {1, 2}})   // the bar shape
    ->ArgsProduct({{25600}, {50}, {50}, {1, 2}})    // SASRec d=50 projections
    ->ArgsProduct({{128}, {50}, {3416}, {1, 2}})    // score a 3,416-item catalogue
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Gemm_Batched(benchmark::State& state) {
    const rb::index_t batch = state.range(0), m = state.range(1), k = state.range(2), n = state.range(3);
    const Be be{&bench_pool(static_cast<int>(state.range(4)))};
    rb::Tensor<float, 3> a(rb::Shape<3>{{batch, m, k}}), b(rb::Shape<3>{{batch, k, n}}),
        c(rb::Shape<3>{{batch, m, n}});
    fill_uniform(a, 3);
    fill_uniform(b, 4);
    for (auto _ : state) {
        rb::ops::gemm_batched<Be, float>(be, rb::Trans::no, rb::Trans::no, 1.0f, a.cview(), b.cview(), 0.0f,
                                         c.view());
        benchmark::ClobberMemory();
    }
    const double flops = 2.0 * double(batch) * double(m) * double(n) * double(k);
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * int64_t(4 * batch * (m * k + k * n + m * n)));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * batch);
}
BENCHMARK(BM_Gemm_Batched)
    ->ArgNames({"B", "M", "K", "N", "threads"})
    ->ArgsProduct({{128}, {200}, {64}, {200}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
