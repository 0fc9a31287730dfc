#pragma once
// Reductions. All are deterministic: the same input gives the same bits on
// any thread count (see core/thread_pool.hpp).
#include <limits>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// Sum of all elements of x [R, C] (0 when empty).
template <class B, class U>
std::remove_const_t<U> sum(const B& be, MatrixView<U> x) {
    using T = std::remove_const_t<U>;
    detail::check_layout("ops::sum", "x", x);
    if (x.empty()) return T(0);
    return Primitives<B>::template sum<T>(be, MatrixView<const T>(x));
}

/// Largest element of x [R, C] (-inf when empty; NaN if any element is NaN).
template <class B, class U>
std::remove_const_t<U> max_value(const B& be, MatrixView<U> x) {
    using T = std::remove_const_t<U>;
    detail::check_layout("ops::max_value", "x", x);
    if (x.empty()) return -std::numeric_limits<T>::infinity();
    return Primitives<B>::template max_value<T>(be, MatrixView<const T>(x));
}

/// Column sums: out [C] = sum over rows of x [R, C] (overwritten). This is the
/// bias gradient of a linear layer.
template <class B, class T>
void sum_rows(const B& be, std::type_identity_t<MatrixView<const T>> x, VectorView<T> out) {
    detail::check_layout("ops::sum_rows", "x", x);
    detail::check_length("ops::sum_rows", "out", out, x.cols(), "the column count of x");
    if (x.cols() == 0) return;
    // Zero rows still reach the backend: it writes the zeros (out may be device memory).
    Primitives<B>::template sum_rows<T>(be, x, out);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
