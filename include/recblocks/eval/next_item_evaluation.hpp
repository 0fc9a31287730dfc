#pragma once
// Leave-one-out evaluation of any next-item model over EVERY evaluated user
// (not a sample), under either protocol of eval/protocols.hpp:
//
//   test:        input = train + validation item (last max_len), target = test item
//   validation:  input = train,                               target = validation item
//
// The items excluded from the ranking (full) or from the negatives (sampled)
// are the user's input items and, for the test, the validation item. A model
// is anything with `score_all(be, pool, ids [B, L], scores [B, N + 1])`.
// Deterministic at a fixed seed, whatever the batch size or thread count.
#include <algorithm>
#include <span>
#include <string_view>
#include <vector>

#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/data/leave_one_out.hpp"
#include "recblocks/data/left_padded_batch.hpp"
#include "recblocks/eval/protocols.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace eval {

enum class Protocol : std::uint8_t { sampled, full };

[[nodiscard]] inline std::string_view protocol_name(Protocol p) { return p == Protocol::sampled ? "sampled" : "full"; }

struct NextItemEvalOptions {
    Protocol protocol = Protocol::sampled;
    bool validation = false;        ///< rank the validation item instead of the test item
    std::uint64_t seed = 2018;      ///< negatives of the sampled protocol
    index_t num_negatives = kSampledNegatives;
    index_t batch_size = 256;
    std::vector<index_t> ks{1, 5, 10, 20};
};

/// Checks before training that evaluate_next_item() can run with `opt` on
/// `split` (so a run does not fail after its last epoch): some user has a test
/// item (3+ interactions), and under the sampled protocol every evaluated user
/// has `num_negatives` items left to draw from once the test input and target
/// are excluded (with 100 negatives the catalogue needs at least 101 items).
/// ValueError naming the user index and the counts otherwise.
inline void check_evaluation(const data::LeaveOneOut& split, index_t num_items, const NextItemEvalOptions& opt) {
    const std::vector<index_t> users = split.evaluated_users();
    RECBLOCKS_CHECK_VALUE(!users.empty(), "eval::check_evaluation: no user has 3 or more interactions, so no user has a "
                                          "validation and a test item (", split.train.size(), " users)");
    if (opt.protocol != Protocol::sampled) return;
    RECBLOCKS_CHECK_VALUE(num_items >= opt.num_negatives + 1, "eval::check_evaluation: the sampled protocol ranks the "
                          "target among ", opt.num_negatives, " sampled negatives, so it needs at least ",
                          opt.num_negatives + 1, " items, but the data set has ", num_items,
                          "; evaluate with the full protocol instead");
    std::vector<row_id_t> seen;
    for (const index_t u : users) {
        const auto su = static_cast<std::size_t>(u);
        seen.assign(split.train[su].begin(), split.train[su].end());
        seen.push_back(split.valid[su]);
        seen.push_back(split.test[su]);
        std::sort(seen.begin(), seen.end());
        seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
        const auto distinct = static_cast<index_t>(seen.size()) - (seen.front() == 0 ? 1 : 0);
        RECBLOCKS_CHECK_VALUE(num_items - distinct >= opt.num_negatives, "eval::check_evaluation: the sampled protocol "
                              "draws ", opt.num_negatives, " negatives among the items a user has not interacted with, "
                              "but user index ", u, " has interacted with ", distinct, " of the ", num_items,
                              " items; evaluate with the full protocol instead");
    }
}

template <class Model, class Be>
MetricsAccumulator evaluate_next_item(Model& model, const Be& be, ThreadPool& pool, const data::LeaveOneOut& split,
                                      index_t num_items, index_t max_len, const NextItemEvalOptions& opt) {
    RECBLOCKS_CHECK_VALUE(opt.batch_size >= 1, "eval::evaluate_next_item: batch_size must be >= 1, got ", opt.batch_size);
    MetricsAccumulator acc(opt.ks);
    const std::vector<index_t> users = split.evaluated_users();
    std::vector<std::vector<row_id_t>> inputs;
    Matrix<row_id_t> ids;
    Matrix<float> scores;
    for (std::size_t b0 = 0; b0 < users.size(); b0 += static_cast<std::size_t>(opt.batch_size)) {
        const std::size_t nb = std::min(users.size() - b0, static_cast<std::size_t>(opt.batch_size));
        inputs.assign(nb, {});
        for (std::size_t i = 0; i < nb; ++i) {
            const auto u = static_cast<std::size_t>(users[b0 + i]);
            inputs[i] = split.train[u];
            if (!opt.validation) inputs[i].push_back(split.valid[u]);
        }
        std::vector<std::span<const row_id_t>> spans(inputs.begin(), inputs.end());
        if (ids.extent(0) != static_cast<index_t>(nb)) {
            ids.resize(Shape<2>{{static_cast<index_t>(nb), max_len}});
            scores.resize(Shape<2>{{static_cast<index_t>(nb), num_items + 1}});
        }
        data::left_padded_batch(spans, ids.view());
        model.score_all(be, pool, ids.cview(), scores.view());
        for (std::size_t i = 0; i < nb; ++i) {
            const auto u = static_cast<std::size_t>(users[b0 + i]);
            const index_t target = opt.validation ? split.valid[u] : split.test[u];
            const auto row = vector_view<const float>(scores.view().row(static_cast<index_t>(i)), num_items + 1);
            const index_t rank = opt.protocol == Protocol::sampled
                                     ? rank_sampled(row, target, inputs[i], opt.seed, u, opt.num_negatives)
                                     : rank_full(row, target, inputs[i]);
            acc.add(rank);
        }
    }
    return acc;
}

}  // namespace eval
RECBLOCKS_NAMESPACE_END
