// Exact top-k retrieval (retrieval::ExactIndex), funnel retrieval and MaxSim
// on backend::Cpu<isa::Dispatch>; k = 10; threads 1 and 2.
//
//   BM_Retrieval_Query/dtype/threads       one query over [1e6, 64] (0 f32, 1 bf16, 2 int8)
//   BM_Retrieval_Batch/dtype/threads       256 queries over [1e6, 64]
//   BM_Retrieval_I8Rerank/shortlist/threads  int8 shortlist re-scored in f32
//   BM_Retrieval_Funnel/d1/shortlist/threads  d1-prefix shortlist + full re-rank, [1e6, 64]
//   BM_Retrieval_FunnelCatalogue/d1/shortlist trained catalogue only (needs the file below)
//   BM_Retrieval_MaxSim/threads            16 query vectors, 10,000 items x 16 vectors, D 64
//
// bytes_per_second is the table bytes read per query (compare
// BM_Limits_ReadBandwidth); items_per_second is queries per second;
// recall@10 counters are against f32 full-width exact search (on 100 queries).
//
// Data: uniform [-1, 1) tables and queries (fixed seeds), unless
// RECBLOCKS_RETRIEVAL_EMBEDDINGS names a safetensors file with trained
// embeddings: "items" [N + 1, 64] (row 0 = padding, skipped) and "users"
// [U, 64] as written by examples/sasrec --save_embeddings (SASRec item
// embeddings and users' final hidden states), or "items" [N, 64] and
// "queries" [U, 64]. Then the 1e6
// table is those items tiled (row r = items[r mod N] + N(0, (0.05 * rms)^2)
// noise) and the queries are the users' states.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "recblocks/io/safetensors.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/funnel_index.hpp"
#include "recblocks/retrieval/max_sim.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
namespace rt = rb::retrieval;

constexpr rb::index_t kN = 1000000, kD = 64, kK = 10, kBatch = 256, kRecallQueries = 100;

struct Trained {
    std::vector<float> items, queries;
    rb::index_t n = 0, users = 0;
};

const Trained* trained() {
    static const std::unique_ptr<Trained> t = []() -> std::unique_ptr<Trained> {
        const char* path = std::getenv("RECBLOCKS_RETRIEVAL_EMBEDDINGS");
        if (!path || !*path) return nullptr;
        const auto r = rb::io::SafetensorsReader::open(path);
        // examples/sasrec --save_embeddings: "items" [N + 1, D] (row 0 = padding) and "users" [U, D].
        const bool sasrec = r.contains("users");
        auto items = r.load<float, 2>("items");
        auto queries = r.load<float, 2>(sasrec ? "users" : "queries");
        if (items.shape()[1] != kD || queries.shape()[1] != kD) throw rb::ShapeError("embeddings must have 64 columns");
        auto out = std::make_unique<Trained>();
        const rb::index_t skip = sasrec ? 1 : 0;
        out->n = items.shape()[0] - skip;
        out->users = queries.shape()[0];
        out->items.assign(items.data() + skip * kD, items.data() + items.shape()[0] * kD);
        out->queries.assign(queries.data(), queries.data() + out->users * kD);
        return out;
    }();
    return t.get();
}

struct Data {
    std::vector<float> table;    // [kN, kD]
    std::vector<float> queries;  // [kBatch, kD]
};

const Data& data() {
    static const Data d = [] {
        Data out;
        out.table.resize(std::size_t(kN * kD));
        out.queries.resize(std::size_t(kBatch * kD));
        if (const Trained* t = trained()) {
            double ss = 0;
            for (float v : t->items) ss += double(v) * v;
            const float sigma = 0.05f * float(std::sqrt(ss / double(t->items.size())));
            std::mt19937 gen(5);
            std::normal_distribution<float> noise(0.0f, sigma);
            for (rb::index_t r = 0; r < kN; ++r)
                for (rb::index_t c = 0; c < kD; ++c)
                    out.table[std::size_t(r * kD + c)] = t->items[std::size_t((r % t->n) * kD + c)] + noise(gen);
            for (rb::index_t b = 0; b < kBatch; ++b)
                for (rb::index_t c = 0; c < kD; ++c)
                    out.queries[std::size_t(b * kD + c)] = t->queries[std::size_t((b % t->users) * kD + c)];
        } else {
            bench::fill_uniform(out.table, 1);
            bench::fill_uniform(out.queries, 2);
        }
        return out;
    }();
    return d;
}

rb::MatrixView<const float> table_view() { return rb::matrix_view(data().table.data(), kN, kD); }

template <class T>
const rt::ExactIndex<T>& index_of() {
    static const rt::ExactIndex<T> index(table_view());
    return index;
}

const float* query(rb::index_t i) { return data().queries.data() + (i % kBatch) * kD; }

/// Exact f32 top-k ids of query i (memoised: recall reference).
const std::vector<rb::row_id_t>& exact_ids(rb::index_t i) {
    static std::vector<std::vector<rb::row_id_t>> memo(kBatch);
    auto& ids = memo[std::size_t(i % kBatch)];
    if (ids.empty()) {
        ids.resize(kK);
        std::vector<float> s(kK);
        index_of<float>().search(Be{&bench_pool(2)}, rb::vector_view(query(i), kD), kK, rb::vector_view(ids.data(), kK),
                                 rb::vector_view(s.data(), kK));
    }
    return ids;
}

double overlap(const std::vector<rb::row_id_t>& ref, const rb::row_id_t* got) {
    int hits = 0;
    for (rb::index_t i = 0; i < kK; ++i)
        for (rb::row_id_t r : ref) hits += got[i] == r;
    return double(hits) / double(kK);
}

template <class T>
void run_query(benchmark::State& state, double bytes_per_row) {
    const Be be{&bench_pool(static_cast<int>(state.range(0)))};
    const auto& index = index_of<T>();
    std::vector<rb::row_id_t> ids(kK);
    std::vector<float> scores(kK);
    double recall = 0;
    for (rb::index_t i = 0; i < kRecallQueries; ++i) {
        index.search(be, rb::vector_view(query(i), kD), kK, rb::vector_view(ids.data(), kK),
                     rb::vector_view(scores.data(), kK));
        recall += overlap(exact_ids(i), ids.data());
    }
    rb::index_t i = 0;
    for (auto _ : state) {
        index.search(be, rb::vector_view(query(i++), kD), kK, rb::vector_view(ids.data(), kK),
                     rb::vector_view(scores.data(), kK));
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * double(kN) * bytes_per_row));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.counters["recall@10"] = recall / double(kRecallQueries);
}

void BM_Retrieval_Query(benchmark::State& state) {
    switch (state.range(1)) {
        case 0: state.SetLabel("f32"); run_query<float>(state, kD * 4.0); break;
        case 1: state.SetLabel("bf16"); run_query<rb::bf16>(state, kD * 2.0); break;
        default: state.SetLabel("int8"); run_query<std::int8_t>(state, kD * 1.0 + 4.0); break;
    }
}
BENCHMARK(BM_Retrieval_Query)
    ->ArgNames({"threads", "dtype"})
    ->ArgsProduct({{1, 2}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

template <class T>
void run_batch(benchmark::State& state) {
    const Be be{&bench_pool(static_cast<int>(state.range(0)))};
    const auto& index = index_of<T>();
    std::vector<rb::row_id_t> ids(kBatch * kK);
    std::vector<float> scores(kBatch * kK);
    for (auto _ : state) {
        index.search_batch(be, rb::matrix_view(data().queries.data(), kBatch, kD), kK,
                           rb::matrix_view(ids.data(), kBatch, kK), rb::matrix_view(scores.data(), kBatch, kK));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
}

void BM_Retrieval_Batch(benchmark::State& state) {
    switch (state.range(1)) {
        case 0: state.SetLabel("f32"); run_batch<float>(state); break;
        case 1: state.SetLabel("bf16"); run_batch<rb::bf16>(state); break;
        default: state.SetLabel("int8"); run_batch<std::int8_t>(state); break;
    }
}
BENCHMARK(BM_Retrieval_Batch)
    ->ArgNames({"threads", "dtype"})
    ->ArgsProduct({{1, 2}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Retrieval_I8Rerank(benchmark::State& state) {
    const Be be{&bench_pool(static_cast<int>(state.range(0)))};
    const rb::index_t shortlist = state.range(1);
    const auto& i8 = index_of<std::int8_t>();
    const auto& f32 = index_of<float>();
    std::vector<rb::row_id_t> cand(static_cast<std::size_t>(shortlist)), ids(kK);
    std::vector<float> cs(static_cast<std::size_t>(shortlist)), scores(kK);
    auto once = [&](rb::index_t i) {
        i8.search(be, rb::vector_view(query(i), kD), shortlist, rb::vector_view(cand.data(), shortlist),
                  rb::vector_view(cs.data(), shortlist));
        rt::rerank_top_k(be, f32, query(i), cand, kK, ids.data(), scores.data());
    };
    double recall = 0;
    for (rb::index_t i = 0; i < kRecallQueries; ++i) {
        once(i);
        recall += overlap(exact_ids(i), ids.data());
    }
    rb::index_t i = 0;
    for (auto _ : state) {
        once(i++);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.counters["recall@10"] = recall / double(kRecallQueries);
}
BENCHMARK(BM_Retrieval_I8Rerank)
    ->ArgNames({"threads", "shortlist"})
    ->ArgsProduct({{1, 2}, {20, 50}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void run_funnel(benchmark::State& state, rb::MatrixView<const float> items, const float* queries, rb::index_t nq,
                const Be& be) {
    // shortlist 0: ExactIndex<float>::search at full width, the baseline.
    const rb::index_t d1 = state.range(0), shortlist = state.range(1);
    const rt::ExactIndex<float> full(items);
    const rt::FunnelIndex funnel(items, d1);
    auto search = [&](rb::VectorView<const float> q, rb::row_id_t* ids, float* scores) {
        if (shortlist == 0) full.search(be, q, kK, rb::vector_view(ids, kK), rb::vector_view(scores, kK));
        else funnel.search(be, q, kK, shortlist, rb::vector_view(ids, kK), rb::vector_view(scores, kK));
    };
    std::vector<rb::row_id_t> ids(kK), ref(kK);
    std::vector<float> scores(kK);
    double recall = 0;
    const rb::index_t nr = std::min(nq, items.rows() == kN ? kRecallQueries : nq);
    for (rb::index_t i = 0; i < nr; ++i) {
        const auto q = rb::vector_view(queries + i * kD, kD);
        full.search(be, q, kK, rb::vector_view(ref.data(), kK), rb::vector_view(scores.data(), kK));
        search(q, ids.data(), scores.data());
        recall += overlap(ref, ids.data());
    }
    rb::index_t i = 0;
    for (auto _ : state) {
        search(rb::vector_view(queries + (i++ % nq) * kD, kD), ids.data(), scores.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
    state.counters["recall@10"] = recall / double(nr);
    state.SetLabel(std::string(trained() ? "trained" : "uniform") + (shortlist == 0 ? " exact" : " funnel"));
}

void BM_Retrieval_Funnel(benchmark::State& state) {
    run_funnel(state, table_view(), data().queries.data(), kBatch, Be{&bench_pool(static_cast<int>(state.range(2)))});
}
BENCHMARK(BM_Retrieval_Funnel)
    ->ArgNames({"d1", "shortlist", "threads"})
    ->ArgsProduct({{8, 16, 32}, {100, 400}, {1}})
    ->Args({16, 1000, 1})
    ->Args({16, 4000, 1})
    ->Args({64, 0, 1})  // shortlist 0: ExactIndex::search at full width (the baseline)
    ->Args({16, 100, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Retrieval_FunnelCatalogue(benchmark::State& state) {
    const Trained* t = trained();
    if (!t) {
        state.SkipWithError("set RECBLOCKS_RETRIEVAL_EMBEDDINGS (trained embeddings)");
        return;
    }
    run_funnel(state, rb::matrix_view(t->items.data(), t->n, kD), t->queries.data(), t->users, Be{&bench_pool(1)});
}
BENCHMARK(BM_Retrieval_FunnelCatalogue)
    ->ArgNames({"d1", "shortlist"})
    ->ArgsProduct({{8, 16, 32}, {50, 100, 150, 200}})
    ->Args({64, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Retrieval_MaxSim(benchmark::State& state) {
    const Be be{&bench_pool(static_cast<int>(state.range(0)))};
    constexpr rb::index_t q = 16, items = 10000, m = 16;
    static const std::vector<float> vectors = [] {
        std::vector<float> v(std::size_t(items * m * kD));
        bench::fill_uniform(v, 7);
        return v;
    }();
    std::vector<rb::index_t> offsets(items + 1);
    for (rb::index_t i = 0; i <= items; ++i) offsets[std::size_t(i)] = i * m;
    std::vector<rb::row_id_t> ids(kK);
    std::vector<float> scores(kK);
    const auto qv = rb::matrix_view(data().queries.data(), q, kD);
    for (auto _ : state) {
        rt::max_sim_top_k(be, qv, rb::matrix_view(vectors.data(), items * m, kD), offsets, kK,
                          rb::vector_view(ids.data(), kK), rb::vector_view(scores.data(), kK));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * items);  // items scored per second
}
BENCHMARK(BM_Retrieval_MaxSim)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
