#pragma once
// FunnelIndex: adaptive retrieval for Matryoshka-style embeddings. A packed
// copy of the first d1 dimensions ([N, d1], so the shortlist scan reads
// d1 / D of the bytes) picks a shortlist by exact top-k at width d1; the
// shortlist is then re-ranked at full width D and the best k returned
// (score desc, id asc). Exact when shortlist = N; recall against full-width
// exact search is what the (d1, shortlist) pair trades for speed.
//
//   retrieval::FunnelIndex funnel(items, /*prefix_dim=*/16);
//   funnel.search(be, query, /*k=*/10, /*shortlist=*/200, ids, scores);
//
// rerank_top_k (the second stage on its own) also serves an int8 or bf16
// ExactIndex whose shortlist is re-scored against an f32 copy.
#include <algorithm>
#include <span>
#include <vector>

#include "recblocks/retrieval/exact_index.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {
namespace detail {
struct RerankTag {};
struct FunnelTag {};
}  // namespace detail

/// The k best of `candidates` by full-width score in `full`; ids / scores [k].
template <class Isa>
void rerank_top_k(const backend::Cpu<Isa>& be, const ExactIndex<float>& full, const float* query,
                  std::span<const row_id_t> candidates, index_t k, row_id_t* ids, float* scores) {
    constexpr std::string_view op = "retrieval::rerank_top_k";
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= index_t(candidates.size()), op, ": k = ", k, " but there are ",
                          candidates.size(), " candidates");
    for (std::size_t i = 0; i < candidates.size(); ++i)
        RECBLOCKS_CHECK_INDEX(candidates[i] >= 0 && candidates[i] < full.size(), op, ": candidate ", i, " = ",
                              candidates[i], " is out of range for ", full.size(), " items");
    const auto n = index_t(candidates.size());
    auto& s = cpu::thread_scratch<float, detail::RerankTag>(std::size_t(n));
    auto& order = cpu::thread_scratch<index_t, detail::RerankTag>(std::size_t(n));
    full.score_ids(be, query, candidates.data(), n, s.data());
    for (index_t i = 0; i < n; ++i) order[std::size_t(i)] = i;
    std::partial_sort(order.begin(), order.begin() + k, order.begin() + n, [&](index_t a, index_t b) {
        return detail::ranks_before(s[std::size_t(a)], candidates[std::size_t(a)], s[std::size_t(b)],
                                    candidates[std::size_t(b)]);
    });
    for (index_t i = 0; i < k; ++i) {
        ids[i] = candidates[std::size_t(order[std::size_t(i)])];
        scores[i] = s[std::size_t(order[std::size_t(i)])];
    }
}

class FunnelIndex {
public:
    /// Copies `items` [N, D] in full and its first `prefix_dim` columns packed.
    FunnelIndex(MatrixView<const float> items, index_t prefix_dim) : full_(items) {
        RECBLOCKS_CHECK_VALUE(prefix_dim >= 1 && prefix_dim <= items.cols(), "retrieval::FunnelIndex: prefix_dim = ",
                              prefix_dim, " but items have ", items.cols(), " columns; need 1 <= d1 <= D");
        prefix_ = ExactIndex<float>(matrix_view(items.data(), items.rows(), prefix_dim, items.ld()));
    }

    [[nodiscard]] index_t size() const { return full_.size(); }
    [[nodiscard]] index_t dim() const { return full_.dim(); }
    [[nodiscard]] index_t prefix_dim() const { return prefix_.dim(); }
    [[nodiscard]] const ExactIndex<float>& full() const { return full_; }
    [[nodiscard]] const ExactIndex<float>& prefix() const { return prefix_; }

    /// Shortlist of `shortlist` items at width d1, best k of them at width D.
    template <class Isa>
    void search(const backend::Cpu<Isa>& be, VectorView<const float> query, index_t k, index_t shortlist,
                VectorView<row_id_t> ids, VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::FunnelIndex::search";
        RECBLOCKS_CHECK_SHAPE(query.size() == dim(), op, ": query has ", query.size(), " entries but items have ",
                              dim());
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= shortlist, op, ": k = ", k, " but shortlist = ", shortlist,
                              "; need 1 <= k <= shortlist");
        RECBLOCKS_CHECK_SHAPE(ids.size() == k && scores.size() == k, op, ": ids has ", ids.size(), " and scores ",
                              scores.size(), " entries but k = ", k);
        auto& cand = cpu::thread_scratch<row_id_t, detail::FunnelTag>(std::size_t(shortlist));
        auto& cand_scores = cpu::thread_scratch<float, detail::FunnelTag>(std::size_t(shortlist));
        detail::check_finite_query(op, query.data(), dim(), 0);
        prefix_.search(be, vector_view(query.data(), prefix_dim()), shortlist, vector_view(cand.data(), shortlist),
                       vector_view(cand_scores.data(), shortlist), exclude);
        rerank_top_k(be, full_, query.data(), std::span<const row_id_t>(cand.data(), std::size_t(shortlist)), k,
                     ids.data(), scores.data());
    }

private:
    ExactIndex<float> full_;
    ExactIndex<float> prefix_;
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
