// Machine limits measured by the same binary, so every recblocks figure can be
// read as a fraction of what this host can do (docs/benchmarks.md):
//   BM_Limits_Triad            STREAM triad a = b + s*c, 3 x 64 MiB floats (DRAM), 12 B/elem
//   BM_Limits_TriadL3          the same over 3 x 2 MiB floats (6 MiB, L3-resident)
//   BM_Limits_ReadBandwidth    sum over a 256 MiB float array (DRAM), 4 B/elem
//   BM_Limits_GatherBandwidth  sum of 2^20 random rows of the same array (huge pages), row_bytes 64 or 256,
//                              prefetch: 0 = one row 32 ids ahead per row summed, 128 = blocks of 128 rows
//                              (the scheme of kernels/gathered_dot.hpp); bytes = useful row bytes only
//   BM_Limits_EigenSgemm       Eigen's own float product, 1024^3, one thread
//   BM_Limits_EigenSgemm_Recsys  Eigen's own product [25600x64]x[64x192], one thread
//   BM_Limits_PoolRun          fork/join overhead of one ThreadPool::run
// Also defines bench_pool(), the static ThreadPools every benchmark file uses.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "recblocks/backend/cpu/cpu_features.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/thread_pool.hpp"

namespace rb = recblocks;

/// The pool with `threads` threads (1 or 2), created once.
rb::ThreadPool& bench_pool(int threads) {
    static rb::ThreadPool p1(1);
    static rb::ThreadPool p2(2);
    return threads <= 1 ? p1 : p2;
}

namespace {

// Record the kernel ISA runtime dispatch picked (kernels and GEMM), and the ISA
// the benchmark's own code (the glue between kernels) was compiled for.
const bool kContext = [] {
    benchmark::AddCustomContext("recblocks_isa", std::string(rb::isa_name(rb::active_isa())));
#if defined(__AVX512F__)
    benchmark::AddCustomContext("compiled_for", "AVX-512 (-march=native) for the code between the dispatched kernels");
#elif defined(__AVX2__)
    benchmark::AddCustomContext("compiled_for", "AVX2 for the code between the dispatched kernels");
#else
    benchmark::AddCustomContext("compiled_for", "baseline x86-64 (SSE2) for the code between the dispatched kernels");
#endif
    return true;
}();

struct FloatArray {
    explicit FloatArray(std::size_t n) : n(n), buf(n) {
        for (std::size_t i = 0; i < n; ++i) buf.data()[i] = 1.0f + float(i % 7) * 0.25f;
    }
    float* data() { return buf.data(); }
    std::size_t n;
    rb::AlignedBuffer<float> buf;
};

__attribute__((noinline)) void triad(float* __restrict a, const float* __restrict b, const float* __restrict c,
                                     float s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

// Plain loop over GCC vector types so the reduction vectorises without -ffast-math.
typedef float v16f __attribute__((vector_size(64), aligned(64)));
__attribute__((noinline)) float read_sum(const float* __restrict x, std::size_t n) {
    v16f s0 = {}, s1 = {}, s2 = {}, s3 = {};
    const v16f* v = reinterpret_cast<const v16f*>(x);
    const std::size_t nv = n / 16;
    std::size_t i = 0;
    for (; i + 4 <= nv; i += 4) {
        s0 += v[i];
        s1 += v[i + 1];
        s2 += v[i + 2];
        s3 += v[i + 3];
    }
    const v16f s = (s0 + s1) + (s2 + s3);
    float r = 0;
    for (int j = 0; j < 16; ++j) r += s[j];
    for (std::size_t j = i * 16; j < n; ++j) r += x[j];  // n % 64 tail
    return r;
}

void run_triad(benchmark::State& state, std::size_t n) {
    const int threads = static_cast<int>(state.range(0));
    auto& pool = bench_pool(threads);
    FloatArray a(n), b(n), c(n);
    const std::size_t half = n / 2;  // split in halves (one per thread)
    for (auto _ : state) {
        if (threads == 1) {
            triad(a.data(), b.data(), c.data(), 3.0f, n);
        } else {
            pool.run(2, [&](rb::index_t part) {
                const std::size_t lo = part == 0 ? 0 : half, hi = part == 0 ? half : n;
                triad(a.data() + lo, b.data() + lo, c.data() + lo, 3.0f, hi - lo);
            });
        }
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * int64_t(n) * 12);
    state.counters["items_per_second"] =
        benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Limits_Triad(benchmark::State& state) { run_triad(state, (64u << 20) / sizeof(float)); }
void BM_Limits_TriadL3(benchmark::State& state) { run_triad(state, (2u << 20) / sizeof(float)); }
BENCHMARK(BM_Limits_Triad)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Limits_TriadL3)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Limits_ReadBandwidth(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    auto& pool = bench_pool(threads);
    const std::size_t n = (256u << 20) / sizeof(float);
    FloatArray x(n);
    const std::size_t half = n / 2;
    for (auto _ : state) {
        float r;
        if (threads == 1) {
            r = read_sum(x.data(), n);
        } else {
            float part_sum[2];
            pool.run(2, [&](rb::index_t part) {
                const std::size_t lo = part == 0 ? 0 : half, hi = part == 0 ? half : n;
                part_sum[part] = read_sum(x.data() + lo, hi - lo);
            });
            r = part_sum[0] + part_sum[1];
        }
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * int64_t(n) * 4);
    state.counters["items_per_second"] =
        benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Limits_ReadBandwidth)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// One thread sums rows picked uniformly at random from a 256 MiB table: the
// per-core ceiling of a gather (DARE's search, embedding lookups). Rows are
// row_bytes long and 64-byte aligned; every line of a row is prefetched into
// L2 (prefetcht1). `block` = 0: one row 32 ids ahead for every row summed;
// `block` > 0: before `block` rows are summed, the next `block` rows are
// prefetched back to back (1.4-1.6x faster on Zen 4 at 256 B rows; docs/dare.md,
// benchmarks/peers/gather_ceiling.cpp for the other variants tried).
template <int RowBytes>
__attribute__((noinline)) float gather_sum(const char* table, const std::uint32_t* ids, std::size_t n,
                                           std::size_t block) {
    constexpr int kLines = RowBytes / 64;
    auto prefetch = [&](std::size_t j) {
        const char* p = table + std::size_t(ids[j]) * RowBytes;
        for (int l = 0; l < kLines; ++l) __builtin_prefetch(p + 64 * l, 0, 2);
    };
    v16f a0 = {}, a1 = {}, a2 = {}, a3 = {};
    const std::size_t step = block ? block : 4;
    for (std::size_t b = 0; b < n; b += step) {
        if (block)
            for (std::size_t j = b + block; j < b + 2 * block; ++j) prefetch(j);  // ids are padded
        for (std::size_t j = b; j < b + step; j += 4) {
            if (!block)
                for (std::size_t r = 0; r < 4; ++r) prefetch(j + 32 + r);
            const v16f* r0 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j]) * RowBytes);
            const v16f* r1 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + 1]) * RowBytes);
            const v16f* r2 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + 2]) * RowBytes);
            const v16f* r3 = reinterpret_cast<const v16f*>(table + std::size_t(ids[j + 3]) * RowBytes);
            for (int l = 0; l < kLines; ++l) {
                a0 += r0[l];
                a1 += r1[l];
                a2 += r2[l];
                a3 += r3[l];
            }
        }
    }
    const v16f s = (a0 + a1) + (a2 + a3);
    float r = 0;
    for (int j = 0; j < 16; ++j) r += s[j];
    return r;
}

void BM_Limits_GatherBandwidth(benchmark::State& state) {
    const std::size_t row_bytes = static_cast<std::size_t>(state.range(0)), block = static_cast<std::size_t>(state.range(1));
    const std::size_t table_bytes = std::size_t{256} << 20, n = std::size_t{1} << 20, pad = 512;
    FloatArray table(table_bytes / sizeof(float));
    std::vector<std::uint32_t> ids(n + pad);
    std::mt19937 gen(5);
    std::uniform_int_distribution<std::uint32_t> pick(0, static_cast<std::uint32_t>(table_bytes / row_bytes - 1));
    for (auto& i : ids) i = pick(gen);
    const char* t = reinterpret_cast<const char*>(table.data());
    for (auto _ : state) {
        const float r = row_bytes == 64 ? gather_sum<64>(t, ids.data(), n, block) : gather_sum<256>(t, ids.data(), n, block);
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n * row_bytes));
}
BENCHMARK(BM_Limits_GatherBandwidth)
    ->ArgNames({"row_bytes", "block"})
    ->ArgsProduct({{64, 256}, {0, 128}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Fork/join latency of one ThreadPool::run in which every thread must take
// part: each of the `threads` chunks waits until all have started (a barrier),
// so the time is the wake-up latency of the workers plus the join. This is the
// fixed cost a primitive split into exactly `threads` parts pays per call.
void BM_Limits_PoolRun(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    auto& pool = bench_pool(threads);
    std::atomic<int> started{0};
    for (auto _ : state) {
        started.store(0, std::memory_order_relaxed);
        pool.run(threads, [&](rb::index_t) {
            started.fetch_add(1, std::memory_order_acq_rel);
            while (started.load(std::memory_order_acquire) < threads) {
            }
        });
    }
}
BENCHMARK(BM_Limits_PoolRun)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

using RowMajorF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void eigen_product(benchmark::State& state, Eigen::Index m, Eigen::Index k, Eigen::Index n) {
    RowMajorF a = RowMajorF::Random(m, k), b = RowMajorF::Random(k, n), c(m, n);
    for (auto _ : state) {
        c.noalias() = a * b;
        benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(c.data());
    state.counters["GFLOP/s"] =
        benchmark::Counter(2.0 * double(m) * double(n) * double(k) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Eigen has no OpenMP in this build: one thread only (the argument is kept for uniformity).
void BM_Limits_EigenSgemm(benchmark::State& state) { eigen_product(state, 1024, 1024, 1024); }
void BM_Limits_EigenSgemm_Recsys(benchmark::State& state) { eigen_product(state, 25600, 64, 192); }
BENCHMARK(BM_Limits_EigenSgemm)->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Limits_EigenSgemm_Recsys)->ArgName("threads")->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
