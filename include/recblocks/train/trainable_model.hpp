#pragma once
// What the trainers ask of a model, as concepts, so that a model written from
// the blocks (not copied from models/) is checked where it is handed to a
// trainer, with a message that names the missing member:
//
//   TrainableModel      params(): the ParamList<T, Memory> of every learnable tensor
//                       (values and gradients), which the optimiser updates
//   SequenceModel       config().max_len: the length of the id rows it is fed
//   NextItemStep<Be>    train_step_bce(be, pool, ids, pos, neg, step) -> losses::LossValue:
//                       forward, loss and backward of one batch ([B, L] ids, next items
//                       and negatives; 0 = padding), gradients zeroed then filled
//   ClozeStep<Be>       train_step_ce(be, pool, ids, labels, step) -> losses::LossValue
//                       (masked ids, labels 0 where not masked)
//
// train::NextItemTrainer needs TrainableModel, SequenceModel and NextItemStep;
// train::ClozeTrainer needs TrainableModel, SequenceModel and ClozeStep
// (docs/models.md, "A model of your own").
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "recblocks/core/thread_pool.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/params/parameter_list.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace train {

template <class Model>
concept TrainableModel = requires(Model& m) {
    typename std::remove_cvref_t<decltype(m.params())>::value_type::memory_type;
    { m.params().size() } -> std::convertible_to<std::size_t>;
};

template <class Model>
concept SequenceModel = requires(const Model& m) {
    { m.config().max_len } -> std::convertible_to<index_t>;
};

template <class Model, class Be>
concept NextItemStep = requires(Model& m, const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids,
                                std::uint64_t step) {
    { m.train_step_bce(be, pool, ids, ids, ids, step) } -> std::convertible_to<losses::LossValue>;
};

template <class Model, class Be>
concept ClozeStep = requires(Model& m, const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids,
                             std::uint64_t step) {
    { m.train_step_ce(be, pool, ids, ids, step) } -> std::convertible_to<losses::LossValue>;
};

/// The memory space of a TrainableModel's parameters (host memory for anything else, so that a
/// trainer given a wrong model reports the static_assert above, not a failed type lookup).
template <class Model>
struct model_memory {
    using type = HostMemory;
};
template <TrainableModel Model>
struct model_memory<Model> {
    using type = typename std::remove_cvref_t<decltype(std::declval<Model&>().params())>::value_type::memory_type;
};

}  // namespace train
RECBLOCKS_NAMESPACE_END
