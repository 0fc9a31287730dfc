// Whole-model BERT4Rec at MovieLens-1M's shape (N = 3,416 items, L = 200,
// D = 64, 2 blocks, 2 heads, dropout 0.2): one cloze training step (forward,
// full-softmax cross-entropy over every item at the masked slots, backward,
// AdamW) at batch 128 with 20 % of the items masked, and serving (score_all:
// every item for the [mask] appended to each history) at batch 128.
// N = 9,724 (ml-latest-small) shows the loss's share growing with the catalogue.
#include <benchmark/benchmark.h>

#include "bench_common.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/optim/adam.hpp"

namespace {

using bench::Be;
constexpr rb::index_t kL = 200, kD = 64;

rb::models::BERT4RecConfig config(rb::index_t n_items) {
    rb::models::BERT4RecConfig c;
    c.num_items = n_items;
    c.max_len = kL;
    c.d_model = kD;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    return c;
}

/// Histories of 50..200 items (left-padded); with labels, 20 % of the items masked.
void fill_batch(rb::Matrix<rb::row_id_t>& ids, rb::Matrix<rb::row_id_t>* labels, rb::index_t n_items, unsigned seed) {
    std::mt19937 gen(seed);
    for (rb::index_t b = 0; b < ids.extent(0); ++b) {
        const rb::index_t len = 50 + static_cast<rb::index_t>(gen() % 151);
        for (rb::index_t t = 0; t < kL; ++t) {
            const rb::row_id_t item = t < kL - len ? 0 : static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(n_items));
            ids(b, t) = item;
            if (!labels) continue;
            const bool masked = item != 0 && gen() % 5 == 0;
            (*labels)(b, t) = masked ? item : 0;
            if (masked) ids(b, t) = static_cast<rb::row_id_t>(n_items + 1);
        }
    }
}

void BM_BERT4Rec_TrainStep(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::BERT4Rec<float> model(config(n), rb::Rng(1));
    rb::optim::Adam<float>::Config ac;
    ac.lr = 1e-4;
    ac.eps = 1e-6;
    ac.weight_decay = 0.01;
    ac.decoupled = true;
    rb::optim::Adam<float> adam(ac, model.params());
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, kL}}), labels(ids.shape());
    fill_batch(ids, &labels, n, 7);
    std::uint64_t step = 0;
    model.train_step_ce(be, pool, ids.cview(), labels.cview(), step++);  // warm-up: scratch is sized once
    for (auto _ : state) {
        model.train_step_ce(be, pool, ids.cview(), labels.cview(), step++);
        adam.step(be, model.params(), 1e-4);
        benchmark::ClobberMemory();
    }
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_BERT4Rec_Inference(benchmark::State& state) {
    const rb::index_t b = state.range(0), n = state.range(1);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    rb::models::BERT4Rec<float> model(config(n), rb::Rng(1));
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, kL}});
    rb::Matrix<float> scores(rb::Shape<2>{{b, n + 1}});
    fill_batch(ids, nullptr, n, 7);
    model.score_all(be, pool, ids.cview(), scores.view());  // warm-up
    for (auto _ : state) {
        model.score_all(be, pool, ids.cview(), scores.view());
        benchmark::ClobberMemory();
    }
    state.counters["seq/s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}

void Shapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "N", "threads"});
    for (int n : {3416, 9724})
        for (int threads : {1, 2}) bm->Args({128, n, threads});
    bm->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_BERT4Rec_TrainStep)->Apply(Shapes);
BENCHMARK(BM_BERT4Rec_Inference)->Apply(Shapes);

}  // namespace
