#pragma once
// Training batches for next-item prediction (SASRec's sampler), deterministic
// at a fixed seed: an epoch visits every user with at least two training
// items once, in an order shuffled by Rng(seed, epoch); a user's row is
//
//   ids = seq[:-1], pos = seq[1:]   (the last max_len of each, left-padded)
//   neg = one item per non-padded slot, uniform over the items the user has
//         never interacted with in training (the authors' rule)
//
// The negatives of a row are a pure function of (seed, step, user), so a run
// resumed at a step draws the same batches as an uninterrupted one.
#include <algorithm>
#include <numeric>
#include <span>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

class NextItemBatches {
public:
    /// train: per user, items in time order, ids in [1, num_items].
    NextItemBatches(const std::vector<std::vector<row_id_t>>& train, index_t num_items, index_t max_len,
                    std::uint64_t seed)
        : train_(train), num_items_(num_items), max_len_(max_len), seed_(seed) {
        constexpr std::string_view op = "data::NextItemBatches";
        RECBLOCKS_CHECK_VALUE(num_items >= 2 && max_len >= 1, op, ": need num_items >= 2 and max_len >= 1, got ",
                              num_items, " and ", max_len);
        seen_.resize(train.size());
        for (std::size_t u = 0; u < train.size(); ++u) {
            auto& s = seen_[u];
            s.assign(train[u].begin(), train[u].end());
            for (std::size_t i = 0; i < s.size(); ++i)
                RECBLOCKS_CHECK_INDEX(s[i] >= 1 && s[i] <= num_items, op, ": user ", u, " item ", i, " = ", s[i],
                                      " is outside [1, ", num_items, "]");
            std::sort(s.begin(), s.end());
            s.erase(std::unique(s.begin(), s.end()), s.end());
            if (train[u].size() >= 2) {
                RECBLOCKS_CHECK_VALUE(static_cast<index_t>(s.size()) < num_items, op, ": user ", u,
                                      " has interacted with every item; no negative can be drawn");
                eligible_.push_back(static_cast<index_t>(u));
            }
        }
        RECBLOCKS_CHECK_VALUE(!eligible_.empty(), op, ": no user has two or more training items");
    }

    /// Users that take part in training (>= 2 training items).
    [[nodiscard]] const std::vector<index_t>& users() const { return eligible_; }
    [[nodiscard]] index_t batches_per_epoch(index_t batch) const {
        return (static_cast<index_t>(eligible_.size()) + batch - 1) / batch;
    }

    /// The users of an epoch, shuffled (Fisher–Yates driven by Rng(seed, epoch)).
    [[nodiscard]] std::vector<index_t> epoch_order(std::uint64_t epoch) const {
        std::vector<index_t> order = eligible_;
        const Rng rng(seed_, 1'000'000 + epoch);
        for (std::size_t i = order.size(); i > 1; --i) {
            const std::size_t j = rng.below(i, static_cast<std::uint32_t>(i));
            std::swap(order[i - 1], order[j]);
        }
        return order;
    }

    /// The counted (non-padded) positions of these users' rows: what the batch's loss averages over.
    [[nodiscard]] index_t targets(std::span<const index_t> users) const {
        index_t n = 0;
        for (const index_t u : users) {
            RECBLOCKS_CHECK_INDEX(u >= 0 && u < static_cast<index_t>(train_.size()), "data::NextItemBatches::targets: user ",
                                  u, " is outside [0, ", train_.size(), ")");
            n += std::min<index_t>(max_len_, static_cast<index_t>(train_[static_cast<std::size_t>(u)].size()) - 1);
        }
        return n;
    }

    /// Fills ids, pos, neg [users.size(), max_len] for training step `step`.
    void fill(std::span<const index_t> users, std::uint64_t step, MatrixView<row_id_t> ids, MatrixView<row_id_t> pos,
              MatrixView<row_id_t> neg) const {
        const index_t b = static_cast<index_t>(users.size());
        for (auto* m : {&ids, &pos, &neg})
            RECBLOCKS_CHECK_SHAPE(m->rows() == b && m->cols() == max_len_, "data::NextItemBatches::fill: a batch matrix is ",
                                  m->shape(), " but need [", b, ", ", max_len_, "]");
        for (index_t r = 0; r < b; ++r) {
            const index_t u = users[static_cast<std::size_t>(r)];
            RECBLOCKS_CHECK_INDEX(u >= 0 && u < static_cast<index_t>(train_.size()), "data::NextItemBatches::fill: user ",
                                  u, " is outside [0, ", train_.size(), ")");
            const auto& s = train_[static_cast<std::size_t>(u)];
            const index_t n = std::min<index_t>(max_len_, static_cast<index_t>(s.size()) - 1);
            const index_t pad = max_len_ - n;
            const Rng rng = Rng(seed_, 2'000'000).substream(step).substream(static_cast<std::uint64_t>(u));
            std::uint64_t draw = 0;
            for (index_t t = 0; t < max_len_; ++t) {
                if (t < pad) {
                    ids(r, t) = pos(r, t) = neg(r, t) = 0;
                    continue;
                }
                const std::size_t j = s.size() - 1 - static_cast<std::size_t>(max_len_ - t);  // input index
                ids(r, t) = s[j];
                pos(r, t) = s[j + 1];
                neg(r, t) = negative(static_cast<std::size_t>(u), rng, draw);
            }
        }
    }

private:
    /// Uniform over 1..N minus the user's items, by rejection (cheap: users see few items).
    row_id_t negative(std::size_t u, const Rng& rng, std::uint64_t& draw) const {
        const auto& seen = seen_[u];
        for (;;) {
            const auto item = static_cast<row_id_t>(1 + rng.below(draw++, static_cast<std::uint32_t>(num_items_)));
            if (!std::binary_search(seen.begin(), seen.end(), item)) return item;
        }
    }

    std::vector<std::vector<row_id_t>> train_;  // a copy: callers may pass temporaries
    index_t num_items_, max_len_;
    std::uint64_t seed_;
    std::vector<std::vector<row_id_t>> seen_;
    std::vector<index_t> eligible_;
};

}  // namespace data
RECBLOCKS_NAMESPACE_END
