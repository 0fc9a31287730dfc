#pragma once
// A click-through task from time-ordered user histories (DARE-style long
// sequences): every event at position p >= min_history of a user's sequence is
// one positive impression (target = that item, history = the user's items
// before it, the last max_history of them) plus `negatives` negative
// impressions with the same history and a target drawn uniformly from the items
// the user never interacted with. Time-ordered split: the last `test_events`
// events of each user give the test impressions, the rest train.
//
// Impressions refer to histories by (user, end position), so the task costs
// O(events), not O(events x history length). Draws are addressed by
// (seed, user, position, j): the same task whatever the order of construction.
#include <algorithm>
#include <span>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/data/sequence_dataset.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

struct CtrImpression {
    index_t user = 0;      ///< index into the dataset's sequences
    index_t end = 0;       ///< the history is sequences[user][begin, end)
    index_t begin = 0;
    row_id_t target = 0;
    float label = 0;       ///< 1 positive, 0 negative
};

struct LongHistoryCtrOptions {
    index_t min_history = 20;   ///< events before the first impression (>= the model's top_k)
    index_t max_history = 10000;
    index_t test_events = 5;    ///< last events of each user for test
    index_t negatives = 1;      ///< negatives per positive
    std::uint64_t seed = 1;
};

struct LongHistoryCtr {
    std::vector<CtrImpression> train, test;

    /// The behaviour ids of an impression's history.
    static std::span<const row_id_t> history(const SequenceDataset& d, const CtrImpression& x) {
        return std::span<const row_id_t>(d.sequences[std::size_t(x.user)]).subspan(std::size_t(x.begin),
                                                                                   std::size_t(x.end - x.begin));
    }
};

/// Builds the task. A user's first min_history events are history only; a user
/// with fewer than min_history + test_events events gives fewer test events.
inline LongHistoryCtr build_long_history_ctr(const SequenceDataset& d, const LongHistoryCtrOptions& o) {
    RECBLOCKS_CHECK_VALUE(o.min_history >= 1 && o.max_history >= o.min_history && o.test_events >= 0 && o.negatives >= 0,
                          "data::build_long_history_ctr: need 1 <= min_history <= max_history, test_events >= 0 and "
                          "negatives >= 0; got min_history ", o.min_history, ", max_history ", o.max_history,
                          ", test_events ", o.test_events, ", negatives ", o.negatives);
    const index_t n_items = d.num_items();
    LongHistoryCtr task;
    std::vector<std::uint8_t> seen(std::size_t(n_items) + 1, 0);
    for (index_t u = 0; u < d.num_users(); ++u) {
        const auto& s = d.sequences[std::size_t(u)];
        const index_t m = static_cast<index_t>(s.size());
        for (row_id_t it : s) seen[std::size_t(it)] = 1;
        const index_t unseen = n_items - static_cast<index_t>(std::count(seen.begin() + 1, seen.end(), std::uint8_t{1}));
        const Rng rng(o.seed, std::uint64_t(u));
        for (index_t p = o.min_history; p < m; ++p) {
            auto& out = p >= m - o.test_events ? task.test : task.train;
            const index_t begin = std::max<index_t>(0, p - o.max_history);
            out.push_back(CtrImpression{u, p, begin, s[std::size_t(p)], 1.0f});
            for (index_t j = 0; j < o.negatives && unseen > 0; ++j) {
                // Rejection sampling: most users rated a small share of the catalogue.
                row_id_t neg = 0;
                for (std::uint64_t draw = 0;; ++draw) {
                    neg = static_cast<row_id_t>(1 + rng.below((std::uint64_t(p) * 64 + std::uint64_t(j)) * 4096 + draw,
                                                              std::uint32_t(n_items)));
                    if (!seen[std::size_t(neg)]) break;
                }
                out.push_back(CtrImpression{u, p, begin, neg, 0.0f});
            }
        }
        for (row_id_t it : s) seen[std::size_t(it)] = 0;
    }
    return task;
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
