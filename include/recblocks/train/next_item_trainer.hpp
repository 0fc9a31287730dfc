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
//
// Granular steps (options.granule > 0; docs/distributed.md): the step's batch
// is cut into granules of `granule` consecutive samples (distributed/
// granules.hpp); each granule's gradient is computed on its own, with the loss
// normalised by the WHOLE batch's counted positions and dropout keyed by (step,
// granule), and the gradient is the ordered sum of the granules' gradients
// (distributed/ordered_sum.hpp). With a communicator of N ranks (Comm, e.g.
// distributed::MpiCommunicator) each rank computes only its own granules and
// the sum runs across ranks in the same order, so N ranks reproduce one
// process bit for bit (same granule, same threads per rank). Adam then runs on
// every rank on the same summed gradient: the parameters stay replicated.
// granule = 0 (the default) is the whole-batch step, unchanged.
#include <chrono>
#include <type_traits>
#include <utility>
#include <cmath>
#include <span>
#include <optional>
#include <vector>

#include "recblocks/core/tensor.hpp"
#include "recblocks/data/next_item_batches.hpp"
#include "recblocks/distributed/granules.hpp"
#include "recblocks/distributed/handshake.hpp"
#include "recblocks/distributed/single_process.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/optim/gradients.hpp"
#include "recblocks/train/epochs.hpp"
#include "recblocks/train/granular_gradients.hpp"
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
    /// 0: one gradient for the whole batch (the default). g > 0: granular steps of g sequences
    /// (data-parallel training): batch_size is then the GLOBAL batch and must be a multiple of
    /// g times the number of ranks. Granular steps draw other dropout masks than whole-batch
    /// steps, so the two modes train to different (equally valid) weights.
    index_t granule = 0;
};

template <class T, class Model, distributed::Communicator Comm = distributed::SingleProcess>
class NextItemTrainer {
    static_assert(TrainableModel<Model>, "train::NextItemTrainer: the model needs params() returning its ParamList "
                                         "(train/trainable_model.hpp lists what a trainer needs)");
    static_assert(SequenceModel<Model>, "train::NextItemTrainer: the model needs config().max_len "
                                        "(train/trainable_model.hpp lists what a trainer needs)");
    using Memory = typename model_memory<Model>::type;

public:
    /// With a communicator of several ranks (granule > 0 needed), every rank passes the same
    /// data and options; the constructor's handshake (a collective) checks that they do, with
    /// `extra_handshake` (e.g. the model's configuration) too.
    NextItemTrainer(Model& model, const std::vector<std::vector<row_id_t>>& train, index_t num_items, index_t max_len,
                    NextItemTrainingOptions opt, Comm comm = Comm(),
                    std::vector<distributed::HandshakeField> extra_handshake = {})
        : model_(model), opt_(opt), batches_(train, num_items, max_len, opt.seed),
          adam_(optim::adam_config_from<T>(opt), model.params()), comm_(std::move(comm)) {
        RECBLOCKS_CHECK_VALUE(opt.batch_size >= 1 && opt.lr > 0 && opt.clip_norm >= 0 && opt.granule >= 0,
                              "train::NextItemTrainer: need batch_size >= 1, lr > 0, clip_norm >= 0, granule >= 0; got ",
                              opt.batch_size, ", ", opt.lr, ", ", opt.clip_norm, ", ", opt.granule);
        RECBLOCKS_CHECK_VALUE(opt.granule > 0 || comm_.size() == 1, "train::NextItemTrainer: ", comm_.size(),
                              " ranks need granular steps (options.granule > 0)");
        if (opt.granule > 0) {
            RECBLOCKS_CHECK_VALUE((std::is_same_v<Memory, HostMemory>),
                                  "train::NextItemTrainer: granular steps need the parameters in host memory");
            plan_.emplace(opt.batch_size, opt.granule, comm_.size(), comm_.rank());
            handshake(train, num_items, max_len, std::move(extra_handshake));
        }
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
        if (plan_) return granular_step(be, pool);
        const std::span<const index_t> users = epoch_batches_.users(batches_, step_, opt_.batch_size);
        const std::size_t nb = users.size();
        const index_t len = model_.config().max_len;
        if (ids_.extent(0) != static_cast<index_t>(nb)) {
            for (auto* m : {&ids_, &pos_, &neg_}) m->resize(Shape<2>{{static_cast<index_t>(nb), len}});
        }
        batches_.fill(users, static_cast<std::uint64_t>(step_), ids_.view(), pos_.view(), neg_.view());
        const auto loss = model_.train_step_bce(be, pool, ids_.cview(), pos_.cview(), neg_.cview(),
                                                static_cast<std::uint64_t>(step_));
        update(be, loss.loss);
        last_batch_ = static_cast<index_t>(nb);
        return loss.loss;
    }

    /// Runs the rest of the current epoch; `progress(done, total, mean_loss)` is
    /// called after every step when given.
    template <class Be, class Progress = std::nullptr_t>
    EpochStats train_epoch(const Be& be, ThreadPool& pool, Progress&& progress = nullptr) {
        return run_epoch(*this, be, pool, std::forward<Progress>(progress));
    }
    /// Sequences in the last step's batch (the global batch in granular steps).
    [[nodiscard]] index_t last_batch_size() const { return last_batch_; }
    [[nodiscard]] Comm& communicator() { return comm_; }
    /// Seconds the last granular step spent in the gradient and loss sums across ranks.
    [[nodiscard]] double last_reduce_seconds() const { return granules_.last_seconds(); }

private:
    /// After the step's gradient is in the parameters' grads: checks, clipping, Adam.
    template <class Be>
    void update(const Be& be, double loss) {
        RECBLOCKS_CHECK_VALUE(std::isfinite(loss), "training step ", step_, ": the loss is ", loss,
                              "; stopping before it reaches the weights");
        optim::check_finite_grads(be, model_.params(), step_);
        if (opt_.clip_norm > 0) optim::clip_grad_norm(be, model_.params(), opt_.clip_norm);
        adam_.step(be, model_.params(), opt_.lr);
        ++step_;
    }

    /// One granular step: this rank's granules of the global batch, their gradients summed in
    /// granule order across ranks, then the same update on every rank.
    template <class Be>
    double granular_step(const Be& be, ThreadPool& pool) {
        constexpr bool granular_model = requires(Model& m, MatrixView<const row_id_t> v, index_t n) {
            m.train_step_bce(be, pool, v, v, v, std::uint64_t{}, n, true);
        };
        if constexpr (!std::is_same_v<Memory, HostMemory> || !granular_model) {
            RECBLOCKS_CHECK_VALUE(false, "train::NextItemTrainer: granular steps need host memory and a model whose "
                                         "train_step_bce takes (..., step, normalizer, add_regulariser)");
            return 0;
        } else {
            const auto& plan = *plan_;
            const std::span<const index_t> users = epoch_batches_.users(batches_, step_, opt_.batch_size);
            const auto nb = static_cast<index_t>(users.size());
            const index_t len = model_.config().max_len, k = plan.per_rank();
            const index_t normalizer = batches_.targets(users);  // the whole batch's counted positions
            const auto& params = model_.params();
            granules_.start(params, k);
            for (index_t j = 0; j < k; ++j) {
                const index_t g = plan.global_index(j);
                const auto [b, e] = plan.samples(g, nb);
                if (b == e) {  // past the end of a short last batch: contributes zeros
                    granules_.skip(j);
                    continue;
                }
                const index_t rows = e - b;
                if (ids_.extent(0) != rows)
                    for (auto* m : {&ids_, &pos_, &neg_}) m->resize(Shape<2>{{rows, len}});
                batches_.fill(users.subspan(static_cast<std::size_t>(b), static_cast<std::size_t>(rows)),
                              static_cast<std::uint64_t>(step_), ids_.view(), pos_.view(), neg_.view());
                const auto loss = model_.train_step_bce(be, pool, ids_.cview(), pos_.cview(), neg_.cview(),
                                                        distributed::GranulePlan::dropout_key(
                                                            static_cast<std::uint64_t>(step_), g),
                                                        normalizer, g == 0);
                granules_.keep(j, params, loss.loss);
            }
            const double loss = granules_.sum(comm_, params);
            update(be, loss);
            last_batch_ = nb;
            return loss;
        }
    }

    /// The values every rank must agree on before the first step.
    void handshake(const std::vector<std::vector<row_id_t>>& train, index_t num_items, index_t max_len,
                   std::vector<distributed::HandshakeField> fields) {
        using distributed::double_bits;
        const std::vector<distributed::HandshakeField> mine = {
            {"trainer", distributed::hash_string("NextItemTrainer")},
            {"num_items", static_cast<std::uint64_t>(num_items)},
            {"max_len", static_cast<std::uint64_t>(max_len)},
            {"seed", opt_.seed},
            {"global batch", static_cast<std::uint64_t>(opt_.batch_size)},
            {"granule", static_cast<std::uint64_t>(opt_.granule)},
            {"lr", double_bits(opt_.lr)},
            {"beta1", double_bits(opt_.beta1)},
            {"beta2", double_bits(opt_.beta2)},
            {"weight_decay", double_bits(opt_.weight_decay)},
            {"clip_norm", double_bits(opt_.clip_norm)},
        };
        const auto common = data_and_model_fields(train, model_.params());
        fields.insert(fields.begin(), mine.begin(), mine.end());
        fields.insert(fields.begin(), common.begin(), common.end());
        distributed::handshake(comm_, std::span<const distributed::HandshakeField>(fields));
    }

    Model& model_;
    NextItemTrainingOptions opt_;
    data::NextItemBatches batches_;
    optim::Adam<T, Memory> adam_;
    std::int64_t step_ = 0;
    EpochBatches epoch_batches_;
    Matrix<row_id_t> ids_, pos_, neg_;
    index_t last_batch_ = 0;
    Comm comm_;
    std::optional<distributed::GranulePlan> plan_;
    GranularGradients<T> granules_;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
