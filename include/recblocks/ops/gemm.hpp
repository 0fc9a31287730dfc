#pragma once
// General matrix multiply on row-major views:
//   c = alpha * op(a) * op(b) + beta * c,   op(m) = m or mᵀ
// Shapes: op(a) [M, K], op(b) [K, N], c [M, N]. With beta == 0, c is only
// written (NaNs in it do not propagate), as in BLAS.
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
