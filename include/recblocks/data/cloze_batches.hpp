#pragma once
// Training batches for the cloze objective (BERT4Rec), deterministic at a
// fixed seed. An epoch visits every user with at least two training items
// once, in an order shuffled by Rng(seed, epoch) (as data::NextItemBatches).
// A user's row is the last max_len of their training items, left-padded,
// with each item replaced by [mask] (= num_items + 1) independently with
// probability mask_prob; when no item was drawn, one item chosen uniformly
// is masked, so every row has at least one target:
//
//   ids[t]    = [mask] if masked, else the item (0 where padded)
//   labels[t] = the original item if masked, else 0
//
// By default masking follows the paper's text: a masked item always becomes
// [mask] (no BERT 80/10/10 replacement) and the last item gets no special
// treatment. The authors' code (FeiSun/BERT4Rec gen_data_fin.py) differs in
// ways kept out of the default: it masks exactly round(ρ·n) items (at most
// max_predictions_per_seq, 40 for ML-1M) instead of each with probability ρ;
// it cuts long histories into sliding windows instead of keeping the last
// max_len items; and next to its 10 randomly masked copies of each window
// (dupe_factor) it adds one copy with only the last item masked (mask_last),
// i.e. 1 row in 11. `mask_last_prob` reproduces that last rule in
// expectation (1/11), and is 0 by default.
//
// Every epoch draws fresh masks (the authors' code draws its 10 copies once,
// ahead of training): a row's masks are a pure function of (seed, step,
// user), so a run resumed at a step draws the same batches.
#include <algorithm>
#include <span>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

class ClozeBatches {
public:
    /// train: per user, items in time order, ids in [1, num_items]; mask_prob in (0, 1];
    /// mask_last_prob in [0, 1]: the probability that a row masks its last item only.
    ClozeBatches(const std::vector<std::vector<row_id_t>>& train, index_t num_items, index_t max_len, double mask_prob,
                 std::uint64_t seed, double mask_last_prob = 0.0)
        : train_(train), num_items_(num_items), max_len_(max_len), mask_prob_(mask_prob),
          mask_last_prob_(mask_last_prob), seed_(seed) {
        constexpr std::string_view op = "data::ClozeBatches";
        RECBLOCKS_CHECK_VALUE(num_items >= 1 && max_len >= 1, op, ": need num_items >= 1 and max_len >= 1, got ",
                              num_items, " and ", max_len);
        RECBLOCKS_CHECK_VALUE(mask_prob > 0 && mask_prob <= 1, op, ": mask_prob must be in (0, 1], got ", mask_prob);
        RECBLOCKS_CHECK_VALUE(mask_last_prob >= 0 && mask_last_prob <= 1, op, ": mask_last_prob must be in [0, 1], got ",
                              mask_last_prob);
        for (std::size_t u = 0; u < train.size(); ++u) {
            const auto& s = train[u];
            for (std::size_t i = 0; i < s.size(); ++i)
                RECBLOCKS_CHECK_INDEX(s[i] >= 1 && s[i] <= num_items, op, ": user ", u, " item ", i, " = ", s[i],
                                      " is outside [1, ", num_items, "]");
            if (s.size() >= 2) eligible_.push_back(static_cast<index_t>(u));
        }
        RECBLOCKS_CHECK_VALUE(!eligible_.empty(), op, ": no user has two or more training items");
    }

    [[nodiscard]] row_id_t mask_token() const { return static_cast<row_id_t>(num_items_ + 1); }
    [[nodiscard]] double mask_prob() const { return mask_prob_; }
    [[nodiscard]] double mask_last_prob() const { return mask_last_prob_; }
    [[nodiscard]] index_t max_len() const { return max_len_; }
    /// Users that take part in training (>= 2 training items).
    [[nodiscard]] const std::vector<index_t>& users() const { return eligible_; }
    [[nodiscard]] index_t batches_per_epoch(index_t batch) const {
        RECBLOCKS_CHECK_VALUE(batch >= 1, "data::ClozeBatches: batch size must be >= 1, got ", batch);
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

    /// Fills ids and labels [users.size(), max_len] for training step `step`.
    void fill(std::span<const index_t> users, std::uint64_t step, MatrixView<row_id_t> ids,
              MatrixView<row_id_t> labels) const {
        const index_t b = static_cast<index_t>(users.size());
        for (auto* m : {&ids, &labels})
            RECBLOCKS_CHECK_SHAPE(m->rows() == b && m->cols() == max_len_, "data::ClozeBatches::fill: a batch matrix is ",
                                  m->shape(), " but need [", b, ", ", max_len_, "]");
        const float p = static_cast<float>(mask_prob_);
        for (index_t r = 0; r < b; ++r) {
            const index_t u = users[static_cast<std::size_t>(r)];
            RECBLOCKS_CHECK_INDEX(u >= 0 && u < static_cast<index_t>(train_.size()), "data::ClozeBatches::fill: user ",
                                  u, " is outside [0, ", train_.size(), ")");
            const auto& s = train_[static_cast<std::size_t>(u)];
            const index_t n = std::min<index_t>(max_len_, static_cast<index_t>(s.size()));
            const index_t pad = max_len_ - n;
            const Rng rng = Rng(seed_, 3'000'000).substream(step).substream(static_cast<std::uint64_t>(u));
            row_id_t* id = ids.row(r);
            row_id_t* label = labels.row(r);
            // Draw indices: 0..L-1 the per-slot masks, L the fallback slot, L + 1 the mask-last choice.
            const bool last_only =
                mask_last_prob_ > 0 && rng.uniform(static_cast<std::uint64_t>(max_len_ + 1)) < static_cast<float>(mask_last_prob_);
            index_t masked = 0;
            for (index_t t = 0; t < max_len_; ++t) {
                label[t] = 0;
                if (t < pad) {
                    id[t] = 0;
                    continue;
                }
                id[t] = s[s.size() - static_cast<std::size_t>(max_len_ - t)];
                if (last_only ? t == max_len_ - 1 : rng.uniform(static_cast<std::uint64_t>(t)) < p) {
                    label[t] = id[t];
                    id[t] = mask_token();
                    ++masked;
                }
            }
            if (masked == 0 && n > 0) {
                const index_t t = pad + static_cast<index_t>(rng.below(static_cast<std::uint64_t>(max_len_),
                                                                       static_cast<std::uint32_t>(n)));
                label[t] = id[t];
                id[t] = mask_token();
            }
        }
    }

private:
    std::vector<std::vector<row_id_t>> train_;  // a copy: callers may pass temporaries
    index_t num_items_, max_len_;
    double mask_prob_, mask_last_prob_;
    std::uint64_t seed_;
    std::vector<index_t> eligible_;
};

}  // namespace data
RECBLOCKS_NAMESPACE_END
