#pragma once
// Vector primitives: dot product and axpy (y += alpha * x).
#include <type_traits>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// x · y for vectors of equal length n. Returns 0 for n == 0.
template <class B, class X, class Y>
    requires std::is_same_v<std::remove_const_t<X>, std::remove_const_t<Y>>
std::remove_const_t<X> dot(const B& be, VectorView<X> x, VectorView<Y> y) {
    using T = std::remove_const_t<X>;
    RECBLOCKS_CHECK_SHAPE(x.size() == y.size(), "ops::dot: y has ", y.size(), " entries but x has ", x.size());
    if (x.size() == 0) return T(0);
    return Primitives<B>::template dot<T>(be, VectorView<const T>(x), VectorView<const T>(y));
}

/// y [n] += alpha * x [n].
template <class B, class T>
void axpy(const B& be, T alpha, std::type_identity_t<VectorView<const T>> x, VectorView<T> y) {
    RECBLOCKS_CHECK_SHAPE(x.size() == y.size(), "ops::axpy: y has ", y.size(), " entries but x has ", x.size());
    if (x.size() == 0) return;
    Primitives<B>::template axpy<T>(be, alpha, x, y);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
