#pragma once
// The training loop of the generative retriever (models/generative_retriever.hpp):
// epochs of shuffled users (data::NextItemBatches: the same batches as
// train::NextItemTrainer at the same seed), Adam, optional clipping, a NaN/Inf
// guard. Each step is keyed by its global index (deterministic). Kept out of the
// model's header so that models/ does not depend on optim/ or train/.
// The optimiser state lives in the model's Memory and every step after the
// batch (loss, checks, clipping, Adam) runs on the backend passed in.
#include <cmath>
#include <span>
#include <vector>

#include "recblocks/core/tensor.hpp"
#include "recblocks/data/next_item_batches.hpp"
#include "recblocks/models/generative_retriever.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"
#include "recblocks/train/epochs.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

struct GenerativeTrainingOptions {
    index_t batch_size = 128;
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.98;
    double weight_decay = 0.0;
    double clip_norm = 1.0;   ///< 0 = no clipping
    std::uint64_t seed = 42;  ///< batch order (the model has its own seed for init and dropout)
};

/// Epochs of shuffled users (data::NextItemBatches: the same batches as
/// train::NextItemTrainer at the same seed), Adam, optional clipping, a
/// NaN/Inf guard. Each step is keyed by its global index (deterministic).
template <class T, class Norm = policies::PreNorm, MemorySpace Memory = HostMemory>
class GenerativeTrainer {
public:
    using Model = models::GenerativeRetriever<T, Norm, Memory>;
    GenerativeTrainer(Model& model, const std::vector<std::vector<row_id_t>>& train, GenerativeTrainingOptions opt)
        : model_(model), opt_(opt), batches_(train, model.num_items(), model.config().max_len, opt.seed),
          adam_(optim::adam_config_from<T>(opt), model.params()) {
        RECBLOCKS_CHECK_VALUE(opt.batch_size >= 1 && opt.lr > 0 && opt.clip_norm >= 0,
                              "train::GenerativeTrainer: need batch_size >= 1, lr > 0, clip_norm >= 0; got ",
                              opt.batch_size, ", ", opt.lr, ", ", opt.clip_norm);
    }
    [[nodiscard]] std::int64_t step() const { return step_; }
    [[nodiscard]] index_t steps_per_epoch() const { return batches_.batches_per_epoch(opt_.batch_size); }
    [[nodiscard]] index_t last_batch_size() const { return last_batch_; }
    [[nodiscard]] optim::Adam<T, Memory>& optimizer() { return adam_; }

    template <class Be>
    double train_step(const Be& be, ThreadPool& pool) {
        const std::span<const index_t> users = epoch_batches_.users(batches_, step_, opt_.batch_size);
        const auto nb = static_cast<index_t>(users.size());
        if (ids_.extent(0) != nb)
            for (auto* m : {&ids_, &pos_, &neg_}) m->resize(Shape<2>{{nb, model_.config().max_len}});
        batches_.fill(users, static_cast<std::uint64_t>(step_), ids_.view(), pos_.view(), neg_.view());
        const auto loss = model_.train_step(be, pool, ids_.cview(), pos_.cview(), static_cast<std::uint64_t>(step_));
        RECBLOCKS_CHECK_VALUE(std::isfinite(loss.loss), "training step ", step_, ": the loss is ", loss.loss,
                              "; stopping before it reaches the weights");
        optim::check_finite_grads(be, model_.params(), step_);
        if (opt_.clip_norm > 0) optim::clip_grad_norm(be, model_.params(), opt_.clip_norm);
        adam_.step(be, model_.params(), opt_.lr);
        ++step_;
        last_batch_ = nb;
        return loss.loss;
    }
    template <class Be, class Progress = std::nullptr_t>
    EpochStats train_epoch(const Be& be, ThreadPool& pool, Progress&& progress = nullptr) {
        return run_epoch(*this, be, pool, std::forward<Progress>(progress));
    }

private:
    Model& model_;
    GenerativeTrainingOptions opt_;
    data::NextItemBatches batches_;  // its negatives are drawn and ignored
    optim::Adam<T, Memory> adam_;
    train::EpochBatches epoch_batches_;
    std::int64_t step_ = 0;
    index_t last_batch_ = 0;
    Matrix<row_id_t> ids_, pos_, neg_;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
