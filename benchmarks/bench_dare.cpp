// DARE long-sequence target attention (models/dare.hpp), f32, 1 thread,
// backend::Cpu<isa::Dispatch>:
//
//   BM_Dare_Search/d_a/items/huge  stage 1 alone: top-32 of 10,000 behaviours per target.
//       The behaviours' attention rows are *gathered* from the table by id.
//       items = 1,000,000: the table (64-256 MB) lives in DRAM and each
//       iteration takes the next of 64 histories (164 MB of rows at d_a = 64),
//       so rows really come from DRAM; compare bytes_per_second with
//       BM_Limits_ReadBandwidth/threads:1 (the bar: >= 70 % at d_a = 64).
//       items = 20,000: a catalogue that stays cache-resident.
//       The table is 64-byte aligned, as a Matrix is (a malloc'ed table, 16 bytes
//       off, made every 64-byte row at d_a = 16 straddle two cache lines: 2.4x slower here).
//       huge = 1: the table asks for transparent huge pages (madvise), as a
//       serving process would for a large table: fewer TLB misses per gathered row.
//       Bytes counted = the bytes actually read: 10,000 rows x d_a x 4 B + the
//       10,000 ids (4 B each); the 40 KB of scores stay in L1/L2.
//   BM_Dare_SearchThreads/d_a/threads  the same on `threads` targets at once, one per
//       thread (DareModel::forward splits a batch so); compare with
//       BM_Limits_ReadBandwidth/threads:N.
//   BM_Dare_AggregateMlp/d_r     stage 2 + MLP (200-80) forward and backward, batch 256,
//       histories of exactly k = 32 (so the search is trivial).
//   BM_Dare_TrainStep/d_a        forward + backward + Adam, batch 256, histories of
//       1,000 behaviours, 100,000 items, d_r = 64, k = 32.
#include <benchmark/benchmark.h>

#include <sys/mman.h>

#include <cstdlib>
#include <numeric>
#include <vector>

#include "recblocks/models/dare.hpp"
#include "recblocks/optim/adam.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
constexpr rb::index_t kHistory = 10000, kTopK = 32, kHistories = 64;

/// A 2 MiB-aligned float table, optionally backed by transparent huge pages.
struct BenchTable {
    BenchTable(std::size_t n, bool huge) : n(n) {
        const std::size_t align = std::size_t{1} << 21, bytes = (n * sizeof(float) + align - 1) / align * align;
        data = static_cast<float*>(std::aligned_alloc(align, bytes));
        if (huge) madvise(data, bytes, MADV_HUGEPAGE);  // before the first touch
        std::mt19937 gen(3);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (std::size_t i = 0; i < n; ++i) data[i] = u(gen);
    }
    ~BenchTable() { std::free(data); }
    BenchTable(const BenchTable&) = delete;
    BenchTable& operator=(const BenchTable&) = delete;
    std::size_t n;
    float* data;
};

void BM_Dare_Search(benchmark::State& state) {
    const rb::index_t d = state.range(0), items = state.range(1);
    const Be be{&bench_pool(1)};
    const BenchTable bt(static_cast<std::size_t>(items * d), state.range(2) != 0);
    const float* table = bt.data;
    std::vector<rb::row_id_t> hist(static_cast<std::size_t>(kHistories * kHistory));
    std::mt19937 gen(5);
    std::uniform_int_distribution<rb::row_id_t> pick(0, static_cast<rb::row_id_t>(items - 1));
    for (auto& h : hist) h = pick(gen);
    std::vector<float> scores(static_cast<std::size_t>(kHistory)), top(static_cast<std::size_t>(kTopK));
    std::vector<rb::row_id_t> pos(static_cast<std::size_t>(kTopK));
    const float scale = 1.0f / std::sqrt(float(d));
    rb::index_t i = 0;
    for (auto _ : state) {
        const rb::index_t h = i % kHistories;
        const std::span<const rb::row_id_t> hs(hist.data() + h * kHistory, static_cast<std::size_t>(kHistory));
        const float* q = table + static_cast<rb::index_t>(hs[0]) * d;
        rb::models::dare_search(be, rb::matrix_view(table, items, d), hs, q, kTopK, scale, scores.data(), top.data(), pos.data());
        benchmark::DoNotOptimize(pos.data());
        ++i;
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kHistory * (d * 4 + 4));
    state.counters["targets_per_second"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Dare_Search)
    ->ArgNames({"d_a", "items", "huge"})
    ->ArgsProduct({{16, 32, 64}, {1000000}, {0, 1}})
    ->ArgsProduct({{16, 32, 64}, {20000}, {0}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The search stage on the whole machine: each iteration searches `threads`
// targets at once, one per thread (as DareModel::forward splits a batch),
// 1e6-row table on huge pages. Compare with BM_Limits_ReadBandwidth/threads:N.
void BM_Dare_SearchThreads(benchmark::State& state) {
    const rb::index_t d = state.range(0), threads = state.range(1), items = 1000000;
    auto& pool = bench_pool(static_cast<int>(threads));
    const Be be{&pool};
    const BenchTable bt(static_cast<std::size_t>(items * d), true);
    const float* table = bt.data;
    std::vector<rb::row_id_t> hist(static_cast<std::size_t>(kHistories * kHistory));
    std::mt19937 gen(5);
    std::uniform_int_distribution<rb::row_id_t> pick(0, static_cast<rb::row_id_t>(items - 1));
    for (auto& h : hist) h = pick(gen);
    std::vector<float> scores(static_cast<std::size_t>(threads * kHistory)), top(static_cast<std::size_t>(threads * kTopK));
    std::vector<rb::row_id_t> pos(static_cast<std::size_t>(threads * kTopK));
    const float scale = 1.0f / std::sqrt(float(d));
    rb::index_t i = 0;
    for (auto _ : state) {
        pool.run(threads, [&](rb::index_t t) {
            const rb::index_t h = (i + t) % kHistories;
            const std::span<const rb::row_id_t> hs(hist.data() + h * kHistory, static_cast<std::size_t>(kHistory));
            rb::models::dare_search(be, rb::matrix_view(table, items, d), hs, table + static_cast<rb::index_t>(hs[0]) * d, kTopK, scale,
                                    scores.data() + t * kHistory, top.data() + t * kTopK, pos.data() + t * kTopK);
        });
        benchmark::DoNotOptimize(pos.data());
        i += threads;
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * threads * kHistory * (d * 4 + 4));
    state.counters["targets_per_second"] =
        benchmark::Counter(double(threads), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Dare_SearchThreads)
    ->ArgNames({"d_a", "threads"})
    ->ArgsProduct({{16, 64}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

/// A batch of `b` random samples with histories of `len` behaviours.
struct BenchBatch {
    std::vector<rb::row_id_t> targets, history;
    std::vector<rb::index_t> offsets;
    std::vector<float> labels;
    BenchBatch(rb::index_t b, rb::index_t len, rb::index_t items) {
        std::mt19937 gen(9);
        std::uniform_int_distribution<rb::row_id_t> pick(0, static_cast<rb::row_id_t>(items - 1));
        offsets.push_back(0);
        for (rb::index_t i = 0; i < b; ++i) {
            targets.push_back(pick(gen));
            for (rb::index_t j = 0; j < len; ++j) history.push_back(pick(gen));
            offsets.push_back(static_cast<rb::index_t>(history.size()));
            labels.push_back(float(i % 2));
        }
    }
    [[nodiscard]] rb::models::DareModel<float>::Batch batch() const { return {targets, offsets, history}; }
};

rb::models::DareModel<float>::Config bench_config(rb::index_t items, rb::index_t d_a, rb::index_t d_r) {
    rb::models::DareModel<float>::Config c;
    c.num_items = items;
    c.attention_dim = d_a;
    c.representation_dim = d_r;
    c.top_k = kTopK;
    return c;
}

void BM_Dare_AggregateMlp(benchmark::State& state) {
    const rb::index_t d_r = state.range(0), b = 256, items = 100000;
    const Be be{&bench_pool(1)};
    rb::models::DareModel<float> model(bench_config(items, 16, d_r), rb::Rng(1));
    const BenchBatch data(b, kTopK, items);
    std::vector<float> logits(static_cast<std::size_t>(b));
    for (auto _ : state) {
        model.forward(be, data.batch(), logits);
        model.backward(be, data.labels);
        benchmark::DoNotOptimize(logits.data());
    }
    state.counters["samples_per_second"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Dare_AggregateMlp)->ArgName("d_r")->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Dare_TrainStep(benchmark::State& state) {
    const rb::index_t d_a = state.range(0), d_r = 64, b = 256, items = 100000;
    const Be be{&bench_pool(1)};
    rb::models::DareModel<float> model(bench_config(items, d_a, d_r), rb::Rng(1));
    rb::optim::Adam<float> adam({}, model.params());
    const BenchBatch data(b, 1000, items);
    std::vector<float> logits(static_cast<std::size_t>(b));
    for (auto _ : state) {
        model.zero_grads();
        model.forward(be, data.batch(), logits);
        model.backward(be, data.labels);
        adam.step(model.params(), 1e-3);
        benchmark::DoNotOptimize(logits.data());
    }
    state.counters["samples_per_second"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Dare_TrainStep)->ArgName("d_a")->Arg(16)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
