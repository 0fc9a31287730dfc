// MultiHeadSelfAttention forward and backward at SASRec / BERT4Rec shapes.
// GFLOP/s counts the matrix products only (projections, QKᵀ, PV and, for
// backward, their gradients): 2·B·L·(4D² + 2·L·D) forward, twice that backward.
#include <benchmark/benchmark.h>

#include "bench_common.hpp"
#include "recblocks/blocks/multi_head_self_attention.hpp"

namespace {

using bench::Be;

double forward_flops(double b, double l, double d) { return 2.0 * b * l * (4.0 * d * d + 2.0 * l * d); }

void BM_MultiHeadSelfAttention_Forward(benchmark::State& state) {
    const rb::index_t b = state.range(0), l = state.range(1), d = state.range(2), h = state.range(3);
    const Be be{&bench_pool(static_cast<int>(state.range(4)))};
    rb::blocks::MultiHeadSelfAttention<float> attn({d, h}, rb::Rng(1));
    rb::Tensor<float, 3> x(rb::Shape<3>{{b, l, d}}), y(x.shape());
    bench::fill_uniform(x, 1);
    for (auto _ : state) {
        attn.forward(be, x.cview(), y.view());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] =
        benchmark::Counter(forward_flops(double(b), double(l), double(d)) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MultiHeadSelfAttention_Backward(benchmark::State& state) {
    const rb::index_t b = state.range(0), l = state.range(1), d = state.range(2), h = state.range(3);
    const Be be{&bench_pool(static_cast<int>(state.range(4)))};
    rb::blocks::MultiHeadSelfAttention<float> attn({d, h}, rb::Rng(1));
    rb::Tensor<float, 3> x(rb::Shape<3>{{b, l, d}}), y(x.shape()), dy(x.shape()), dx(x.shape());
    bench::fill_uniform(x, 1);
    bench::fill_uniform(dy, 2);
    attn.forward(be, x.cview(), y.view());
    for (auto _ : state) {
        attn.backward(be, dy.cview(), dx.view());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * forward_flops(double(b), double(l), double(d)) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void AttentionShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "L", "D", "H", "threads"});
    for (int threads : {1, 2}) {
        bm->Args({1, 200, 50, 1, threads});    // SASRec ML-1M, serving one user
        bm->Args({128, 200, 50, 1, threads});  // SASRec ML-1M, a training / serving batch
        bm->Args({128, 50, 64, 2, threads});   // BERT4Rec-like, short sequences
    }
    bm->UseRealTime();
}

BENCHMARK(BM_MultiHeadSelfAttention_Forward)->Apply(AttentionShapes);
BENCHMARK(BM_MultiHeadSelfAttention_Backward)->Apply(AttentionShapes);

}  // namespace
