// recblocks_cuda_bench: Primitives<backend::Cuda> (through ops::) on recsys
// shapes, f32, plus a device-to-device copy as the bandwidth reference.
//
//   BM_Cuda_MemcpyD2D/bytes            cudaMemcpyAsync D2D (counts read + write)
//   (every benchmark ends with the argument b2b, see Timing)
//   BM_Cuda_Gemm/M/N/K/tb              C[M,N] = A[M,K] op(B); tb=1: B stored [N,K]
//   BM_Cuda_GemmBatched/batch/L/dh     S[b] = Q[b] K[b]^T, Q, K [L, dh] (attention scores)
//   BM_Cuda_Softmax/rows/cols          softmax_rows
//   BM_Cuda_SoftmaxBackward/rows/cols  softmax_rows_backward (y, dy -> dx)
//   BM_Cuda_LayerNormForward/rows/D, BM_Cuda_LayerNormBackward/rows/D
//   BM_Cuda_GatherRows/table_rows/D/n_ids, BM_Cuda_ScatterAddRows/table_rows/D/n_ids
//   BM_Cuda_TopK/rows/N/k              top_k_rows
//   BM_Cuda_Mips/B/N/D/k               exact MIPS: gemm (queries x items^T) + top_k_rows
//   BM_Cuda_Sum/n                      sum of a [1, n] matrix
//   BM_Cuda_SASRecServe/B/N            SASRec (D 50, L 200, 2 blocks) on the GPU: score_all + top_k_rows
//   BM_Cuda_SASRecServeGraph/B/N       the same through a CUDA graph per batch shape (CudaGraphCache):
//                                      stage_queries + graph launch + top_k_rows, on a stream of its own
//   BM_Cuda_SASRecTrainStep/B/N        SASRec training step on the GPU: forward, BCE, backward, Adam
//
// Timing: every iteration records a CUDA event before and after the op on the
// backend's stream, waits for the second and reports the elapsed GPU time
// (UseManualTime). The last argument, b2b, picks what is timed:
//   b2b:0  one call per iteration on an idle GPU: the latency of one call, the
//          host's launch overhead included;
//   b2b:1  20 calls back to back between the events: with a full launch queue
//          this is GPU time. The Time column is then that of the 20 calls;
//          the counter us_per_call (every row) is the time of one call.
// Ops that return a value or check ids on the device (sum, top_k_rows,
// gather_rows, scatter_add_rows) synchronise the stream inside the call, so
// their calls cannot overlap and each includes a device-to-host copy of the
// flag/value and the host's wake-up; their b2b:1 rows are 20 such calls in a
// row with the host thread warm, measured 1.3-2.6x below b2b:0 on an H200.
// The data are allocated and filled once; the op runs once before the timed
// loop (cuBLAS handle, stream-ordered pool, CUB). Inputs stay resident in L2
// (50-60 MB on H100/H200) when they fit: the small shapes measure L2-warm
// kernels, as in a model where the previous kernel just produced them.
//
// Counters: bytes_per_second (minimal traffic, as docs/benchmarks.md:
// each input element read once, each output written once; gather/scatter-add
// count the 4-B ids and each distinct table row once), GFLOPs (gemm, 1e9
// FLOP/s), pct_copy_bw = bytes_per_second / the D2D copy bandwidth measured
// once at start-up (256 MiB, median of 20 copies), in percent (small inputs
// that stay in L2 can exceed 100 %), us_per_call. Run with
// --benchmark_min_time=0.2 --benchmark_repetitions=3
// --benchmark_report_aggregates_only=true (scripts/device_cuda_check.sh);
// the whole suite took about 40 s on an H200 (2026-11-26).
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_set>
#include <vector>

#include "recblocks/backend/cuda/graph.hpp"
#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/top_k.hpp"

namespace {

namespace rb = recblocks;
using Cuda = rb::backend::Cuda;
using rb::index_t;

// ---- helpers ----------------------------------------------------------------

/// Fast deterministic fill (splitmix64 -> uniform [lo, hi)); host side, then one copy.
std::vector<float> uniform_host(index_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    std::vector<float> v(static_cast<std::size_t>(n));
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (float& x : v) {
        s += 0x9E3779B97F4A7C15ull;
        std::uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x = lo + (hi - lo) * static_cast<float>(static_cast<double>(z >> 40) * (1.0 / 16777216.0));
    }
    return v;
}

rb::DeviceBuffer<float> device_uniform(index_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    const std::vector<float> h = uniform_host(n, seed, lo, hi);
    return rb::DeviceBuffer<float>::from_host(std::span<const float>(h));
}

/// n ids uniform in [0, rows) (seeded); also returns the number of distinct ids.
std::vector<rb::row_id_t> random_ids(index_t n, index_t rows, std::uint64_t seed, index_t& distinct) {
    std::vector<rb::row_id_t> ids(static_cast<std::size_t>(n));
    std::uint64_t s = seed;
    for (auto& id : ids) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        id = static_cast<rb::row_id_t>((s >> 33) % static_cast<std::uint64_t>(rows));
    }
    distinct = static_cast<index_t>(std::unordered_set<rb::row_id_t>(ids.begin(), ids.end()).size());
    return ids;
}

struct Events {
    cudaEvent_t start{}, stop{};
    Events() {
        RECBLOCKS_CUDA_CHECK(cudaEventCreate(&start));
        RECBLOCKS_CUDA_CHECK(cudaEventCreate(&stop));
    }
    Events(const Events&) = delete;
    Events& operator=(const Events&) = delete;
    ~Events() {
        (void)cudaEventDestroy(start);
        (void)cudaEventDestroy(stop);
    }
};

/// Calls per timed iteration: 1 (the GPU is idle when the start event is
/// recorded, so the time includes the host's launch overhead: the latency of one
/// call) or kBackToBack (calls issued back to back between the two events: GPU
/// time once the launch queue is full; for ops that synchronise inside, about
/// the same as one call).
constexpr int kBackToBack = 20;
int calls_per_iteration(const benchmark::State& state, int arg_index) {
    return state.range(arg_index) != 0 ? kBackToBack : 1;
}

/// Runs f once untimed, then `calls` times per iteration between two events on
/// `stream`; reports the elapsed time of all `calls` as the iteration time (so
/// --benchmark_min_time bounds the wall time whatever `calls` is) and returns
/// the sum of the reported times. set_counters() divides by `calls`.
template <class F>
double timed_loop(benchmark::State& state, cudaStream_t stream, int calls, F&& f) {
    f();
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    Events ev;
    double total = 0.0;
    for (auto _ : state) {
        RECBLOCKS_CUDA_CHECK(cudaEventRecord(ev.start, stream));
        for (int i = 0; i < calls; ++i) f();
        RECBLOCKS_CUDA_CHECK(cudaEventRecord(ev.stop, stream));
        RECBLOCKS_CUDA_CHECK(cudaEventSynchronize(ev.stop));
        float ms = 0.0f;
        RECBLOCKS_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.start, ev.stop));
        const double seconds = static_cast<double>(ms) * 1e-3;
        state.SetIterationTime(seconds);
        total += seconds;
    }
    return total;
}

/// D2D copy bandwidth (bytes read + written per second) of a 256 MiB buffer,
/// median of 20 copies after 3 warm-ups; measured once per process.
double copy_bandwidth() {
    static const double bw = [] {
        const std::size_t bytes = std::size_t{256} << 20;
        void* a = nullptr;
        void* b = nullptr;
        RECBLOCKS_CUDA_CHECK(cudaMalloc(&a, bytes));
        RECBLOCKS_CUDA_CHECK(cudaMalloc(&b, bytes));
        RECBLOCKS_CUDA_CHECK(cudaMemset(a, 1, bytes));
        Events ev;
        std::vector<float> ms;
        for (int i = 0; i < 23; ++i) {
            RECBLOCKS_CUDA_CHECK(cudaEventRecord(ev.start, nullptr));
            RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, nullptr));
            RECBLOCKS_CUDA_CHECK(cudaEventRecord(ev.stop, nullptr));
            RECBLOCKS_CUDA_CHECK(cudaEventSynchronize(ev.stop));
            float t = 0.0f;
            RECBLOCKS_CUDA_CHECK(cudaEventElapsedTime(&t, ev.start, ev.stop));
            if (i >= 3) ms.push_back(t);
        }
        std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
        (void)cudaFree(a);
        (void)cudaFree(b);
        return 2.0 * static_cast<double>(bytes) / (static_cast<double>(ms[ms.size() / 2]) * 1e-3);
    }();
    return bw;
}

/// Counters for `calls` calls per iteration, each moving `bytes` (and doing
/// `flops`, covering `items`): bytes_per_second, items_per_second, GFLOPs,
/// pct_copy_bw, and us_per_call (the time of ONE call; the Time column of a
/// b2b:1 row is that of kBackToBack calls).
void set_counters(benchmark::State& state, int calls, double seconds, double bytes, double flops = 0.0,
                  double items = 0.0) {
    const double n = static_cast<double>(state.iterations()) * calls;  // calls timed
    state.SetBytesProcessed(static_cast<int64_t>(n * bytes));
    if (items > 0) state.SetItemsProcessed(static_cast<int64_t>(n * items));
    if (seconds > 0) {
        state.counters["pct_copy_bw"] = 100.0 * n * bytes / seconds / copy_bandwidth();
        state.counters["us_per_call"] = 1e6 * seconds / n;
    }
    if (flops > 0)
        state.counters["GFLOPs"] =
            benchmark::Counter(flops * 1e-9 * calls, benchmark::Counter::kIsIterationInvariantRate);
}

bool skip_without_gpu(benchmark::State& state) {
    if (rb::cuda_device_count() > 0) return false;
    state.SkipWithError("no CUDA device");
    for (auto _ : state) {
    }
    return true;
}

const Cuda kBe{};

// ---- reference: device-to-device copy ----------------------------------------

void BM_Cuda_MemcpyD2D(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 1);
    const auto bytes = static_cast<std::size_t>(state.range(0));
    rb::DeviceBuffer<char> a(static_cast<index_t>(bytes)), b(static_cast<index_t>(bytes));
    RECBLOCKS_CUDA_CHECK(cudaMemset(a.data(), 1, bytes));
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, kBe.stream));
    });
    set_counters(state, calls, s, 2.0 * static_cast<double>(bytes));
}
BENCHMARK(BM_Cuda_MemcpyD2D)
    ->ArgNames({"bytes", "b2b"})
    ->ArgsProduct({{8 << 20,      // L2-resident
                    256 << 20},   // DRAM (the reference of pct_copy_bw)
                   {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---- gemm --------------------------------------------------------------------

void BM_Cuda_Gemm(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 4);
    const index_t m = state.range(0), n = state.range(1), k = state.range(2);
    const bool tb = state.range(3) != 0;
    auto a = device_uniform(m * k, 1), b = device_uniform(k * n, 2);
    rb::DeviceBuffer<float> c(m * n);
    const auto av = a.matrix(m, k);
    const auto bv = tb ? b.matrix(n, k) : b.matrix(k, n);
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::gemm<Cuda, float>(kBe, rb::Trans::no, tb ? rb::Trans::yes : rb::Trans::no, 1.0f, av, bv, 0.0f,
                                   c.matrix(m, n));
    });
    set_counters(state, calls, s, 4.0 * double(m * k + k * n + m * n), 2.0 * double(m) * double(n) * double(k));
}
BENCHMARK(BM_Cuda_Gemm)
    ->ArgNames({"M", "N", "K", "tb", "b2b"})
    ->ArgsProduct({{25600}, {192}, {64}, {0}, {0, 1}})   // [B*L, D] x [D, 3D]: the fused QKV projection (B=128, L=200, D=64)
    ->ArgsProduct({{128}, {10000}, {50}, {1}, {0, 1}})   // users [128, 50] x items [10000, 50]^T: scoring a catalogue
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_GemmBatched(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 3);
    const index_t batch = state.range(0), l = state.range(1), dh = state.range(2);
    auto q = device_uniform(batch * l * dh, 3), kk = device_uniform(batch * l * dh, 4);
    rb::DeviceBuffer<float> sc(batch * l * l);
    const rb::TensorView<const float, 3> qv(q.data(), rb::Shape<3>{{batch, l, dh}}, {l * dh, dh, 1});
    const rb::TensorView<const float, 3> kv(kk.data(), rb::Shape<3>{{batch, l, dh}}, {l * dh, dh, 1});
    const rb::TensorView<float, 3> sv(sc.data(), rb::Shape<3>{{batch, l, l}}, {l * l, l, 1});
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::gemm_batched<Cuda, float>(kBe, rb::Trans::no, rb::Trans::yes, 1.0f, qv, kv, 0.0f, sv);
    });
    set_counters(state, calls, s, 4.0 * double(batch) * double(2 * l * dh + l * l),
                 2.0 * double(batch) * double(l) * double(l) * double(dh));
}
BENCHMARK(BM_Cuda_GemmBatched)
    ->ArgNames({"batch", "L", "dh", "b2b"})
    ->ArgsProduct({{128}, {200}, {50}, {0, 1}})  // B=128 sequences x 1 head, L=200, head dim 50: Q K^T
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---- row ops -----------------------------------------------------------------

void BM_Cuda_Softmax(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 2);
    const index_t rows = state.range(0), cols = state.range(1);
    auto x = device_uniform(rows * cols, 5, -3.0f, 3.0f);
    rb::DeviceBuffer<float> y(rows * cols);
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::softmax_rows<Cuda, float>(kBe, std::as_const(x).matrix(rows, cols), y.matrix(rows, cols));
    });
    set_counters(state, calls, s, 8.0 * double(rows * cols), 0.0, double(rows * cols));
}
BENCHMARK(BM_Cuda_Softmax)
    ->ArgNames({"rows", "cols", "b2b"})
    ->ArgsProduct({{25600}, {200}, {0, 1}})  // B*L = 128*200 rows of L = 200 attention scores
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_SoftmaxBackward(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 2);
    const index_t rows = state.range(0), cols = state.range(1);
    auto y = device_uniform(rows * cols, 15, 0.0f, 0.01f), dy = device_uniform(rows * cols, 16);
    rb::DeviceBuffer<float> dx(rows * cols);
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::softmax_rows_backward<Cuda, float>(kBe, std::as_const(y).matrix(rows, cols),
                                                    std::as_const(dy).matrix(rows, cols), dx.matrix(rows, cols));
    });
    set_counters(state, calls, s, 12.0 * double(rows * cols), 0.0, double(rows * cols));
}
BENCHMARK(BM_Cuda_SoftmaxBackward)
    ->ArgNames({"rows", "cols", "b2b"})
    ->ArgsProduct({{25600}, {200}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_LayerNormForward(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 2);
    const index_t rows = state.range(0), d = state.range(1);
    auto x = device_uniform(rows * d, 6, -3.0f, 3.0f), gamma = device_uniform(d, 7, 0.5f, 1.5f),
         beta = device_uniform(d, 8);
    rb::DeviceBuffer<float> y(rows * d), mean(rows), rstd(rows);
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::layer_norm_forward<Cuda, float>(kBe, std::as_const(x).matrix(rows, d), std::as_const(gamma).view(),
                                                 std::as_const(beta).view(), 1e-5f, y.matrix(rows, d), mean.view(),
                                                 rstd.view());
    });
    set_counters(state, calls, s, 8.0 * double(rows * d) + 8.0 * double(rows), 0.0, double(rows * d));
}
BENCHMARK(BM_Cuda_LayerNormForward)
    ->ArgNames({"rows", "D", "b2b"})
    ->ArgsProduct({{25600}, {64}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_LayerNormBackward(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 2);
    const index_t rows = state.range(0), d = state.range(1);
    auto x = device_uniform(rows * d, 6, -3.0f, 3.0f), gamma = device_uniform(d, 7, 0.5f, 1.5f),
         beta = device_uniform(d, 8), dy = device_uniform(rows * d, 9);
    rb::DeviceBuffer<float> y(rows * d), mean(rows), rstd(rows), dx(rows * d), dgamma(d), dbeta(d);
    RECBLOCKS_CUDA_CHECK(cudaMemset(dgamma.data(), 0, sizeof(float) * static_cast<std::size_t>(d)));
    RECBLOCKS_CUDA_CHECK(cudaMemset(dbeta.data(), 0, sizeof(float) * static_cast<std::size_t>(d)));
    rb::ops::layer_norm_forward<Cuda, float>(kBe, std::as_const(x).matrix(rows, d), std::as_const(gamma).view(),
                                             std::as_const(beta).view(), 1e-5f, y.matrix(rows, d), mean.view(),
                                             rstd.view());
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::layer_norm_backward<Cuda, float>(kBe, std::as_const(x).matrix(rows, d), std::as_const(gamma).view(),
                                                  std::as_const(mean).view(), std::as_const(rstd).view(),
                                                  std::as_const(dy).matrix(rows, d), dx.matrix(rows, d),
                                                  dgamma.view(), dbeta.view());
    });
    set_counters(state, calls, s, 12.0 * double(rows * d) + 8.0 * double(rows), 0.0, double(rows * d));
}
BENCHMARK(BM_Cuda_LayerNormBackward)
    ->ArgNames({"rows", "D", "b2b"})
    ->ArgsProduct({{25600}, {64}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---- embedding ---------------------------------------------------------------

struct EmbeddingData {
    index_t table_rows, d, n, distinct = 0;
    rb::DeviceBuffer<float> table;
    rb::DeviceBuffer<rb::row_id_t> ids;
    rb::DeviceBuffer<float> dense;
    EmbeddingData(index_t tr, index_t dd, index_t nn) : table_rows(tr), d(dd), n(nn) {
        table = device_uniform(tr * dd, 10);
        const auto h = random_ids(nn, tr, 11, distinct);
        ids = rb::DeviceBuffer<rb::row_id_t>::from_host(std::span<const rb::row_id_t>(h));
        dense = device_uniform(nn * dd, 12);
    }
    /// ids 4 B each, the dense side once, each distinct table row `table_passes` times.
    [[nodiscard]] double bytes(double table_passes) const {
        return 4.0 * double(n) + 4.0 * double(n * d) + table_passes * 4.0 * double(distinct * d);
    }
};

void BM_Cuda_GatherRows(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 3);
    EmbeddingData e(state.range(0), state.range(1), state.range(2));
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::gather_rows<Cuda, float>(kBe, std::as_const(e.table).matrix(e.table_rows, e.d),
                                          std::as_const(e.ids).view(), e.dense.matrix(e.n, e.d));
    });
    set_counters(state, calls, s, e.bytes(1.0), 0.0, double(e.n));
    state.counters["distinct_ids"] = double(e.distinct);
}
BENCHMARK(BM_Cuda_GatherRows)
    ->ArgNames({"table_rows", "D", "ids", "b2b"})
    ->ArgsProduct({{1000000}, {64}, {25600}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_ScatterAddRows(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 3);
    EmbeddingData e(state.range(0), state.range(1), state.range(2));
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::scatter_add_rows<Cuda, float>(kBe, std::as_const(e.dense).matrix(e.n, e.d),
                                               std::as_const(e.ids).view(), e.table.matrix(e.table_rows, e.d));
    });
    set_counters(state, calls, s, e.bytes(2.0), 0.0, double(e.n));
    state.counters["distinct_ids"] = double(e.distinct);
}
BENCHMARK(BM_Cuda_ScatterAddRows)
    ->ArgNames({"table_rows", "D", "ids", "b2b"})
    ->ArgsProduct({{1000000}, {64}, {25600}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---- top-k, sum --------------------------------------------------------------

void BM_Cuda_TopK(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 3);
    const index_t rows = state.range(0), n = state.range(1), k = state.range(2);
    auto scores = device_uniform(rows * n, 13);
    rb::DeviceBuffer<float> values(rows * k);
    rb::DeviceBuffer<rb::row_id_t> ids(rows * k);
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::top_k_rows<Cuda, float>(kBe, std::as_const(scores).matrix(rows, n), k, ids.matrix(rows, k),
                                         values.matrix(rows, k));
    });
    set_counters(state, calls, s, 4.0 * double(rows * n), 0.0, double(rows * n));
}
BENCHMARK(BM_Cuda_TopK)
    ->ArgNames({"rows", "N", "k", "b2b"})
    ->ArgsProduct({{1}, {1000000}, {10}, {0, 1}})   // one user against a 1e6-item catalogue
    ->ArgsProduct({{128}, {100000}, {10}, {0, 1}})  // a batch of 128 users against 1e5 items
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

/// Exact maximum-inner-product retrieval as a user composes it from the ops:
/// scores [B, N] = queries [B, D] · items [N, D]^T (cuBLAS), then top_k_rows.
/// bytes = the item table once (the minimal traffic; the [B, N] scores are
/// written and read back on top of it, which is what a fused kernel would save).
void BM_Cuda_Mips(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 4);
    const index_t b = state.range(0), n = state.range(1), d = state.range(2), k = state.range(3);
    auto queries = device_uniform(b * d, 21), items = device_uniform(n * d, 22);
    rb::DeviceBuffer<float> scores(b * n), values(b * k);
    rb::DeviceBuffer<rb::row_id_t> ids(b * k);
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        rb::ops::gemm<Cuda, float>(kBe, rb::Trans::no, rb::Trans::yes, 1.0f, std::as_const(queries).matrix(b, d),
                                   std::as_const(items).matrix(n, d), 0.0f, scores.matrix(b, n));
        rb::ops::top_k_rows<Cuda, float>(kBe, std::as_const(scores).matrix(b, n), k, ids.matrix(b, k),
                                         values.matrix(b, k));
    });
    set_counters(state, calls, s, 4.0 * double(n) * double(d), 2.0 * double(b) * double(n) * double(d), double(b));
}
BENCHMARK(BM_Cuda_Mips)
    ->ArgNames({"B", "N", "D", "k", "b2b"})
    ->ArgsProduct({{1}, {1000000, 10000000}, {64}, {10}, {0, 1}})  // one query, 1e6 / 1e7 items (issue 4's shape)
    ->ArgsProduct({{256}, {1000000}, {64}, {10}, {0, 1}})          // a batch of 256 queries
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_Sum(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 1);
    const index_t n = state.range(0);
    auto x = device_uniform(n, 14);
    float result = 0.0f;
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        result = rb::ops::sum<Cuda, const float>(kBe, std::as_const(x).matrix(1, n));
    });
    benchmark::DoNotOptimize(result);
    set_counters(state, calls, s, 4.0 * double(n), 0.0, double(n));
}
BENCHMARK(BM_Cuda_Sum)->ArgNames({"n", "b2b"})->ArgsProduct({{10000000}, {0, 1}})->UseManualTime()->Unit(benchmark::kMicrosecond);

// ---- whole models --------------------------------------------------------------

/// SASRec as the speed bars measure it: D = 50, L = 200, 2 blocks, 1 head,
/// histories of 50..200 items (left-padded), N items; the model's tensors live
/// on the GPU (SASRec<float, QueryNorm, CudaMemory>), ids come from the host.
rb::models::SASRecConfig sasrec_config(index_t n) {
    rb::models::SASRecConfig c;
    c.num_items = n;
    c.max_len = 200;
    c.d_model = 50;
    c.num_blocks = 2;
    c.heads = 1;
    c.dropout = 0.2;
    return c;
}
rb::Matrix<rb::row_id_t> sasrec_histories(index_t b, index_t n, std::uint64_t seed) {
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{b, 200}});
    std::uint64_t s = seed;
    auto next = [&] { return (s = s * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
    for (index_t r = 0; r < b; ++r) {
        const index_t len = 50 + static_cast<index_t>(next() % 151);
        for (index_t t = 0; t < 200; ++t)
            ids(r, t) = t < 200 - len ? 0 : static_cast<rb::row_id_t>(1 + next() % static_cast<std::uint64_t>(n));
    }
    return ids;
}

void BM_Cuda_SASRecServe(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 2);
    const index_t b = state.range(0), n = state.range(1);
    rb::models::SASRec<float, rb::policies::QueryNorm, rb::CudaMemory> model(sasrec_config(n), rb::Rng(1),
                                                                             rb::memory_of(kBe));
    const auto ids = sasrec_histories(b, n, 7);
    auto scores = rb::make_tensor<float>(kBe, rb::Shape<2>{{b, n + 1}});
    auto top = rb::make_tensor<rb::row_id_t>(kBe, rb::Shape<2>{{b, 10}});
    auto top_s = rb::make_tensor<float>(kBe, rb::Shape<2>{{b, 10}});
    const double s = timed_loop(state, kBe.stream, calls, [&] {
        model.score_all(kBe, rb::ThreadPool::global(), ids.cview(), scores.view());
        rb::ops::top_k_rows(kBe, scores.cview(), 10, top.view(), top_s.view());
    });
    set_counters(state, calls, s, 4.0 * double(n) * 50.0, 0.0, double(b));
    state.counters["seq_per_s"] = benchmark::Counter(double(b) * calls, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Cuda_SASRecServe)
    ->ArgNames({"B", "N", "b2b"})
    ->ArgsProduct({{1, 1024}, {9724}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_SASRecServeGraph(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const int calls = calls_per_iteration(state, 2);
    const index_t b = state.range(0), n = state.range(1);
    cudaStream_t stream = nullptr;  // graphs cannot be captured on the legacy default stream
    RECBLOCKS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    {
        const Cuda gpu{stream};
        rb::models::SASRec<float, rb::policies::QueryNorm, rb::CudaMemory> model(sasrec_config(n), rb::Rng(1),
                                                                                 rb::memory_of(gpu));
        const auto ids = sasrec_histories(b, n, 7);
        auto scores = rb::make_tensor<float>(gpu, rb::Shape<2>{{b, n + 1}});
        auto top = rb::make_tensor<rb::row_id_t>(gpu, rb::Shape<2>{{b, 10}});
        auto top_s = rb::make_tensor<float>(gpu, rb::Shape<2>{{b, 10}});
        rb::CudaGraphCache graphs;
        const double s = timed_loop(state, stream, calls, [&] {
            model.stage_queries(ids.cview());
            graphs.run(gpu, static_cast<std::uint64_t>(b), [&](const Cuda& be) {
                model.score_all_staged(be, rb::ThreadPool::global(), scores.view());
            });
            rb::ops::top_k_rows(gpu, scores.cview(), 10, top.view(), top_s.view());
        });
        set_counters(state, calls, s, 4.0 * double(n) * 50.0, 0.0, double(b));
        state.counters["seq_per_s"] =
            benchmark::Counter(double(b) * calls, benchmark::Counter::kIsIterationInvariantRate);
    }
    RECBLOCKS_CUDA_CHECK(cudaStreamDestroy(stream));
}
BENCHMARK(BM_Cuda_SASRecServeGraph)
    ->ArgNames({"B", "N", "b2b"})
    ->ArgsProduct({{1, 1024}, {9724}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Cuda_SASRecTrainStep(benchmark::State& state) {
    if (skip_without_gpu(state)) return;
    const index_t b = state.range(0), n = state.range(1);
    rb::models::SASRec<float, rb::policies::QueryNorm, rb::CudaMemory> model(sasrec_config(n), rb::Rng(1),
                                                                             rb::memory_of(kBe));
    rb::optim::Adam<float, rb::CudaMemory> adam({1e-3, 0.9, 0.98}, model.params());
    const auto ids = sasrec_histories(b, n, 7);
    rb::Matrix<rb::row_id_t> pos(ids.shape()), neg(ids.shape());
    std::uint64_t s = 3;
    for (index_t i = 0; i < ids.numel(); ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        pos.data()[i] = ids.data()[i] == 0 ? 0 : static_cast<rb::row_id_t>(1 + (s >> 33) % std::uint64_t(n));
        neg.data()[i] = ids.data()[i] == 0 ? 0 : static_cast<rb::row_id_t>(1 + (s >> 13) % std::uint64_t(n));
    }
    std::uint64_t step = 0;
    const double t = timed_loop(state, kBe.stream, 1, [&] {
        model.train_step_bce(kBe, rb::ThreadPool::global(), ids.cview(), pos.cview(), neg.cview(), step++);
        adam.step(kBe, model.params(), 1e-3);
    });
    set_counters(state, 1, t, 0.0, 0.0, double(b));
    state.counters["seq_per_s"] = benchmark::Counter(double(b), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Cuda_SASRecTrainStep)
    ->ArgNames({"B", "N"})
    ->ArgsProduct({{128, 1024}, {9724}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    if (rb::cuda_device_count() > 0) {
        cudaDeviceProp prop{};
        int driver = 0, runtime = 0;
        (void)cudaGetDeviceProperties(&prop, 0);
        (void)cudaDriverGetVersion(&driver);
        (void)cudaRuntimeGetVersion(&runtime);
        benchmark::AddCustomContext("cuda_device", prop.name);
        benchmark::AddCustomContext("cuda_sm", std::to_string(prop.major) + std::to_string(prop.minor));
        benchmark::AddCustomContext("cuda_driver_api", std::to_string(driver));
        benchmark::AddCustomContext("cuda_runtime", std::to_string(runtime));
        char bw[64];
        std::snprintf(bw, sizeof bw, "%.1f", copy_bandwidth() * 1e-9);
        benchmark::AddCustomContext("d2d_copy_GBps_256MiB", bw);
    } else {
        std::fprintf(stderr, "recblocks_cuda_bench: no CUDA device; every benchmark reports an error\n");
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
