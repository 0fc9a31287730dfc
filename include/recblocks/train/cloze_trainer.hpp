#pragma once
// The training loop of a cloze (masked-item) model, BERT4Rec's recipe:
// epochs of shuffled users with fresh masks (data::ClozeBatches), AdamW
// (decoupled weight decay on weights and embeddings only, not on biases or
// norms), linear warm-up then linear decay to 0 at total_steps, clipping by
// the global gradient norm, and a NaN/Inf guard that stops before the
// weights are touched.
//
//   lr(s) = lr · (s + 1) / warmup_steps                       s < warmup_steps
//         = lr · (1 - (s - warmup) / (total_steps - warmup))  after (0 from total_steps on)
//         = lr                                               after, when total_steps = 0
//
// Defaults are the paper's (PAPERS.md, BERT4Rec): lr 1e-4, betas (0.9,
// 0.999), eps 1e-6, weight decay 0.01, 100 warm-up steps, clip 5, batch 256,
// mask_prob 0.2. One difference from the authors' TF optimiser: Adam's bias
// correction is applied (torch.optim.AdamW's update), which the TF
// AdamWeightDecayOptimizer omits.
//
// A step is a pure function of (weights, optimiser state, seed, step): the
// batch, its masks and its dropout masks are keyed by the global step, so
// training resumed from a checkpoint (save_checkpoint / load_checkpoint)
// continues bit-exactly (same options, thread count and kernels). Model
// needs config().max_len, params(), train_step_ce(). Everything after the
// batch (loss, finite checks, clipping, AdamW) runs on the backend given to
// train_step, in the memory the model's parameters live in; checkpoints are
// written from and read into that memory.
//
// Granular steps (options.granule > 0), data-parallel with a communicator
// (Comm; docs/distributed.md): as train::NextItemTrainer's. The whole global
// batch's masks are drawn on every rank (cheap, host) to count its targets;
// each granule's cross-entropy is divided by that count, its dropout keyed by
// (step, granule), and the granules' gradients are summed in granule order
// across ranks before clipping and AdamW: N ranks reproduce one process bit
// for bit. granule = 0 (the default) is the whole-batch step, unchanged.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "recblocks/core/tensor.hpp"
#include "recblocks/data/cloze_batches.hpp"
#include "recblocks/train/checkpoint.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"  // LossValue
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"
#include "recblocks/optim/lr_schedule.hpp"
#include "recblocks/distributed/granules.hpp"
#include "recblocks/distributed/single_process.hpp"
#include "recblocks/train/epochs.hpp"
#include "recblocks/train/granular_gradients.hpp"
#include "recblocks/train/trainable_model.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

struct ClozeTrainingOptions {
    index_t batch_size = 256;
    double lr = 1e-4;               ///< peak learning rate
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-6;
    double weight_decay = 0.01;     ///< decoupled (AdamW), on weights and embeddings only
    double clip_norm = 5.0;         ///< global gradient norm; 0 = no clipping
    std::int64_t warmup_steps = 100;
    std::int64_t total_steps = 0;   ///< linear decay to 0 at this step; 0 = constant after warm-up
    double mask_prob = 0.2;         ///< ρ
    double mask_last_prob = 0.0;    ///< rows that mask only their last item (authors' code: 1/11; data::ClozeBatches)
    std::uint64_t seed = 42;        ///< batches and masks (the model has its own seed for init and dropout)
    /// 0: one gradient for the whole batch. g > 0: granular steps of g sequences (data-parallel;
    /// batch_size is the GLOBAL batch, a multiple of g times the number of ranks).
    index_t granule = 0;
};

template <class T, class Model, distributed::Communicator Comm = distributed::SingleProcess>
class ClozeTrainer {
    static_assert(TrainableModel<Model>, "train::ClozeTrainer: the model needs params() returning its ParamList "
                                         "(train/trainable_model.hpp lists what a trainer needs)");
    static_assert(SequenceModel<Model>, "train::ClozeTrainer: the model needs config().max_len "
                                        "(train/trainable_model.hpp lists what a trainer needs)");
    using Memory = typename model_memory<Model>::type;

public:
    /// With a communicator of several ranks (granule > 0 needed) every rank passes the same data
    /// and options; the constructor's handshake (a collective) checks it, `extra_handshake` too.
    ClozeTrainer(Model& model, const std::vector<std::vector<row_id_t>>& train, index_t num_items,
                 ClozeTrainingOptions opt, Comm comm = Comm(),
                 std::vector<distributed::HandshakeField> extra_handshake = {})
        : model_(model), opt_(validated(opt)),
          batches_(train, num_items, model.config().max_len, opt.mask_prob, opt.seed, opt.mask_last_prob),
          adam_(adam_config(opt), model.params()), comm_(std::move(comm)) {
        RECBLOCKS_CHECK_VALUE(opt.granule > 0 || comm_.size() == 1, "train::ClozeTrainer: ", comm_.size(),
                              " ranks need granular steps (options.granule > 0)");
        if (opt.granule > 0) {
            RECBLOCKS_CHECK_VALUE((std::is_same_v<Memory, HostMemory>),
                                  "train::ClozeTrainer: granular steps need the parameters in host memory");
            plan_.emplace(opt.batch_size, opt.granule, comm_.size(), comm_.rank());
            using distributed::double_bits;
            std::vector<distributed::HandshakeField> fields = data_and_model_fields(train, model.params());
            const std::vector<distributed::HandshakeField> mine = {
                {"trainer", distributed::hash_string("ClozeTrainer")},
                {"num_items", static_cast<std::uint64_t>(num_items)},
                {"max_len", static_cast<std::uint64_t>(model.config().max_len)},
                {"seed", opt.seed},
                {"global batch", static_cast<std::uint64_t>(opt.batch_size)},
                {"granule", static_cast<std::uint64_t>(opt.granule)},
                {"lr", double_bits(opt.lr)},
                {"beta1", double_bits(opt.beta1)},
                {"beta2", double_bits(opt.beta2)},
                {"eps", double_bits(opt.eps)},
                {"weight_decay", double_bits(opt.weight_decay)},
                {"clip_norm", double_bits(opt.clip_norm)},
                {"warmup_steps", static_cast<std::uint64_t>(opt.warmup_steps)},
                {"total_steps", static_cast<std::uint64_t>(opt.total_steps)},
                {"mask_prob", double_bits(opt.mask_prob)},
                {"mask_last_prob", double_bits(opt.mask_last_prob)},
            };
            fields.insert(fields.end(), mine.begin(), mine.end());
            fields.insert(fields.end(), extra_handshake.begin(), extra_handshake.end());
            distributed::handshake(comm_, std::span<const distributed::HandshakeField>(fields));
        }
        schedule_.base = opt.lr;
        schedule_.warmup_steps = opt.warmup_steps;
        schedule_.total_steps = opt.total_steps;
        schedule_.decay = opt.total_steps > 0 ? optim::LearningRateSchedule::Decay::linear
                                              : optim::LearningRateSchedule::Decay::none;
    }

    [[nodiscard]] const ClozeTrainingOptions& options() const { return opt_; }
    [[nodiscard]] const data::ClozeBatches& batches() const { return batches_; }
    [[nodiscard]] std::int64_t step() const { return step_; }
    [[nodiscard]] std::int64_t epoch() const { return step_ / steps_per_epoch(); }
    [[nodiscard]] index_t steps_per_epoch() const { return batches_.batches_per_epoch(opt_.batch_size); }
    [[nodiscard]] optim::Adam<T, Memory>& optimizer() { return adam_; }
    /// The learning rate of update `step` (0-based).
    [[nodiscard]] double lr_at(std::int64_t step) const { return schedule_.at(step); }
    /// The learning rate and the gradient norm (before clipping) of the last update.
    [[nodiscard]] double last_lr() const { return last_lr_; }
    [[nodiscard]] double last_grad_norm() const { return last_norm_; }
    /// Continue after `step` updates (the optimiser's state must be restored too:
    /// load_checkpoint() does both).
    void set_step(std::int64_t step) {
        RECBLOCKS_CHECK_VALUE(step >= 0, "train::ClozeTrainer::set_step: step must be >= 0, got ", step);
        step_ = step;
    }

    /// One optimiser update on the batch of the current global step; returns its loss.
    template <class Be>
    double train_step(const Be& be, ThreadPool& pool) {
        static_assert(ClozeStep<Model, Be>, "train::ClozeTrainer: the model needs train_step_ce(be, pool, ids, labels, step) returning losses::LossValue "
                                           "(train/trainable_model.hpp lists what a trainer needs)");
        if (plan_) return granular_step(be, pool);
        const std::span<const index_t> users = epoch_batches_.users(batches_, step_, opt_.batch_size);
        const std::size_t nb = users.size();
        const index_t len = batches_.max_len();
        if (ids_.extent(0) != static_cast<index_t>(nb)) {
            ids_.resize(Shape<2>{{static_cast<index_t>(nb), len}});
            labels_.resize(Shape<2>{{static_cast<index_t>(nb), len}});
        }
        batches_.fill(users, static_cast<std::uint64_t>(step_), ids_.view(), labels_.view());
        const losses::LossValue loss =
            step_ce(be, pool, ids_.cview(), labels_.cview(), static_cast<std::uint64_t>(step_), 0);
        update(be, loss.loss);
        last_batch_ = static_cast<index_t>(nb);
        return loss.loss;
    }

    /// Sequences in the last step's batch (the global batch in granular steps).
    [[nodiscard]] index_t last_batch_size() const { return last_batch_; }
    [[nodiscard]] Comm& communicator() { return comm_; }
    /// Seconds the last granular step spent in the gradient and loss sums across ranks.
    [[nodiscard]] double last_reduce_seconds() const { return granules_.last_seconds(); }

private:
    template <class Be>
    losses::LossValue step_ce(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids,
                              MatrixView<const row_id_t> labels, std::uint64_t key, index_t normalizer) {
        try {
            if (normalizer == 0) return model_.train_step_ce(be, pool, ids, labels, key);
            if constexpr (requires { model_.train_step_ce(be, pool, ids, labels, key, normalizer); })
                return model_.train_step_ce(be, pool, ids, labels, key, normalizer);
            else
                throw ValueError("train::ClozeTrainer: granular steps need a model whose train_step_ce takes "
                                 "(..., step, normalizer)");
        } catch (const ValueError& e) {  // e.g. non-finite logits: say which step, the weights are untouched
            const std::string what = e.what(), id = "[" + e.id() + "] ";
            throw ValueError(recblocks::detail::concat("training step ", step_, ": ",
                                                       what.rfind(id, 0) == 0 ? what.substr(id.size()) : what,
                                                       "; stopping before it reaches the weights"));
        }
    }

    /// The step's gradient is in the parameters' grads: checks, clipping, the schedule, AdamW.
    template <class Be>
    void update(const Be& be, double loss) {
        RECBLOCKS_CHECK_VALUE(std::isfinite(loss), "training step ", step_, ": the loss is ", loss,
                              "; stopping before it reaches the weights");
        optim::check_finite_grads(be, model_.params(), step_);
        last_norm_ = opt_.clip_norm > 0 ? optim::clip_grad_norm(be, model_.params(), opt_.clip_norm)
                                        : optim::global_grad_norm(be, model_.params());
        last_lr_ = schedule_.at(step_);
        adam_.step(be, model_.params(), last_lr_);
        ++step_;
    }

    /// This rank's granules of the global batch, summed in granule order across ranks.
    template <class Be>
    double granular_step(const Be& be, ThreadPool& pool) {
        if constexpr (!std::is_same_v<Memory, HostMemory>) {
            RECBLOCKS_CHECK_VALUE(false, "train::ClozeTrainer: granular steps need host memory");
            return 0;
        } else {
            const auto& plan = *plan_;
            const std::span<const index_t> users = epoch_batches_.users(batches_, step_, opt_.batch_size);
            const auto nb = static_cast<index_t>(users.size());
            const index_t len = batches_.max_len(), k = plan.per_rank();
            // The whole batch's masks, on every rank: the loss divides by all of its targets.
            if (ids_.extent(0) != nb) {
                ids_.resize(Shape<2>{{nb, len}});
                labels_.resize(Shape<2>{{nb, len}});
            }
            batches_.fill(users, static_cast<std::uint64_t>(step_), ids_.view(), labels_.view());
            index_t targets = 0;
            for (index_t i = 0; i < nb * len; ++i) targets += labels_.data()[i] != 0;
            const auto& params = model_.params();
            granules_.start(params, k);
            for (index_t j = 0; j < k; ++j) {
                const index_t g = plan.global_index(j);
                const auto [b, e] = plan.samples(g, nb);
                if (b == e) {
                    granules_.skip(j);
                    continue;
                }
                const auto loss = step_ce(be, pool, matrix_view<const row_id_t>(ids_.data() + b * len, e - b, len),
                                          matrix_view<const row_id_t>(labels_.data() + b * len, e - b, len),
                                          distributed::GranulePlan::dropout_key(static_cast<std::uint64_t>(step_), g),
                                          std::max<index_t>(targets, 1));
                granules_.keep(j, params, loss.loss);
            }
            const double loss = granules_.sum(comm_, params);
            update(be, loss);
            last_batch_ = nb;
            return loss;
        }
    }

public:

    /// Runs the rest of the current epoch; `progress(done, total, mean_loss)` is
    /// called after every step when given.
    template <class Be, class Progress = std::nullptr_t>
    EpochStats train_epoch(const Be& be, ThreadPool& pool, Progress&& progress = nullptr) {
        return run_epoch(*this, be, pool, std::forward<Progress>(progress));
    }
    /// Writes weights, AdamW moments and the step (atomically; train::save_checkpoint),
    /// plus the caller's metadata.
    void save_checkpoint(const std::filesystem::path& path, const std::map<std::string, std::string>& metadata = {},
                         const std::function<void(io::SafetensorsWriter&)>& add_extra = {}) {
        train::save_checkpoint<T>(path, model_.params(), &adam_, step_, metadata, add_extra);
    }
    /// Restores weights, moments and step from save_checkpoint()'s file; returns its info.
    train::CheckpointInfo load_checkpoint(const std::filesystem::path& path) {
        auto info = train::load_checkpoint<T>(path, model_.params(), &adam_);
        set_step(info.step);
        return info;
    }

private:
    static ClozeTrainingOptions validated(const ClozeTrainingOptions& o) {
        RECBLOCKS_CHECK_VALUE(o.batch_size >= 1 && o.lr > 0 && o.clip_norm >= 0 && o.warmup_steps >= 0 &&
                                  o.total_steps >= 0 && o.granule >= 0,
                              "train::ClozeTrainer: need batch_size >= 1, lr > 0, clip_norm >= 0, warmup_steps >= 0, "
                              "total_steps >= 0, granule >= 0; got ", o.batch_size, ", ", o.lr, ", ", o.clip_norm, ", ",
                              o.warmup_steps, ", ", o.total_steps, ", ", o.granule);
        RECBLOCKS_CHECK_VALUE(o.total_steps == 0 || o.total_steps > o.warmup_steps, "train::ClozeTrainer: total_steps (",
                              o.total_steps, ") must exceed warmup_steps (", o.warmup_steps,
                              ") for the linear decay; lower warmup_steps or train longer (0 = no decay)");
        return o;
    }
    static typename optim::Adam<T, Memory>::Config adam_config(const ClozeTrainingOptions& o) {
        typename optim::Adam<T, Memory>::Config c;
        c.lr = o.lr;
        c.beta1 = o.beta1;
        c.beta2 = o.beta2;
        c.eps = o.eps;
        c.weight_decay = o.weight_decay;
        c.decoupled = true;
        c.decay_kinds = {ParamKind::weight, ParamKind::embedding};
        return c;
    }

    Model& model_;
    ClozeTrainingOptions opt_;
    data::ClozeBatches batches_;
    optim::Adam<T, Memory> adam_;
    optim::LearningRateSchedule schedule_;
    std::int64_t step_ = 0;
    EpochBatches epoch_batches_;
    Matrix<row_id_t> ids_, labels_;
    index_t last_batch_ = 0;
    double last_lr_ = 0, last_norm_ = 0;
    Comm comm_;
    std::optional<distributed::GranulePlan> plan_;
    GranularGradients<T> granules_;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
