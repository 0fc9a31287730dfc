// SequenceEmbedding and FeedForward forward/backward at SASRec shapes
// (B = 128, L = 200, D = 50; BERT4Rec-like FFN with inner 4D = 256 at D = 64).
#include <benchmark/benchmark.h>

#include "bench_common.hpp"
#include "recblocks/blocks/feed_forward.hpp"
#include "recblocks/blocks/sequence_embedding.hpp"

namespace {

using bench::Be;

void BM_SequenceEmbedding_Forward(benchmark::State& state) {
    const rb::index_t b = state.range(0), l = state.range(1), d = state.range(2), n = 3416;
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(3)));
    const Be be{&pool};
    rb::blocks::SequenceEmbedding<float> emb({.num_items = n, .d_model = d, .max_len = l, .scale_by_sqrt_d = true,
                                          .positions = rb::blocks::PositionRows::per_slot, .dropout = 0.2},
                                         rb::Rng(1));
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, l}});
    for (rb::index_t i = 0; i < ids.numel(); ++i) ids.data()[i] = static_cast<rb::row_id_t>(1 + (i * 7919) % n);
    rb::Tensor<float, 3> out(rb::Shape<3>{{b, l, d}});
    std::uint64_t step = 0;
    for (auto _ : state) {
        emb.forward(be, pool, ids.cview(), out.view(), step++, true);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * b * l * (2 * d * 4 + 4));
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_FeedForward_ForwardBackward(benchmark::State& state) {
    const rb::index_t rows = state.range(0), d = state.range(1), f = state.range(2);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(3)));
    const Be be{&pool};
    rb::blocks::FeedForward<float> ffn({.d_model = d, .inner = f, .activation = rb::Activation::relu, .dropout = 0.2}, rb::Rng(1));
    rb::Matrix<float> x(rb::Shape<2>{{rows, d}}), y(x.shape()), dy(x.shape()), dy0(x.shape()), dx(x.shape());
    bench::fill_uniform(x, 1);
    bench::fill_uniform(dy0, 2);
    std::uint64_t step = 0;
    for (auto _ : state) {
        ffn.forward(be, pool, x.cview(), y.view(), step, true);
        std::copy(dy0.begin(), dy0.end(), dy.begin());  // backward uses dy as scratch (timed: one 4·rows·D copy)
        ++step;
        ffn.backward(be, pool, dy.view(), dx.view());
        benchmark::ClobberMemory();
    }
    // 2 products forward, 4 backward, each 2·rows·d·f.
    state.counters["GFLOP/s"] = benchmark::Counter(6.0 * 2.0 * double(rows) * double(d) * double(f) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_SequenceEmbedding_Forward)
    ->ArgNames({"B", "L", "D", "threads"})
    ->Args({128, 200, 50, 1})
    ->Args({128, 200, 50, 2})
    ->UseRealTime();
BENCHMARK(BM_FeedForward_ForwardBackward)
    ->ArgNames({"rows", "D", "F", "threads"})
    ->Args({25600, 50, 50, 1})
    ->Args({25600, 50, 50, 2})
    ->Args({25600, 64, 256, 1})
    ->Args({25600, 64, 256, 2})
    ->UseRealTime();

}  // namespace
