#pragma once
// The logistic (binary cross-entropy on logits) terms of a loss over scores:
//
//   returns Σ_m softplus(sign[m] · s[m])           (softplus(x) = log(1 + e^x))
//   g[m] = weight · sign[m] · sigmoid(sign[m] · s[m])  (= weight · d/ds of the term)
//
// sign[m] = -1 for a positive target (loss -log σ(s)), +1 for a negative one
// (loss -log(1 - σ(s))). The sum is returned to the host (in double; a device
// backend synchronises for it). Every term is computed in double and g
// rounded once to T.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// s, sign, g [M]; g may not alias s or sign.
template <class B, class T>
double logistic_loss(const B& be, std::type_identity_t<VectorView<const T>> s,
                     std::type_identity_t<VectorView<const T>> sign, T weight, VectorView<T> g) {
    constexpr std::string_view op = "ops::logistic_loss";
    detail::check_length(op, "sign", sign, s.size(), "s's length");
    detail::check_length(op, "g", g, s.size(), "s's length");
    if (s.size() == 0) return 0.0;
    RECBLOCKS_CHECK_SHAPE(g.data() != s.data() && g.data() != sign.data(), op, ": g must not alias s or sign");
    return Primitives<B>::template logistic_loss<T>(be, s, sign, weight, g);
}

/// Binary cross-entropy on logits with labels y in [0, 1] (soft labels allowed):
///
///   returns Σ_m max(z[m], 0) - z[m] y[m] + log(1 + e^-|z[m]|)   (in double)
///   g[m] = weight · (sigmoid(z[m]) - y[m])                     (= weight · d/dz of the term)
///
/// z, y, g [M]; g may not alias z or y. On host memory a label outside [0, 1]
/// (or NaN) is a ValueError naming it; a device backend takes the labels as given.
template <class B, class T>
double bce_with_logits(const B& be, std::type_identity_t<VectorView<const T>> z,
                       std::type_identity_t<VectorView<const T>> y, T weight, VectorView<T> g) {
    constexpr std::string_view op = "ops::bce_with_logits";
    detail::check_length(op, "y", y, z.size(), "z's length");
    detail::check_length(op, "g", g, z.size(), "z's length");
    if (z.size() == 0) return 0.0;
    RECBLOCKS_CHECK_SHAPE(g.data() != z.data() && g.data() != y.data(), op, ": g must not alias z or y");
    if constexpr (host_memory_v<B>)
        for (index_t m = 0; m < y.size(); ++m)
            RECBLOCKS_CHECK_VALUE(y(m) >= T(0) && y(m) <= T(1), op, ": y[", m, "] = ", y(m), " is not in [0, 1]");
    return Primitives<B>::template bce_with_logits<T>(be, z, y, weight, g);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
