#pragma once
// FunnelIndex: adaptive retrieval for Matryoshka-style embeddings. A copy of
// the first d1 dimensions (so the shortlist scan reads d1 / D of the bytes)
// picks a shortlist by exact top-k at width d1; the shortlist is then
// re-ranked at full width D and the best k returned (score desc, id asc).
// Exact when shortlist = N; recall against full-width exact search is what
// the (d1, shortlist) pair trades for speed.
//
// The prefix copy is stored in column panels of 64 rows (no horizontal sums
// in the scan); a threshold from a sample of panels lets one fused pass keep
// only ~2 x shortlist rows, and bisection picks the shortlist among them (no
// heap, no sort). The full rows stay row-major, so re-ranking reads each
// shortlisted row whole. On the 9,724-item trained catalogue this cut a
// d1 = 16, shortlist 200 query from 73 us (row-major prefix, 200-entry heap)
// to about 14.
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
    auto& keys = cpu::thread_scratch<std::uint64_t, RerankTag>(n);
    for (std::size_t i = 0; i < n; ++i) keys[i] = rank_key(s[i], candidates[i]);
    std::partial_sort(keys.begin(), keys.begin() + k, keys.begin() + std::ptrdiff_t(n), std::greater<>());
    for (index_t i = 0; i < k; ++i) {
        ids[i] = key_id(keys[std::size_t(i)]);
        scores[i] = key_score(keys[std::size_t(i)]);
        RECBLOCKS_CHECK_VALUE(!std::isnan(scores[i]), op, ": the score of item ", ids[i],
                              " is NaN (the query times the table overflows)");
    }
}
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
    auto& s = cpu::thread_scratch<float, detail::RerankTag>(candidates.size());
    full.score_ids(be, query, candidates.data(), index_t(candidates.size()), s.data());
    detail::best_k_sorted(op, s.data(), candidates, k, ids, scores);
}

class FunnelIndex {
public:
    static constexpr index_t kPanelRows = cpu::kRetrievalPanelRows;
    static constexpr index_t kMinRowsPerThread = 32768;

    /// Copies `items` [N, D] in full (row-major, for the re-rank) and its
    /// first `prefix_dim` columns in panels (for the shortlist scan).
    FunnelIndex(MatrixView<const float> items, index_t prefix_dim) {
        detail::check_items("retrieval::FunnelIndex", items);
        RECBLOCKS_CHECK_VALUE(prefix_dim >= 1 && prefix_dim <= items.cols(), "retrieval::FunnelIndex: prefix_dim = ",
                              prefix_dim, " but items have ", items.cols(), " columns; need 1 <= d1 <= D");
        n_ = items.rows();
        d_ = items.cols();
        d1_ = prefix_dim;
        rows_.resize(n_ * d_);
        for (index_t r = 0; r < n_; ++r)
            for (index_t c = 0; c < d_; ++c) rows_[r * d_ + c] = items(r, c);
        const index_t n = n_, panels = (n + kPanelRows - 1) / kPanelRows;
        panels_.resize(panels * kPanelRows * d1_);  // zeroed: the last panel's padding rows score 0
        for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < d1_; ++c)
                panels_[(r / kPanelRows) * kPanelRows * d1_ + c * kPanelRows + r % kPanelRows] = items(r, c);
    }

    [[nodiscard]] index_t size() const { return n_; }
    [[nodiscard]] index_t dim() const { return d_; }
    [[nodiscard]] index_t prefix_dim() const { return d1_; }

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
        detail::check_finite_query(op, query.data(), dim(), 0);
        detail::check_exclusion(op, exclude, size(), shortlist, 0);
        auto& cand = cpu::thread_scratch<row_id_t, detail::FunnelTag>(std::size_t(shortlist));
        pick_shortlist(be, query.data(), shortlist, exclude, cand.data());
        auto& s = cpu::thread_scratch<float, detail::RerankTag>(std::size_t(shortlist));
        detail::retrieval_kernels(be).score_ids_f32(rows_.data(), d_, cand.data(), shortlist, d_, query.data(),
                                                    nullptr, s.data());
        detail::best_k_sorted(op, s.data(), std::span<const row_id_t>(cand.data(), std::size_t(shortlist)), k,
                              ids.data(), scores.data());
    }

private:
    static constexpr index_t kSamplePanels = 8;

    /// The `shortlist` best rows by prefix score (minus `ex`), unordered.
    /// A sample of whole panels spread over the table gives a threshold; one
    /// fused pass scores every panel and keeps only the rows above it (too
    /// few: retry with a lower one); bisection picks the best of those.
    template <class Isa>
    void pick_shortlist(const backend::Cpu<Isa>& be, const float* q, index_t shortlist,
                        std::span<const row_id_t> ex, row_id_t* out) const {
        const auto& kt = detail::retrieval_kernels(be);
        const index_t n = size(), panels = (n + kPanelRows - 1) / kPanelRows;
        const index_t parts = std::clamp<index_t>(n / kMinRowsPerThread, 1, be.threads().size());
        const auto room = std::size_t(n + 16 * parts);
        auto& cand_v = cpu::thread_scratch<float, detail::FunnelTag>(room);
        auto& cand_id = cpu::thread_scratch<row_id_t, detail::RerankTag>(room);
        auto& keys = cpu::thread_scratch<std::uint32_t, detail::FunnelTag>(room);
        auto& part_count = cpu::thread_scratch<index_t, detail::FunnelTag>(std::size_t(parts));
        // The sample: kSamplePanels whole panels, evenly spaced.
        alignas(64) float sample[kSamplePanels * kPanelRows];
        index_t m = 0;
        const index_t sampled = std::min(panels, kSamplePanels);
        for (index_t i = 0; i < sampled; ++i) {
            const index_t r0 = (panels * i / sampled) * kPanelRows, rows = std::min(kPanelRows, n - r0);
            kt.score_panels_f32(panels_.data() + r0 * d1_, rows, d1_, q, nullptr, sample + m);
            m += rows;
        }
        for (index_t i = 0; i < m; ++i)  // NaN (an overflowing query) would make the threshold meaningless
            RECBLOCKS_CHECK_VALUE(!std::isnan(sample[i]), "retrieval::FunnelIndex::search: a prefix score is NaN ",
                                  "(the query times the table overflows)");
        index_t count = 0;
        for (index_t widen = 1;; widen *= 4) {
            float thr = 0.0f;
            const bool keep_all = !detail::sampled_threshold(kt, sample, m, n, shortlist, widen, keys.data(), thr);
            // Part p writes from its first row + 16 p: its survivors fit, and
            // the 16 spare entries it may scribble on belong to nobody else.
            auto body = [&](index_t p) {
                const index_t r0 = panels * p / parts * kPanelRows;
                const index_t r1 = std::min(n, panels * (p + 1) / parts * kPanelRows);
                float* v = cand_v.data() + r0 + 16 * p;
                row_id_t* id = cand_id.data() + r0 + 16 * p;
                index_t c = 0;
                if (r1 > r0 && keep_all) {
                    kt.score_panels_f32(panels_.data() + r0 * d1_, r1 - r0, d1_, q, nullptr, v);
                    for (index_t j = 0; j < r1 - r0; ++j) id[j] = static_cast<row_id_t>(r0 + j);
                    c = r1 - r0;
                } else if (r1 > r0) {
                    c = kt.score_panels_above_f32(panels_.data() + r0 * d1_, r1 - r0, d1_, q, thr,
                                                  static_cast<row_id_t>(r0), v, id);
                }
                part_count[std::size_t(p)] = c;
            };
            if (parts == 1) body(0);
            else be.threads().run(parts, body);
            count = 0;  // close the gaps between the parts, in id order
            for (index_t p = 0; p < parts; ++p) {
                const index_t from = panels * p / parts * kPanelRows + 16 * p, c = part_count[std::size_t(p)];
                std::copy(cand_v.data() + from, cand_v.data() + from + c, cand_v.data() + count);
                std::copy(cand_id.data() + from, cand_id.data() + from + c, cand_id.data() + count);
                count += c;
            }
            count = detail::drop_excluded(cand_v.data(), cand_id.data(), count, ex);
            if (count >= shortlist || keep_all) break;
        }
        detail::best_k_of(kt, cand_v.data(), cand_id.data(), count, shortlist, out, keys.data());
    }

    index_t n_ = 0, d_ = 0, d1_ = 0;
    AlignedBuffer<float> rows_;    // [N, D] row-major: shortlisted rows are read whole
    AlignedBuffer<float> panels_;  // [panels][d1][64]: the first d1 columns, column by column per 64 rows
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
