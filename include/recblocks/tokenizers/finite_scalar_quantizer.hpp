#pragma once
// Finite scalar quantization (FSQ; Mentzer et al. 2023) and a trainable linear FSQ autoencoder.
//
// Per channel c with L_c levels (L_c >= 2), eps = 1e-3:
//   offset = 0.5 if L_c is even else 0
//   bounded(z) = tanh(z + shift) * half - offset
//     paper notebook:  half = (L_c - 1)(1 - eps) / 2,  shift = tan(offset / half)
//     lucidrains:      half = (L_c - 1)(1 + eps) / 2,  shift = atanh(offset / half)   (exact centring)
//   q = round(bounded) (half to even, as numpy / torch), code = q + L_c // 2 in [0, L_c - 1],
//   normalised value q / (L_c // 2).
// Codes ↔ one index in mixed radix, channel 0 least significant: index = Σ_c code_c · basis_c,
// basis = cumprod([1] + levels[:-1]); code_c = (index / basis_c) mod L_c. Codebook size Π L_c
// (implicit: nothing is stored). The scalar maths runs in double whatever T, so codes match a
// float64 NumPy reference exactly (up to libm's last-ulp tanh, which only matters on a
// rounding boundary).
//
// FsqAutoencoder<T>: x [R, d_in] → z = x W_eᵀ + b_e [R, C] → q = FSQ(z) / (L // 2) with the
// straight-through gradient (round treated as identity: dq/dz = bounded'(z) / (L // 2)) →
// x_hat = q W_dᵀ + b_d [R, d_in]; loss = mean over all R·d_in elements of (x_hat - x)².
// Weights in nn.Linear's layout (w_enc [C, d_in], w_dec [d_in, C]), initialised like nn.Linear;
// GEMMs through ops::gemm, bias helpers from blocks/, trained with optim::Adam over its ParamList.
//
// Errors: ValueError (levels < 2, a codebook larger than 2^62, NaN/Inf input, bad config);
// ShapeError (channel or row mismatch); IndexError (a code or index out of range).
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/parameter_list.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/optim/adam.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

enum class FsqVariant : std::uint8_t {
    paper,       ///< google-research notebook: half = (L-1)(1-eps)/2, shift = tan(offset/half)
    lucidrains,  ///< vector-quantize-pytorch: half = (L-1)(1+eps)/2, shift = atanh(offset/half)
};

struct FsqConfig {
    std::vector<int> levels{8, 5, 5, 5};
    FsqVariant variant = FsqVariant::paper;
    double eps = 1e-3;

    void validate() const {
        RECBLOCKS_CHECK_VALUE(!levels.empty(), "FsqConfig: levels must not be empty");
        RECBLOCKS_CHECK_VALUE(eps >= 0 && eps < 0.5, "FsqConfig: eps must be in [0, 0.5), got ", eps);
        double size = 1;
        for (std::size_t c = 0; c < levels.size(); ++c) {
            RECBLOCKS_CHECK_VALUE(levels[c] >= 2 && levels[c] <= 65536, "FsqConfig: levels[", c, "] = ", levels[c],
                                  "; each channel needs 2 to 65536 levels");
            size *= levels[c];
        }
        RECBLOCKS_CHECK_VALUE(size <= 0x1p62, "FsqConfig: the codebook (product of levels) exceeds 2^62");
    }
};

class FiniteScalarQuantizer {
public:
    explicit FiniteScalarQuantizer(FsqConfig cfg) : cfg_(std::move(cfg)) {
        cfg_.validate();
        const std::size_t nc = cfg_.levels.size();
        half_.resize(nc);
        offset_.resize(nc);
        shift_.resize(nc);
        half_width_.resize(nc);
        basis_.resize(nc);
        std::int64_t b = 1;
        for (std::size_t c = 0; c < nc; ++c) {
            const int l = cfg_.levels[c];
            const double sign = cfg_.variant == FsqVariant::paper ? -1.0 : 1.0;
            half_[c] = (l - 1) * (1.0 + sign * cfg_.eps) / 2.0;
            offset_[c] = l % 2 == 0 ? 0.5 : 0.0;
            shift_[c] = cfg_.variant == FsqVariant::paper ? std::tan(offset_[c] / half_[c])
                                                          : std::atanh(offset_[c] / half_[c]);
            half_width_[c] = l / 2;
            basis_[c] = b;
            b *= l;
        }
        size_ = b;
    }

    [[nodiscard]] const FsqConfig& config() const { return cfg_; }
    [[nodiscard]] index_t channels() const { return static_cast<index_t>(cfg_.levels.size()); }
    [[nodiscard]] int levels(index_t c) const { return cfg_.levels[std::size_t(c)]; }
    /// Π L_c: the implicit codebook's size.
    [[nodiscard]] std::int64_t codebook_size() const { return size_; }
    [[nodiscard]] std::int64_t basis(index_t c) const { return basis_[std::size_t(c)]; }

    /// tanh(z + shift) · half - offset for channel c.
    [[nodiscard]] double bound(double z, index_t c) const {
        const auto i = std::size_t(c);
        return std::tanh(z + shift_[i]) * half_[i] - offset_[i];
    }
    /// d bound / dz.
    [[nodiscard]] double bound_derivative(double z, index_t c) const {
        const auto i = std::size_t(c);
        const double t = std::tanh(z + shift_[i]);
        return (1.0 - t * t) * half_[i];
    }
    /// The rounded level in [-(L//2), L - 1 - L//2] of channel c.
    [[nodiscard]] int round_level(double z, index_t c) const { return static_cast<int>(std::nearbyint(bound(z, c))); }
    /// L_c // 2: the code of the zero level, and the normalising divisor.
    [[nodiscard]] int half_width(index_t c) const { return half_width_[std::size_t(c)]; }

    /// codes [N, C] (each in [0, L_c - 1]) of z [N, C]; optionally the normalised values [N, C].
    template <class T>
    void quantize(MatrixView<const T> z, MatrixView<std::int32_t> codes, MatrixView<T> normalised = {}) const {
        const index_t n = z.rows(), nc = channels();
        RECBLOCKS_CHECK_SHAPE(z.cols() == nc && codes.rows() == n && codes.cols() == nc,
                              "FiniteScalarQuantizer::quantize: z is ", z.shape(), " and codes is ", codes.shape(),
                              " but there are ", nc, " channels");
        RECBLOCKS_CHECK_SHAPE(normalised.data() == nullptr || (normalised.rows() == n && normalised.cols() == nc),
                              "FiniteScalarQuantizer::quantize: normalised is ", normalised.shape(), ", expected [", n,
                              ", ", nc, "]");
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < nc; ++c) {
                const double v = static_cast<double>(z(r, c));
                RECBLOCKS_CHECK_VALUE(std::isfinite(v), "FiniteScalarQuantizer::quantize: z[", r, ", ", c, "] = ", v,
                                      " is not finite");
                const int q = round_level(v, c);
                codes(r, c) = q + half_width(c);
                if (normalised.data()) normalised(r, c) = static_cast<T>(double(q) / half_width(c));
            }
    }

    /// index [N] (mixed radix, channel 0 least significant) of codes [N, C].
    void codes_to_indices(MatrixView<const std::int32_t> codes, VectorView<std::int64_t> indices) const {
        const index_t nc = channels();
        RECBLOCKS_CHECK_SHAPE(codes.cols() == nc && indices.size() == codes.rows(),
                              "FiniteScalarQuantizer::codes_to_indices: codes is ", codes.shape(), " and indices has ",
                              indices.size(), " entries; ", nc, " channels");
        for (index_t r = 0; r < codes.rows(); ++r) {
            std::int64_t idx = 0;
            for (index_t c = 0; c < nc; ++c) {
                const std::int32_t v = codes(r, c);
                RECBLOCKS_CHECK_INDEX(v >= 0 && v < levels(c), "FiniteScalarQuantizer::codes_to_indices: codes[", r,
                                      ", ", c, "] = ", v, " is outside [0, ", levels(c), ")");
                idx += std::int64_t{v} * basis(c);
            }
            indices(r) = idx;
        }
    }

    /// codes [N, C] of indices [N] (each in [0, codebook_size())).
    void indices_to_codes(VectorView<const std::int64_t> indices, MatrixView<std::int32_t> codes) const {
        const index_t nc = channels();
        RECBLOCKS_CHECK_SHAPE(codes.cols() == nc && indices.size() == codes.rows(),
                              "FiniteScalarQuantizer::indices_to_codes: codes is ", codes.shape(), " and indices has ",
                              indices.size(), " entries; ", nc, " channels");
        for (index_t r = 0; r < codes.rows(); ++r) {
            const std::int64_t idx = indices(r);
            RECBLOCKS_CHECK_INDEX(idx >= 0 && idx < size_, "FiniteScalarQuantizer::indices_to_codes: indices[", r,
                                  "] = ", idx, " is outside [0, ", size_, ")");
            for (index_t c = 0; c < nc; ++c) codes(r, c) = static_cast<std::int32_t>((idx / basis(c)) % levels(c));
        }
    }

    /// Normalised values [N, C] ((code - L//2) / (L//2)) of codes [N, C].
    template <class T>
    void codes_to_values(MatrixView<const std::int32_t> codes, MatrixView<T> values) const {
        const index_t nc = channels();
        RECBLOCKS_CHECK_SHAPE(codes.cols() == nc && values.rows() == codes.rows() && values.cols() == nc,
                              "FiniteScalarQuantizer::codes_to_values: codes is ", codes.shape(), " and values is ",
                              values.shape(), "; ", nc, " channels");
        for (index_t r = 0; r < codes.rows(); ++r)
            for (index_t c = 0; c < nc; ++c) {
                const std::int32_t v = codes(r, c);
                RECBLOCKS_CHECK_INDEX(v >= 0 && v < levels(c), "FiniteScalarQuantizer::codes_to_values: codes[", r,
                                      ", ", c, "] = ", v, " is outside [0, ", levels(c), ")");
                values(r, c) = static_cast<T>(double(v - half_width(c)) / half_width(c));
            }
    }

    /// Normalised values [N, C] of indices [N].
    template <class T>
    void indices_to_values(VectorView<const std::int64_t> indices, MatrixView<T> values) const {
        Matrix<std::int32_t> codes(Shape<2>{{indices.size(), channels()}});
        indices_to_codes(indices, codes.view());
        codes_to_values<T>(codes.cview(), values);
    }

private:
    FsqConfig cfg_;
    std::vector<double> half_, offset_, shift_;
    std::vector<int> half_width_;
    std::vector<std::int64_t> basis_;
    std::int64_t size_ = 1;
};

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
    void append_params(std::string_view prefix, blocks::ParamList<T>& out) {
        blocks::append_param(out, prefix, "encoder.weight", params_.w_enc, grads_.w_enc, blocks::ParamKind::weight);
        blocks::append_param(out, prefix, "encoder.bias", params_.b_enc, grads_.b_enc, blocks::ParamKind::bias);
        blocks::append_param(out, prefix, "decoder.weight", params_.w_dec, grads_.w_dec, blocks::ParamKind::weight);
        blocks::append_param(out, prefix, "decoder.bias", params_.b_dec, grads_.b_dec, blocks::ParamKind::bias);
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
        blocks::detail::broadcast_rows<T>(params_.b_enc.cview(), z_.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, params_.w_enc.cview(), T(1), z_.view());
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < nc; ++c) {
                const double z = static_cast<double>(z_(r, c));
                RECBLOCKS_CHECK_VALUE(std::isfinite(z), "FsqAutoencoder::forward: non-finite encoder output at [", r,
                                      ", ", c, "] (NaN/Inf in x or the weights)");
                const double b = fsq_.bound(z, c);
                q_(r, c) = static_cast<T>((round ? std::nearbyint(b) : b) / fsq_.half_width(c));
            }
        blocks::detail::broadcast_rows<T>(params_.b_dec.cview(), x_hat);
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
    double train_step(const Be& be, MatrixView<const T> x, optim::Adam<T>& adam, const blocks::ParamList<T>& params,
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
        blocks::detail::broadcast_rows<T>(params_.b_enc.cview(), z.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), x, params_.w_enc.cview(), T(1), z.view());
        fsq_.quantize<T>(z.cview(), codes);
    }

    /// x_hat [R, d_in] of codes [R, C] (normalised values then decoder).
    template <class Be>
    void decode(const Be& be, MatrixView<const std::int32_t> codes, MatrixView<T> x_hat) const {
        RECBLOCKS_CHECK_SHAPE(x_hat.rows() == codes.rows() && x_hat.cols() == cfg_.d_in,
                              "FsqAutoencoder::decode: x_hat is ", x_hat.shape(), ", expected [", codes.rows(), ", ",
                              cfg_.d_in, "]");
        Matrix<T> q(Shape<2>{{codes.rows(), fsq_.channels()}});
        fsq_.codes_to_values<T>(codes, q.view());
        blocks::detail::broadcast_rows<T>(params_.b_dec.cview(), x_hat);
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
