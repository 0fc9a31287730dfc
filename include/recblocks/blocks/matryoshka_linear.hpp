#pragma once
// fMRLRec's nested linear transform (Wang et al., 2024): y = x Wᵀ + b with a
// block lower-triangular W [D, D] (nn.Linear layout, out × in) over the nested
// widths m_1 < ... < m_K = D: output slice i, columns [m_{i-1}, m_i), reads
// only input[:m_i]. So the width-m_i model is exactly the top-left m_i × m_i
// block of W (and b[:m_i]): one set of weights serves every width.
//
// Computed slice by slice, one gemm per slice on views of W (ld D): FLOPs
// 2R Σ_i (m_i - m_{i-1}) m_i instead of 2R D², no mask. The blocks above the
// diagonal are stored (so the width-m weight is a plain view) but stay zero:
// no forward reads them and no backward writes them.
//
// Memory is where the weights, gradients and scratch live (host by default,
// CudaMemory on backend::Cuda): every step is a backend call (bias rows by
// broadcast_rows, its gradient by column sums), so one code path runs everywhere.
#include <cmath>
#include <type_traits>

#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/bias.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/gemm.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, MemorySpace Memory = HostMemory>
class MatryoshkaLinear {
public:
    struct Params {
        Matrix<T, Memory> weight;  ///< [D, D], zero above the block diagonal
        Vector<T, Memory> bias;    ///< [D]
    };

    /// Slice i's rows drawn from U(-1/sqrt(m_i), 1/sqrt(m_i)) (nn.Linear's rule
    /// with the slice's fan-in m_i), weights and bias alike.
    MatryoshkaLinear(MatryoshkaWidths widths, const Rng& rng, Memory memory = {})
        : widths_(std::move(widths)), zeros_(memory), sums_(memory) {
        const index_t d = widths_.full();
        for (Params* p : {&params_, &grads_}) {
            p->weight = Matrix<T, Memory>(Shape<2>{{d, d}}, memory);
            p->bias = Vector<T, Memory>(Shape<1>{{d}}, memory);
        }
        zeros_ = Vector<T, Memory>(Shape<1>{{d}}, memory);
        // Drawn on the host, copied once.
        Matrix<T> w(Shape<2>{{d, d}});
        Vector<T> b(Shape<1>{{d}});
        const Rng rw = rng.substream(0), rb = rng.substream(1);
        for (index_t i = 0; i < widths_.size(); ++i) {
            const double bound = 1.0 / std::sqrt(double(widths_.width(i)));
            for (index_t o = widths_.slice_begin(i); o < widths_.width(i); ++o) {
                for (index_t c = 0; c < widths_.width(i); ++c)
                    w(o, c) = static_cast<T>(bound * (2.0 * rw.uniform_double(std::uint64_t(o * d + c)) - 1.0));
                b(o) = static_cast<T>(bound * (2.0 * rb.uniform_double(std::uint64_t(o)) - 1.0));
            }
        }
        copy_tensor(w, params_.weight);
        copy_tensor(b, params_.bias);
    }

    [[nodiscard]] const MatryoshkaWidths& widths() const { return widths_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "weight", params_.weight, grads_.weight, ParamKind::weight);
        append_param(out, prefix, "bias", params_.bias, grads_.bias, ParamKind::bias);
    }
    void zero_grads() {
        grads_.weight.zero();
        grads_.bias.zero();
    }
    /// Multiply-adds per row at width m (what forward costs; backward twice that).
    [[nodiscard]] double flops_per_row(index_t m) const {
        double f = 0;
        for (index_t i = 0; i <= widths_.index_of(m); ++i)
            f += 2.0 * double(widths_.width(i) - widths_.slice_begin(i)) * double(widths_.width(i));
        return f;
    }

    /// y [R, m] = the width-m model on x [R, m]; m = x.cols() must be one of the widths.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, MatrixView<const T> x, MatrixView<T> y) const {
        const index_t levels = check(x.shape(), y.shape(), "forward") + 1;
        const index_t m = x.cols();
        ops::broadcast_rows(be, vector_view<const T>(params_.bias.data(), m), T(0), y);
        for (index_t i = 0; i < levels; ++i) {
            const index_t a = widths_.slice_begin(i), b = widths_.width(i);
            ops::gemm(be, Trans::no, Trans::yes, T(1), cols(x, 0, b), block(params_.weight.cview(), a, b),
                      T(1), cols(y, a, b));
        }
    }

    /// From dy [R, m] and the forward's x: dx [R, m] (overwritten); the weight
    /// and bias gradients of the width-m blocks accumulate (+=) into grads().
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, MatrixView<const T> x, MatrixView<const T> dy, MatrixView<T> dx) {
        const index_t levels = check(x.shape(), dy.shape(), "backward") + 1;
        RECBLOCKS_CHECK_SHAPE(dx.shape() == x.shape(), "MatryoshkaLinear::backward: dx is ", dx.shape(), " but x is ",
                              x.shape());
        const index_t m = x.cols();
        detail::add_column_sums(be, dy, vector_view(grads_.bias.data(), m), sums_);
        for (index_t i = 0; i < levels; ++i) {
            const index_t a = widths_.slice_begin(i), b = widths_.width(i);
            const auto g = cols(dy, a, b);
            ops::gemm(be, Trans::no, Trans::no, T(1), g, block(params_.weight.cview(), a, b), T(i == 0 ? 0 : 1),
                      cols(dx, 0, b));
            if (i + 1 < levels)  // columns [b, next) are first written by a later slice
                ops::broadcast_rows(be, vector_view<const T>(zeros_.data(), widths_.width(i + 1) - b), T(0),
                                    cols(dx, b, widths_.width(i + 1)));
            ops::gemm(be, Trans::yes, Trans::no, T(1), g, cols(x, 0, b), T(1), block(grads_.weight.view(), a, b));
        }
    }

private:
    /// Rows [a, b) of W, columns [0, b): the weight of output slice [a, b).
    template <class U>
    static MatrixView<U> block(MatrixView<U> w, index_t a, index_t b) {
        return matrix_view<U>(w.data() + a * w.ld(), b - a, b, w.ld());
    }
    template <class U>
    static MatrixView<U> cols(MatrixView<U> x, index_t a, index_t b) {
        return matrix_view<U>(x.data() + a, x.rows(), b - a, x.ld());
    }
    index_t check(const Shape<2>& x, const Shape<2>& y, const char* fn) const {
        RECBLOCKS_CHECK_SHAPE(x == y, "MatryoshkaLinear::", fn, ": input is ", x, " but output (gradient) is ", y,
                              " (need equal shapes)");
        return widths_.index_of(x.extents[1]);
    }

    MatryoshkaWidths widths_;
    Params params_, grads_;
    Vector<T, Memory> zeros_, sums_;  // a zero row (dx's later columns); the bias gradient's column sums
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
