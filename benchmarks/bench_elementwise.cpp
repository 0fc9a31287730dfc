// Row-wise and element-wise ops on backend::Cpu<isa::Dispatch>, f32:
//   BM_Softmax_Forward / _ForwardMasked / _Backward
//   BM_LayerNorm_Forward / _Backward
//   BM_Gelu_Forward / _Backward, BM_Relu_Forward / _Backward
// Arguments: rows, D (row width), threads. Bytes are the minimal traffic:
// every input element read once and every output element written once
// (forward 8 B/elem, backward 12 B/elem, + mean/rstd 8 B/row for layer norm,
// + 1 B/elem mask). rows x D = 25600 x 64 is 6.5 MB in + out (L3-resident on a
// 32 MiB L3); 262144 x 64 (64 MiB + 64 MiB) is the DRAM-sized variant.
#include <benchmark/benchmark.h>

#include <random>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/softmax.hpp"

#include "bench_common.hpp"

namespace {

using bench::Be;
using bench::fill_uniform;
using Mat = rb::Matrix<float>;
using Vec = rb::Vector<float>;


struct Setup {
    rb::index_t rows, d;
    Be be;
};
Setup setup(const benchmark::State& state) {
    return {state.range(0), state.range(1), Be{&bench_pool(static_cast<int>(state.range(2)))}};
}

void set_counters(benchmark::State& state, rb::index_t rows, rb::index_t d, double bytes_per_elem,
                  double bytes_per_row) {
    const double bytes = double(rows) * double(d) * bytes_per_elem + double(rows) * bytes_per_row;
    state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * bytes));
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * rows * d);  // elements
}

void BM_Softmax_Forward(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), y(rb::Shape<2>{{rows, d}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    for (auto _ : state) {
        rb::ops::softmax_rows<Be, float>(be, x.cview(), y.view());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 8, 0);
}

void BM_Softmax_ForwardMasked(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), y(rb::Shape<2>{{rows, d}});
    rb::Matrix<std::uint8_t> mask(rb::Shape<2>{{rows, d}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    for (rb::index_t r = 0; r < rows; ++r)  // causal: row r of each LxL block keeps columns <= r % L
        for (rb::index_t c = 0; c < d; ++c) mask(r, c) = c <= r % d ? 1 : 0;
    for (auto _ : state) {
        rb::ops::softmax_rows<Be, float>(be, x.cview(), y.view(), mask.cview());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 9, 0);
}

void BM_Softmax_Backward(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), y(rb::Shape<2>{{rows, d}}), dy(rb::Shape<2>{{rows, d}}),
        dx(rb::Shape<2>{{rows, d}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    fill_uniform(dy, 2, -3.0f, 3.0f);
    rb::ops::softmax_rows<Be, float>(be, x.cview(), y.view());
    for (auto _ : state) {
        rb::ops::softmax_rows_backward<Be, float>(be, y.cview(), dy.cview(), dx.view());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 12, 0);
}

void BM_LayerNorm_Forward(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), y(rb::Shape<2>{{rows, d}});
    Vec gamma(rb::Shape<1>{{d}}), beta(rb::Shape<1>{{d}}), mean(rb::Shape<1>{{rows}}), rstd(rb::Shape<1>{{rows}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    fill_uniform(gamma, 2, 0.5f, 1.5f);
    fill_uniform(beta, 3, -0.5f, 0.5f);
    for (auto _ : state) {
        rb::ops::layer_norm_forward<Be, float>(be, x.cview(), gamma.cview(), beta.cview(), 1e-5f, y.view(),
                                               mean.view(), rstd.view());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 8, 8);  // + mean, rstd written
}

void BM_LayerNorm_Backward(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), y(rb::Shape<2>{{rows, d}}), dy(rb::Shape<2>{{rows, d}}),
        dx(rb::Shape<2>{{rows, d}});
    Vec gamma(rb::Shape<1>{{d}}), beta(rb::Shape<1>{{d}}), mean(rb::Shape<1>{{rows}}), rstd(rb::Shape<1>{{rows}}),
        dgamma(rb::Shape<1>{{d}}), dbeta(rb::Shape<1>{{d}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    fill_uniform(dy, 4, -3.0f, 3.0f);
    fill_uniform(gamma, 2, 0.5f, 1.5f);
    rb::ops::layer_norm_forward<Be, float>(be, x.cview(), gamma.cview(), beta.cview(), 1e-5f, y.view(), mean.view(),
                                           rstd.view());
    for (auto _ : state) {
        rb::ops::layer_norm_backward<Be, float>(be, x.cview(), gamma.cview(), mean.cview(), rstd.cview(), dy.cview(),
                                                dx.view(), dgamma.view(), dbeta.view());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 12, 8);  // + mean, rstd read
}

template <rb::Activation A>
void BM_Act_Forward(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), y(rb::Shape<2>{{rows, d}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    for (auto _ : state) {
        rb::ops::activation_forward<Be, float>(be, A, x.cview(), y.view());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 8, 0);
}

template <rb::Activation A>
void BM_Act_Backward(benchmark::State& state) {
    auto [rows, d, be] = setup(state);
    Mat x(rb::Shape<2>{{rows, d}}), dy(rb::Shape<2>{{rows, d}}), dx(rb::Shape<2>{{rows, d}});
    fill_uniform(x, 1, -3.0f, 3.0f);
    fill_uniform(dy, 2, -3.0f, 3.0f);
    for (auto _ : state) {
        rb::ops::activation_backward<Be, float>(be, A, x.cview(), dy.cview(), dx.view());
        benchmark::ClobberMemory();
    }
    set_counters(state, rows, d, 12, 0);
}

void BM_Gelu_Forward(benchmark::State& s) { BM_Act_Forward<rb::Activation::gelu>(s); }
void BM_Gelu_Backward(benchmark::State& s) { BM_Act_Backward<rb::Activation::gelu>(s); }
void BM_Relu_Forward(benchmark::State& s) { BM_Act_Forward<rb::Activation::relu>(s); }
void BM_Relu_Backward(benchmark::State& s) { BM_Act_Backward<rb::Activation::relu>(s); }

// rows in {1, 128, 25600} x D in {50, 64, 128}, threads 1 and 2.
void RowShapes(benchmark::internal::Benchmark* b) {
    b->ArgNames({"rows", "D", "threads"});
    b->ArgsProduct({{1, 128, 25600}, {50, 64, 128}, {1, 2}});
    b->UseRealTime();
    b->Unit(benchmark::kMicrosecond);
}
// + the DRAM-sized variant of the bar shape (262144 x 64 = 64 MiB per matrix).
void RowShapesCold(benchmark::internal::Benchmark* b) {
    RowShapes(b);
    b->ArgsProduct({{262144}, {64}, {1, 2}});
}
// + attention-like [B*L, L] = [25600, 200].
void RowShapesAttention(benchmark::internal::Benchmark* b) {
    RowShapesCold(b);
    b->ArgsProduct({{25600}, {200}, {1, 2}});
}

BENCHMARK(BM_Softmax_Forward)->Apply(RowShapesAttention);
BENCHMARK(BM_Softmax_ForwardMasked)->ArgNames({"rows", "D", "threads"})->ArgsProduct({{25600}, {200}, {1, 2}})
    ->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Softmax_Backward)->Apply(RowShapesAttention);
BENCHMARK(BM_LayerNorm_Forward)->Apply(RowShapesCold);
BENCHMARK(BM_LayerNorm_Backward)->Apply(RowShapesCold);
BENCHMARK(BM_Gelu_Forward)->Apply(RowShapes);
BENCHMARK(BM_Gelu_Backward)->Apply(RowShapes);
BENCHMARK(BM_Relu_Forward)->Apply(RowShapes);
BENCHMARK(BM_Relu_Backward)->Apply(RowShapes);

}  // namespace
