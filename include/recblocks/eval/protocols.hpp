#pragma once
// The two leave-one-out evaluation protocols of sequential recommendation,
// written against one row of scores so that any model can plug in:
//
//  * sampled (the SASRec paper's): the held-out item is ranked against 100
//    negatives drawn uniformly, without replacement, from the items the user
//    has not interacted with; the draw is a pure function of (seed, user).
//  * full: the held-out item is ranked against every item 1..N except the
//    user's history.
//
// Item ids are 1..N; id 0 is padding. A scores row therefore has N + 1
// entries and entry 0 is ignored. Ranks are 0-based and follow the tie rule of
// eval::rank_of_target: count the candidates with a strictly greater score
// (ties favour the held-out item). Feed them to eval::MetricsAccumulator.
// See docs/eval.md.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/core/types.hpp"
#include "recblocks/eval/metrics.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace eval {

/// Number of negatives of the sampled protocol in the SASRec paper.
inline constexpr index_t kSampledNegatives = 100;

/// Candidates of the sampled protocol for one user: `target` first, then `num_negatives` distinct
/// negatives drawn uniformly without replacement from the items 1..num_items that are neither in
/// `history` nor equal to `target`, in draw order.
///
/// The draw is a partial Fisher–Yates shuffle of the eligible items (in ascending id order) driven
/// by `Rng(seed, user)`: the same (seed, user, num_items, history, target) always gives the same
/// candidates, on any thread, in any user order. Cost O(num_items + |history|).
///
/// @param num_items      N >= 1, the number of items (ids 1..N).
/// @param target         the held-out item, in [1, N].
/// @param history        the user's items (any order, duplicates allowed), each in [0, N]; 0 (padding)
///                       is ignored, so a left-padded sequence row can be passed as is.
/// @param seed           evaluation seed.
/// @param user           user id, the Rng stream (one independent stream per user).
/// @param num_negatives  number of negatives, >= 1 (default 100).
/// @return               [1 + num_negatives] item ids.
/// Raises ValueError for N < 1, num_negatives < 1, or fewer than num_negatives eligible items;
/// IndexError for a target or history id out of range.
[[nodiscard]] inline std::vector<row_id_t> sampled_candidates(index_t num_items, index_t target,
                                                              std::span<const row_id_t> history,
                                                              std::uint64_t seed, std::uint64_t user,
                                                              index_t num_negatives = kSampledNegatives) {
    constexpr std::string_view op = "eval::sampled_candidates";
    RECBLOCKS_CHECK_VALUE(num_items >= 1 && num_items <= index_t{std::numeric_limits<row_id_t>::max()}, op,
                          ": num_items = ", num_items, " but need 1 <= num_items <= ",
                          std::numeric_limits<row_id_t>::max());
    RECBLOCKS_CHECK_VALUE(num_negatives >= 1, op, ": num_negatives = ", num_negatives, " but need >= 1");
    RECBLOCKS_CHECK_INDEX(target >= 1 && target <= num_items, op, ": target = ", target,
                          " is out of range for items 1..", num_items);
    std::vector<unsigned char> taken(static_cast<std::size_t>(num_items) + 1, 0);
    for (std::size_t i = 0; i < history.size(); ++i) {
        const index_t id = history[i];
        RECBLOCKS_CHECK_INDEX(id >= 0 && id <= num_items, op, ": history[", i, "] = ", id,
                              " is out of range for items 1..", num_items, " (0 = padding)");
        taken[static_cast<std::size_t>(id)] = 1;
    }
    taken[static_cast<std::size_t>(target)] = 1;
    std::vector<row_id_t> eligible;
    eligible.reserve(static_cast<std::size_t>(num_items));
    for (index_t id = 1; id <= num_items; ++id)
        if (!taken[static_cast<std::size_t>(id)]) eligible.push_back(static_cast<row_id_t>(id));
    const index_t e = static_cast<index_t>(eligible.size());
    RECBLOCKS_CHECK_VALUE(e >= num_negatives, op, ": user ", user, " has ", e,
                          " eligible negatives (items not in the history, not the target) but ", num_negatives,
                          " are needed");
    const Rng rng(seed, user);
    std::vector<row_id_t> out;
    out.reserve(static_cast<std::size_t>(num_negatives) + 1);
    out.push_back(static_cast<row_id_t>(target));
    for (index_t i = 0; i < num_negatives; ++i) {
        const auto remaining = static_cast<std::uint32_t>(e - i);
        const index_t j = i + static_cast<index_t>(rng.below(static_cast<std::uint64_t>(i), remaining));
        std::swap(eligible[static_cast<std::size_t>(i)], eligible[static_cast<std::size_t>(j)]);
        out.push_back(eligible[static_cast<std::size_t>(i)]);
    }
    return out;
}

/// 0-based rank of `candidates[0]` (the held-out item) among `candidates`: the number of
/// `candidates[1..]` whose score is strictly greater than the held-out item's (ties favour it).
///
/// @param scores      [N + 1] scores of one user over all items, index 0 = padding (never read).
/// @param candidates  [C >= 1] item ids in [1, N], held-out item first (e.g. from sampled_candidates).
/// Raises ShapeError for a row of fewer than 2 scores or no candidates, IndexError for a candidate
/// out of range, ValueError for a NaN candidate score.
[[nodiscard]] inline index_t rank_among_candidates(VectorView<const float> scores,
                                                   std::span<const row_id_t> candidates) {
    constexpr std::string_view op = "eval::rank_among_candidates";
    const index_t n = scores.size() - 1;
    RECBLOCKS_CHECK_SHAPE(n >= 1, op, ": scores is [", scores.size(),
                          "] but need [N + 1] with N >= 1 (index 0 = padding)");
    RECBLOCKS_CHECK_SHAPE(!candidates.empty(), op, ": candidates is [0] but need the held-out item first");
    const float* s = scores.data();
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        const index_t id = candidates[i];
        RECBLOCKS_CHECK_INDEX(id >= 1 && id <= n, op, ": candidates[", i, "] = ", id,
                              " is out of range for items 1..", n);
        RECBLOCKS_CHECK_VALUE(!std::isnan(s[id]), op, ": the score of candidates[", i, "] = ", id, " is NaN");
    }
    const float t = s[candidates[0]];
    index_t rank = 0;
    for (std::size_t i = 1; i < candidates.size(); ++i) rank += s[candidates[i]] > t ? 1 : 0;
    return rank;
}

/// Sampled protocol for one user: draws the candidates with sampled_candidates(N, target, history,
/// seed, user, num_negatives) and returns the target's 0-based rank among them.
///
/// @param scores         [N + 1] scores of one user over all items, index 0 = padding (ignored).
/// @param target         the held-out item, in [1, N].
/// @param history        the user's items, each in [0, N] (0 ignored); never drawn as negatives.
/// @param seed           evaluation seed.
/// @param user           user id (the Rng stream).
/// @param num_negatives  number of negatives (default 100).
/// Errors as sampled_candidates and rank_among_candidates.
[[nodiscard]] inline index_t rank_sampled(VectorView<const float> scores, index_t target,
                                          std::span<const row_id_t> history, std::uint64_t seed, std::uint64_t user,
                                          index_t num_negatives = kSampledNegatives) {
    RECBLOCKS_CHECK_SHAPE(scores.size() >= 2, "eval::rank_sampled: scores is [", scores.size(),
                          "] but need [N + 1] with N >= 1 (index 0 = padding)");
    const auto candidates = sampled_candidates(scores.size() - 1, target, history, seed, user, num_negatives);
    return rank_among_candidates(scores, candidates);
}

/// Full-ranking protocol for one user: the target's 0-based rank among all items 1..N except the
/// items of `history` (a history entry equal to the target is ignored: the target is always ranked).
/// Rank = number of those items with a score strictly greater than the target's.
///
/// @param scores   [N + 1] scores of one user over all items, index 0 = padding (never read).
/// @param target   the held-out item, in [1, N].
/// @param history  the user's items, each in [0, N] (0 ignored), excluded from the candidates.
/// Raises ShapeError for a row of fewer than 2 scores, IndexError for a target or history id out of
/// range, ValueError for a NaN score of the target or of a candidate. O(N + |history|).
[[nodiscard]] inline index_t rank_full(VectorView<const float> scores, index_t target,
                                       std::span<const row_id_t> history) {
    constexpr std::string_view op = "eval::rank_full";
    RECBLOCKS_CHECK_SHAPE(scores.size() >= 2, op, ": scores is [", scores.size(),
                          "] but need [N + 1] with N >= 1 (index 0 = padding)");
    return detail::rank_in_row(op, scores, target, history, 1);
}

}  // namespace eval
RECBLOCKS_NAMESPACE_END
