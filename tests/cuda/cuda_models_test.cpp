// Whole models on backend::Cuda against the same model in host memory on the
// Reference backend: a few training steps (forward, BCE loss, backward, Adam)
// and full-catalogue scoring, within float tolerances, and the same bits on
// two GPU runs. Runs only where a GPU exists (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/optim/adam.hpp"
#include "support/compare.hpp"
#include "support/tiny_sasrec_batch.hpp"

namespace {

using namespace recblocks;

template <class Model, class Be>
Matrix<float> train_and_score(Model& model, const Be& be, int steps) {
    const rbtest::TinySasrecBatch batch;
    optim::Adam<float, memory_space_t<Be>> adam({}, model.params());
    for (int s = 1; s <= steps; ++s) {
        model.train_step_bce(be, ThreadPool::global(), batch.ids.cview(), batch.pos.cview(), batch.neg.cview(),
                             std::uint64_t(s));
        adam.step(be, model.params(), 1e-2);
    }
    auto scores = make_tensor<float>(be, Shape<2>{{2, model.config().num_items + 1}});
    model.score_all(be, ThreadPool::global(), batch.ids.cview(), scores.view());
    return to_host(scores);
}

}  // namespace

TEST_CASE("cuda SASRec trains and scores like the host model", "[cuda][models]") {
    models::SASRecConfig cfg;
    cfg.num_items = 12;
    cfg.max_len = 6;
    cfg.d_model = 8;
    cfg.heads = 2;
    cfg.dropout = 0.3;
    cfg.mask_padding_keys = true;
    const backend::Cuda gpu{};
    models::SASRec<float> host(cfg, Rng(3));
    models::SASRec<float, policies::QueryNorm, CudaMemory> device(cfg, Rng(3), memory_of(gpu));
    const Matrix<float> want = train_and_score(host, backend::Reference{}, 3);
    const Matrix<float> got = train_and_score(device, gpu, 3);
    for (index_t b = 0; b < 2; ++b) {
        REQUIRE(std::isinf(got(b, 0)));
        for (index_t i = 1; i <= cfg.num_items; ++i) REQUIRE(got(b, i) == Approx(want(b, i)).margin(2e-4).epsilon(2e-3));
    }
    // The same bits on a second GPU run.
    models::SASRec<float, policies::QueryNorm, CudaMemory> again(cfg, Rng(3), memory_of(gpu));
    const Matrix<float> repeat = train_and_score(again, gpu, 3);
    REQUIRE(std::memcmp(repeat.data(), got.data(), static_cast<std::size_t>(got.numel()) * sizeof(float)) == 0);
}
