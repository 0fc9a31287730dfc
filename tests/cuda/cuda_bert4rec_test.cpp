// BERT4Rec and its loss primitive on backend::Cuda against the host:
// ops::softmax_cross_entropy against the Reference backend (ignored rows,
// bias, padded leading dimension, a bad target), then a few cloze training
// steps (forward, full-softmax loss, backward, AdamW with clipping) and
// full-catalogue scoring against the same model in host memory on the
// Reference backend, within float tolerances, and the same bits on two GPU
// runs. Runs only where a GPU exists (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/ops/softmax_cross_entropy.hpp"
#include "recblocks/train/cloze_trainer.hpp"
#include "support/compare.hpp"

namespace {

using namespace recblocks;

const backend::Reference kRef{};
const backend::Cuda kGpu{};

models::BERT4RecConfig tiny_config() {
    models::BERT4RecConfig c;
    c.num_items = 30;
    c.max_len = 8;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    return c;
}

std::vector<std::vector<row_id_t>> toy_sequences() {
    std::vector<std::vector<row_id_t>> seqs;
    for (index_t u = 0; u < 16; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < 10 - u % 5; ++t) s.push_back(static_cast<row_id_t>(1 + (u * 7 + 3 * t) % 30));
        seqs.push_back(s);
    }
    return seqs;
}

/// Trains `steps` cloze steps with the trainer on `be`, then scores the first
/// four training histories; returns the scores in host memory and the losses.
template <class Model, class Be>
std::pair<Matrix<float>, std::vector<double>> train_and_score(Model& model, const Be& be, int steps) {
    const auto seqs = toy_sequences();
    train::ClozeTrainingOptions opt;
    opt.batch_size = 6;
    opt.lr = 5e-3;
    opt.warmup_steps = 1;
    opt.clip_norm = 1.0;
    opt.mask_prob = 0.4;
    train::ClozeTrainer<float, Model> trainer(model, seqs, model.config().num_items, opt);
    std::vector<double> losses;
    for (int s = 0; s < steps; ++s) losses.push_back(trainer.train_step(be, ThreadPool::global()));
    const index_t len = model.config().max_len;
    Matrix<row_id_t> ids(Shape<2>{{4, len}});
    for (index_t b = 0; b < 4; ++b) {
        const auto& s = seqs[std::size_t(b)];
        const auto n = std::min<index_t>(len, static_cast<index_t>(s.size()));
        for (index_t t = 0; t < n; ++t) ids(b, len - n + t) = s[s.size() - std::size_t(n) + std::size_t(t)];
    }
    auto scores = make_tensor<float>(be, Shape<2>{{4, model.config().num_items + 1}});
    model.score_all(be, ThreadPool::global(), ids.cview(), scores.view());
    return {to_host(scores), losses};
}

}  // namespace

TEMPLATE_TEST_CASE("cuda softmax_cross_entropy matches the reference", "[cuda][softmax_cross_entropy]", float, double) {
    using T = TestType;
    for (index_t cols : {1, 7, 33, 255, 256, 257, 1000, 3416})
        for (bool with_bias : {false, true}) {
            const index_t rows = 9, ld = cols + 3;
            Matrix<T> logits(Shape<2>{{rows, ld}});
            Vector<T> bias(Shape<1>{{cols}});
            rbtest::fill_uniform(logits, 11, -5, 5);
            rbtest::fill_uniform(bias, 12);
            Vector<row_id_t> targets(Shape<1>{{rows}});
            for (index_t r = 0; r < rows; ++r)
                targets(r) = r % 4 == 2 ? -1 : static_cast<row_id_t>(r == 0 ? cols - 1 : (r * 13) % cols);
            const auto view = [&](auto& m) { return matrix_view(m.data(), rows, cols, ld); };
            Matrix<T> want = logits;
            const VectorView<const T> hb = with_bias ? bias.cview() : VectorView<const T>{};
            const double want_loss = ops::softmax_cross_entropy(kRef, view(want), hb, targets.cview(), T(0.25));
            auto d_logits = to(kGpu, logits);
            const auto d_bias = to(kGpu, bias);
            const auto d_targets = to(kGpu, targets);
            const VectorView<const T> db = with_bias ? d_bias.cview() : VectorView<const T>{};
            const double loss = ops::softmax_cross_entropy(kGpu, view(d_logits), db, d_targets.cview(), T(0.25));
            INFO("cols " << cols << " bias " << with_bias);
            CHECK(loss == Approx(want_loss).epsilon(std::is_same_v<T, float> ? 1e-5 : 1e-12));
            const Matrix<T> got = to_host(d_logits);
            RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), rbtest::default_tolerance<T>());  // padding untouched too
            // The same bits on a second run.
            auto again = to(kGpu, logits);
            REQUIRE(ops::softmax_cross_entropy(kGpu, view(again), db, d_targets.cview(), T(0.25)) == loss);
            const Matrix<T> got2 = to_host(again);
            REQUIRE(std::memcmp(got2.data(), got.data(), sizeof(T) * std::size_t(got.numel())) == 0);
        }
    // A bad target: IndexError naming it, nothing written.
    Matrix<T> logits(Shape<2>{{3, 9}});
    rbtest::fill_uniform(logits, 13);
    Vector<row_id_t> targets(Shape<1>{{3}});
    targets(0) = 1;
    targets(1) = -1;
    targets(2) = 9;
    auto d_logits = to(kGpu, logits);
    const auto d_targets = to(kGpu, targets);
    REQUIRE_THROWS_WITH(ops::softmax_cross_entropy(kGpu, d_logits.view(), {}, d_targets.cview(), T(1)),
                        Catch::Contains("targets[2] = 9 is outside [0, 9)"));
    const Matrix<T> back = to_host(d_logits);
    REQUIRE(std::memcmp(back.data(), logits.data(), sizeof(T) * 27) == 0);
}

TEST_CASE("cuda BERT4Rec trains (cloze, AdamW, clipping) and scores like the host model", "[cuda][models][bert4rec]") {
    const auto cfg = tiny_config();
    models::BERT4Rec<float> host(cfg, Rng(3));
    models::BERT4Rec<float, CudaMemory> device(cfg, Rng(3), memory_of(kGpu));
    const auto [want, want_losses] = train_and_score(host, kRef, 4);
    const auto [got, got_losses] = train_and_score(device, kGpu, 4);
    for (std::size_t s = 0; s < want_losses.size(); ++s) CHECK(got_losses[s] == Approx(want_losses[s]).epsilon(1e-4));
    for (index_t b = 0; b < got.extent(0); ++b) {
        REQUIRE(std::isinf(got(b, 0)));
        for (index_t i = 1; i <= cfg.num_items; ++i) REQUIRE(got(b, i) == Approx(want(b, i)).margin(2e-4).epsilon(2e-3));
    }
    // The same bits on a second GPU run.
    models::BERT4Rec<float, CudaMemory> again(cfg, Rng(3), memory_of(kGpu));
    const auto [repeat, repeat_losses] = train_and_score(again, kGpu, 4);
    REQUIRE(repeat_losses == got_losses);
    REQUIRE(std::memcmp(repeat.data(), got.data(), static_cast<std::size_t>(got.numel()) * sizeof(float)) == 0);
}
