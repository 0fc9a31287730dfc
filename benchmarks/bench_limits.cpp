// Machine limits measured by the same binary, so every recblocks figure can be
// read as a fraction of what this host can do (docs/benchmarks.md):
//   BM_Limits_Triad            STREAM triad a = b + s*c, 3 x 64 MiB floats (DRAM), 12 B/elem
//   BM_Limits_TriadL3          the same over 3 x 2 MiB floats (6 MiB, L3-resident)
//   BM_Limits_ReadBandwidth    sum over a 256 MiB float array (DRAM), 4 B/elem
//   BM_Limits_EigenSgemm       Eigen's own float product, 1024^3, one thread
//   BM_Limits_EigenSgemm_Recsys  Eigen's own product [25600x64]x[64x192], one thread
//   BM_Limits_PoolRun          fork/join overhead of one ThreadPool::run
// Also defines bench_pool(), the static ThreadPools every benchmark file uses.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

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

// Record the kernel ISA runtime dispatch picked, next to the library's context.
const bool kContext = [] {
    benchmark::AddCustomContext("recblocks_isa", std::string(rb::isa_name(rb::active_isa())));
#if defined(__AVX512F__)
    benchmark::AddCustomContext("compiled_for", "AVX-512 (-march=native), Eigen GEMM uses zmm");
#elif defined(__AVX2__)
    benchmark::AddCustomContext("compiled_for", "AVX2");
#else
    benchmark::AddCustomContext("compiled_for", "baseline x86-64 (SSE2): Eigen GEMM is SSE2 only");
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
