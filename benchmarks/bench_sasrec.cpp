// Whole-model SASRec at the shape (D = 50, L = 200, 2 blocks, 1 head):
// inference with scoring of all items and top-10 at batch 1 and 128, and one
// training step (forward, BCE, backward, Adam) at batch 128, dropout 0.2.
// N = 3,416 (MovieLens-1M's items) and 9,724 (ml-latest-small's).
//
// GFLOP/s counts the model's matrix products as a dense implementation does
// them (projections, QKᵀ, PV, feed-forward for every position, and the
// scoring), so optimisations that skip work show up as a higher rate:
//   forward per sequence = blocks · 2L(4D² + 2LD + 2D²) + 2DN;  training ≈ 3 × forward.
// Compare with PyTorch: benchmarks/peers/sasrec_torch_speed.py (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include "bench_common.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/ops/top_k.hpp"
#include "recblocks/optim/adam.hpp"

namespace {

using bench::Be;
constexpr rb::index_t kL = 200, kD = 50, kBlocks = 2;

double forward_flops(double n_items) {
    const double l = kL, d = kD;
    return kBlocks * 2.0 * l * (4 * d * d + 2 * l * d + 2 * d * d) + 2.0 * d * n_items;
}

rb::models::SASRecConfig config(rb::index_t n_items) {
    rb::models::SASRecConfig c;
    c.num_items = n_items;
    c.max_len = kL;
    c.d_model = kD;
    c.num_blocks = kBlocks;
    c.heads = 1;
    c.dropout = 0.2;
    return c;
}

/// Histories of 50..200 items (left-padded), as in MovieLens.
void fill_histories(rb::Matrix<rb::row_id_t>& ids, rb::index_t n_items, unsigned seed) {
    std::mt19937 gen(seed);
    for (rb::index_t b = 0; b < ids.extent(0); ++b) {
        const rb::index_t len = 50 + static_cast<rb::index_t>(gen() % 151);
        for (rb::index_t t = 0; t < kL; ++t)
            ids(b, t) = t < kL - len ? 0 : static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(n_items));
    }
}

void BM_SASRec_Inference(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::SASRec<float> model(config(n), rb::Rng(1));
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, kL}}), top(rb::Shape<2>{{b, 10}});
    rb::Matrix<float> scores(rb::Shape<2>{{b, n + 1}}), top_s(top.shape());
    fill_histories(ids, n, 7);
    model.score_all(be, pool, ids.cview(), scores.view());  // warm-up: workspaces are sized once
    for (auto _ : state) {
        model.score_all(be, pool, ids.cview(), scores.view());
        rb::ops::top_k_rows(be, scores.cview(), 10, top.view(), top_s.view());
        benchmark::ClobberMemory();
    }
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(double(b) * forward_flops(double(n)) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void BM_SASRec_TrainStep(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::SASRec<float> model(config(n), rb::Rng(1));
    rb::optim::Adam<float> adam({1e-3, 0.9, 0.98}, model.params());
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, kL}}), pos(ids.shape()), neg(ids.shape());
    fill_histories(ids, n, 7);
    std::mt19937 gen(3);
    for (rb::index_t i = 0; i < ids.numel(); ++i) {
        pos.data()[i] = ids.data()[i] == 0 ? 0 : static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(n));
        neg.data()[i] = ids.data()[i] == 0 ? 0 : static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(n));
    }
    std::uint64_t step = 0;
    model.train_step_bce(be, pool, ids.cview(), pos.cview(), neg.cview(), step++);  // warm-up
    for (auto _ : state) {
        model.train_step_bce(be, pool, ids.cview(), pos.cview(), neg.cview(), step++);
        adam.step(model.params(), 1e-3);
        benchmark::ClobberMemory();
    }
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(3.0 * double(b) * (forward_flops(double(n)) - 2.0 * kD * double(n)) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void InferenceShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "N", "threads"});
    for (int threads : {1, 2})
        for (int n : {3416, 9724}) {
            bm->Args({1, n, threads});
            bm->Args({128, n, threads});
        }
    bm->UseRealTime();
}

void TrainShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "N", "threads"});
    for (int n : {3416, 9724})
        for (int threads : {1, 2}) bm->Args({128, n, threads});
    bm->UseRealTime();
}

BENCHMARK(BM_SASRec_Inference)->Apply(InferenceShapes);
BENCHMARK(BM_SASRec_TrainStep)->Apply(TrainShapes);

}  // namespace
