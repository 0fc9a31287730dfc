#pragma once
// General matrix multiply on row-major views:
//   c = alpha * op(a) * op(b) + beta * c,   op(m) = m or mᵀ
// Shapes: op(a) [M, K], op(b) [K, N], c [M, N]. With beta == 0, c is only
// written (NaNs in it do not propagate), as in BLAS.
//
// linear(x, w, bias, y): y = x wᵀ + bias, a layer's projection. Backends may
// fuse it (the CPU writes the bias into a block of rows and multiplies while
// that block is in cache); the result is the one of broadcast_rows + gemm.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// c [M, N] = alpha * op(a) * op(b) + beta * c.
/// @param ta  Trans::yes to use aᵀ; a is stored [M, K] (no) or [K, M] (yes).
/// @param tb  Trans::yes to use bᵀ; b is stored [K, N] (no) or [N, K] (yes).
/// @param c   output [M, N], row-major, may be a block of a larger matrix (ld).
template <class B, class T>
void gemm(const B& be, Trans ta, Trans tb, T alpha, std::type_identity_t<MatrixView<const T>> a,
          std::type_identity_t<MatrixView<const T>> b, T beta, MatrixView<T> c) {
    constexpr std::string_view op = "ops::gemm";
    detail::check_layout(op, "a", a);
    detail::check_layout(op, "b", b);
    detail::check_layout(op, "c", c);
    const index_t m = ta == Trans::yes ? a.cols() : a.rows();
    const index_t ka = ta == Trans::yes ? a.rows() : a.cols();
    const index_t kb = tb == Trans::yes ? b.cols() : b.rows();
    const index_t n = tb == Trans::yes ? b.rows() : b.cols();
    RECBLOCKS_CHECK_SHAPE(ka == kb, op, ": op(a) is [", m, ", ", ka, "] and op(b) is [", kb, ", ", n,
                          "]; inner dimensions differ");
    RECBLOCKS_CHECK_SHAPE(c.rows() == m && c.cols() == n, op, ": c is ", c.shape(), " but op(a) * op(b) is [", m,
                          ", ", n, "]");
    if (m == 0 || n == 0) return;
    Primitives<B>::template gemm<T>(be, ta, tb, alpha, a, b, beta, c);
}

/// y [M, N] = x [M, K] · wᵀ (w [N, K]) + bias [N] on every row. y may be a block of a larger
/// matrix (ld); it must not overlap x or w.
template <class B, class T>
void linear(const B& be, std::type_identity_t<MatrixView<const T>> x, std::type_identity_t<MatrixView<const T>> w,
            std::type_identity_t<VectorView<const T>> bias, MatrixView<T> y) {
    constexpr std::string_view op = "ops::linear";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "w", w);
    detail::check_layout(op, "y", y);
    RECBLOCKS_CHECK_SHAPE(x.cols() == w.cols(), op, ": x is ", x.shape(), " and w is ", w.shape(),
                          " (need x [M, K], w [N, K])");
    RECBLOCKS_CHECK_SHAPE(y.rows() == x.rows() && y.cols() == w.rows(), op, ": y is ", y.shape(), " but x wᵀ is [",
                          x.rows(), ", ", w.rows(), "]");
    RECBLOCKS_CHECK_SHAPE(bias.size() == w.rows(), op, ": bias has ", bias.size(), " entries but w has ", w.rows(),
                          " rows");
    if (y.rows() == 0 || y.cols() == 0) return;
    if constexpr (requires { Primitives<B>::template linear<T>(be, x, w, bias, y); }) {
        Primitives<B>::template linear<T>(be, x, w, bias, y);
    } else {
        Primitives<B>::template broadcast_rows<T>(be, bias, T(0), y);
        if (x.cols() > 0) Primitives<B>::template gemm<T>(be, Trans::no, Trans::yes, T(1), x, w, T(1), y);
    }
}

/// Batched gemm: for each i in [0, batch): c[i] = alpha * op(a[i]) * op(b[i]) + beta * c[i].
/// a, b, c are [batch, rows, cols] with contiguous matrices per batch entry.
template <class B, class T>
void gemm_batched(const B& be, Trans ta, Trans tb, T alpha, std::type_identity_t<TensorView<const T, 3>> a,
                  std::type_identity_t<TensorView<const T, 3>> b, T beta, TensorView<T, 3> c) {
    constexpr std::string_view op = "ops::gemm_batched";
    RECBLOCKS_CHECK_SHAPE(a.extent(0) == c.extent(0) && b.extent(0) == c.extent(0), op, ": batch sizes differ: a is ",
                          a.shape(), ", b is ", b.shape(), ", c is ", c.shape());
    const index_t m = ta == Trans::yes ? a.extent(2) : a.extent(1);
    const index_t ka = ta == Trans::yes ? a.extent(1) : a.extent(2);
    const index_t kb = tb == Trans::yes ? b.extent(2) : b.extent(1);
    const index_t n = tb == Trans::yes ? b.extent(1) : b.extent(2);
    RECBLOCKS_CHECK_SHAPE(ka == kb, op, ": op(a[i]) is [", m, ", ", ka, "] and op(b[i]) is [", kb, ", ", n,
                          "]; inner dimensions differ");
    RECBLOCKS_CHECK_SHAPE(c.extent(1) == m && c.extent(2) == n, op, ": c is ", c.shape(), " but each product is [",
                          m, ", ", n, "]");
    RECBLOCKS_CHECK_SHAPE(a.strides()[1] >= a.extent(2) && b.strides()[1] >= b.extent(2) &&
                              c.strides()[1] >= c.extent(2),
                          op, ": matrix rows overlap (row stride smaller than column count)");
    if (c.numel() == 0) return;
    Primitives<B>::template gemm_batched<T>(be, ta, tb, alpha, a, b, beta, c);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
