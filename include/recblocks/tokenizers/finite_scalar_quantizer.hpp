#pragma once
// Finite scalar quantization (FSQ; Mentzer et al. 2023). The trainable linear
// FSQ autoencoder that learns what to quantize is tokenizers/fsq_autoencoder.hpp.
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
// Keeps the tokenizers::Quantizer contract (tokenizers/quantizer.hpp) with RQ:
// train (nothing to learn: checks only), encode (z → codes), decode (codes → values).
//
// Where things live: z and the values are in the memory of the backend passed in; codes
// (ids) and indices are in host memory. The per-channel maths runs on the host in double
// (the same codes on every backend, NumPy's codes): on a device backend z is copied to the
// host once per encode / train and the values copied back once per decode. FSQ has C
// channels (4 to 8 in practice), so that is a narrow [N, C] matrix; nothing is stored.
//
// Errors: ValueError (levels < 2, a codebook larger than 2^62, NaN/Inf input, bad config);
// ShapeError (channel or row mismatch); IndexError (a code or index out of range).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "recblocks/backend/primitives.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_scratch.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

namespace detail {

struct FsqHostTag {};

/// The elements of m (in be's memory) readable on the host: m itself on host
/// memory, else a copy (thread-local scratch, reused) made row by row.
template <class Be, class T>
MatrixView<const T> host_readable(const Be& be, MatrixView<const T> m) {
    if constexpr (host_memory_v<Be>) {
        return m;
    } else {
        auto& buf = thread_scratch<T, FsqHostTag>(static_cast<std::size_t>(m.rows() * m.cols()));
        const auto memory = memory_of(be);
        for (index_t r = 0; r < m.rows(); ++r)
            memory.download(buf.data() + r * m.cols(), m.row(r), static_cast<std::size_t>(m.cols()) * sizeof(T));
        return matrix_view<const T>(buf.data(), m.rows(), m.cols());
    }
}

}  // namespace detail

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

    /// Codes per vector (the tokenizers::Quantizer contract): one per channel.
    [[nodiscard]] index_t code_length() const { return channels(); }

    /// FSQ learns nothing: its grid is fixed by the levels (what is learned is
    /// the projection into it, FsqAutoencoder). train() only checks z [N, C]
    /// as encode() would (ShapeError, ValueError for NaN/Inf), so FSQ keeps the
    /// tokenizers::Quantizer contract with RQ. z is in be's memory.
    template <class T, class Be>
    void train(const Be& be, MatrixView<const T> z_in) const {
        RECBLOCKS_CHECK_SHAPE(z_in.cols() == channels(), "FiniteScalarQuantizer::train: z is ", z_in.shape(),
                              " but there are ", channels(), " channels");
        const auto z = detail::host_readable(be, z_in);
        for (index_t r = 0; r < z.rows(); ++r)
            for (index_t c = 0; c < z.cols(); ++c)
                RECBLOCKS_CHECK_VALUE(std::isfinite(static_cast<double>(z(r, c))), "FiniteScalarQuantizer::train: z[", r,
                                      ", ", c, "] = ", z(r, c), " is not finite");
    }

    /// codes [N, C] (host memory; each in [0, L_c - 1]) of z [N, C] (in be's
    /// memory). The scalar maths runs on the host in double.
    template <class T, class Be>
    void encode(const Be& be, MatrixView<const T> z_in, MatrixView<std::int32_t> codes) const {
        const index_t n = z_in.rows(), nc = channels();
        RECBLOCKS_CHECK_SHAPE(z_in.cols() == nc && codes.rows() == n && codes.cols() == nc,
                              "FiniteScalarQuantizer::encode: z is ", z_in.shape(), " and codes is ", codes.shape(),
                              " but there are ", nc, " channels");
        const auto z = detail::host_readable(be, z_in);
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < nc; ++c) {
                const double v = static_cast<double>(z(r, c));
                RECBLOCKS_CHECK_VALUE(std::isfinite(v), "FiniteScalarQuantizer::encode: z[", r, ", ", c, "] = ", v,
                                      " is not finite");
                codes(r, c) = round_level(v, c) + half_width(c);
            }
    }

    /// The normalised values [N, C] ((code - L//2) / (L//2), in [-1, 1]) of
    /// codes [N, C]: the quantized z, as FSQ's quantize() returns it. Codes in
    /// host memory, values in be's memory (computed on the host, copied once).
    template <class T, class Be>
    void decode(const Be& be, MatrixView<const std::int32_t> codes, MatrixView<T> values) const {
        if constexpr (host_memory_v<Be>) {
            codes_to_values(codes, values);
        } else {
            RECBLOCKS_CHECK_SHAPE(values.rows() == codes.rows() && values.cols() == channels(),
                                  "FiniteScalarQuantizer::decode: codes is ", codes.shape(), " and values is ",
                                  values.shape(), "; ", channels(), " channels");
            auto& buf = thread_scratch<T, detail::FsqHostTag>(static_cast<std::size_t>(values.rows() * values.cols()));
            codes_to_values(codes, matrix_view(buf.data(), values.rows(), values.cols()));
            const auto memory = memory_of(be);
            for (index_t r = 0; r < values.rows(); ++r)
                memory.upload(values.row(r), buf.data() + r * values.cols(),
                              static_cast<std::size_t>(values.cols()) * sizeof(T));
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

    /// Normalised values [N, C] of indices [N].
    template <class T>
    void indices_to_values(VectorView<const std::int64_t> indices, MatrixView<T> values) const {
        Matrix<std::int32_t> codes(Shape<2>{{indices.size(), channels()}});
        indices_to_codes(indices, codes.view());
        codes_to_values(codes.cview(), values);
    }

private:
    template <class T>
    void codes_to_values(MatrixView<const std::int32_t> codes, MatrixView<T> values) const {
        const index_t nc = channels();
        RECBLOCKS_CHECK_SHAPE(codes.cols() == nc && values.rows() == codes.rows() && values.cols() == nc,
                              "FiniteScalarQuantizer::decode: codes is ", codes.shape(), " and values is ",
                              values.shape(), "; ", nc, " channels");
        for (index_t r = 0; r < codes.rows(); ++r)
            for (index_t c = 0; c < nc; ++c) {
                const std::int32_t v = codes(r, c);
                RECBLOCKS_CHECK_INDEX(v >= 0 && v < levels(c), "FiniteScalarQuantizer::decode: codes[", r,
                                      ", ", c, "] = ", v, " is outside [0, ", levels(c), ")");
                values(r, c) = static_cast<T>(double(v - half_width(c)) / half_width(c));
            }
    }

    FsqConfig cfg_;
    std::vector<double> half_, offset_, shift_;
    std::vector<int> half_width_;
    std::vector<std::int64_t> basis_;
    std::int64_t size_ = 1;
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
