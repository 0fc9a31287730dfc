#pragma once
// Inverted dropout by a counter-based mask: y[i] = x[i] * scale where element
// first + i of the mask's Philox stream is kept, else 0. The mask is a pure
// function of (mask, element index), so any split of a buffer into ranges
// (threads, rows, backends) draws the same mask. blocks::Dropout builds the
// mask from its Rng, step and lane.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class T = float>
concept has_dropout = requires(const B& be, VectorView<const T> x, VectorView<T> y, const DropoutMask& mask) {
    Primitives<B>::template dropout<T>(be, x, y, index_t{0}, mask, T(1));
};

/// x, y [n] are elements [first, first + n) of a masked buffer; y may alias x.
template <class B, class T>
    requires has_dropout<B, T>
void dropout(const B& be, std::type_identity_t<VectorView<const T>> x, VectorView<T> y, index_t first,
             const DropoutMask& mask, T scale) {
    constexpr std::string_view op = "ops::dropout";
    detail::check_length(op, "y", y, x.size(), "x's length");
    RECBLOCKS_CHECK_SHAPE(first >= 0, op, ": first = ", first, " must be >= 0 (an element index)");
    if (x.size() == 0) return;
    RECBLOCKS_CHECK_SHAPE(x.data() != nullptr && y.data() != nullptr, op, ": x or y has ", x.size(),
                          " entries but no data");
    Primitives<B>::template dropout<T>(be, x, y, first, mask, scale);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
