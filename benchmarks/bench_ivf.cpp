// The approximate index (retrieval::IvfIndex) on backend::Cpu<isa::Dispatch>; k = 10.
//
//   BM_Ivf_Query/codes/nprobe/threads   one query per call; codes 0 int8, 1 pq4
//   BM_Ivf_Batch/codes/nprobe/threads   256 queries per call
//   BM_Ivf_Filtered/permille/threads    pq4, nprobe 16, one query with a filter allowing
//                                       permille / 1000 of the items (10, 100, 500)
//   BM_Ivf_PqScan                       the fast-scan kernel alone over 1,024 blocks of 32
//                                       vectors, M = 32 (items_per_second = vectors)
//
// Data: the 1e6 x 64 clustered inner-product data of benchmarks/peers/make_mips_data.py when
// RECBLOCKS_MIPS_DATA names its directory (base_1000000x64.f32, queries_1000x64.f32), else a
// smaller stand-in generated here (200,000 x 64, 256 Gaussian clusters with varied norms). The
// indexes are built once per process (nlist chosen from N, rerank 40). recall@10 is against the
// exact f32 search on the first 100 queries. The recall-QPS sweeps and the FAISS comparison are
// benchmarks/peers/run_ivf_bars.sh.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "recblocks/ops/pq4_scan.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/ivf_index.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
namespace rt = rb::retrieval;

constexpr rb::index_t kD = 64, kK = 10, kBatch = 256, kQueries = 1000, kRecallQueries = 100;

struct MipsData {
    rb::index_t n = 0;
    std::vector<float> items, queries;  // [n, D], [kQueries, D]
    std::vector<rb::row_id_t> exact;   // [kRecallQueries, kK]
};

const MipsData& mips() {
    static const MipsData d = [] {
        MipsData out;
        const char* dir = std::getenv("RECBLOCKS_MIPS_DATA");
        if (dir && *dir) {
            out.n = 1000000;
            out.items.resize(std::size_t(out.n * kD));
            out.queries.resize(std::size_t(kQueries * kD));
            std::ifstream b(std::string(dir) + "/base_1000000x64.f32", std::ios::binary);
            std::ifstream q(std::string(dir) + "/queries_1000x64.f32", std::ios::binary);
            if (!b.read(reinterpret_cast<char*>(out.items.data()), std::streamsize(out.items.size() * 4)) ||
                !q.read(reinterpret_cast<char*>(out.queries.data()), std::streamsize(out.queries.size() * 4)))
                throw std::runtime_error("RECBLOCKS_MIPS_DATA: cannot read base_1000000x64.f32 / queries_1000x64.f32");
        } else {
            out.n = 200000;
            std::mt19937 gen(7);
            std::normal_distribution<float> g(0.0f, 1.0f);
            std::lognormal_distribution<float> norm(0.0f, 0.35f);
            std::uniform_int_distribution<int> pick(0, 255);
            std::vector<float> centres(256 * kD);
            for (float& v : centres) v = g(gen) / 8.0f;
            auto draw = [&](std::vector<float>& dst, rb::index_t rows, bool scaled) {
                dst.resize(std::size_t(rows * kD));
                for (rb::index_t r = 0; r < rows; ++r) {
                    const int c = pick(gen);
                    const float s = scaled ? norm(gen) : 1.0f;
                    for (rb::index_t j = 0; j < kD; ++j)
                        dst[std::size_t(r * kD + j)] = s * (centres[std::size_t(c * kD + j)] + 0.06f * g(gen));
                }
            };
            draw(out.items, out.n, true);
            draw(out.queries, kQueries, false);
        }
        const rt::ExactIndex<float> exact(rb::matrix_view<const float>(out.items.data(), out.n, kD));
        out.exact.resize(std::size_t(kRecallQueries * kK));
        std::vector<float> scores(out.exact.size());
        exact.search_batch(Be{&bench_pool(1)}, rb::matrix_view<const float>(out.queries.data(), kRecallQueries, kD), kK,
                           rb::matrix_view(out.exact.data(), kRecallQueries, kK),
                           rb::matrix_view(scores.data(), kRecallQueries, kK));
        return out;
    }();
    return d;
}

rt::IvfIndex& ivf(int codes) {
    static std::unique_ptr<rt::IvfIndex> idx[2];
    if (!idx[codes]) {
        const MipsData& d = mips();
        idx[codes] = std::make_unique<rt::IvfIndex>(
            Be{&bench_pool(2)}, rb::matrix_view<const float>(d.items.data(), d.n, kD),
            rt::IvfConfig{.codes = codes ? rt::IvfCodes::pq4 : rt::IvfCodes::int8});
    }
    return *idx[codes];
}

double recall_of(const rt::IvfIndex& index, const Be& be) {
    const MipsData& d = mips();
    std::vector<rb::row_id_t> ids(std::size_t(kRecallQueries * kK));
    std::vector<float> scores(ids.size());
    index.search_batch(be, rb::matrix_view<const float>(d.queries.data(), kRecallQueries, kD), kK,
                       rb::matrix_view(ids.data(), kRecallQueries, kK), rb::matrix_view(scores.data(), kRecallQueries, kK));
    std::size_t hits = 0;
    for (rb::index_t b = 0; b < kRecallQueries; ++b) {
        const std::set<rb::row_id_t> want(d.exact.begin() + b * kK, d.exact.begin() + (b + 1) * kK);
        for (rb::index_t i = 0; i < kK; ++i) hits += want.count(ids[std::size_t(b * kK + i)]);
    }
    return double(hits) / double(kRecallQueries * kK);
}

void BM_Ivf_Query(benchmark::State& state) {
    const int codes = int(state.range(0));
    const Be be{&bench_pool(int(state.range(2)))};
    rt::IvfIndex& index = ivf(codes);
    index.set_search_params({.nprobe = state.range(1), .rerank = 40});
    const MipsData& d = mips();
    std::vector<rb::row_id_t> ids(kK);
    std::vector<float> scores(kK);
    rb::index_t q = 0;
    for (auto _ : state) {
        index.search(be, rb::vector_view(d.queries.data() + (q++ % kQueries) * kD, kD), kK,
                     rb::vector_view(ids.data(), kK), rb::vector_view(scores.data(), kK));
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["recall@10"] = recall_of(index, be);
}
BENCHMARK(BM_Ivf_Query)
    ->ArgNames({"codes", "nprobe", "threads"})
    ->ArgsProduct({{0, 1}, {4, 16, 64}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Ivf_Batch(benchmark::State& state) {
    const int codes = int(state.range(0));
    const Be be{&bench_pool(int(state.range(2)))};
    rt::IvfIndex& index = ivf(codes);
    index.set_search_params({.nprobe = state.range(1), .rerank = 40});
    const MipsData& d = mips();
    std::vector<rb::row_id_t> ids(std::size_t(kBatch * kK));
    std::vector<float> scores(ids.size());
    for (auto _ : state) {
        index.search_batch(be, rb::matrix_view<const float>(d.queries.data(), kBatch, kD), kK,
                           rb::matrix_view(ids.data(), kBatch, kK), rb::matrix_view(scores.data(), kBatch, kK));
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetItemsProcessed(state.iterations() * kBatch);
    state.counters["recall@10"] = recall_of(index, be);
}
BENCHMARK(BM_Ivf_Batch)
    ->ArgNames({"codes", "nprobe", "threads"})
    ->ArgsProduct({{0, 1}, {16}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Ivf_Filtered(benchmark::State& state) {
    const double frac = double(state.range(0)) / 1000.0;
    const Be be{&bench_pool(int(state.range(1)))};
    rt::IvfIndex& index = ivf(1);
    index.set_search_params({.nprobe = 16, .rerank = 40});
    const MipsData& d = mips();
    rt::ItemBitset allowed(d.n);
    std::mt19937 gen(11);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (rb::index_t i = 0; i < d.n; ++i)
        if (u(gen) < frac) allowed.set(rb::row_id_t(i));
    std::vector<rb::row_id_t> ids(kK);
    std::vector<float> scores(kK);
    rb::index_t q = 0;
    for (auto _ : state) {
        index.search_filtered(be, rb::vector_view(d.queries.data() + (q++ % kQueries) * kD, kD), kK,
                              rb::vector_view(ids.data(), kK), rb::vector_view(scores.data(), kK), allowed.view());
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ivf_Filtered)
    ->ArgNames({"permille", "threads"})
    ->ArgsProduct({{10, 100, 500}, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Ivf_PqScan(benchmark::State& state) {
    constexpr rb::index_t m = 32, blocks = 1024;
    std::vector<std::uint8_t> codes(std::size_t(blocks * rb::pq4_block_bytes(m))), lut(16 * m);
    std::mt19937 gen(3);
    for (auto& c : codes) c = std::uint8_t(gen());
    for (auto& c : lut) c = std::uint8_t(gen() % 64);
    std::vector<std::uint16_t> out(std::size_t(blocks * 32));
    std::vector<std::uint32_t> masks(blocks);
    const Be be{&bench_pool(1)};
    for (auto _ : state) {
        rb::ops::pq4_scan(be, rb::vector_view<const std::uint8_t>(codes.data(), rb::index_t(codes.size())), m,
                          rb::vector_view<const std::uint8_t>(lut.data(), 16 * m), rb::vector_view(out.data(), blocks * 32),
                          std::uint16_t(1200), rb::vector_view(masks.data(), blocks));
        benchmark::DoNotOptimize(masks.data());
    }
    state.SetItemsProcessed(state.iterations() * blocks * 32);
    state.SetBytesProcessed(state.iterations() * rb::index_t(codes.size()));
}
BENCHMARK(BM_Ivf_PqScan)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
