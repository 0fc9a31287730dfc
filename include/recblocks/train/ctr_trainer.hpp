#pragma once
// The training step of a click-through model with a binary label per
// impression (models::DareModel): zero the gradients, forward, the mean BCE,
// a NaN/Inf guard on the loss, backward, a finiteness check of every gradient,
// optional clipping by the global norm, Adam. Everything after the batch runs
// on the backend given to train_step, in the memory the model's parameters
// live in; the batch and labels come from the data pipeline in host memory.
//
// Model needs: Batch, params(), zero_grads(), forward(be, batch),
// loss(be, labels), backward(be, labels).
#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

#include "recblocks/core/check.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

struct CtrTrainingOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;      ///< torch.optim.Adam's defaults (DARE's scripts)
    double weight_decay = 0.0;
    double clip_norm = 0.0;    ///< 0 = no clipping
};

template <class T, class Model>
class CtrTrainer {
    using Memory = typename std::remove_cvref_t<decltype(std::declval<Model&>().params())>::value_type::memory_type;

public:
    CtrTrainer(Model& model, CtrTrainingOptions opt)
        : model_(model), opt_(opt), adam_(optim::adam_config_from<T>(opt), model.params()) {
        RECBLOCKS_CHECK_VALUE(opt.lr > 0 && opt.clip_norm >= 0,
                              "train::CtrTrainer: need lr > 0 and clip_norm >= 0; got ", opt.lr, " and ",
                              opt.clip_norm);
    }

    [[nodiscard]] std::int64_t step() const { return step_; }
    [[nodiscard]] optim::Adam<T, Memory>& optimizer() { return adam_; }
    /// Continue from a checkpoint taken after `step` updates (restore the optimiser's moments too).
    void set_step(std::int64_t step) {
        RECBLOCKS_CHECK_VALUE(step >= 0, "train::CtrTrainer::set_step: step must be >= 0, got ", step);
        step_ = step;
    }

    /// One optimiser update on a batch with labels [B] in [0, 1]; returns the batch's mean loss.
    template <class Be>
    double train_step(const Be& be, const typename Model::Batch& batch, std::span<const T> labels) {
        model_.zero_grads();
        model_.forward(be, batch);
        const double loss = model_.loss(be, labels);
        RECBLOCKS_CHECK_VALUE(std::isfinite(loss), "training step ", step_, ": the loss is ", loss,
                              "; stopping before it reaches the weights");
        model_.backward(be, labels);
        optim::check_finite_grads(be, model_.params(), step_);
        if (opt_.clip_norm > 0) optim::clip_grad_norm(be, model_.params(), opt_.clip_norm);
        adam_.step(be, model_.params(), opt_.lr);
        ++step_;
        return loss;
    }

private:
    Model& model_;
    CtrTrainingOptions opt_;
    optim::Adam<T, Memory> adam_;
    std::int64_t step_ = 0;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
