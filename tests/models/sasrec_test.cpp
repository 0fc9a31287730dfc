// SASRec model: every parameter's gradient of the full training loss (BCE +
// l2_emb, dropout active) against finite differences for each norm placement;
// inference is deterministic, padding-invariant and allocation-free after
// warm-up; scores are F_last · E; from_oldest positions keep an item's state
// when events are appended; bad inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "../support/tiny_sasrec_batch.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/models/sasrec.hpp"

using namespace recblocks;

namespace {

models::SASRecConfig tiny_config() {
    models::SASRecConfig c;
    c.num_items = 12;
    c.max_len = 6;
    c.d_model = 8;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    c.l2_emb = 0.01;
    return c;
}

using TinyBatch = rbtest::TinySasrecBatch;

template <class Norm>
void gradcheck_sasrec(bool mask_keys, blocks::PositionRows rows, void (*edit)(models::SASRecConfig&) = nullptr) {
    const backend::Reference ref{};
    ThreadPool pool(1);
    auto cfg = tiny_config();
    cfg.mask_padding_keys = mask_keys;
    cfg.positions = rows;
    if (edit) edit(cfg);
    models::SASRec<double, Norm> model(cfg, Rng(17));
    if (edit) {
        // Biases start at 0; without the timeline mask and with padded keys visible, a padded
        // slot's post-norm input is then LN(0 + 0), where eps alone bounds the curvature and
        // central differences are meaningless. Move the 1-D parameters off their defaults.
        for (const auto& p : model.params())
            if (p.shape.size() == 1)
                for (index_t j = 0; j < p.numel(); ++j) p.value[j] += 0.1 * std::sin(double(j + 1) * 1.7);
    }
    TinyBatch batch;
    auto loss = [&] { return model.train_step_bce(ref, pool, batch.ids.cview(), batch.pos.cview(), batch.neg.cview(), 4).loss; };
    loss();
    // Save the analytic gradients; the finite differences re-run the step.
    std::vector<std::vector<double>> saved;
    for (const auto& p : model.params()) saved.emplace_back(p.grad, p.grad + p.numel());
    for (std::size_t i = 0; i < model.params().size(); ++i) {
        const auto& p = model.params()[i];
        const index_t stride = p.numel() > 200 ? p.numel() / 200 + 1 : 1;
        rbtest::check_fd(p.name, p.value, saved[i].data(), p.numel(), loss, 1e-5, stride);
    }
}

}  // namespace

TEST_CASE("SASRec training gradients match finite differences", "[models][sasrec][gradcheck]") {
    gradcheck_sasrec<policies::QueryNorm>(false, blocks::PositionRows::from_one);
    gradcheck_sasrec<policies::PreNorm>(true, blocks::PositionRows::per_slot);
    gradcheck_sasrec<policies::PostNorm>(true, blocks::PositionRows::from_one);
    gradcheck_sasrec<policies::QueryNorm>(true, blocks::PositionRows::from_oldest);
    gradcheck_sasrec<policies::PreNorm>(false, blocks::PositionRows::from_oldest);
}

TEST_CASE("SASRec training gradients with the options layouts set (RecBole's and pmixer's current architecture)",
          "[models][sasrec][gradcheck]") {
    // RecBole: LayerNorm on the unscaled embedding sum (dropout after it), GELU feed-forward of
    // another width, no final norm, no timeline mask.
    SECTION("recbole") gradcheck_sasrec<policies::PostNorm>(true, blocks::PositionRows::from_oldest, [](models::SASRecConfig& c) {
        c.embedding_norm = true;
        c.scale_embedding = false;
        c.activation = Activation::gelu;
        c.ffn_inner = 12;
        c.final_norm = false;
        c.timeline_mask = false;
        c.ln_eps = 1e-12;
    });
    // pmixer's current code: no timeline mask, padded keys visible.
    SECTION("pmixer current") gradcheck_sasrec<policies::PostNorm>(false, blocks::PositionRows::from_one,
                                         [](models::SASRecConfig& c) { c.timeline_mask = false; });
}

TEMPLATE_TEST_CASE("SASRec with from_oldest positions and masked padded keys: an item's state ignores later events",
                   "[models][sasrec]", policies::QueryNorm, policies::PreNorm, policies::PostNorm) {
    // The property a per-user key/value cache needs: appending an event shifts the left-padded window
    // by one slot and leaves every older item's final state unchanged. Slot-based positions break it.
    ThreadPool pool(1);
    const backend::Reference ref{};
    for (auto rows : {blocks::PositionRows::from_oldest, blocks::PositionRows::from_one}) {
        auto cfg = tiny_config();
        cfg.mask_padding_keys = true;
        cfg.positions = rows;
        models::SASRec<double, TestType> model(cfg, Rng(23));
        const row_id_t history[] = {3, 5, 7, 2, 11};
        Matrix<row_id_t> before(Shape<2>{{1, 6}}), after(before.shape());
        for (index_t t = 0; t < 4; ++t) before(0, 2 + t) = history[t];  // 4 events, left-padded
        for (index_t t = 0; t < 5; ++t) after(0, 1 + t) = history[t];   // the 5th appended
        model.forward(ref, pool, before.cview(), 0, false);
        std::vector<double> h(model.hidden().data(), model.hidden().data() + model.hidden().numel());
        model.forward(ref, pool, after.cview(), 0, false);
        double worst = 0;
        for (index_t t = 2; t < 6; ++t)
            for (index_t c = 0; c < cfg.d_model; ++c)
                worst = std::max(worst, std::fabs(model.hidden()(0, t - 1, c) - h[std::size_t(t * cfg.d_model + c)]));
        if (rows == blocks::PositionRows::from_oldest) CHECK(worst < 1e-12);
        else CHECK(worst > 1e-3);
    }
}

TEST_CASE("SASRec inference: scores, padding, CPU vs Reference, no allocation after warm-up", "[models][sasrec]") {
    ThreadPool pool(2);
    auto cfg = tiny_config();
    cfg.mask_padding_keys = true;
    models::SASRec<float> a(cfg, Rng(5)), b(cfg, Rng(5));
    TinyBatch batch;
    Matrix<float> sa(Shape<2>{{2, 13}}), sb(sa.shape()), last(Shape<2>{{2, 8}});
    a.score_all(backend::Reference{}, pool, batch.ids.cview(), sa.view());
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    b.score_all(cpu, pool, batch.ids.cview(), sb.view());
    for (index_t i = 1; i < 13; ++i) CHECK(sb(0, i) == Approx(sa(0, i)).margin(2e-5));
    CHECK(std::isinf(sa(0, 0)));
    // score = F_last · E[i]
    b.encode_last(cpu, pool, batch.ids.cview(), last.view());
    for (index_t i = 1; i < 13; ++i) {
        double s = 0;
        for (index_t c = 0; c < 8; ++c) s += double(last(1, c)) * double(b.item_table()(i, c));
        CHECK(sb(1, i) == Approx(s).margin(1e-5));
    }
    // With padded keys masked, a row's scores do not depend on how much padding precedes it
    // (same items, different batch companions): row 0 alone gives the same scores.
    Matrix<row_id_t> one(Shape<2>{{1, 6}});
    std::copy(batch.ids.view().row(0), batch.ids.view().row(0) + 6, one.data());
    Matrix<float> s1(Shape<2>{{1, 13}});
    b.score_all(cpu, pool, one.cview(), s1.view());
    for (index_t i = 1; i < 13; ++i) CHECK(s1(0, i) == Approx(sb(0, i)).margin(1e-5));
    // Bad inputs.
    Matrix<row_id_t> bad(Shape<2>{{2, 5}});
    REQUIRE_THROWS_WITH(b.score_all(cpu, pool, bad.cview(), sb.view()), Catch::Contains("max_len = 6"));
    batch.ids(1, 2) = 13;
    REQUIRE_THROWS_WITH(b.score_all(cpu, pool, batch.ids.cview(), sb.view()), Catch::Contains("outside [0, 12]"));
    REQUIRE_THROWS_AS((models::SASRec<float>({0}, Rng(1))), ValueError);
}

TEST_CASE("SASRec: one user's forward shared by threads gives the same bits as one thread", "[models][sasrec]") {
    // Batch 1 with fewer (sequence, head) lanes than threads: the attention splits the query rows
    // over the pool and the products split their rows or the catalogue. L = 100 makes several row
    // blocks; one history fills the window, one is short (padded keys masked or not).
    for (const bool mask_keys : {false, true}) {
        models::SASRecConfig cfg;
        cfg.num_items = 300;
        cfg.max_len = 100;
        cfg.d_model = 32;
        cfg.num_blocks = 2;
        cfg.heads = 1;
        cfg.dropout = 0.0;
        cfg.mask_padding_keys = mask_keys;
        models::SASRec<float> one(cfg, Rng(9)), two(cfg, Rng(9));
        ThreadPool pool1(1), pool2(2);
        const backend::Cpu<isa::Dispatch> cpu1{&pool1}, cpu2{&pool2};
        for (const index_t len : {index_t(100), index_t(37)}) {
            Matrix<row_id_t> ids(Shape<2>{{1, cfg.max_len}});
            for (index_t t = cfg.max_len - len; t < cfg.max_len; ++t)
                ids(0, t) = static_cast<row_id_t>(1 + (t * 37 + 11) % cfg.num_items);
            Matrix<float> s1(Shape<2>{{1, cfg.num_items + 1}}), s2(s1.shape());
            one.score_all(cpu1, pool1, ids.cview(), s1.view());
            two.score_all(cpu2, pool2, ids.cview(), s2.view());
            CHECK(std::memcmp(s1.data(), s2.data(), sizeof(float) * std::size_t(s1.numel())) == 0);
            // Training without dropout keeps P for the backward: the split forward writes it too.
            Matrix<row_id_t> pos(ids.shape()), neg(ids.shape());
            for (index_t t = 0; t < cfg.max_len; ++t) {
                pos(0, t) = ids(0, t) == 0 ? 0 : static_cast<row_id_t>(1 + (t * 13) % cfg.num_items);
                neg(0, t) = ids(0, t) == 0 ? 0 : static_cast<row_id_t>(1 + (t * 29 + 5) % cfg.num_items);
            }
            const double l1 = one.train_step_bce(cpu1, pool1, ids.cview(), pos.cview(), neg.cview(), 3).loss;
            const double l2 = two.train_step_bce(cpu2, pool2, ids.cview(), pos.cview(), neg.cview(), 3).loss;
            CHECK(l1 == l2);
            for (std::size_t i = 0; i < one.params().size(); ++i) {
                const auto& a = one.params()[i];
                const auto& b = two.params()[i];
                INFO(a.name << " mask_keys=" << mask_keys << " len=" << len);
                CHECK(std::equal(a.grad, a.grad + a.numel(), b.grad));
            }
        }
    }
}
