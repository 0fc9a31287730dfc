#pragma once
// Rank-based top-K metrics (HR@K, NDCG@K, MRR@K) for one held-out item per
// user, the tie rule used to rank that item, and an accumulator that averages
// the metrics over users deterministically. The evaluation protocols that
// produce the ranks (100 sampled negatives, full ranking) are in
// eval/protocols.hpp. See docs/eval.md.
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace eval {

namespace detail {
inline void check_rank_k(std::string_view op, index_t rank, index_t k) {
    RECBLOCKS_CHECK_VALUE(k >= 1, op, ": k = ", k, " but need k >= 1");
    RECBLOCKS_CHECK_VALUE(rank >= 0, op, ": rank = ", rank, " but need rank >= 0 (ranks are 0-based)");
}
}  // namespace detail

/// Hit rate at K of one user: 1 if the held-out item is in the top K, else 0.
/// @param rank  0-based rank of the held-out item among its candidates (0 = best); rank >= 0.
/// @param k     cut-off K >= 1.
/// Raises ValueError for k < 1 or rank < 0.
[[nodiscard]] inline double hit_rate_at(index_t rank, index_t k) {
    detail::check_rank_k("eval::hit_rate_at", rank, k);
    return rank < k ? 1.0 : 0.0;
}

/// NDCG at K of one user with one relevant item: 1 / log2(rank + 2) if rank < K, else 0
/// (rank 0 gives 1; the ideal DCG is 1, so DCG = NDCG).
/// @param rank  0-based rank of the held-out item among its candidates; rank >= 0.
/// @param k     cut-off K >= 1.
/// Raises ValueError for k < 1 or rank < 0.
[[nodiscard]] inline double ndcg_at(index_t rank, index_t k) {
    detail::check_rank_k("eval::ndcg_at", rank, k);
    return rank < k ? 1.0 / std::log2(static_cast<double>(rank) + 2.0) : 0.0;
}

/// Reciprocal rank at K of one user: 1 / (rank + 1) if rank < K, else 0.
/// @param rank  0-based rank of the held-out item among its candidates; rank >= 0.
/// @param k     cut-off K >= 1.
/// Raises ValueError for k < 1 or rank < 0.
[[nodiscard]] inline double mrr_at(index_t rank, index_t k) {
    detail::check_rank_k("eval::mrr_at", rank, k);
    return rank < k ? 1.0 / (static_cast<double>(rank) + 1.0) : 0.0;
}

/// 0-based rank of `target` in one row of scores, among every index of the row
/// except `target` itself and the ids in `excluded`.
///
/// Tie rule (the one of the public SASRec / BERT4Rec evaluation code): the rank
/// is the number of candidates whose score is *strictly greater* than the
/// target's, so candidates with an equal score do not push the target down
/// (ties favour the target). Both protocols of eval/protocols.hpp use it.
///
/// @param scores    [N] scores of one row (any model; higher is better).
/// @param target    index of the held-out item, in [0, N).
/// @param excluded  ids not to count as candidates, each in [0, N); duplicates are fine and an entry
///                  equal to `target` is ignored (the target is always ranked).
/// Raises IndexError for a target or excluded id out of range, ValueError if the target's score or
/// the score of any counted candidate is NaN (excluded scores are not read). O(N + |excluded|).
[[nodiscard]] inline index_t rank_of_target(VectorView<const float> scores, index_t target,
                                            std::span<const row_id_t> excluded = {});

namespace detail {
/// Shared body of rank_of_target and eval::rank_full: candidates are the indices [first, n) other
/// than `target` and the ids in `excluded` (ids in [0, first) are allowed in `excluded` and ignored).
inline index_t rank_in_row(std::string_view op, VectorView<const float> scores, index_t target,
                           std::span<const row_id_t> excluded, index_t first) {
    const index_t n = scores.size();
    RECBLOCKS_CHECK_INDEX(target >= first && target < n, op, ": target = ", target, " is out of range [", first,
                          ", ", n, ") for a row of ", n, " scores");
    std::vector<unsigned char> skip(static_cast<std::size_t>(n), 0);
    for (std::size_t i = 0; i < excluded.size(); ++i) {
        const index_t id = excluded[i];
        RECBLOCKS_CHECK_INDEX(id >= 0 && id < n, op, ": excluded id ", id, " (entry ", i,
                              ") is out of range for a row of ", n, " scores");
        skip[static_cast<std::size_t>(id)] = 1;
    }
    skip[static_cast<std::size_t>(target)] = 1;
    const float* s = scores.data();
    const float t = s[target];
    RECBLOCKS_CHECK_VALUE(!std::isnan(t), op, ": the score of target ", target, " is NaN");
    index_t rank = 0;
    for (index_t j = first; j < n; ++j) {
        if (skip[static_cast<std::size_t>(j)]) continue;
        RECBLOCKS_CHECK_VALUE(!std::isnan(s[j]), op, ": scores[", j, "] is NaN");
        rank += s[j] > t ? 1 : 0;
    }
    return rank;
}
}  // namespace detail

inline index_t rank_of_target(VectorView<const float> scores, index_t target, std::span<const row_id_t> excluded) {
    return detail::rank_in_row("eval::rank_of_target", scores, target, excluded, 0);
}

/// HR@K, NDCG@K and MRR@K averaged over the users added so far.
struct MetricsAtK {
    index_t k = 0;       ///< the cut-off K
    double hit_rate = 0; ///< mean HR@K
    double ndcg = 0;     ///< mean NDCG@K
    double mrr = 0;      ///< mean MRR@K
};

/// Accumulates HR@K, NDCG@K and MRR@K over users for a list of K values and
/// returns their means. Deterministic: per-user values are summed in double in
/// the order `add` is called (add users in a fixed order, e.g. by user id, for
/// the same bits on every run).
class MetricsAccumulator {
public:
    /// @param ks  the cut-offs, e.g. {1, 5, 10}; non-empty, each >= 1, no duplicates.
    /// Raises ValueError otherwise.
    explicit MetricsAccumulator(std::vector<index_t> ks) : ks_(std::move(ks)), sums_(ks_.size()) {
        constexpr std::string_view op = "eval::MetricsAccumulator";
        RECBLOCKS_CHECK_VALUE(!ks_.empty(), op, ": ks is empty but need at least one cut-off");
        for (std::size_t i = 0; i < ks_.size(); ++i) {
            RECBLOCKS_CHECK_VALUE(ks_[i] >= 1, op, ": ks[", i, "] = ", ks_[i], " but need k >= 1");
            for (std::size_t j = 0; j < i; ++j)
                RECBLOCKS_CHECK_VALUE(ks_[j] != ks_[i], op, ": ks[", i, "] = ", ks_[i], " repeats ks[", j, "]");
        }
    }

    /// Adds one user.
    /// @param rank  0-based rank of the user's held-out item (from eval::rank_full, eval::rank_sampled
    ///              or rank_of_target); rank >= 0, else ValueError.
    void add(index_t rank) {
        RECBLOCKS_CHECK_VALUE(rank >= 0, "eval::MetricsAccumulator::add: rank = ", rank,
                              " but need rank >= 0 (ranks are 0-based)");
        for (std::size_t i = 0; i < ks_.size(); ++i) {
            const index_t k = ks_[i];
            sums_[i].hit_rate += hit_rate_at(rank, k);
            sums_[i].ndcg += ndcg_at(rank, k);
            sums_[i].mrr += mrr_at(rank, k);
        }
        ++count_;
    }

    /// Number of users added.
    [[nodiscard]] index_t count() const { return count_; }

    /// The cut-offs, in the order given to the constructor.
    [[nodiscard]] const std::vector<index_t>& ks() const { return ks_; }

    /// Means for every cut-off, in the order of `ks()`. Raises ValueError if no user was added.
    [[nodiscard]] std::vector<MetricsAtK> results() const {
        std::vector<MetricsAtK> out;
        out.reserve(ks_.size());
        for (const index_t k : ks_) out.push_back(at(k));
        return out;
    }

    /// Means for one cut-off.
    /// @param k  one of `ks()`; ValueError otherwise, or if no user was added.
    [[nodiscard]] MetricsAtK at(index_t k) const {
        constexpr std::string_view op = "eval::MetricsAccumulator::at";
        RECBLOCKS_CHECK_VALUE(count_ > 0, op, ": no user was added, the means are undefined");
        for (std::size_t i = 0; i < ks_.size(); ++i) {
            if (ks_[i] != k) continue;
            const double n = static_cast<double>(count_);
            return {k, sums_[i].hit_rate / n, sums_[i].ndcg / n, sums_[i].mrr / n};
        }
        RECBLOCKS_CHECK_VALUE(false, op, ": k = ", k, " is not one of the accumulated cut-offs");
        return {};
    }

    /// Mean HR@K over the users added; `k` must be one of `ks()`.
    [[nodiscard]] double hit_rate(index_t k) const { return at(k).hit_rate; }
    /// Mean NDCG@K over the users added; `k` must be one of `ks()`.
    [[nodiscard]] double ndcg(index_t k) const { return at(k).ndcg; }
    /// Mean MRR@K over the users added; `k` must be one of `ks()`.
    [[nodiscard]] double mrr(index_t k) const { return at(k).mrr; }

    /// Forgets every user (the cut-offs stay).
    void reset() {
        for (auto& s : sums_) s = {};
        count_ = 0;
    }

private:
    struct Sums {
        double hit_rate = 0, ndcg = 0, mrr = 0;
    };
    std::vector<index_t> ks_;
    std::vector<Sums> sums_;
    index_t count_ = 0;
};

}  // namespace eval
RECBLOCKS_NAMESPACE_END
