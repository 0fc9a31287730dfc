#pragma once
// The retrieval index contract. Every index answers one query (`search`) and
// a batch (`search_batch`) with the k best items (larger score first, then
// smaller id), never returning excluded ids: per query a sorted list of
// already-seen ids (a batch: ExcludedIds, CSR offsets + ids). As in FAISS,
// one contract serves every index, so evaluation and serving code is written
// once (retrieval::Index; docs/retrieval.md).
//
// Indexes run on any backend with the whole-search retrieval primitives
// (IndexBackend: ops/retrieval.hpp; the Reference oracle, every CPU backend,
// backend::Cuda). An index keeps its table in one memory space (a template
// parameter, host memory by default) and is searched with a backend that
// computes there; every view and exclusion list passed to it lives there too.
#include <algorithm>
#include <concepts>
#include <span>

#include "recblocks/ops/retrieval.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

/// Per-query excluded ids of a batch: query b excludes ids[offsets[b] .. offsets[b+1]),
/// sorted ascending without repeats. Empty offsets: every query excludes all
/// of ids (both empty: nothing excluded). In the backend's memory space.
struct ExcludedIds {
    std::span<const index_t> offsets;
    std::span<const row_id_t> ids;
};

/// A backend an index can run on: the whole-search primitives for every
/// storage type (ops/retrieval.hpp).
template <class Be>
concept IndexBackend = ops::has_exact_top_k<Be, float> && ops::has_exact_top_k<Be, std::uint16_t> &&
                       ops::has_exact_top_k<Be, std::int8_t> && ops::has_rerank_top_k<Be>;

/// An index searchable on backend Be: size(), dim(), and
///   search(be, query [D], k, ids [k], scores [k], exclude = {})
///   search_batch(be, queries [B, D], k, ids [B, k], scores [B, k], exclude = {})
template <class I, class Be>
concept Index = IndexBackend<Be> &&
                requires(const I& index, const Be& be, VectorView<const float> query, MatrixView<const float> queries,
                         index_t k, VectorView<row_id_t> ids, VectorView<float> scores, MatrixView<row_id_t> batch_ids,
                         MatrixView<float> batch_scores, std::span<const row_id_t> exclude,
                         const ExcludedIds& batch_exclude) {
                    { index.size() } -> std::convertible_to<index_t>;
                    { index.dim() } -> std::convertible_to<index_t>;
                    index.search(be, query, k, ids, scores);
                    index.search(be, query, k, ids, scores, exclude);
                    index.search_batch(be, queries, k, batch_ids, batch_scores);
                    index.search_batch(be, queries, k, batch_ids, batch_scores, batch_exclude);
                };

namespace detail {

/// A span as the primitives' view (same memory).
template <class T>
VectorView<const T> as_view(std::span<const T> s) {
    return vector_view(s.data(), index_t(s.size()));
}

}  // namespace detail
}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
