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
// Where things live: FsqAutoencoder<T, Memory> keeps weights, gradients and activations in
// Memory (host by default; CudaMemory for backend::Cuda), trains with optim::Adam<T, Memory>,
// and every [R, d_in]-sized step (linear layers, bias sums, the loss and its gradient) is a
// backend call. The FSQ bottleneck [R, C] (C = 4 to 8 channels) is quantized on the host in
// double, as FiniteScalarQuantizer does, so the codes are the same on every backend: z is
// downloaded once per forward, q uploaded once, and backward's dq makes one round trip for
// the straight-through factor. Codes are in host memory (ids). Loss = Σ (x_hat - x)² with
// the difference rounded to T and the squares summed by ops::dot.
//
// Errors: ValueError (bad config, NaN/Inf encoder output); ShapeError (shape
// mismatch); IndexError (a code out of range in decode).
//
// Its own header because it is a small model (blocks/, ops::gemm, optim::Adam),
// while the quantizer itself needs only core/ and backend/'s memory spaces.
#include <cmath>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/bias.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/tokenizers/finite_scalar_quantizer.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

/// Linear → FSQ (straight-through) → Linear autoencoder with an MSE loss.
template <class T, MemorySpace Memory = HostMemory>
class FsqAutoencoder {
public:
    struct Config {
        index_t d_in = 0;
        FsqConfig fsq{};
    };
    struct Params {
        Matrix<T, Memory> w_enc;  ///< [C, d_in]
        Vector<T, Memory> b_enc;  ///< [C]
        Matrix<T, Memory> w_dec;  ///< [d_in, C]
        Vector<T, Memory> b_dec;  ///< [d_in]
    };

    FsqAutoencoder(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(std::move(cfg)), fsq_(cfg_.fsq), memory_(memory), params_{Matrix<T, Memory>(memory), Vector<T, Memory>(memory),
                                                                         Matrix<T, Memory>(memory), Vector<T, Memory>(memory)},
          grads_(params_), z_(memory), q_(memory), dq_(memory), diff_(memory), scratch_hat_(memory),
          scratch_grad_(memory), sums_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg_.d_in >= 1, "FsqAutoencoder: d_in must be >= 1, got ", cfg_.d_in);
        const index_t d = cfg_.d_in, c = fsq_.channels();
        for (Params* p : {&params_, &grads_}) {
            p->w_enc.resize(Shape<2>{{c, d}});
            p->b_enc.resize(Shape<1>{{c}});
            p->w_dec.resize(Shape<2>{{d, c}});
            p->b_dec.resize(Shape<1>{{d}});
        }
        // nn.Linear's uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn on the host and copied in.
        auto init = [](auto& t, double fan_in, const Rng& r) {
            const double bound = 1.0 / std::sqrt(fan_in);
            fill_from_host(t, [&](index_t i) { return bound * (2.0 * r.uniform_double(std::uint64_t(i)) - 1.0); });
        };
        init(params_.w_enc, double(d), rng.substream(0));
        init(params_.b_enc, double(d), rng.substream(1));
        init(params_.w_dec, double(c), rng.substream(2));
        init(params_.b_dec, double(c), rng.substream(3));
    }
    FsqAutoencoder(const FsqAutoencoder&) = delete;  // append_params points into the model
    FsqAutoencoder& operator=(const FsqAutoencoder&) = delete;

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] const FiniteScalarQuantizer& quantizer() const { return fsq_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "encoder.weight", params_.w_enc, grads_.w_enc, ParamKind::weight);
        append_param(out, prefix, "encoder.bias", params_.b_enc, grads_.b_enc, ParamKind::bias);
        append_param(out, prefix, "decoder.weight", params_.w_dec, grads_.w_dec, ParamKind::weight);
        append_param(out, prefix, "decoder.bias", params_.b_dec, grads_.b_dec, ParamKind::bias);
    }
    void zero_grads() {
        grads_.w_enc.zero();
        grads_.b_enc.zero();
        grads_.w_dec.zero();
        grads_.b_dec.zero();
    }

    /// x_hat [R, d_in] of x [R, d_in] (both in Memory); returns the MSE loss. x
    /// must stay alive until backward(). round = false skips the rounding (the
    /// smooth surrogate whose gradient the straight-through estimator uses; for
    /// gradient checks).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    double forward(const Be& be, MatrixView<const T> x, MatrixView<T> x_hat, bool round = true) {
        const index_t rows = x.rows(), d = cfg_.d_in, nc = fsq_.channels();
        RECBLOCKS_CHECK_SHAPE(x.cols() == d && x_hat.rows() == rows && x_hat.cols() == d && rows >= 1,
                              "FsqAutoencoder::forward: x is ", x.shape(), " and x_hat is ", x_hat.shape(),
                              " but d_in is ", d);
        if (z_.extent(0) != rows) {
            z_.resize(Shape<2>{{rows, nc}});
            q_.resize(Shape<2>{{rows, nc}});
            dq_.resize(Shape<2>{{rows, nc}});
            diff_.resize(Shape<2>{{rows, d}});
            host_z_.resize(std::size_t(rows * nc));
            host_q_.resize(std::size_t(rows * nc));
        }
        x_ = x;
        ops::broadcast_rows(be, params_.b_enc.cview(), T(0), z_.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, params_.w_enc.cview(), T(1), z_.view());
        // The bottleneck on the host: FSQ in double, then q back where the model lives.
        memory_.download(host_z_.data(), z_.data(), host_z_.size() * sizeof(T));
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < nc; ++c) {
                const double z = static_cast<double>(host_z_[std::size_t(r * nc + c)]);
                RECBLOCKS_CHECK_VALUE(std::isfinite(z), "FsqAutoencoder::forward: non-finite encoder output at [", r,
                                      ", ", c, "] (NaN/Inf in x or the weights)");
                const double b = fsq_.bound(z, c);
                host_q_[std::size_t(r * nc + c)] = static_cast<T>((round ? std::nearbyint(b) : b) / fsq_.half_width(c));
            }
        memory_.upload(q_.data(), host_q_.data(), host_q_.size() * sizeof(T));
        ops::broadcast_rows(be, params_.b_dec.cview(), T(0), x_hat);
        ops::gemm(be, Trans::no, Trans::yes, T(1), q_.cview(), params_.w_dec.cview(), T(1), x_hat);
        // diff = x_hat - x (kept for backward), loss = mean of its squares.
        ops::scale_rows(be, x, VectorView<const T>{}, T(-1), diff_.view());
        ops::add(be, MatrixView<const T>(x_hat), diff_.cview(), diff_.view());
        const auto flat = vector_view<const T>(diff_.data(), rows * d);
        return double(ops::dot(be, flat, flat)) / double(rows * d);
    }

    /// Adds the gradients of the last forward's loss into grads(). `dx_hat` is
    /// scratch [R, d_in] in Memory (it holds dloss/dx_hat afterwards).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, MatrixView<T> dx_hat) {
        RECBLOCKS_CHECK_VALUE(x_.data() != nullptr, "FsqAutoencoder::backward: call forward first");
        const index_t rows = x_.rows(), d = cfg_.d_in, nc = fsq_.channels();
        RECBLOCKS_CHECK_SHAPE(dx_hat.rows() == rows && dx_hat.cols() == d, "FsqAutoencoder::backward: dx_hat is ",
                              dx_hat.shape(), ", expected [", rows, ", ", d, "]");
        const T scale = static_cast<T>(2.0 / double(rows * d));
        ops::scale_rows(be, diff_.cview(), VectorView<const T>{}, scale, dx_hat);
        const MatrixView<const T> g = dx_hat;
        ops::gemm(be, Trans::yes, Trans::no, T(1), g, q_.cview(), T(1), grads_.w_dec.view());
        blocks::detail::add_column_sums(be, g, grads_.b_dec.view(), sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), g, params_.w_dec.cview(), T(0), dq_.view());
        // The straight-through factor bounded'(z) / (L // 2), on the host (z kept from forward).
        memory_.download(host_q_.data(), dq_.data(), host_q_.size() * sizeof(T));
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < nc; ++c) {
                T& v = host_q_[std::size_t(r * nc + c)];
                v = static_cast<T>(double(v) * fsq_.bound_derivative(double(host_z_[std::size_t(r * nc + c)]), c) /
                                   fsq_.half_width(c));
            }
        memory_.upload(dq_.data(), host_q_.data(), host_q_.size() * sizeof(T));
        ops::gemm(be, Trans::yes, Trans::no, T(1), dq_.cview(), x_, T(1), grads_.w_enc.view());
        blocks::detail::add_column_sums(be, dq_.cview(), grads_.b_enc.view(), sums_);
    }

    /// One Adam step on a batch x [R, d_in] (in Memory); returns the batch loss before the step.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    double train_step(const Be& be, MatrixView<const T> x, optim::Adam<T, Memory>& adam,
                      const ParamList<T, Memory>& params, double lr) {
        if (scratch_hat_.extent(0) != x.rows()) {
            scratch_hat_.resize(Shape<2>{{x.rows(), cfg_.d_in}});
            scratch_grad_.resize(Shape<2>{{x.rows(), cfg_.d_in}});
        }
        zero_grads();
        const double loss = forward(be, x, scratch_hat_.view());
        backward(be, scratch_grad_.view());
        adam.step(be, params, lr);
        return loss;
    }

    /// FSQ codes [R, C] (host memory) of x [R, d_in] (in Memory): encoder, then quantizer.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void encode(const Be& be, MatrixView<const T> x, MatrixView<std::int32_t> codes) const {
        RECBLOCKS_CHECK_SHAPE(x.cols() == cfg_.d_in, "FsqAutoencoder::encode: x is ", x.shape(), " but d_in is ",
                              cfg_.d_in);
        Matrix<T, Memory>& z = code_scratch(x.rows());
        ops::broadcast_rows(be, params_.b_enc.cview(), T(0), z.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, params_.w_enc.cview(), T(1), z.view());
        fsq_.encode(be, z.cview(), codes);
    }

    /// x_hat [R, d_in] (in Memory) of codes [R, C] (host memory): normalised values, then decoder.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void decode(const Be& be, MatrixView<const std::int32_t> codes, MatrixView<T> x_hat) const {
        RECBLOCKS_CHECK_SHAPE(x_hat.rows() == codes.rows() && x_hat.cols() == cfg_.d_in,
                              "FsqAutoencoder::decode: x_hat is ", x_hat.shape(), ", expected [", codes.rows(), ", ",
                              cfg_.d_in, "]");
        Matrix<T, Memory>& q = code_scratch(codes.rows());
        fsq_.decode(be, codes, q.view());
        ops::broadcast_rows(be, params_.b_dec.cview(), T(0), x_hat);
        ops::gemm(be, Trans::no, Trans::yes, T(1), q.cview(), params_.w_dec.cview(), T(1), x_hat);
    }

private:
    /// [R, C] scratch of encode / decode (const: reused, one call at a time).
    Matrix<T, Memory>& code_scratch(index_t rows) const {
        if (codes_z_.extent(0) != rows || codes_z_.extent(1) != fsq_.channels())
            codes_z_ = Matrix<T, Memory>(Shape<2>{{rows, fsq_.channels()}}, memory_);
        return codes_z_;
    }

    Config cfg_;
    FiniteScalarQuantizer fsq_;
    Memory memory_;
    Params params_, grads_;
    Matrix<T, Memory> z_, q_, dq_, diff_, scratch_hat_, scratch_grad_;
    mutable Matrix<T, Memory> codes_z_;
    Vector<T, Memory> sums_;
    std::vector<T> host_z_, host_q_;
    MatrixView<const T> x_;
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
