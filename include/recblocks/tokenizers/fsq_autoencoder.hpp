#pragma once
// A trainable linear FSQ autoencoder: it learns the projection that FSQ
// (tokenizers/finite_scalar_quantizer.hpp) quantizes, and the way back.
//
// FsqAutoencoder<T>: x [R, d_in] → z = x W_eᵀ + b_e [R, C] → q = FSQ(z) / (L // 2) with the
// straight-through gradient (round treated as identity: dq/dz = bounded'(z) / (L // 2)) →
// x_hat = q W_dᵀ + b_d [R, d_in]; loss = mean over all R·d_in elements of (x_hat - x)².
// Weights in nn.Linear's layout (w_enc [C, d_in], w_dec [d_in, C]), initialised like nn.Linear;
// GEMMs through ops::gemm, bias helpers from blocks/, trained with optim::Adam over its ParamList.
//
// Errors: ValueError (bad config, NaN/Inf encoder output); ShapeError (shape
// mismatch); IndexError (a code out of range in decode).
//
// Its own header because it is a small model (blocks/, ops::gemm, optim::Adam),
// while the quantizer itself needs only core/.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "recblocks/blocks/bias.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

/// Linear → FSQ (straight-through) → Linear autoencoder with an MSE loss.
template <class T>
class FsqAutoencoder {
public:
    struct Config {
        index_t d_in = 0;
        FsqConfig fsq{};
    };
    struct Params {
        Matrix<T> w_enc;  ///< [C, d_in]
        Vector<T> b_enc;  ///< [C]
        Matrix<T> w_dec;  ///< [d_in, C]
        Vector<T> b_dec;  ///< [d_in]
    };

    FsqAutoencoder(Config cfg, const Rng& rng) : cfg_(std::move(cfg)), fsq_(cfg_.fsq) {
        RECBLOCKS_CHECK_VALUE(cfg_.d_in >= 1, "FsqAutoencoder: d_in must be >= 1, got ", cfg_.d_in);
        const index_t d = cfg_.d_in, c = fsq_.channels();
        for (Params* p : {&params_, &grads_}) {
            p->w_enc.resize(Shape<2>{{c, d}});
            p->b_enc.resize(Shape<1>{{c}});
            p->w_dec.resize(Shape<2>{{d, c}});
            p->b_dec.resize(Shape<1>{{d}});
        }
        auto init = [](T* data, index_t n, double fan_in, const Rng& r) {
            const double bound = 1.0 / std::sqrt(fan_in);
            for (index_t i = 0; i < n; ++i) data[i] = static_cast<T>(bound * (2.0 * r.uniform_double(std::uint64_t(i)) - 1.0));
        };
        init(params_.w_enc.data(), params_.w_enc.numel(), double(d), rng.substream(0));
        init(params_.b_enc.data(), c, double(d), rng.substream(1));
        init(params_.w_dec.data(), params_.w_dec.numel(), double(c), rng.substream(2));
        init(params_.b_dec.data(), d, double(c), rng.substream(3));
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] const FiniteScalarQuantizer& quantizer() const { return fsq_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    void append_params(std::string_view prefix, ParamList<T>& out) {
        append_param(out, prefix, "encoder.weight", params_.w_enc, grads_.w_enc, ParamKind::weight);
        append_param(out, prefix, "encoder.bias", params_.b_enc, grads_.b_enc, ParamKind::bias);
        append_param(out, prefix, "decoder.weight", params_.w_dec, grads_.w_dec, ParamKind::weight);
        append_param(out, prefix, "decoder.bias", params_.b_dec, grads_.b_dec, ParamKind::bias);
    }
    void zero_grads() {
        for (auto* m : {&grads_.w_enc, &grads_.w_dec}) std::fill(m->begin(), m->end(), T(0));
        for (auto* v : {&grads_.b_enc, &grads_.b_dec}) std::fill(v->begin(), v->end(), T(0));
    }

    /// x_hat [R, d_in] of x [R, d_in]; returns the MSE loss. x must stay alive until backward().
    /// round = false skips the rounding (the smooth surrogate whose gradient the
    /// straight-through estimator uses; for gradient checks).
    template <class Be>
    double forward(const Be& be, MatrixView<const T> x, MatrixView<T> x_hat, bool round = true) {
        const index_t rows = x.rows(), d = cfg_.d_in, nc = fsq_.channels();
        RECBLOCKS_CHECK_SHAPE(x.cols() == d && x_hat.rows() == rows && x_hat.cols() == d && rows >= 1,
                              "FsqAutoencoder::forward: x is ", x.shape(), " and x_hat is ", x_hat.shape(),
                              " but d_in is ", d);
        if (z_.extent(0) != rows) {
            z_.resize(Shape<2>{{rows, nc}});
            q_.resize(Shape<2>{{rows, nc}});
            dq_.resize(Shape<2>{{rows, nc}});
        }
        x_ = x;
        x_hat_ = x_hat;
        ops::broadcast_rows(be, params_.b_enc.cview(), T(0), z_.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, params_.w_enc.cview(), T(1), z_.view());
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < nc; ++c) {
                const double z = static_cast<double>(z_(r, c));
                RECBLOCKS_CHECK_VALUE(std::isfinite(z), "FsqAutoencoder::forward: non-finite encoder output at [", r,
                                      ", ", c, "] (NaN/Inf in x or the weights)");
                const double b = fsq_.bound(z, c);
                q_(r, c) = static_cast<T>((round ? std::nearbyint(b) : b) / fsq_.half_width(c));
            }
        ops::broadcast_rows(be, params_.b_dec.cview(), T(0), x_hat);
        ops::gemm(be, Trans::no, Trans::yes, T(1), q_.cview(), params_.w_dec.cview(), T(1), x_hat);
        double s = 0;
        for (index_t r = 0; r < rows; ++r)
            for (index_t t = 0; t < d; ++t) {
                const double e = double(x_hat(r, t)) - double(x(r, t));
                s += e * e;
            }
        return s / double(rows * d);
    }

    /// Adds the gradients of the last forward's loss into grads(). `dx_hat` is
    /// scratch [R, d_in] (it holds dloss/dx_hat afterwards).
    template <class Be>
    void backward(const Be& be, MatrixView<T> dx_hat) {
        RECBLOCKS_CHECK_VALUE(x_.data() != nullptr, "FsqAutoencoder::backward: call forward first");
        const index_t rows = x_.rows(), d = cfg_.d_in, nc = fsq_.channels();
        RECBLOCKS_CHECK_SHAPE(dx_hat.rows() == rows && dx_hat.cols() == d, "FsqAutoencoder::backward: dx_hat is ",
                              dx_hat.shape(), ", expected [", rows, ", ", d, "]");
        const T scale = static_cast<T>(2.0 / double(rows * d));
        for (index_t r = 0; r < rows; ++r)
            for (index_t t = 0; t < d; ++t) dx_hat(r, t) = scale * (x_hat_(r, t) - x_(r, t));
        const MatrixView<const T> g = dx_hat;
        ops::gemm(be, Trans::yes, Trans::no, T(1), g, q_.cview(), T(1), grads_.w_dec.view());
        blocks::detail::add_column_sums(be, g, grads_.b_dec.view(), sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), g, params_.w_dec.cview(), T(0), dq_.view());
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < nc; ++c)
                dq_(r, c) = static_cast<T>(double(dq_(r, c)) * fsq_.bound_derivative(double(z_(r, c)), c) /
                                           fsq_.half_width(c));
        ops::gemm(be, Trans::yes, Trans::no, T(1), dq_.cview(), x_, T(1), grads_.w_enc.view());
        blocks::detail::add_column_sums(be, dq_.cview(), grads_.b_enc.view(), sums_);
    }

    /// One Adam step on a batch x [R, d_in]; returns the batch loss before the step.
    template <class Be>
    double train_step(const Be& be, MatrixView<const T> x, optim::Adam<T>& adam, const ParamList<T>& params,
                      double lr) {
        if (scratch_hat_.extent(0) != x.rows()) {
            scratch_hat_.resize(Shape<2>{{x.rows(), cfg_.d_in}});
            scratch_grad_.resize(Shape<2>{{x.rows(), cfg_.d_in}});
        }
        zero_grads();
        const double loss = forward(be, x, scratch_hat_.view());
        backward(be, scratch_grad_.view());
        adam.step(params, lr);
        return loss;
    }

    /// FSQ codes [R, C] of x [R, d_in] (encoder then quantizer).
    template <class Be>
    void encode(const Be& be, MatrixView<const T> x, MatrixView<std::int32_t> codes) const {
        RECBLOCKS_CHECK_SHAPE(x.cols() == cfg_.d_in, "FsqAutoencoder::encode: x is ", x.shape(), " but d_in is ",
                              cfg_.d_in);
        Matrix<T> z(Shape<2>{{x.rows(), fsq_.channels()}});
        ops::broadcast_rows(be, params_.b_enc.cview(), T(0), z.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, params_.w_enc.cview(), T(1), z.view());
        fsq_.encode(be, z.cview(), codes);
    }

    /// x_hat [R, d_in] of codes [R, C] (normalised values then decoder).
    template <class Be>
    void decode(const Be& be, MatrixView<const std::int32_t> codes, MatrixView<T> x_hat) const {
        RECBLOCKS_CHECK_SHAPE(x_hat.rows() == codes.rows() && x_hat.cols() == cfg_.d_in,
                              "FsqAutoencoder::decode: x_hat is ", x_hat.shape(), ", expected [", codes.rows(), ", ",
                              cfg_.d_in, "]");
        Matrix<T> q(Shape<2>{{codes.rows(), fsq_.channels()}});
        fsq_.decode(be, codes, q.view());
        ops::broadcast_rows(be, params_.b_dec.cview(), T(0), x_hat);
        ops::gemm(be, Trans::no, Trans::yes, T(1), q.cview(), params_.w_dec.cview(), T(1), x_hat);
    }

private:
    Config cfg_;
    FiniteScalarQuantizer fsq_;
    Params params_, grads_;
    Matrix<T> z_, q_, dq_, scratch_hat_, scratch_grad_;
    Vector<T> sums_;
    MatrixView<const T> x_;
    MatrixView<T> x_hat_;
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
