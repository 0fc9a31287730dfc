#pragma once
// Streamed top-k selection for retrieval, in result order (larger score
// first, then smaller id): a bounded heap fed block by block, a threshold
// filter, and a k-th largest key by bisection (retrieval/selection.hpp).
#include <algorithm>
#include <cstdint>

#include <concepts>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B>
concept has_top_k_selection = requires(const B& be, VectorView<const float> s, VectorView<float> v,
                                       VectorView<row_id_t> id, VectorView<const row_id_t> ex,
                                       VectorView<const std::uint32_t> keys) {
    { Primitives<B>::offer_top_k(be, s, row_id_t{0}, index_t{1}, v, id, index_t{0}, ex) } -> std::same_as<index_t>;
    { Primitives<B>::collect_above(be, s, 0.0f, row_id_t{0}, v, id) } -> std::same_as<index_t>;
    { Primitives<B>::kth_largest_key(be, keys, index_t{1}, index_t{0}) } -> std::same_as<std::uint32_t>;
};

/// Offers s [n] (ids first, first + 1, ...; ids ascend across calls) to the
/// min-heap (heap_scores, heap_ids) [k] holding `size` entries; ids in the
/// sorted list `excluded` are skipped. Returns the heap's new size.
template <class B>
    requires has_top_k_selection<B>
index_t offer_top_k(const B& be, VectorView<const float> s, row_id_t first, index_t k, VectorView<float> heap_scores,
                    VectorView<row_id_t> heap_ids, index_t size, VectorView<const row_id_t> excluded = {}) {
    constexpr std::string_view op = "ops::offer_top_k";
    RECBLOCKS_CHECK_SHAPE(k >= 1 && heap_scores.size() >= k && heap_ids.size() >= k, op, ": k = ", k,
                          " but the heap has ", heap_scores.size(), " scores and ", heap_ids.size(), " ids");
    RECBLOCKS_CHECK_SHAPE(size >= 0 && size <= k, op, ": size = ", size, " is outside [0, k = ", k, "]");
    RECBLOCKS_CHECK_INDEX(first >= 0, op, ": first id ", first, " is negative");
    return Primitives<B>::offer_top_k(be, s, first, k, heap_scores, heap_ids, size, excluded);
}

/// (s[j], first + j) for every s[j] > threshold, in order; returns how many.
/// The outputs need n + 16 entries (whole registers are stored).
template <class B>
    requires has_top_k_selection<B>
index_t collect_above(const B& be, VectorView<const float> s, float threshold, row_id_t first,
                      VectorView<float> out_scores, VectorView<row_id_t> out_ids) {
    constexpr std::string_view op = "ops::collect_above";
    RECBLOCKS_CHECK_SHAPE(out_scores.size() >= s.size() + 16 && out_ids.size() >= s.size() + 16, op,
                          ": out_scores has ", out_scores.size(), " and out_ids ", out_ids.size(),
                          " entries; need n + 16 = ", s.size() + 16);
    if (s.size() == 0) return 0;
    return Primitives<B>::collect_above(be, s, threshold, first, out_scores, out_ids);
}

/// A threshold t (not necessarily one of the keys) with count(keys >= t) >= k
/// and count(keys > t) <= k + slack; 1 <= k <= n. With slack 0, the best k
/// are the keys above t plus enough of those equal to it.
template <class B>
    requires has_top_k_selection<B>
std::uint32_t kth_largest_key(const B& be, VectorView<const std::uint32_t> keys, index_t k, index_t slack = 0) {
    constexpr std::string_view op = "ops::kth_largest_key";
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= keys.size(), op, ": k = ", k, " but there are ", keys.size(),
                          " keys; need 1 <= k <= n");
    RECBLOCKS_CHECK_VALUE(slack >= 0, op, ": slack = ", slack, " must be >= 0");
    return Primitives<B>::kth_largest_key(be, keys, k, slack);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
