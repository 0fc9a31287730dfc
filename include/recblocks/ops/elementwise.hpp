#pragma once
// Element-wise matrix glue between the larger primitives: out = a + b
// (residual connections) and copies. Views may be strided (a block of a larger
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

}  // namespace ops
RECBLOCKS_NAMESPACE_END
