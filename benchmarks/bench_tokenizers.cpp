// Item tokenizers on backend::Cpu<isa::Dispatch>, f32, the data of benchmarks/peers/faiss_tokenizers.py:
//   BM_Tokenizer_RqEncode/n/d/M/K/beam/threads    ResidualQuantizer::encode of n × d vectors
//   BM_Tokenizer_KMeans/n/d/K/iters/init/threads  KMeans::train, no subsampling (init 0 k-means++, 1 random rows)
//   BM_Tokenizer_FsqQuantize/n/threads            FSQ codes + indices of n × 5 values (levels 8-8-8-6-5)
//   BM_Tokenizer_FsqEncode/n/d/threads            FsqAutoencoder::encode (Linear d → 5, then FSQ)
// Data: x[i][j] = centre[c(i)][j] + 0.3 (2u - 1) with 1024 centres in [-1, 1)^d, every draw from
// splitmix64 so the Python peer makes the very same floats. The RQ is trained once per process
// (greedy training, 10 k-means iterations, <= 256 points per centroid: FAISS's RQ defaults with
// Train_default) and its MSE per beam is reported as a counter, next to FAISS's from the peer.
// items = vectors encoded (RQ, FSQ) or vectors × iterations (k-means); GFLOP/s counts the
// distance GEMMs only (2·n·K·d per level and beam, 2·n·K·d per k-means iteration).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"
#include "recblocks/tokenizers/fsq_autoencoder.hpp"
#include "recblocks/tokenizers/kmeans.hpp"
#include "recblocks/tokenizers/residual_quantizer.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
namespace tk = rb::tokenizers;

std::uint64_t splitmix64(std::uint64_t x) {
    std::uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
double uniform24(std::uint64_t k) { return double(splitmix64(k) >> 40) * 0x1.0p-24; }

/// The shared synthetic data set [n, d] (see the file comment and faiss_tokenizers.py).
const rb::Matrix<float>& synthetic(rb::index_t n, rb::index_t d) {
    static std::map<std::pair<rb::index_t, rb::index_t>, rb::Matrix<float>> cache;
    auto& x = cache[{n, d}];
    if (x.numel() == 0) {
        x.resize(rb::Shape<2>{{n, d}});
        for (rb::index_t i = 0; i < n; ++i) {
            const std::uint64_t c = splitmix64((std::uint64_t{1} << 40) + std::uint64_t(i)) % 1024;
            for (rb::index_t j = 0; j < d; ++j) {
                const double centre = 2.0 * uniform24((std::uint64_t{2} << 40) + c * std::uint64_t(d) + std::uint64_t(j)) - 1.0;
                x(i, j) = static_cast<float>(centre + 0.3 * (2.0 * uniform24(std::uint64_t(i * d + j)) - 1.0));
            }
        }
    }
    return x;
}

const tk::ResidualQuantizer& trained_rq(rb::index_t n, rb::index_t d, rb::index_t m, rb::index_t k) {
    static std::map<std::tuple<rb::index_t, rb::index_t, rb::index_t, rb::index_t>, std::unique_ptr<tk::ResidualQuantizer>> cache;
    auto& rq = cache[{n, d, m, k}];
    if (!rq) {
        tk::ResidualQuantizerConfig cfg;
        cfg.levels = m;
        cfg.codebook_size = k;
        cfg.kmeans.iterations = 10;
        cfg.kmeans.max_points_per_centroid = 256;
        rq = std::make_unique<tk::ResidualQuantizer>(cfg);
        rq->train(Be{&bench_pool(2)}, synthetic(n, d).cview());
    }
    return *rq;
}

void BM_Tokenizer_RqEncode(benchmark::State& state) {
    const rb::index_t n = state.range(0), d = state.range(1), m = state.range(2), k = state.range(3);
    const rb::index_t beam = state.range(4);
    const auto& x = synthetic(n, d);
    const auto& rq = trained_rq(n, d, m, k);
    const Be be{&bench_pool(static_cast<int>(state.range(5)))};
    rb::Matrix<std::int32_t> codes(rb::Shape<2>{{n, m}});
    rq.encode(be, x.cview(), codes.view(), beam);  // warm the per-thread workspaces
    for (auto _ : state) {
        rq.encode(be, x.cview(), codes.view(), beam);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
    double flops = 0;
    for (rb::index_t l = 0, b = 1; l < m; ++l) {
        flops += 2.0 * double(n) * double(b) * double(k) * double(d);
        b = std::min(b * k, beam);
    }
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["mse"] = rq.reconstruction_mse(be, x.cview(), codes.cview());
}
BENCHMARK(BM_Tokenizer_RqEncode)
    ->ArgNames({"n", "d", "M", "K", "beam", "threads"})
    ->ArgsProduct({{100000}, {64}, {3}, {256}, {1, 5}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Tokenizer_KMeans(benchmark::State& state) {
    const rb::index_t n = state.range(0), d = state.range(1), k = state.range(2);
    const auto& x = synthetic(n, d);
    tk::KMeansConfig cfg;
    cfg.k = k;
    cfg.iterations = static_cast<int>(state.range(3));
    cfg.init = state.range(4) == 0 ? tk::KMeansInit::kmeans_plus_plus : tk::KMeansInit::random_rows;
    cfg.max_points_per_centroid = 0;
    const Be be{&bench_pool(static_cast<int>(state.range(5)))};
    double objective = 0;
    for (auto _ : state) {
        tk::KMeans km(cfg);
        objective = km.train(be, x.cview()).objective.back();
        benchmark::DoNotOptimize(km.centroids().data());
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n * cfg.iterations);
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n) * double(k) * double(d) * cfg.iterations * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    state.counters["mse"] = objective / double(n);
}
BENCHMARK(BM_Tokenizer_KMeans)
    ->ArgNames({"n", "d", "K", "iters", "init", "threads"})
    ->ArgsProduct({{100000}, {64}, {256}, {20}, {0, 1}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Tokenizer_FsqQuantize(benchmark::State& state) {
    const rb::index_t n = state.range(0);
    const tk::FiniteScalarQuantizer fsq(tk::FsqConfig{{8, 8, 8, 6, 5}});
    rb::Matrix<float> z(rb::Shape<2>{{n, 5}});
    bench::fill_uniform(z, 3, -3.0f, 3.0f);
    rb::Matrix<std::int32_t> codes(rb::Shape<2>{{n, 5}});
    rb::Vector<std::int64_t> idx(rb::Shape<1>{{n}});
    auto& pool = bench_pool(static_cast<int>(state.range(1)));
    const rb::backend::Reference be{};  // unused by FSQ (scalar maths); the pool splits the rows
    for (auto _ : state) {
        rb::parallel_for(pool, 0, n, 4096, [&](rb::index_t r0, rb::index_t r1) {
            fsq.encode(be, z.cview().slice_rows(r0, r1), codes.view().slice_rows(r0, r1));
            fsq.codes_to_indices(codes.cview().slice_rows(r0, r1), rb::vector_view(idx.data() + r0, r1 - r0));
        });
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_Tokenizer_FsqQuantize)
    ->ArgNames({"n", "threads"})
    ->ArgsProduct({{100000}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_Tokenizer_FsqEncode(benchmark::State& state) {
    const rb::index_t n = state.range(0), d = state.range(1);
    const auto& x = synthetic(n, d);
    tk::FsqAutoencoder<float> ae({d, tk::FsqConfig{{8, 8, 8, 6, 5}}}, rb::Rng(1));
    rb::Matrix<std::int32_t> codes(rb::Shape<2>{{n, 5}});
    const Be be{&bench_pool(static_cast<int>(state.range(2)))};
    for (auto _ : state) {
        ae.encode(be, x.cview(), codes.view());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n) * double(d) * 5 * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Tokenizer_FsqEncode)
    ->ArgNames({"n", "d", "threads"})
    ->ArgsProduct({{100000}, {64}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
