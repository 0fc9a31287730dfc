#pragma once
// Layer normalisation as a block (nn.LayerNorm over the last dimension):
//
//   y = (x - mean) / sqrt(var + eps) * weight + bias      per row of x [R, D]
//
// eps is configurable: the SASRec code uses 1e-8, BERT 1e-12, PyTorch's
// default is 1e-5. weight starts at 1, bias at 0. forward() keeps a view of x
// and the row statistics for backward(), which ADDS into grads().
//
// Memory is where parameters, gradients and statistics live: host memory by
// default, CudaMemory for a LayerNorm that runs on backend::Cuda (construct it
// with memory_of(gpu)); forward/backward take a backend computing there.
#include <algorithm>
#include <type_traits>

#include "recblocks/backend/memory.hpp"

#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/layer_norm.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, MemorySpace Memory = HostMemory>
class LayerNorm {
public:
    struct Config {
        index_t d_model = 0;  ///< D
        double eps = 1e-5;    ///< > 0
    };
    struct Params {
        Vector<T, Memory> weight;  ///< [D] (gamma)
        Vector<T, Memory> bias;    ///< [D] (beta)
    };

    explicit LayerNorm(Config cfg, Memory memory = {}) : cfg_(cfg), mean_(memory), rstd_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg.d_model >= 1 && cfg.eps > 0, "LayerNorm: d_model must be >= 1 and eps > 0, got ",
                              cfg.d_model, " and ", cfg.eps);
        for (Params* p : {&params_, &grads_})
            for (Vector<T, Memory>* v : {&p->weight, &p->bias}) *v = Vector<T, Memory>(Shape<1>{{cfg.d_model}}, memory);
        Vector<T> ones(Shape<1>{{cfg.d_model}});  // initialised on the host, copied once
        std::fill(ones.begin(), ones.end(), T(1));
        copy_tensor(ones, params_.weight);
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    /// Appends "<prefix>weight" and "<prefix>bias".
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "weight", params_.weight, grads_.weight, ParamKind::norm);
        append_param(out, prefix, "bias", params_.bias, grads_.bias, ParamKind::norm);
    }
    void zero_grads() {
        for (Vector<T, Memory>* g : {&grads_.weight, &grads_.bias}) g->resize(g->shape());  // same size: zeroes
    }

    /// y [R, D] = LN(x [R, D]); y must not alias x (backward needs x).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, MatrixView<const T> x, MatrixView<T> y) {
        RECBLOCKS_CHECK_SHAPE(x.cols() == cfg_.d_model, "LayerNorm::forward: x is ", x.shape(), " but d_model is ",
                              cfg_.d_model);
        RECBLOCKS_CHECK_SHAPE(x.data() != y.data() || x.empty(), "LayerNorm::forward: y must not alias x");
        if (mean_.numel() != x.rows()) {
            mean_.resize(Shape<1>{{x.rows()}});
            rstd_.resize(Shape<1>{{x.rows()}});
        }
        x_ = x;
        ops::layer_norm_forward(be, x, params_.weight.cview(), params_.bias.cview(), static_cast<T>(cfg_.eps), y,
                                mean_.view(), rstd_.view());
    }

    /// dx [R, D] from dy [R, D] of the last forward (distinct tensors).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, MatrixView<const T> dy, MatrixView<T> dx) {
        RECBLOCKS_CHECK_SHAPE(x_.data() != nullptr || x_.empty(), "LayerNorm::backward: call forward first");
        ops::layer_norm_backward(be, x_, params_.weight.cview(), mean_.cview(), rstd_.cview(), dy, dx,
                                 grads_.weight.view(), grads_.bias.view());
    }

private:
    Config cfg_;
    Params params_, grads_;
    MatrixView<const T> x_;
    Vector<T, Memory> mean_, rstd_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
