#pragma once
// Learning-rate schedules: linear warm-up from 0 over `warmup_steps`, then
// constant, linear decay to 0 at `total_steps` (BERT4Rec), or cosine decay to 0.
// lr(step) takes the 0-based index of the update about to be made.
#include <cmath>
#include <cstdint>
#include <numbers>

#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace optim {

struct LearningRateSchedule {
    enum class Decay : std::uint8_t { none, linear, cosine };
    double base = 1e-3;
    std::int64_t warmup_steps = 0;
    std::int64_t total_steps = 0;  ///< needed for linear/cosine decay
    Decay decay = Decay::none;

    [[nodiscard]] double at(std::int64_t step) const {
        RECBLOCKS_CHECK_VALUE(step >= 0 && warmup_steps >= 0, "LearningRateSchedule: step ", step,
                              " and warmup_steps ", warmup_steps, " must be >= 0");
        if (step < warmup_steps) return base * double(step + 1) / double(warmup_steps);
        if (decay == Decay::none) return base;
        RECBLOCKS_CHECK_VALUE(total_steps > warmup_steps, "LearningRateSchedule: total_steps ", total_steps,
                              " must exceed warmup_steps ", warmup_steps, " for a decaying schedule");
        const double f = std::min(1.0, double(step - warmup_steps) / double(total_steps - warmup_steps));
        return decay == Decay::linear ? base * (1.0 - f) : base * 0.5 * (1.0 + std::cos(std::numbers::pi * f));
    }
};

}  // namespace optim
RECBLOCKS_NAMESPACE_END
