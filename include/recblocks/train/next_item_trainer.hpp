#pragma once
// The training loop of a next-item model with the BCE loss (SASRec): epochs
// of shuffled users (data::NextItemBatches), Adam, optional gradient
// clipping, a NaN/Inf guard that stops before the weights are touched.
//
// A step is a pure function of (weights, optimiser state, seed, step): the
// batch, its negatives and its dropout masks are keyed by the global step, so
// training resumed from a checkpoint at step s continues bit-exactly (same
// thread count, same kernels). Model needs params(), train_step_bce().
// Everything after the batch (loss, checks, clipping, Adam) runs on the
// backend given to train_step, in the memory the model's parameters live in.
#include <chrono>
#include <type_traits>
#include <utility>
#include <cmath>
#include <span>

#include "recblocks/core/tensor.hpp"
#include "recblocks/data/next_item_batches.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"
#include "recblocks/train/epochs.hpp"
#include "recblocks/train/trainable_model.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

struct NextItemTrainingOptions {
    index_t batch_size = 128;
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.98;       ///< the SASRec code's Adam betas
    double weight_decay = 0.0;
    double clip_norm = 0.0;    ///< 0 = no clipping
    std::uint64_t seed = 42;   ///< batches and negatives (the model has its own seed for init and dropout)
};

template <class T, class Model>
class NextItemTrainer {
    static_assert(TrainableModel<Model>, "train::NextItemTrainer: the model needs params() returning its ParamList "
                                         "(train/trainable_model.hpp lists what a trainer needs)");
    static_assert(SequenceModel<Model>, "train::NextItemTrainer: the model needs config().max_len "
                                        "(train/trainable_model.hpp lists what a trainer needs)");
    using Memory = typename model_memory<Model>::type;

public:
    NextItemTrainer(Model& model, const std::vector<std::vector<row_id_t>>& train, index_t num_items, index_t max_len,
                    NextItemTrainingOptions opt)
        : model_(model), opt_(opt), batches_(train, num_items, max_len, opt.seed),
          adam_(optim::adam_config_from<T>(opt), model.params()) {
        RECBLOCKS_CHECK_VALUE(opt.batch_size >= 1 && opt.lr > 0 && opt.clip_norm >= 0,
                              "train::NextItemTrainer: need batch_size >= 1, lr > 0, clip_norm >= 0; got ",
                              opt.batch_size, ", ", opt.lr, ", ", opt.clip_norm);
    }

    [[nodiscard]] std::int64_t step() const { return step_; }
    [[nodiscard]] std::int64_t epoch() const { return step_ / steps_per_epoch(); }
    [[nodiscard]] index_t steps_per_epoch() const { return batches_.batches_per_epoch(opt_.batch_size); }
    [[nodiscard]] optim::Adam<T, Memory>& optimizer() { return adam_; }
    /// Continue from a checkpoint taken after `step` updates (the optimiser's
    /// moments and step count must be restored by the caller).
    void set_step(std::int64_t step) {
        RECBLOCKS_CHECK_VALUE(step >= 0, "train::NextItemTrainer::set_step: step must be >= 0, got ", step);
        step_ = step;
    }

    /// One optimiser update on the batch of the current global step; returns its loss.
    template <class Be>
    double train_step(const Be& be, ThreadPool& pool) {
        static_assert(NextItemStep<Model, Be>, "train::NextItemTrainer: the model needs train_step_bce(be, pool, ids, pos, neg, step) returning losses::LossValue "
                                           "(train/trainable_model.hpp lists what a trainer needs)");
        const std::span<const index_t> users = epoch_batches_.users(batches_, step_, opt_.batch_size);
        const std::size_t nb = users.size();
        const index_t len = model_.config().max_len;
        if (ids_.extent(0) != static_cast<index_t>(nb)) {
            for (auto* m : {&ids_, &pos_, &neg_}) m->resize(Shape<2>{{static_cast<index_t>(nb), len}});
        }
        batches_.fill(users, static_cast<std::uint64_t>(step_), ids_.view(), pos_.view(), neg_.view());
        const auto loss = model_.train_step_bce(be, pool, ids_.cview(), pos_.cview(), neg_.cview(),
                                                static_cast<std::uint64_t>(step_));
        RECBLOCKS_CHECK_VALUE(std::isfinite(loss.loss), "training step ", step_, ": the loss is ", loss.loss,
                              "; stopping before it reaches the weights");
        optim::check_finite_grads(be, model_.params(), step_);
        if (opt_.clip_norm > 0) optim::clip_grad_norm(be, model_.params(), opt_.clip_norm);
        adam_.step(be, model_.params(), opt_.lr);
        ++step_;
        last_batch_ = static_cast<index_t>(nb);
        return loss.loss;
    }

    /// Runs the rest of the current epoch; `progress(done, total, mean_loss)` is
    /// called after every step when given.
    template <class Be, class Progress = std::nullptr_t>
    EpochStats train_epoch(const Be& be, ThreadPool& pool, Progress&& progress = nullptr) {
        return run_epoch(*this, be, pool, std::forward<Progress>(progress));
    }
    /// Sequences in the last step's batch.
    [[nodiscard]] index_t last_batch_size() const { return last_batch_; }

private:

    Model& model_;
    NextItemTrainingOptions opt_;
    data::NextItemBatches batches_;
    optim::Adam<T, Memory> adam_;
    std::int64_t step_ = 0;
    EpochBatches epoch_batches_;
    Matrix<row_id_t> ids_, pos_, neg_;
    index_t last_batch_ = 0;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
