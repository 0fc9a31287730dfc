#pragma once
// FunnelIndex<Memory>: adaptive retrieval for Matryoshka-style embeddings. A
// copy of the first d1 dimensions (so the shortlist scan reads d1 / D of the
// bytes) picks a shortlist by exact top-k at width d1; the shortlist is then
// re-ranked at full width D and the best k returned (score desc, id asc).
// Exact when shortlist = N; recall against full-width exact search is what
// the (d1, shortlist) pair trades for speed.
//
// The prefix copy is an ExactIndex<bf16, Memory> (half the bytes of f32; the
// shortlist is approximate anyway, while the re-rank is exact f32), searched
// for an unordered shortlist (on the CPU: no heap and no sort); the full rows
// stay row-major, so re-ranking reads each shortlisted row whole. A search,
// one query or a batch, is two backend calls: ops::exact_top_k (the
// shortlists) and ops::rerank_top_k (ops/retrieval.hpp), with the shortlists
// kept in the backend's memory in between. On the 9,724-item trained
// catalogue a d1 = 16, shortlist 200 query went from 73 us (row-major f32
// prefix, 200-entry heap) to about 10 on the CPU.
//
//   retrieval::FunnelIndex funnel(items, /*prefix_dim=*/16, /*shortlist=*/200);
//   funnel.search(be, query, /*k=*/10, ids, scores);                  // retrieval::Index
//   funnel.search(be, query, /*k=*/10, /*shortlist=*/500, ids, scores);  // this call's shortlist
//
// rerank_top_k (the second stage on its own, host memory) also serves an int8
// or bf16 ExactIndex whose shortlist is re-scored against an f32 copy.
#include <algorithm>
#include <span>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/retrieval.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/index.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {
namespace detail {
struct RerankTag {};
struct FunnelTag {};
}  // namespace detail

/// The k best of `candidates` by full-width score in `full` (host memory);
/// ids / scores [k].
template <class Be>
    requires ops::has_panel_scores<Be, float> && HostBackend<Be>
void rerank_top_k(const Be& be, const ExactIndex<float>& full, const float* query,
                  std::span<const row_id_t> candidates, index_t k, row_id_t* ids, float* scores) {
    constexpr std::string_view op = "retrieval::rerank_top_k";
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= index_t(candidates.size()), op, ": k = ", k, " but there are ",
                          candidates.size(), " candidates");
    for (std::size_t i = 0; i < candidates.size(); ++i)
        RECBLOCKS_CHECK_INDEX(candidates[i] >= 0 && candidates[i] < full.size(), op, ": candidate ", i, " = ",
                              candidates[i], " is out of range for ", full.size(), " items");
    const auto n = candidates.size();
    auto& s = thread_scratch<float, detail::RerankTag>(n);
    auto& keys = thread_scratch<std::uint64_t, detail::RerankTag>(n);
    full.score_ids(be, query, candidates.data(), index_t(n), s.data());
    for (std::size_t i = 0; i < n; ++i) keys[i] = retrieval_keys::rank_key(s[i], candidates[i]);
    std::partial_sort(keys.begin(), keys.begin() + k, keys.begin() + std::ptrdiff_t(n), std::greater<>());
    for (index_t i = 0; i < k; ++i) {
        ids[i] = retrieval_keys::key_id(keys[std::size_t(i)]);
        scores[i] = retrieval_keys::key_score(keys[std::size_t(i)]);
        RECBLOCKS_CHECK_VALUE(!std::isnan(scores[i]), op, ": the score of item ", ids[i],
                              " is NaN (the query times the table overflows)");
    }
}

template <MemorySpace Memory = HostMemory>
class FunnelIndex {
public:
    using memory_type = Memory;

    /// Copies `items` [N, D] (host memory) in full (row-major, for the
    /// re-rank) and its first `prefix_dim` columns as bf16 panels (for the
    /// shortlist scan), into `memory`. `shortlist`: the default shortlist of
    /// a search without one (at least k, at most N at each call).
    FunnelIndex(MatrixView<const float> items, index_t prefix_dim, index_t shortlist = 200, Memory memory = {})
        : rows_(memory) {
        RECBLOCKS_CHECK_VALUE(shortlist >= 1, "retrieval::FunnelIndex: shortlist = ", shortlist, "; need >= 1");
        shortlist_ = shortlist;
        detail::check_items("retrieval::FunnelIndex", items);
        RECBLOCKS_CHECK_VALUE(prefix_dim >= 1 && prefix_dim <= items.cols(), "retrieval::FunnelIndex: prefix_dim = ",
                              prefix_dim, " but items have ", items.cols(), " columns; need 1 <= d1 <= D");
        n_ = items.rows();
        d_ = items.cols();
        Matrix<float> rows(Shape<2>{{n_, d_}});
        for (index_t r = 0; r < n_; ++r)
            for (index_t c = 0; c < d_; ++c) rows(r, c) = items(r, c);
        if constexpr (std::is_same_v<Memory, HostMemory>) rows_ = std::move(rows);
        else copy_tensor(rows, rows_);
        prefix_ = ExactIndex<bf16, Memory>(matrix_view(items.data(), n_, prefix_dim, items.ld()), memory);
    }

    [[nodiscard]] index_t size() const { return n_; }
    [[nodiscard]] index_t dim() const { return d_; }
    [[nodiscard]] index_t prefix_dim() const { return prefix_.dim(); }

    /// The shortlist of a search that names none.
    [[nodiscard]] index_t shortlist() const { return shortlist_; }
    void set_shortlist(index_t shortlist) {
        RECBLOCKS_CHECK_VALUE(shortlist >= 1, "retrieval::FunnelIndex::set_shortlist: shortlist = ", shortlist,
                              "; need >= 1");
        shortlist_ = shortlist;
    }

    /// retrieval::Index: search with the default shortlist, clamped to
    /// [k, the items left after exclusion].
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        const index_t left = size() - index_t(exclude.size());
        search(be, query, k, std::clamp(shortlist_, std::min(k, left), std::max<index_t>(left, 1)), ids, scores,
               exclude);
    }

    /// Shortlist of `shortlist` items at width d1, best k of them at width D.
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search(const Be& be, VectorView<const float> query, index_t k, index_t shortlist, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::FunnelIndex::search";
        RECBLOCKS_CHECK_SHAPE(query.size() == dim(), op, ": query has ", query.size(), " entries but items have ",
                              dim());
        check_shortlist(op, k, shortlist);
        RECBLOCKS_CHECK_SHAPE(ids.size() == k && scores.size() == k, op, ": ids has ", ids.size(), " and scores ",
                              scores.size(), " entries but k = ", k);
        run(be, matrix_view(query.data(), 1, dim()), k, shortlist, matrix_view(ids.data(), 1, k),
            matrix_view(scores.data(), 1, k), {}, detail::as_view(exclude));
    }

    /// The k best items for each query of `queries` [B, D]; ids / scores
    /// [B, k]. One shortlist size for the batch: the default, clamped to [k,
    /// N - the longest exclusion list] (on a device backend, whose lists the
    /// host does not read: N - all excluded ids together).
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search_batch(const Be& be, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                      MatrixView<float> scores, const ExcludedIds& exclude = {}) const {
        index_t longest = index_t(exclude.ids.size());
        if constexpr (host_memory_v<Be>) {
            if (!exclude.offsets.empty()) {
                longest = 0;
                for (std::size_t b = 0; b + 1 < exclude.offsets.size(); ++b)
                    longest = std::max(longest, exclude.offsets[b + 1] - exclude.offsets[b]);
            }
        }
        const index_t left = size() - longest;
        search_batch(be, queries, k, std::clamp(shortlist_, std::min(k, left), std::max<index_t>(left, 1)), ids,
                     scores, exclude);
    }

    /// search_batch with this call's shortlist.
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search_batch(const Be& be, MatrixView<const float> queries, index_t k, index_t shortlist,
                      MatrixView<row_id_t> ids, MatrixView<float> scores, const ExcludedIds& exclude = {}) const {
        constexpr std::string_view op = "retrieval::FunnelIndex::search_batch";
        ops::detail::check_layout(op, "queries", queries);
        RECBLOCKS_CHECK_SHAPE(queries.cols() == dim(), op, ": queries is ", queries.shape(), " but items have ",
                              dim(), " columns");
        check_shortlist(op, k, shortlist);
        RECBLOCKS_CHECK_SHAPE(ids.rows() == queries.rows() && ids.cols() == k, op, ": ids is ", ids.shape(),
                              " but expected [", queries.rows(), ", ", k, "]");
        RECBLOCKS_CHECK_SHAPE(scores.rows() == queries.rows() && scores.cols() == k, op, ": scores is ",
                              scores.shape(), " but expected [", queries.rows(), ", ", k, "]");
        run(be, queries, k, shortlist, ids, scores, detail::as_view(exclude.offsets), detail::as_view(exclude.ids));
    }

private:
    void check_shortlist(std::string_view op, index_t k, index_t shortlist) const {
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= shortlist, op, ": k = ", k, " but shortlist = ", shortlist,
                              "; need 1 <= k <= shortlist");
        RECBLOCKS_CHECK_VALUE(shortlist <= size(), op, ": shortlist = ", shortlist, " but the index has ", size(),
                              " items");
    }

    /// The two backend calls; the shortlists [B, shortlist] live in the
    /// backend's memory (host: per-thread scratch that only grows).
    template <class Be>
    void run(const Be& be, MatrixView<const float> queries, index_t k, index_t shortlist, MatrixView<row_id_t> ids,
             MatrixView<float> scores, VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids) const {
        const index_t nq = queries.rows();
        const auto prefix = matrix_view(queries.data(), nq, prefix_dim(), nq <= 1 ? dim() : queries.ld());
        auto body = [&](MatrixView<row_id_t> cand) {
            ops::exact_top_k(be, prefix_.panels(), prefix, shortlist, ex_offsets, ex_ids, cand, MatrixView<float>{});
            ops::rerank_top_k(be, rows_.cview(), queries, MatrixView<const row_id_t>(cand), k, ids, scores);
        };
        if constexpr (Memory::host_accessible) {
            auto& cand = thread_scratch<row_id_t, detail::FunnelTag>(std::size_t(nq * shortlist));
            body(matrix_view(cand.data(), nq, shortlist));
        } else {
            auto cand = make_tensor<row_id_t>(be, Shape<2>{{nq, shortlist}});
            body(cand.view());
        }
    }

    index_t n_ = 0, d_ = 0, shortlist_ = 200;
    Matrix<float, Memory> rows_;     // [N, D] row-major: shortlisted rows are read whole
    ExactIndex<bf16, Memory> prefix_;  // the first d1 columns
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
