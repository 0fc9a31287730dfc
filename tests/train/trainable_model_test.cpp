// The trainers' model concepts (train/trainable_model.hpp): the library's models satisfy them,
// and a model missing a member does not (a trainer given it stops at a static_assert naming it).
#include <catch2/catch.hpp>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/train/trainable_model.hpp"

using namespace recblocks;

namespace {

using Cpu = backend::Cpu<isa::Dispatch>;

struct NoParams {  // config and a step, but no parameter list
    struct { index_t max_len = 4; } cfg;
    [[nodiscard]] const auto& config() const { return cfg; }
};

struct NoStep {  // parameters and a config, but no train_step_bce
    ParamList<float> list;
    struct { index_t max_len = 4; } cfg;
    ParamList<float>& params() { return list; }
    [[nodiscard]] const auto& config() const { return cfg; }
};

struct WrongStep : NoStep {  // a step that returns the loss as a double, not a LossValue
    template <class Be>
    double train_step_bce(const Be&, ThreadPool&, MatrixView<const row_id_t>, MatrixView<const row_id_t>,
                          MatrixView<const row_id_t>, std::uint64_t) {
        return 0.0;
    }
};

struct Minimal : NoStep {  // the least a next-item model needs
    template <class Be>
    losses::LossValue train_step_bce(const Be&, ThreadPool&, MatrixView<const row_id_t>, MatrixView<const row_id_t>,
                                     MatrixView<const row_id_t>, std::uint64_t) {
        return {};
    }
};

}  // namespace

TEST_CASE("trainer concepts: the library's models satisfy them, incomplete models do not", "[train][concepts]") {
    STATIC_REQUIRE(train::TrainableModel<models::SASRec<float>>);
    STATIC_REQUIRE(train::SequenceModel<models::SASRec<float>>);
    STATIC_REQUIRE(train::NextItemStep<models::SASRec<float>, Cpu>);
    STATIC_REQUIRE(train::NextItemStep<models::SASRec<double>, backend::Reference>);
    STATIC_REQUIRE(train::ClozeStep<models::BERT4Rec<float>, Cpu>);
    STATIC_REQUIRE_FALSE(train::ClozeStep<models::SASRec<float>, Cpu>);
    STATIC_REQUIRE_FALSE(train::TrainableModel<NoParams>);
    STATIC_REQUIRE(train::SequenceModel<NoParams>);
    STATIC_REQUIRE(train::TrainableModel<NoStep>);
    STATIC_REQUIRE_FALSE(train::NextItemStep<NoStep, Cpu>);
    STATIC_REQUIRE_FALSE(train::NextItemStep<WrongStep, Cpu>);
    STATIC_REQUIRE(train::NextItemStep<Minimal, Cpu>);
    STATIC_REQUIRE(std::is_same_v<train::model_memory<NoParams>::type, HostMemory>);
}
