#pragma once
// Keeping the best model by a validation metric and stopping when it no
// longer improves (RecBole's `valid_metric` / `stopping_step`, Keras'
// EarlyStopping). The tracker only decides; the caller evaluates, saves the
// best weights when told they improved, and stops when told to.
//
//   train::EarlyStopping stop({.patience = 3, .min_delta = 1e-4});
//   for (epoch ...) {
//       train ...; const double ndcg = evaluate on validation ...;
//       if (stop.update(ndcg, epoch) == train::EarlyStopping::Verdict::improved) save the best weights;
//       if (stop.should_stop()) break;
//   }
//   load the best weights (epoch stop.best_epoch()), then test.
//
// A value improves when it beats the best so far by more than min_delta
// (higher is better unless `lower_is_better`); the first value always does.
// Ties do not improve, so a plateau runs out the patience. RecBole counts a
// tie as an improvement and stops after stopping_step + 1 evaluations without
// one: its stopping_step s is about patience s + 1 here.
#include <cmath>
#include <cstdint>
#include <optional>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

struct EarlyStoppingOptions {
    /// Stop after this many evaluations in a row without an improvement; 0 = never stop
    /// (the tracker then only keeps the best).
    std::int64_t patience = 0;
    /// An improvement must beat the best by more than this (>= 0).
    double min_delta = 0.0;
    /// For losses: smaller values are better.
    bool lower_is_better = false;
};

class EarlyStopping {
public:
    enum class Verdict : std::uint8_t { improved, not_improved };

    explicit EarlyStopping(EarlyStoppingOptions opt = {}) : opt_(opt) {
        RECBLOCKS_CHECK_VALUE(opt.patience >= 0, "train::EarlyStopping: patience must be >= 0, got ", opt.patience);
        RECBLOCKS_CHECK_VALUE(std::isfinite(opt.min_delta) && opt.min_delta >= 0,
                              "train::EarlyStopping: min_delta must be finite and >= 0, got ", opt.min_delta);
    }

    /// Records the validation value of `epoch`; says whether it is the new best.
    Verdict update(double value, std::int64_t epoch) {
        RECBLOCKS_CHECK_VALUE(!std::isnan(value), "train::EarlyStopping::update: the validation value of epoch ",
                              epoch, " is NaN");
        const bool better = !best_ || (opt_.lower_is_better ? value < *best_ - opt_.min_delta
                                                            : value > *best_ + opt_.min_delta);
        if (better) {
            best_ = value;
            best_epoch_ = epoch;
            since_best_ = 0;
            return Verdict::improved;
        }
        ++since_best_;
        return Verdict::not_improved;
    }

    /// True once `patience` evaluations in a row did not improve (never with patience 0).
    [[nodiscard]] bool should_stop() const { return opt_.patience > 0 && since_best_ >= opt_.patience; }
    /// The best value so far; empty before the first update.
    [[nodiscard]] std::optional<double> best() const { return best_; }
    /// The epoch given with the best value (-1 before the first update).
    [[nodiscard]] std::int64_t best_epoch() const { return best_epoch_; }
    /// Evaluations since the best one (0 right after an improvement).
    [[nodiscard]] std::int64_t evaluations_since_best() const { return since_best_; }
    [[nodiscard]] const EarlyStoppingOptions& options() const { return opt_; }

    /// Continues a tracker saved with a checkpoint (best(), best_epoch(), evaluations_since_best()).
    void restore(double best, std::int64_t best_epoch, std::int64_t evaluations_since_best) {
        RECBLOCKS_CHECK_VALUE(!std::isnan(best) && best_epoch >= 0 && evaluations_since_best >= 0,
                              "train::EarlyStopping::restore: need a number, epoch >= 0 and count >= 0; got ", best,
                              ", ", best_epoch, ", ", evaluations_since_best);
        best_ = best;
        best_epoch_ = best_epoch;
        since_best_ = evaluations_since_best;
    }

private:
    EarlyStoppingOptions opt_;
    std::optional<double> best_;
    std::int64_t best_epoch_ = -1;
    std::int64_t since_best_ = 0;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
