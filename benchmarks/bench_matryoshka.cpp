// Matryoshka blocks at SASRec shapes (B = 128 × L = 200 = 25,600 positions,
// D = 64, widths 8/16/32/64, N = 10,000 items):
//  * the MRL-E BCE loss with one negative per position (SASRec's), forward + backward;
//  * the MRL-E full-softmax CE, forward + backward, on 2,560 positions (the
//    [rows, N] logits of all 25,600 would take seconds per iteration);
//  * fMRLRec's nested linear, forward + backward, at full width.
// GFLOP/s counts the useful products only: the MRL-E softmax as one full-width
// loss (2·rows·N·D forward, twice that backward), the nested linear as its
// block lower-triangular multiply-adds. benchmarks/peers/matryoshka_torch.py
// times the same in PyTorch; benchmarks/peers/run_matryoshka_bars.sh runs both.
#include <benchmark/benchmark.h>

#include "bench_common.hpp"
#include "recblocks/blocks/matryoshka_linear.hpp"
#include "recblocks/losses/matryoshka_loss.hpp"

namespace {

using bench::Be;

rb::MatryoshkaWidths widths64() { return rb::MatryoshkaWidths({8, 16, 32, 64}, 64); }

void BM_MatryoshkaBce_ForwardBackward(benchmark::State& state) {
    const rb::index_t rows = state.range(0), n = state.range(1), d = 64;
    const auto w = widths64();
    rb::Matrix<float> h(rb::Shape<2>{{rows, d}}), dh(h.shape()), table(rb::Shape<2>{{n + 1, d}}), dt(table.shape());
    bench::fill_uniform(h, 1, -0.5f, 0.5f);
    bench::fill_uniform(table, 2, -0.5f, 0.5f);
    rb::Vector<rb::row_id_t> pos(rb::Shape<1>{{rows}});
    rb::Matrix<rb::row_id_t> neg(rb::Shape<2>{{rows, 1}});
    for (rb::index_t r = 0; r < rows; ++r) {
        pos(r) = static_cast<rb::row_id_t>(1 + (r * 7919) % n);
        neg(r, 0) = static_cast<rb::row_id_t>(1 + (r * 104729 + 17) % n);
    }
    rb::losses::MatryoshkaBceWithNegatives<float> loss;
    for (auto _ : state) {
        auto v = loss.shared(bench::Be{}, w, h.cview(), table.cview(), pos.cview(), neg.cview(), dh.view(), dt.view());
        benchmark::DoNotOptimize(v.loss);
    }
    // per (row, id): a D-long dot (2D) and two D-long axpys (4D).
    state.counters["GFLOP/s"] = benchmark::Counter(double(rows) * 2.0 * 6.0 * double(d) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    state.counters["positions/s"] = benchmark::Counter(double(rows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MatryoshkaSoftmaxCE_ForwardBackward(benchmark::State& state) {
    const rb::index_t rows = state.range(0), n = state.range(1), d = 64;
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(2)));
    const Be be{&pool};
    const auto w = widths64();
    rb::Matrix<float> h(rb::Shape<2>{{rows, d}}), dh(h.shape()), table(rb::Shape<2>{{n + 1, d}}), dt(table.shape());
    bench::fill_uniform(h, 1, -0.5f, 0.5f);
    bench::fill_uniform(table, 2, -0.5f, 0.5f);
    rb::Vector<rb::row_id_t> targets(rb::Shape<1>{{rows}});
    for (rb::index_t r = 0; r < rows; ++r) targets(r) = static_cast<rb::row_id_t>(1 + (r * 7919) % n);
    rb::losses::MatryoshkaSoftmaxCrossEntropy<float> loss(256);
    for (auto _ : state) {
        auto v = loss.shared(be, w, h.cview(), table.cview(), {}, targets.cview(), dh.view(), dt.view(), {});
        benchmark::DoNotOptimize(v.loss);
    }
    state.counters["GFLOP/s"] = benchmark::Counter(6.0 * double(rows) * double(n) * double(d) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    state.counters["positions/s"] = benchmark::Counter(double(rows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MatryoshkaLinear_ForwardBackward(benchmark::State& state) {
    const rb::index_t rows = state.range(0);
    rb::ThreadPool& pool = bench_pool(static_cast<int>(state.range(1)));
    const Be be{&pool};
    rb::blocks::MatryoshkaLinear<float> lin(widths64(), rb::Rng(1));
    rb::Matrix<float> x(rb::Shape<2>{{rows, 64}}), y(x.shape()), dy(x.shape()), dx(x.shape());
    bench::fill_uniform(x, 1);
    bench::fill_uniform(dy, 2);
    for (auto _ : state) {
        lin.forward(be, x.cview(), y.view());
        lin.backward(be, x.cview(), dy.cview(), dx.view());
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(3.0 * double(rows) * lin.flops_per_row(64) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
    state.counters["positions/s"] = benchmark::Counter(double(rows), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_MatryoshkaBce_ForwardBackward)->ArgNames({"rows", "N"})->Args({25600, 10000})->UseRealTime();
BENCHMARK(BM_MatryoshkaSoftmaxCE_ForwardBackward)
    ->ArgNames({"rows", "N", "threads"})
    ->Args({2560, 10000, 1})
    ->Args({2560, 10000, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MatryoshkaLinear_ForwardBackward)
    ->ArgNames({"rows", "threads"})
    ->Args({25600, 1})
    ->Args({25600, 2})
    ->UseRealTime();

}  // namespace
