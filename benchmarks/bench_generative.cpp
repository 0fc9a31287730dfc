// The generative retriever (models/generative_retriever.hpp) on an
// ml-latest-small-sized catalogue: N = 9,724 items with random unique 4-level
// semantic IDs (3 x 64 distinct tuples + TIGER's extra level, of size 1 here), histories of
// L = 50 items (200 tokens), D = 64, 2 blocks, 2 heads.
//
//   BM_Generative_TrainStep:  forward + backward + Adam on B = 128 users
//                             (items_per_second = user sequences per second)
//   BM_Generative_Decode:     prepare_queries (one forward) + constrained beam
//                             search (beam 20, top 10) for B users
//                             (items_per_second = users per second); with
//                             search_only:1 the beam search alone on queries
//                             prepared once (the trie-constrained search cost)
#include <random>

#include "bench_common.hpp"
#include "recblocks/models/generative_retriever.hpp"
#include "recblocks/optim/adam.hpp"

namespace {

constexpr rb::index_t kItems = 9724, kL = 50, kD = 64;

rb::tokenizers::SemanticIds random_ids() {
    // Distinct random (c0, c1, c2) in 64^3, then TIGER's extra code (none collide here, so it is 1 wide).
    std::mt19937 gen(11);
    rb::Matrix<std::int32_t> codes(rb::Shape<2>{{kItems, 3}});
    std::vector<char> used(64 * 64 * 64, 0);
    for (rb::index_t i = 0; i < kItems; ++i) {
        std::uint32_t v;
        do v = gen() % (64 * 64 * 64);
        while (used[v]);
        used[v] = 1;
        codes(i, 0) = static_cast<std::int32_t>(v / 4096);
        codes(i, 1) = static_cast<std::int32_t>((v / 64) % 64);
        codes(i, 2) = static_cast<std::int32_t>(v % 64);
    }
    return rb::tokenizers::SemanticIds(codes.cview(), {64, 64, 64}).with_disambiguation_code();
}

rb::models::GenerativeRetrieverConfig config() {
    rb::models::GenerativeRetrieverConfig c;
    c.max_len = kL;
    c.d_model = kD;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.1;
    return c;
}

/// Left-padded histories with lengths spread over [5, L].
void fill_histories(rb::Matrix<rb::row_id_t>& ids, unsigned seed) {
    std::mt19937 gen(seed);
    for (rb::index_t b = 0; b < ids.extent(0); ++b) {
        const rb::index_t len = 5 + static_cast<rb::index_t>(gen() % (kL - 4));
        for (rb::index_t t = 0; t < kL; ++t)
            ids(b, t) = t < kL - len ? 0 : static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(kItems));
    }
}

void BM_Generative_TrainStep(benchmark::State& state) {
    const rb::index_t b = state.range(0);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(1)));
    const bench::Be be{&pool};
    const auto ids = random_ids();
    rb::models::GenerativeRetriever<float> model(config(), ids, rb::Rng(1));
    rb::optim::Adam<float> adam({1e-3, 0.9, 0.98}, model.params());
    rb::Matrix<rb::row_id_t> in(rb::Shape<2>{{b, kL}}), pos(in.shape());
    fill_histories(in, 7);
    std::mt19937 gen(3);
    for (rb::index_t i = 0; i < in.numel(); ++i)
        pos.data()[i] = in.data()[i] == 0 ? 0 : static_cast<rb::row_id_t>(1 + gen() % static_cast<unsigned>(kItems));
    std::uint64_t step = 0;
    model.train_step(be, pool, in.cview(), pos.cview(), step++);  // warm-up
    for (auto _ : state) {
        model.train_step(be, pool, in.cview(), pos.cview(), step++);
        adam.step(model.params(), 1e-3);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * b);
}

void BM_Generative_Decode(benchmark::State& state) {
    const rb::index_t b = state.range(0);
    const bool search_only = state.range(2) != 0;
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(1)));
    const bench::Be be{&pool};
    const auto ids = random_ids();
    const rb::tokenizers::CodeTrie trie(ids);
    rb::models::GenerativeRetriever<float> model(config(), ids, rb::Rng(1));
    rb::Matrix<rb::row_id_t> in(rb::Shape<2>{{b, kL}});
    fill_histories(in, 9);
    rb::decoding::BeamSearchWorkspace ws;
    rb::decoding::BeamSearchOptions opt;
    opt.beam_width = 20;
    opt.pool = &pool;
    rb::Matrix<rb::row_id_t> items(rb::Shape<2>{{b, 10}});
    rb::Matrix<float> scores(items.shape());
    model.prepare_queries(be, pool, in.cview());
    rb::decoding::constrained_beam_search(model, trie, b, 10, items.view(), scores.view(), ws, opt);  // warm-up
    for (auto _ : state) {
        if (!search_only) model.prepare_queries(be, pool, in.cview());
        rb::decoding::constrained_beam_search(model, trie, b, 10, items.view(), scores.view(), ws, opt);
        benchmark::DoNotOptimize(items.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * b);
}

void TrainShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "threads"});
    for (int threads : {1, 2}) bm->Args({128, threads});
    bm->UseRealTime()->Unit(benchmark::kMillisecond);
}

void DecodeShapes(benchmark::internal::Benchmark* bm) {
    bm->ArgNames({"B", "threads", "search_only"});
    for (int threads : {1, 2}) {
        bm->Args({128, threads, 0});
        bm->Args({128, threads, 1});
    }
    bm->UseRealTime()->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_Generative_TrainStep)->Apply(TrainShapes);
BENCHMARK(BM_Generative_Decode)->Apply(DecodeShapes);
