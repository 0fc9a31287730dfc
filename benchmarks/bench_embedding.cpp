// Embedding lookup and its gradient on backend::Cpu<isa::Dispatch>, f32:
//   BM_Embedding_Gather/ids/table_rows/D/threads      out[i] = table[ids[i]]
//   BM_Embedding_ScatterAdd/ids/table_rows/D/threads  table[ids[i]] += src[i]
// Ids are uniform random in [0, table_rows) (fixed seed). Bytes are the minimal
// traffic: the ids (4 B each), every *distinct* table row touched once (read
// for gather; read + written for scatter-add), and the dense [ids, D] side
// once (written for gather, read for scatter-add).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/embedding.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;

struct Problem {
    rb::Matrix<float> table, dense;
    rb::Vector<rb::row_id_t> ids;
    rb::index_t distinct = 0;
    Problem(rb::index_t n_ids, rb::index_t rows, rb::index_t d)
        : table(rb::Shape<2>{{rows, d}}), dense(rb::Shape<2>{{n_ids, d}}), ids(rb::Shape<1>{{n_ids}}) {
        std::mt19937 gen(7);
        std::uniform_real_distribution<float> u(-0.01f, 0.01f);
        for (float& v : table) v = u(gen);
        for (float& v : dense) v = u(gen);
        std::uniform_int_distribution<rb::row_id_t> pick(0, static_cast<rb::row_id_t>(rows - 1));
        std::vector<char> seen(static_cast<std::size_t>(rows), 0);
        for (auto& id : ids) {
            id = pick(gen);
            if (!seen[static_cast<std::size_t>(id)]) {
                seen[static_cast<std::size_t>(id)] = 1;
                ++distinct;
            }
        }
    }
};

void BM_Embedding_Gather(benchmark::State& state) {
    const rb::index_t n = state.range(0), rows = state.range(1), d = state.range(2);
    const Be be{&bench_pool(static_cast<int>(state.range(3)))};
    Problem p(n, rows, d);
    for (auto _ : state) {
        rb::ops::gather_rows<Be, float>(be, p.table.cview(), p.ids.cview(), p.dense.view());
        benchmark::ClobberMemory();
    }
    const double bytes = 4.0 * double(n) + 4.0 * double(d) * double(p.distinct + n);
    state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * bytes));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);  // rows looked up
    state.counters["distinct_rows"] = double(p.distinct);
}

void BM_Embedding_ScatterAdd(benchmark::State& state) {
    const rb::index_t n = state.range(0), rows = state.range(1), d = state.range(2);
    const Be be{&bench_pool(static_cast<int>(state.range(3)))};
    Problem p(n, rows, d);
    for (auto _ : state) {
        rb::ops::scatter_add_rows<Be, float>(be, p.dense.cview(), p.ids.cview(), p.table.view());
        benchmark::ClobberMemory();
    }
    const double bytes = 4.0 * double(n) + 4.0 * double(d) * double(n + 2 * p.distinct);
    state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * bytes));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
    state.counters["distinct_rows"] = double(p.distinct);
}

// 25,600 ids (B=128 x L=200) into tables of 1e4, 1e5, 1e6 rows x D=64, plus a
// DRAM-sized dense side: 262,144 ids into 1e6 rows.
void EmbeddingShapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"ids", "table_rows", "D", "threads"});
    b->ArgsProduct({{25600}, {10000, 100000, 1000000}, {64}, {1, 2}});
    b->ArgsProduct({{262144}, {1000000}, {64}, {1, 2}});
    b->UseRealTime();
    b->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_Embedding_Gather)->Apply(EmbeddingShapes);
BENCHMARK(BM_Embedding_ScatterAdd)->Apply(EmbeddingShapes);

}  // namespace
