#pragma once
// What every epoch-based trainer shares: which users form the batch of a
// global step (EpochBatches), and running the rest of an epoch with timing
// and progress (run_epoch). A step is keyed only by its global index, so a
// trainer resumed at step s picks up the same batch as an uninterrupted run.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "recblocks/core/thread_pool.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

struct EpochStats {
    std::int64_t epoch = 0;  ///< 1-based, after the epoch
    double mean_loss = 0;
    index_t sequences = 0;
    double seconds = 0;
    [[nodiscard]] double sequences_per_second() const { return seconds > 0 ? double(sequences) / seconds : 0.0; }
};

/// The users of each global step: epoch e visits `sampler.epoch_order(e)` in
/// consecutive batches of `batch_size` (the last one may be shorter).
class EpochBatches {
public:
    /// The users of step `step`; `sampler` has epoch_order(epoch) and batches_per_epoch(batch).
    template <class Sampler>
    std::span<const index_t> users(const Sampler& sampler, std::int64_t step, index_t batch_size) {
        const index_t per_epoch = sampler.batches_per_epoch(batch_size);
        const std::int64_t epoch = step / per_epoch, in_epoch = step % per_epoch;
        if (order_epoch_ != epoch) {
            order_ = sampler.epoch_order(static_cast<std::uint64_t>(epoch));
            order_epoch_ = epoch;
        }
        const std::size_t b0 = static_cast<std::size_t>(in_epoch * batch_size);
        const std::size_t nb = std::min(order_.size() - b0, static_cast<std::size_t>(batch_size));
        return {order_.data() + b0, nb};
    }
private:
    std::vector<index_t> order_;
    std::int64_t order_epoch_ = -1;
};

/// Runs trainer.train_step(be, pool) to the end of the current epoch;
/// `progress(done, total, mean_loss)` after every step when given. The trainer
/// has step(), steps_per_epoch() and last_batch_size().
template <class Trainer, class Be, class Progress>
EpochStats run_epoch(Trainer& trainer, const Be& be, ThreadPool& pool, Progress&& progress) {
    const index_t per_epoch = trainer.steps_per_epoch();
    const auto t0 = std::chrono::steady_clock::now();
    EpochStats s;
    double sum = 0;
    index_t n = 0;
    do {
        sum += trainer.train_step(be, pool);
        ++n;
        s.sequences += trainer.last_batch_size();
        const std::int64_t done = trainer.step() % per_epoch;
        if constexpr (!std::is_same_v<std::decay_t<Progress>, std::nullptr_t>)
            progress(done == 0 ? per_epoch : done, per_epoch, sum / double(n));
    } while (trainer.step() % per_epoch != 0);
    s.epoch = trainer.step() / per_epoch;
    s.mean_loss = sum / double(n);
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

}  // namespace train
RECBLOCKS_NAMESPACE_END
