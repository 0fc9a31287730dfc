#pragma once
// Element-wise matrix glue between the larger primitives: out = a + b
// (residual connections), element-wise products, copies, a row broadcast into every row (biases,
// positional tables), per-row scaling (masks, embedding scale), the ReLU +
// dropout gradient gate and row-wise dot products. Views may be strided (a block of a larger
// matrix, e.g. the last position of every sequence); on a device backend they
// point to device memory. Small ops, but as backend calls they keep a block a
// sequence of backend calls that runs wherever the backend computes.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// out [R, C] = a [R, C] + b [R, C]. `out` may be `a` or `b` itself (same data
/// and leading dimension: an accumulation); any other overlap is an error.
template <class B, class T>
void add(const B& be, std::type_identity_t<MatrixView<const T>> a, std::type_identity_t<MatrixView<const T>> b,
         MatrixView<T> out) {
    constexpr std::string_view op = "ops::add";
    detail::check_layout(op, "a", a);
    detail::check_layout(op, "b", b);
    detail::check_layout(op, "out", out);
    detail::check_same_shape(op, "a", a, "b", b);
    detail::check_same_shape(op, "a", a, "out", out);
    detail::check_alias_or_disjoint(op, "a", a, "out", MatrixView<const T>(out));
    detail::check_alias_or_disjoint(op, "b", b, "out", MatrixView<const T>(out));
    if (out.empty()) return;
    Primitives<B>::template add<T>(be, a, b, out);
}

/// dst [R, C] = src [R, C]; the two must not overlap.
template <class B, class T>
void copy(const B& be, std::type_identity_t<MatrixView<const T>> src, MatrixView<T> dst) {
    constexpr std::string_view op = "ops::copy";
    detail::check_layout(op, "src", src);
    detail::check_layout(op, "dst", dst);
    detail::check_same_shape(op, "src", src, "dst", dst);
    RECBLOCKS_CHECK_SHAPE(src.empty() || !detail::overlaps(src, MatrixView<const T>(dst)), op,
                          ": src and dst overlap");
    if (dst.empty()) return;
    Primitives<B>::template copy<T>(be, src, dst);
}

/// out[r, :] = row + beta * out[r, :] for every row of out [R, C]; row [C].
/// beta == 0 writes the row without reading out (a bias before a gemm with beta = 1).
template <class B, class T>
void broadcast_rows(const B& be, std::type_identity_t<VectorView<const T>> row, T beta, MatrixView<T> out) {
    constexpr std::string_view op = "ops::broadcast_rows";
    detail::check_layout(op, "out", out);
    detail::check_length(op, "row", row, out.cols(), "out's columns");
    if (out.empty()) return;
    Primitives<B>::template broadcast_rows<T>(be, row, beta, out);
}

/// y[r, :] = alpha * s[r] * x[r, :] for x, y [R, C] and s [R] (s empty: y =
/// alpha * x). y may be x itself; any other overlap is an error.
template <class B, class T>
void scale_rows(const B& be, std::type_identity_t<MatrixView<const T>> x, std::type_identity_t<VectorView<const T>> s,
                T alpha, MatrixView<T> y) {
    constexpr std::string_view op = "ops::scale_rows";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "y", y);
    detail::check_same_shape(op, "x", x, "y", y);
    detail::check_alias_or_disjoint(op, "x", x, "y", MatrixView<const T>(y));
    if (s.data() != nullptr) detail::check_length(op, "s", s, x.rows(), "x's rows");
    if (y.empty()) return;
    Primitives<B>::template scale_rows<T>(be, x, s, alpha, y);
}

/// g[i] = ref[i] != 0 ? g[i] * scale : 0 — the gradient through ReLU then
/// dropout, read off their stored output (zero exactly where the activation
/// was cut or the element dropped), with no mask drawn again.
template <class B, class T>
void gate_by_nonzero(const B& be, std::type_identity_t<VectorView<const T>> ref, VectorView<T> g, T scale) {
    constexpr std::string_view op = "ops::gate_by_nonzero";
    detail::check_length(op, "g", g, ref.size(), "ref's length");
    if (g.size() == 0) return;
    Primitives<B>::template gate_by_nonzero<T>(be, ref, g, scale);
}

/// out [R, C] = a [R, C] ⊙ b [R, C] (element-wise product). `out` may be `a`
/// or `b` itself (same data and leading dimension); any other overlap is an error.
template <class B, class T>
void multiply(const B& be, std::type_identity_t<MatrixView<const T>> a, std::type_identity_t<MatrixView<const T>> b,
              MatrixView<T> out) {
    constexpr std::string_view op = "ops::multiply";
    detail::check_layout(op, "a", a);
    detail::check_layout(op, "b", b);
    detail::check_layout(op, "out", out);
    detail::check_same_shape(op, "a", a, "b", b);
    detail::check_same_shape(op, "a", a, "out", out);
    detail::check_alias_or_disjoint(op, "a", a, "out", MatrixView<const T>(out));
    detail::check_alias_or_disjoint(op, "b", b, "out", MatrixView<const T>(out));
    if (out.empty()) return;
    Primitives<B>::template multiply<T>(be, a, b, out);
}

/// out[r] = a[r, :] . b[r, :] for a, b [R, C].
template <class B, class T>
void row_dots(const B& be, std::type_identity_t<MatrixView<const T>> a, std::type_identity_t<MatrixView<const T>> b,
              VectorView<T> out) {
    constexpr std::string_view op = "ops::row_dots";
    detail::check_layout(op, "a", a);
    detail::check_layout(op, "b", b);
    detail::check_same_shape(op, "a", a, "b", b);
    detail::check_length(op, "out", out, a.rows(), "a's rows");
    if (out.size() == 0) return;
    Primitives<B>::template row_dots<T>(be, a, b, out);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
