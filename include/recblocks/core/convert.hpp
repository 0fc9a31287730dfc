#pragma once
// Element-wise conversion between storage types (f32 <-> bf16 / f16 / f64),
// rounding to nearest even when narrowing.
#include <type_traits>

#include "recblocks/core/dtype.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Copies `src` into `dst` (same shape), converting each element.
template <class From, class To, std::size_t Rank>
void convert(TensorView<const From, Rank> src, TensorView<To, Rank> dst) {
    RECBLOCKS_CHECK_SHAPE(src.shape() == dst.shape(), "convert: src is ", src.shape(), " but dst is ", dst.shape());
    RECBLOCKS_CHECK_SHAPE(src.is_contiguous() && dst.is_contiguous(), "convert: src and dst must be contiguous");
    const From* s = src.data();
    To* d = dst.data();
    for (index_t i = 0, n = src.numel(); i < n; ++i) {
        if constexpr (std::is_same_v<From, bf16> || std::is_same_v<From, f16>)
            d[i] = static_cast<To>(static_cast<float>(s[i]));
        else if constexpr (std::is_same_v<To, bf16> || std::is_same_v<To, f16>)
            d[i] = To(static_cast<float>(s[i]));
        else
            d[i] = static_cast<To>(s[i]);
    }
}

RECBLOCKS_NAMESPACE_END
