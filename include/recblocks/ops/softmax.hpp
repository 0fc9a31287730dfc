#pragma once
// Row-wise softmax, numerically stable (the row maximum is subtracted before
// exponentiation), with an optional keep-mask, and its backward.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// y [R, C] = softmax over each row of x [R, C]. y may alias x (in place).
/// @param mask optional [R, C] bytes: 0 excludes an entry (its output is 0),
///             non-zero keeps it. A row with no kept entry becomes all zeros
///             (not NaN), so fully padded attention rows are harmless.
template <class B, class T>
void softmax_rows(const B& be, std::type_identity_t<MatrixView<const T>> x, MatrixView<T> y,
                  MatrixView<const std::uint8_t> mask = {}) {
    constexpr std::string_view op = "ops::softmax_rows";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "y", y);
    detail::check_same_shape(op, "x", x, "y", y);
    if (mask.data() != nullptr) {
        detail::check_layout(op, "mask", mask);
        detail::check_same_shape(op, "x", x, "mask", mask);
    }
    if (x.empty()) return;
    Primitives<B>::template softmax_rows<T>(be, x, mask, y);
}

/// Backward of softmax_rows: dx [R, C] = y * (dy - rowsum(dy * y)), from the
/// forward output y. dx may alias dy.
template <class B, class T>
void softmax_rows_backward(const B& be, std::type_identity_t<MatrixView<const T>> y,
                           std::type_identity_t<MatrixView<const T>> dy, MatrixView<T> dx) {
    constexpr std::string_view op = "ops::softmax_rows_backward";
    detail::check_layout(op, "y", y);
    detail::check_layout(op, "dy", dy);
    detail::check_layout(op, "dx", dx);
    detail::check_same_shape(op, "y", y, "dy", dy);
    detail::check_same_shape(op, "y", y, "dx", dx);
    if (y.empty()) return;
    Primitives<B>::template softmax_rows_backward<T>(be, y, dy, dx);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
