#pragma once
// FunnelIndex: adaptive retrieval for Matryoshka-style embeddings. A copy of
// the first d1 dimensions (so the shortlist scan reads d1 / D of the bytes)
// picks a shortlist by exact top-k at width d1; the shortlist is then
// re-ranked at full width D and the best k returned (score desc, id asc).
// Exact when shortlist = N; recall against full-width exact search is what
// the (d1, shortlist) pair trades for speed.
//
// The prefix copy is an ExactIndex<bf16> (column panels: no horizontal sums;
// half the bytes of f32, and the shortlist is approximate anyway, while the
// re-rank is exact f32). Its search_unordered picks the shortlist with no
// heap and no sort; the full rows stay row-major, so re-ranking reads each
// shortlisted row whole. On the 9,724-item trained catalogue a d1 = 16,
// shortlist 200 query went from 73 us (row-major f32 prefix, 200-entry heap)
// to about 10.
//
//   retrieval::FunnelIndex funnel(items, /*prefix_dim=*/16, /*shortlist=*/200);
//   funnel.search(be, query, /*k=*/10, ids, scores);                  // retrieval::Index
//   funnel.search(be, query, /*k=*/10, /*shortlist=*/500, ids, scores);  // this call's shortlist
//
// rerank_top_k (the second stage on its own) also serves an int8 or bf16
// ExactIndex whose shortlist is re-scored against an f32 copy.
#include <algorithm>
#include <span>
#include <vector>

#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/index.hpp"
#include "recblocks/retrieval/selection.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {
namespace detail {
struct RerankTag {};
struct FunnelTag {};

/// ids / scores [k] = the k best of (s[i], candidates[i]), best first.
inline void best_k_sorted(std::string_view op, const float* s, std::span<const row_id_t> candidates, index_t k,
                          row_id_t* ids, float* scores) {
    const auto n = candidates.size();
    auto& keys = thread_scratch<std::uint64_t, RerankTag>(n);
    for (std::size_t i = 0; i < n; ++i) keys[i] = rank_key(s[i], candidates[i]);
    write_best_k(op, keys.data(), index_t(n), k, ids, scores);
}
}  // namespace detail

/// The k best of `candidates` by full-width score in `full`; ids / scores [k].
template <IndexBackend Be>
void rerank_top_k(const Be& be, const ExactIndex<float>& full, const float* query,
                  std::span<const row_id_t> candidates, index_t k, row_id_t* ids, float* scores) {
    constexpr std::string_view op = "retrieval::rerank_top_k";
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= index_t(candidates.size()), op, ": k = ", k, " but there are ",
                          candidates.size(), " candidates");
    for (std::size_t i = 0; i < candidates.size(); ++i)
        RECBLOCKS_CHECK_INDEX(candidates[i] >= 0 && candidates[i] < full.size(), op, ": candidate ", i, " = ",
                              candidates[i], " is out of range for ", full.size(), " items");
    auto& s = thread_scratch<float, detail::RerankTag>(candidates.size());
    full.score_ids(be, query, candidates.data(), index_t(candidates.size()), s.data());
    detail::best_k_sorted(op, s.data(), candidates, k, ids, scores);
}

class FunnelIndex {
public:
    /// Copies `items` [N, D] in full (row-major, for the re-rank) and its
    /// first `prefix_dim` columns as bf16 panels (for the shortlist scan).
    /// `shortlist`: the default shortlist of search without one (at least k,
    /// at most N at each call).
    FunnelIndex(MatrixView<const float> items, index_t prefix_dim, index_t shortlist = 200) {
        RECBLOCKS_CHECK_VALUE(shortlist >= 1, "retrieval::FunnelIndex: shortlist = ", shortlist, "; need >= 1");
        shortlist_ = shortlist;
        detail::check_items("retrieval::FunnelIndex", items);
        RECBLOCKS_CHECK_VALUE(prefix_dim >= 1 && prefix_dim <= items.cols(), "retrieval::FunnelIndex: prefix_dim = ",
                              prefix_dim, " but items have ", items.cols(), " columns; need 1 <= d1 <= D");
        n_ = items.rows();
        d_ = items.cols();
        rows_.resize(n_ * d_);
        for (index_t r = 0; r < n_; ++r)
            for (index_t c = 0; c < d_; ++c) rows_[r * d_ + c] = items(r, c);
        prefix_ = ExactIndex<bf16>(matrix_view(items.data(), n_, prefix_dim, items.ld()));
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
    void search(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        const index_t left = size() - index_t(exclude.size());
        search(be, query, k, std::clamp(shortlist_, std::min(k, left), std::max<index_t>(left, 1)), ids, scores,
               exclude);
    }

    /// The k best items for each query of `queries` [B, D] (each a search
    /// with the default shortlist); ids / scores [B, k].
    template <IndexBackend Be>
    void search_batch(const Be& be, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                      MatrixView<float> scores, const ExcludedIds& exclude = {}) const {
        constexpr std::string_view op = "retrieval::FunnelIndex::search_batch";
        ops::detail::check_layout(op, "queries", queries);
        ops::detail::check_layout(op, "ids", ids);
        ops::detail::check_layout(op, "scores", scores);
        const index_t nq = queries.rows();
        RECBLOCKS_CHECK_SHAPE(queries.cols() == dim(), op, ": queries is ", queries.shape(), " but items have ",
                              dim(), " columns");
        RECBLOCKS_CHECK_SHAPE(ids.rows() == nq && ids.cols() == k, op, ": ids is ", ids.shape(), " but expected [",
                              nq, ", ", k, "]");
        RECBLOCKS_CHECK_SHAPE(scores.rows() == nq && scores.cols() == k, op, ": scores is ", scores.shape(),
                              " but expected [", nq, ", ", k, "]");
        detail::check_batch_exclusion(op, exclude, nq);
        for (index_t b = 0; b < nq; ++b)
            search(be, vector_view(queries.row(b), dim()), k, vector_view(ids.row(b), k),
                   vector_view(scores.row(b), k), detail::excluded_of(exclude, b));
    }

    /// Shortlist of `shortlist` items at width d1, best k of them at width D.
    template <IndexBackend Be>
    void search(const Be& be, VectorView<const float> query, index_t k, index_t shortlist,
                VectorView<row_id_t> ids, VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::FunnelIndex::search";
        RECBLOCKS_CHECK_SHAPE(query.size() == dim(), op, ": query has ", query.size(), " entries but items have ",
                              dim());
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= shortlist, op, ": k = ", k, " but shortlist = ", shortlist,
                              "; need 1 <= k <= shortlist");
        RECBLOCKS_CHECK_VALUE(shortlist <= size(), op, ": shortlist = ", shortlist, " but the index has ", size(),
                              " items");
        RECBLOCKS_CHECK_SHAPE(ids.size() == k && scores.size() == k, op, ": ids has ", ids.size(), " and scores ",
                              scores.size(), " entries but k = ", k);
        detail::check_finite_query(op, query.data(), dim(), 0);
        auto& cand = thread_scratch<row_id_t, detail::FunnelTag>(std::size_t(shortlist));
        prefix_.search_unordered(be, vector_view(query.data(), prefix_dim()), shortlist,
                                 vector_view(cand.data(), shortlist), exclude);
        auto& s = thread_scratch<float, detail::FunnelTag>(std::size_t(shortlist));
        ops::score_ids(be, matrix_view<const float>(rows_.data(), n_, d_),
                       vector_view<const row_id_t>(cand.data(), shortlist), query, vector_view(s.data(), shortlist));
        detail::best_k_sorted(op, s.data(), std::span<const row_id_t>(cand.data(), std::size_t(shortlist)), k,
                              ids.data(), scores.data());
    }

private:
    index_t n_ = 0, d_ = 0, shortlist_ = 200;
    AlignedBuffer<float> rows_;  // [N, D] row-major: shortlisted rows are read whole
    ExactIndex<bf16> prefix_;    // the first d1 columns
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
