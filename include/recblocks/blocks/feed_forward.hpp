#pragma once
// Position-wise feed-forward with its residual, as in SASRec and BERT4Rec:
//
//   h = act(x W1ᵀ + b1)                 [R, F]   (F = inner width; SASRec: D, BERT4Rec: 4D)
//   y = x + Drop2(Drop1(h) W2ᵀ + b2)     [R, D]   (the "x +" only with Config::residual)
//
// Drop1 has rate Config::hidden_dropout (< 0: the same as dropout; SASRec's
// code drops both, BERT drops only the output: hidden_dropout = 0).
//
// x, y are [R, D] with R = B * L rows. Weights use nn.Linear's layout:
// w1 [F, D], b1 [F], w2 [D, F], b2 [D] (a Conv1d kernel-size-1 weight
// [F, D, 1] is the same memory). act is ReLU or erf-GELU. backward() adds the
// parameter gradients into grads() and writes dx (including the residual's dy).
//
// Memory is where parameters, gradients and scratch live (host by default,
// CudaMemory on backend::Cuda); the block is a sequence of backend calls.
#include <cmath>
#include <type_traits>

#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/reduce.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, MemorySpace Memory = HostMemory>
class FeedForward {
public:
    struct Config {
        index_t d_model = 0;                     ///< D
        index_t inner = 0;                       ///< F; 0 means D
        Activation activation = Activation::relu;
        double dropout = 0.0;                    ///< on the activation and on the output
        bool residual = true;                    ///< add x to the output (pre-norm blocks add their own)
        double hidden_dropout = -1.0;            ///< on the activation only; < 0 means `dropout`
    };
    struct Params {
        Matrix<T, Memory> w1;  ///< [F, D]
        Vector<T, Memory> b1;  ///< [F]
        Matrix<T, Memory> w2;  ///< [D, F]
        Vector<T, Memory> b2;  ///< [D]
    };

    /// nn.Linear's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    FeedForward(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(cfg), drop_hidden_(cfg.hidden_dropout < 0 ? cfg.dropout : cfg.hidden_dropout, rng.substream(10)),
          drop_out_(cfg.dropout, rng.substream(11)), pre_(memory), hidden_(memory), dhidden_(memory),
          infer_hidden_(memory), sums_(memory) {
        if (cfg_.inner == 0) cfg_.inner = cfg_.d_model;
        RECBLOCKS_CHECK_VALUE(cfg_.d_model >= 1 && cfg_.inner >= 1, "FeedForward: d_model and inner must be >= 1, got ",
                              cfg_.d_model, " and ", cfg_.inner);
        const index_t d = cfg_.d_model, f = cfg_.inner;
        for (Params* p : {&params_, &grads_}) {
            p->w1 = Matrix<T, Memory>(Shape<2>{{f, d}}, memory);
            p->b1 = Vector<T, Memory>(Shape<1>{{f}}, memory);
            p->w2 = Matrix<T, Memory>(Shape<2>{{d, f}}, memory);
            p->b2 = Vector<T, Memory>(Shape<1>{{d}}, memory);
        }
        auto init = [](auto& t, double fan_in, const Rng& r) {
            const double bound = 1.0 / std::sqrt(fan_in);
            fill_from_host(t, [&](index_t i) { return bound * (2.0 * r.uniform_double(std::uint64_t(i)) - 1.0); });
        };
        init(params_.w1, double(d), rng.substream(0));
        init(params_.b1, double(d), rng.substream(1));
        init(params_.w2, double(f), rng.substream(2));
        init(params_.b2, double(f), rng.substream(3));
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    /// Appends linear1/linear2 weights and biases (nn.Linear names).
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "linear1.weight", params_.w1, grads_.w1, ParamKind::weight);
        append_param(out, prefix, "linear1.bias", params_.b1, grads_.b1, ParamKind::bias);
        append_param(out, prefix, "linear2.weight", params_.w2, grads_.w2, ParamKind::weight);
        append_param(out, prefix, "linear2.bias", params_.b2, grads_.b2, ParamKind::bias);
    }
    void zero_grads() {
        grads_.w1.zero();
        grads_.b1.zero();
        grads_.w2.zero();
        grads_.b2.zero();
    }

    /// y [R, D] = x + FFN(x); x must stay alive until backward. `step` picks
    /// the dropout masks; train = false disables dropout.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, ThreadPool& /*pool: dropout runs on be*/, MatrixView<const T> x, MatrixView<T> y,
                 std::uint64_t step, bool train) {
        const index_t rows = x.rows(), d = cfg_.d_model, f = cfg_.inner;
        RECBLOCKS_CHECK_SHAPE(x.cols() == d && y.rows() == rows && y.cols() == d, "FeedForward::forward: x is ", x.shape(),
                              " and y is ", y.shape(), " but d_model is ", d);
        RECBLOCKS_CHECK_SHAPE(x.is_contiguous() && y.is_contiguous() && x.data() != y.data(),
                              "FeedForward::forward: x and y must be contiguous and distinct");
        if (pre_.extent(0) != rows) {
            pre_.resize(Shape<2>{{rows, f}});
            hidden_.resize(Shape<2>{{rows, f}});
            dhidden_.resize(Shape<2>{{rows, f}});
        }
        x_ = x;
        step_ = step;
        train_ = train && cfg_.dropout > 0;
        train_hidden_ = train && drop_hidden_.p() > 0;
        ops::linear(be, x, params_.w1.cview(), params_.b1.cview(), pre_.view());
        ops::activation_forward(be, cfg_.activation, pre_.view(), hidden_.view());
        if (train_hidden_) drop_hidden_.forward<T>(be, 2 * step, flat(hidden_), flat_mut(hidden_));
        ops::linear(be, hidden_.cview(), params_.w2.cview(), params_.b2.cview(), y);
        if (train_) drop_out_.forward<T>(be, 2 * step + 1, vector_view<const T>(y.data(), y.numel()), vector_view(y.data(), y.numel()));
        if (cfg_.residual) ops::add(be, MatrixView<const T>(y), x, y);
    }

    /// Inference on a few rows (no dropout, nothing kept for backward; own
    /// scratch, so it does not disturb a training forward's state).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_inference(const Be& be, MatrixView<const T> x, MatrixView<T> y) {
        const index_t rows = x.rows(), d = cfg_.d_model, f = cfg_.inner;
        RECBLOCKS_CHECK_SHAPE(x.cols() == d && y.rows() == rows && y.cols() == d, "FeedForward::forward_inference: x is ",
                              x.shape(), " and y is ", y.shape(), " but d_model is ", d);
        if (infer_hidden_.extent(0) != rows) infer_hidden_.resize(Shape<2>{{rows, f}});
        auto hidden = infer_hidden_.view();
        ops::linear(be, x, params_.w1.cview(), params_.b1.cview(), hidden);
        ops::activation_forward(be, cfg_.activation, MatrixView<const T>(hidden), hidden);
        ops::linear(be, MatrixView<const T>(hidden), params_.w2.cview(), params_.b2.cview(), y);
        if (cfg_.residual) ops::add(be, MatrixView<const T>(y), x, y);
    }

    /// From dy [R, D]: dx [R, D] = dy (with the residual) + dFFN/dx · dy; parameter gradients added.
    /// dy is used as scratch (it holds the dropout-masked gradient afterwards).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, ThreadPool& /*pool: everything runs on be*/, MatrixView<T> dy, MatrixView<T> dx) {
        RECBLOCKS_CHECK_SHAPE(x_.data() != nullptr, "FeedForward::backward: call forward first");
        RECBLOCKS_CHECK_SHAPE(dy.shape() == x_.shape() && dx.shape() == x_.shape() && dy.is_contiguous() &&
                                  dx.is_contiguous() && dx.data() != dy.data(),
                              "FeedForward::backward: dy is ", dy.shape(), " and dx is ", dx.shape(),
                              " but the last forward's x was ", x_.shape(), " (contiguous, distinct)");
        if (cfg_.residual) ops::copy(be, MatrixView<const T>(dy), dx);  // the residual path
        if (train_) drop_out_.backward<T>(be, 2 * step_ + 1, vector_view<const T>(dy.data(), dy.numel()), vector_view(dy.data(), dy.numel()));
        ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(dy), hidden_.view(), T(1), grads_.w2.view());
        detail::add_column_sums(be, dy, grads_.b2.view(), sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(dy), params_.w2.view(), T(0), dhidden_.view());
        if (train_hidden_ && cfg_.activation == Activation::relu) {
            // ReLU then dropout: the gradient passes exactly where the stored
            // hidden = Drop(ReLU(pre)) is non-zero (kept and pre > 0), scaled as
            // Dropout's backward scales it: one pass, no Philox rounds, same bits.
            ops::gate_by_nonzero(be, flat(hidden_), flat_mut(dhidden_), static_cast<T>(1.0 / (1.0 - drop_hidden_.p())));
        } else {
            if (train_hidden_) drop_hidden_.backward<T>(be, 2 * step_, flat(dhidden_), flat_mut(dhidden_));
            ops::activation_backward(be, cfg_.activation, pre_.view(), dhidden_.view(), dhidden_.view());
        }
        ops::gemm(be, Trans::yes, Trans::no, T(1), dhidden_.view(), x_, T(1), grads_.w1.view());
        detail::add_column_sums(be, dhidden_.view(), grads_.b1.view(), sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), dhidden_.view(), params_.w1.view(), T(cfg_.residual ? 1 : 0), dx);
    }

private:
    static TensorView<const T, 1> flat(const Matrix<T, Memory>& m) { return vector_view<const T>(m.data(), m.numel()); }
    static TensorView<T, 1> flat_mut(Matrix<T, Memory>& m) { return vector_view(m.data(), m.numel()); }
    Config cfg_;
    Dropout drop_hidden_, drop_out_;
    Params params_, grads_;
    MatrixView<const T> x_;
    Matrix<T, Memory> pre_, hidden_, dhidden_, infer_hidden_;
    Vector<T, Memory> sums_;
    std::uint64_t step_ = 0;
    bool train_ = false, train_hidden_ = false;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
