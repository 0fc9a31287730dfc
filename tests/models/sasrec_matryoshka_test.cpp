// SASRec trained with the Matryoshka (MRL-E) loss: every parameter's gradient
// against finite differences; one width equal to D is the plain model; the
// loss is Σ_i c_i · the width-i loss; the score at width m is F_last[:m] ·
// E[:, :m]; width evaluation runs; bad widths are named errors.
#include <catch2/catch.hpp>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "../support/tiny_sasrec_batch.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/eval/matryoshka_evaluation.hpp"
#include "recblocks/models/sasrec.hpp"

using namespace recblocks;

namespace {

models::SASRecConfig mrl_config() {
    models::SASRecConfig c;
    c.num_items = 12;
    c.max_len = 6;
    c.d_model = 8;
    c.num_blocks = 1;
    c.heads = 2;
    c.dropout = 0.2;
    c.l2_emb = 0.01;
    c.matryoshka_widths = {2, 4, 8};
    c.matryoshka_weights = {0.5, 1.0, 1.5};
    return c;
}

using Batch = rbtest::TinySasrecBatch;

}  // namespace

TEST_CASE("SASRec with Matryoshka widths: gradients of the summed loss", "[matryoshka][models]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    models::SASRec<double> model(mrl_config(), Rng(17));
    Batch b;
    auto loss = [&] { return model.train_step_bce(ref, pool, b.ids.cview(), b.pos.cview(), b.neg.cview(), 4).loss; };
    const double l = loss();
    const auto& per = model.last_width_losses();
    REQUIRE(per.size() == 3);
    double sq = 0;
    for (index_t i = 0; i < model.item_table().rows() * 8; ++i) sq += model.item_table().data()[i] * model.item_table().data()[i];
    CHECK(l == Approx(0.5 * per[0] + 1.0 * per[1] + 1.5 * per[2] + 0.5 * 0.01 * sq).epsilon(1e-12));
    std::vector<std::vector<double>> saved;
    for (const auto& p : model.params()) saved.emplace_back(p.grad, p.grad + p.numel());
    for (std::size_t i = 0; i < model.params().size(); ++i) {
        const auto& p = model.params()[i];
        const index_t stride = p.numel() > 120 ? p.numel() / 120 + 1 : 1;
        rbtest::check_fd(p.name, p.value, saved[i].data(), p.numel(), loss, 1e-5, stride);
    }
}

TEST_CASE("SASRec: one Matryoshka width equal to D is the plain model", "[matryoshka][models]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    auto cfg = mrl_config();
    cfg.matryoshka_widths = {8};
    cfg.matryoshka_weights = {};
    models::SASRec<double> mrl(cfg, Rng(17));
    cfg.matryoshka_widths = {};
    models::SASRec<double> plain(cfg, Rng(17));
    Batch b;
    const double a = mrl.train_step_bce(ref, pool, b.ids.cview(), b.pos.cview(), b.neg.cview(), 4).loss;
    const double c = plain.train_step_bce(ref, pool, b.ids.cview(), b.pos.cview(), b.neg.cview(), 4).loss;
    CHECK(a == Approx(c).epsilon(1e-14));
    for (std::size_t i = 0; i < mrl.params().size(); ++i)
        for (index_t j = 0; j < mrl.params()[i].numel(); ++j)
            REQUIRE(mrl.params()[i].grad[j] == Approx(plain.params()[i].grad[j]).margin(1e-14));
}

TEST_CASE("SASRec: scores at width m use the prefixes; evaluation at every width", "[matryoshka][models]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    auto cfg = mrl_config();
    models::SASRec<float> model(cfg, Rng(3));
    Batch b;
    Matrix<float> last(Shape<2>{{2, 8}}), full(Shape<2>{{2, 13}}), at4(full.shape()), at8(full.shape());
    model.encode_last(cpu, pool, b.ids.cview(), last.view());
    model.score_all(cpu, pool, b.ids.cview(), full.view());
    model.score_all_at_width(cpu, pool, b.ids.cview(), at8.view(), 8);
    model.score_all_at_width(cpu, pool, b.ids.cview(), at4.view(), 4);
    REQUIRE(rbtest::compare(at8.cview(), full.cview(), {0, 0}).ok);
    for (index_t r = 0; r < 2; ++r)
        for (index_t i = 1; i <= 12; ++i) {
            double s = 0;
            for (index_t c = 0; c < 4; ++c) s += double(last(r, c)) * model.item_table()(i, c);
            CHECK(at4(r, i) == Approx(s).margin(1e-5));
        }
    REQUIRE_THROWS_WITH(model.score_all_at_width(cpu, pool, b.ids.cview(), at4.view(), 9),
                        Catch::Contains("width 9 is outside [1, 8]"));

    data::LeaveOneOut split;
    split.train = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}};
    split.valid = {4, 6, 10};
    split.test = {5, 7, 11};
    eval::NextItemEvalOptions opt;
    opt.protocol = eval::Protocol::full;
    const auto ms = eval::evaluate_next_item_at_widths(model, cpu, pool, split, 12, 6, {2, 4, 8}, opt);
    REQUIRE(ms.size() == 3);
    const auto plain = eval::evaluate_next_item(model, cpu, pool, split, 12, 6, opt);
    CHECK(ms[2].ndcg(10) == plain.ndcg(10));
    CHECK(ms[0].count() == 3);

    cfg.matryoshka_widths = {4, 2, 8};
    REQUIRE_THROWS_WITH((models::SASRec<float>(cfg, Rng(3))), Catch::Contains("strictly increasing"));
    cfg.matryoshka_widths = {};
    REQUIRE_THROWS_WITH((models::SASRec<float>(cfg, Rng(3))), Catch::Contains("matryoshka_weights given without"));
}
