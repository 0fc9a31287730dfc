#pragma once
// A fully connected layer, PyTorch's nn.Linear:
//
//   y = x Wᵀ + b        x [R, in], W [out, in], b [out] (optional), y [R, out]
//
// For models built from the blocks (a two-tower model's towers, a projection
// head): forward() keeps a view of x for backward(), which adds dW = dyᵀ x and
// db = column sums of dy into grads() and writes dx = dy W. Parameters are
// named "weight" and "bias" under the caller's prefix, as nn.Linear's are, so
// checkpoints and PyTorch state_dicts load through the usual name maps.
//
// Memory is where parameters, gradients and scratch live (host by default,
// CudaMemory on backend::Cuda); the block is a sequence of backend calls.
#include <cmath>
#include <string_view>

#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/bias.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/params/parameter_list.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, MemorySpace Memory = HostMemory>
class Linear {
public:
    struct Config {
        index_t in_features = 0;
        index_t out_features = 0;
        bool bias = true;
    };
    struct Params {
        Matrix<T, Memory> weight;  ///< [out, in]
        Vector<T, Memory> bias;    ///< [out]; empty without bias
    };

    /// nn.Linear's default initialisation: weight and bias U(-1/sqrt(in), 1/sqrt(in)).
    Linear(Config cfg, const Rng& rng, Memory memory = {}) : cfg_(cfg), sums_(memory), zero_bias_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg.in_features >= 1 && cfg.out_features >= 1,
                              "Linear: in_features and out_features must be >= 1, got ", cfg.in_features, " and ",
                              cfg.out_features);
        for (Params* p : {&params_, &grads_}) {
            p->weight = Matrix<T, Memory>(Shape<2>{{cfg.out_features, cfg.in_features}}, memory);
            if (cfg.bias) p->bias = Vector<T, Memory>(Shape<1>{{cfg.out_features}}, memory);
        }
        if (!cfg.bias) zero_bias_ = Vector<T, Memory>(Shape<1>{{cfg.out_features}}, memory);  // zeroed
        const double bound = 1.0 / std::sqrt(double(cfg.in_features));
        auto init = [&](auto& t, const Rng& r) {
            fill_from_host(t, [&](index_t i) { return bound * (2.0 * r.uniform_double(std::uint64_t(i)) - 1.0); });
        };
        init(params_.weight, rng.substream(0));
        if (cfg.bias) init(params_.bias, rng.substream(1));
    }
    Linear(const Linear&) = delete;  // parameter lists point into the block
    Linear& operator=(const Linear&) = delete;

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }

    /// Appends <prefix>weight and, with a bias, <prefix>bias.
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "weight", params_.weight, grads_.weight, ParamKind::weight);
        if (cfg_.bias) append_param(out, prefix, "bias", params_.bias, grads_.bias, ParamKind::bias);
    }
    void zero_grads() {
        grads_.weight.zero();
        if (cfg_.bias) grads_.bias.zero();
    }

    /// y [R, out] = x [R, in] Wᵀ + b. x must stay alive (unchanged) until backward().
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, MatrixView<const T> x, MatrixView<T> y) {
        RECBLOCKS_CHECK_SHAPE(x.cols() == cfg_.in_features && y.rows() == x.rows() && y.cols() == cfg_.out_features,
                              "Linear::forward: x is ", x.shape(), " and y is ", y.shape(), " but the layer maps ",
                              cfg_.in_features, " -> ", cfg_.out_features, " features");
        RECBLOCKS_CHECK_SHAPE(x.data() != y.data(), "Linear::forward: x and y must be distinct");
        ops::linear(be, x, params_.weight.cview(), cfg_.bias ? params_.bias.cview() : zero_bias_.cview(), y);
        x_ = x;
    }

    /// From dy [R, out] of the last forward(): adds dW and db into grads(); dx [R, in] = dy W
    /// (pass an empty view to skip dx, e.g. for a first layer fed by data).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, MatrixView<const T> dy, MatrixView<T> dx) {
        RECBLOCKS_CHECK_SHAPE(x_.data() != nullptr, "Linear::backward: call forward first");
        RECBLOCKS_CHECK_SHAPE(dy.rows() == x_.rows() && dy.cols() == cfg_.out_features, "Linear::backward: dy is ",
                              dy.shape(), " but the last forward's output was [", x_.rows(), ", ", cfg_.out_features,
                              "]");
        ops::gemm(be, Trans::yes, Trans::no, T(1), dy, x_, T(1), grads_.weight.view());
        if (cfg_.bias) detail::add_column_sums(be, dy, grads_.bias.view(), sums_);
        if (dx.data() != nullptr) {
            RECBLOCKS_CHECK_SHAPE(dx.rows() == x_.rows() && dx.cols() == cfg_.in_features, "Linear::backward: dx is ",
                                  dx.shape(), " but x was ", x_.shape());
            ops::gemm(be, Trans::no, Trans::no, T(1), dy, params_.weight.cview(), T(0), dx);
        }
    }

private:
    Config cfg_;
    Params params_, grads_;
    MatrixView<const T> x_;
    Vector<T, Memory> sums_, zero_bias_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
