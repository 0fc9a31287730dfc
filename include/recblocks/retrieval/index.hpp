#pragma once
// The retrieval index contract. Every index answers one query (`search`) and
// a batch (`search_batch`) with the k best items (larger score first, then
// smaller id), never returning excluded ids: per query a sorted list of
// already-seen ids (a batch: ExcludedIds, CSR offsets + ids). As in FAISS,
// one contract serves every index, so evaluation and serving code is written
// once (retrieval::Index; docs/retrieval.md).
//
// Indexes run on any backend with the retrieval primitives in host memory
// (IndexBackend: Reference, Cpu); the Cuda backend does not provide them yet.
#include <algorithm>
#include <concepts>
#include <span>

#include "recblocks/core/thread_pool.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/top_k_selection.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

/// Per-query excluded ids of a batch: query b excludes ids[offsets[b] .. offsets[b+1]),
/// sorted ascending without repeats. Empty offsets: nothing excluded.
struct ExcludedIds {
    std::span<const index_t> offsets;
    std::span<const row_id_t> ids;
};

/// A backend an index can run on: the panel scans for every storage type and
/// the top-k selection primitives, on host memory.
template <class Be>
concept IndexBackend = host_memory_v<Be> && ops::has_panel_scores<Be, float> &&
                       ops::has_panel_scores<Be, std::uint16_t> && ops::has_panel_scores<Be, std::int8_t> &&
                       ops::has_top_k_selection<Be>;

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

/// Checks the CSR layout of a batch's exclusions for nq queries (each
/// query's ids are checked against the index by the search itself).
inline void check_batch_exclusion(std::string_view op, const ExcludedIds& exclude, index_t nq) {
    if (exclude.offsets.empty()) return;
    RECBLOCKS_CHECK_SHAPE(index_t(exclude.offsets.size()) == nq + 1, op, ": exclude.offsets has ",
                          exclude.offsets.size(), " entries but expected ", nq + 1, " (queries + 1)");
    RECBLOCKS_CHECK_VALUE(exclude.offsets[0] == 0 && exclude.offsets[std::size_t(nq)] == index_t(exclude.ids.size()),
                          op, ": exclude.offsets must start at 0 and end at ", exclude.ids.size());
    for (index_t b = 0; b < nq; ++b)
        RECBLOCKS_CHECK_VALUE(exclude.offsets[std::size_t(b)] <= exclude.offsets[std::size_t(b + 1)], op,
                              ": exclude.offsets must be non-decreasing; offsets[", b, "] = ",
                              exclude.offsets[std::size_t(b)], " > offsets[", b + 1, "] = ",
                              exclude.offsets[std::size_t(b + 1)]);
}

/// Query b's excluded ids (after check_batch_exclusion).
inline std::span<const row_id_t> excluded_of(const ExcludedIds& exclude, index_t b) {
    if (exclude.offsets.empty()) return {};
    const auto from = std::size_t(exclude.offsets[std::size_t(b)]);
    return exclude.ids.subspan(from, std::size_t(exclude.offsets[std::size_t(b + 1)]) - from);
}

/// Threads a backend can split an index's rows over (1 without a pool).
template <class Be>
index_t thread_count(const Be& be) {
    if constexpr (requires { be.threads(); }) return be.threads().size();
    else return 1;
}

/// fn(p) for every p in [0, parts): on the backend's pool when it has one.
template <class Be, class Fn>
void run_parts(const Be& be, index_t parts, Fn&& fn) {
    if constexpr (requires { be.threads(); }) {
        if (parts > 1) {
            be.threads().run(parts, fn);
            return;
        }
    }
    for (index_t p = 0; p < parts; ++p) fn(p);
}

/// fn(i0, i1) over [0, n) in chunks of `grain`: parallel_for on the
/// backend's pool when it has one (the same chunks either way).
template <class Be, class Fn>
void for_chunks(const Be& be, index_t n, index_t grain, Fn&& fn) {
    if constexpr (requires { be.threads(); }) {
        parallel_for(be.threads(), 0, n, grain, fn);
    } else {
        for (index_t i0 = 0; i0 < n; i0 += grain) fn(i0, std::min(n, i0 + grain));
    }
}

/// The backend for a primitive called inside run_parts: whole, on the calling thread.
template <class Be>
Be serial(const Be& be) {
    if constexpr (requires { be.serial(); }) return be.serial();
    else return be;
}

}  // namespace detail
}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
