// The generative retriever: gradients vs finite differences, the NextCodeModel
// concept, a synthetic training run, decoding only catalogue items (and the
// same top-k as exhaustive scoring when the beam is wide), thread-count
// independence, errors.
#include <catch2/catch.hpp>

#include <set>

#include "../support/semantic_id_fixtures.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/models/generative_retriever.hpp"
#include "recblocks/train/generative_trainer.hpp"
#include "recblocks/ops/top_k.hpp"

using namespace recblocks;

namespace {

// 6 items, 2 levels (K = 3, 4); unique tuples.
tokenizers::SemanticIds tiny_ids() {
    const std::int32_t c[6][2] = {{0, 1}, {0, 3}, {1, 0}, {2, 2}, {1, 3}, {2, 0}};
    Matrix<std::int32_t> codes(Shape<2>{{6, 2}});
    for (index_t i = 0; i < 6; ++i)
        for (index_t j = 0; j < 2; ++j) codes(i, j) = c[i][j];
    return tokenizers::SemanticIds(codes.cview(), {3, 4});
}

models::GenerativeRetrieverConfig tiny_config() {
    models::GenerativeRetrieverConfig c;
    c.max_len = 3;
    c.d_model = 8;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    return c;
}

// Items 1..N cycle: the next item of i is i % N + 1 (learnable exactly).
std::vector<std::vector<row_id_t>> cyclic_users(index_t users, index_t n, index_t len) {
    std::vector<std::vector<row_id_t>> out;
    for (index_t u = 0; u < users; ++u) {
        std::vector<row_id_t> s;
        row_id_t it = static_cast<row_id_t>(u % n + 1);
        for (index_t t = 0; t < len + u % 3; ++t) {
            s.push_back(it);
            it = static_cast<row_id_t>(it % n + 1);
        }
        out.push_back(std::move(s));
    }
    return out;
}
}  // namespace

TEST_CASE("generative retriever: training gradients match finite differences", "[generative][gradcheck]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    const auto ids = tiny_ids();
    models::GenerativeRetriever<double> model(tiny_config(), ids, Rng(17));
    Matrix<row_id_t> in(Shape<2>{{2, 3}}), pos(Shape<2>{{2, 3}});
    const row_id_t s[2][3] = {{0, 3, 5}, {2, 6, 1}};
    const row_id_t p[2][3] = {{0, 5, 4}, {6, 1, 3}};
    for (index_t b = 0; b < 2; ++b)
        for (index_t t = 0; t < 3; ++t) {
            in(b, t) = s[b][t];
            pos(b, t) = p[b][t];
        }
    auto loss = [&] { return model.train_step(ref, pool, in.cview(), pos.cview(), 4).loss; };
    const double l0 = loss();
    REQUIRE(std::isfinite(l0));
    REQUIRE(l0 > 0);
    std::vector<std::vector<double>> saved;
    for (const auto& prm : model.params()) saved.emplace_back(prm.grad, prm.grad + prm.numel());
    for (std::size_t i = 0; i < model.params().size(); ++i) {
        const auto& prm = model.params()[i];
        const index_t stride = prm.numel() > 200 ? prm.numel() / 200 + 1 : 1;
        rbtest::check_fd(prm.name, prm.value, saved[i].data(), prm.numel(), loss, 1e-5, stride);
    }
}

TEST_CASE("generative retriever: loss is the sum over levels of per-level mean cross-entropies", "[generative]") {
    // With a fresh model and no dropout the loss of one target pair is
    // -log p_0(c_0) - log p_1(c_1), and the same log-probs come out of
    // prepare_queries for that history.
    const backend::Reference ref{};
    ThreadPool pool(1);
    const auto ids = tiny_ids();
    auto cfg = tiny_config();
    cfg.dropout = 0;
    models::GenerativeRetriever<double> model(cfg, ids, Rng(3));
    Matrix<row_id_t> in(Shape<2>{{1, 3}}), pos(Shape<2>{{1, 3}});
    in(0, 0) = 0, in(0, 1) = 2, in(0, 2) = 4;
    pos(0, 0) = 0, pos(0, 1) = 0, pos(0, 2) = 6;  // only the last item has a target: item 6 = codes (2, 0)
    const double l = model.train_step(ref, pool, in.cview(), pos.cview(), 0).loss;
    model.prepare_queries(ref, pool, in.cview());
    Matrix<float> l0(Shape<2>{{1, 3}}), l1(Shape<2>{{1, 4}});
    std::vector<std::int32_t> query{0};
    Matrix<std::int32_t> none(Shape<2>{{1, 0}});
    decoding::DecodeStep st{0, query, {}, none.cview()};
    model.next_code_log_probs(st, l0.view());
    st.level = 1;
    model.next_code_log_probs(st, l1.view());
    CHECK(l == Approx(-double(l0(0, 2)) - double(l1(0, 0))).epsilon(1e-5));
    double s0 = 0, s1 = 0;
    for (index_t c = 0; c < 3; ++c) s0 += std::exp(double(l0(0, c)));
    for (index_t c = 0; c < 4; ++c) s1 += std::exp(double(l1(0, c)));
    CHECK(s0 == Approx(1.0).epsilon(1e-5));
    CHECK(s1 == Approx(1.0).epsilon(1e-5));
    // score_all = the sum of the item's per-level log-probs.
    Matrix<double> scores(Shape<2>{{1, 7}});
    model.score_all(ref, pool, in.cview(), scores.view());
    CHECK(std::isinf(scores(0, 0)));
    CHECK(scores(0, 6) == Approx(double(l0(0, 2)) + double(l1(0, 0))).epsilon(1e-5));
}

TEST_CASE("generative retriever: satisfies NextCodeModel", "[generative]") {
    STATIC_REQUIRE(decoding::NextCodeModel<models::GenerativeRetriever<float>>);
    STATIC_REQUIRE(decoding::NextCodeModel<models::GenerativeRetriever<double, policies::PostNorm>>);
}

TEST_CASE("generative retriever: training lowers the loss; constrained decoding returns catalogue items",
          "[generative]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    const auto ids = rbtest::ids_12();
    models::GenerativeRetrieverConfig cfg;
    cfg.max_len = 6;
    cfg.d_model = 16;
    cfg.heads = 2;
    cfg.dropout = 0.0;
    models::GenerativeRetriever<float> model(cfg, ids, Rng(7));
    const auto users = cyclic_users(48, 12, 8);
    train::GenerativeTrainingOptions opt;
    opt.batch_size = 16;
    opt.lr = 5e-3;
    train::GenerativeTrainer<float> trainer(model, users, opt);
    const double first = trainer.train_epoch(be, pool).mean_loss;
    double last = first;
    for (int e = 0; e < 30; ++e) last = trainer.train_epoch(be, pool).mean_loss;
    INFO("first epoch " << first << " last " << last);
    CHECK(last < 0.25 * first);

    // Decode the next item of every user.
    const index_t q = 48, k = 5;
    Matrix<row_id_t> hist(Shape<2>{{q, 6}});
    for (index_t u = 0; u < q; ++u) {
        const auto& s = users[static_cast<std::size_t>(u)];
        for (index_t t = 0; t < 6; ++t) hist(u, t) = s[s.size() - 6 + static_cast<std::size_t>(t)];
    }
    model.prepare_queries(be, pool, hist.cview());
    const tokenizers::CodeTrie trie(ids);
    decoding::BeamSearchWorkspace ws;
    Matrix<row_id_t> items(Shape<2>{{q, k}});
    Matrix<float> sc(Shape<2>{{q, k}});
    decoding::BeamSearchOptions bo;
    bo.beam_width = 12;  // wide enough to be exact on 12 items
    decoding::constrained_beam_search(model, trie, q, k, items.view(), sc.view(), ws, bo);
    Matrix<float> all(Shape<2>{{q, 13}});
    model.score_all(be, pool, hist.cview(), all.view());
    index_t correct = 0;
    for (index_t u = 0; u < q; ++u) {
        std::set<row_id_t> seen;
        for (index_t j = 0; j < k; ++j) {
            REQUIRE(items(u, j) >= 0);
            REQUIRE(items(u, j) < 12);
            REQUIRE(seen.insert(items(u, j)).second);
            if (j > 0) REQUIRE(sc(u, j) <= sc(u, j - 1));
            // The beam score is the exhaustive score of the same item (dataset id = trie id + 1).
            REQUIRE(sc(u, j) == Approx(all(u, items(u, j) + 1)).margin(1e-4));
        }
        // The exhaustive best is the beam's best.
        index_t best = 1;
        for (index_t i = 2; i <= 12; ++i)
            if (all(u, i) > all(u, best)) best = i;
        CHECK(items(u, 0) + 1 == best);
        const row_id_t truth = static_cast<row_id_t>(hist(u, 5) % 12 + 1);
        correct += items(u, 0) + 1 == truth;
    }
    CHECK(correct >= q * 9 / 10);

    // The unconstrained search over the whole code space (2·3·2 = 12 tuples, all
    // real here): 0 invalid; over a catalogue missing items, some are invalid.
    Tensor<std::int32_t, 3> codes(Shape<3>{{q, k, 3}});
    decoding::beam_search(model, ids.codebook_sizes(), q, k, codes.view(), sc.view(), ws, bo);
    CHECK(decoding::count_invalid_ids(trie, codes.cview()).invalid == 0);
    Matrix<std::int32_t> half(Shape<2>{{6, 3}});
    for (index_t i = 0; i < 6; ++i)
        for (index_t j = 0; j < 3; ++j) half(i, j) = ids.codes()(2 * i, j);
    const tokenizers::CodeTrie half_trie(half.cview(), ids.codebook_sizes());
    const auto st = decoding::count_invalid_ids(half_trie, codes.cview());
    CHECK(st.returned == q * k);
    CHECK(st.invalid > 0);
}

TEST_CASE("generative retriever: same losses and scores on 1 and 2 threads", "[generative]") {
    const auto ids = rbtest::ids_12();
    models::GenerativeRetrieverConfig cfg;
    cfg.max_len = 6;
    cfg.d_model = 16;
    cfg.heads = 2;
    cfg.dropout = 0.1;
    const auto users = cyclic_users(40, 12, 8);
    std::vector<double> losses[2];
    Matrix<float> scores[2];
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        const backend::Cpu<isa::Dispatch> be{&pool};
        models::GenerativeRetriever<float> model(cfg, ids, Rng(11));
        train::GenerativeTrainingOptions opt;
        opt.batch_size = 8;
        train::GenerativeTrainer<float> trainer(model, users, opt);
        for (int s = 0; s < 12; ++s) losses[threads - 1].push_back(trainer.train_step(be, pool));
        Matrix<row_id_t> hist(Shape<2>{{3, 6}});
        for (index_t u = 0; u < 3; ++u)
            for (index_t t = 0; t < 6; ++t) hist(u, t) = users[static_cast<std::size_t>(u)][static_cast<std::size_t>(t)];
        scores[threads - 1].resize(Shape<2>{{3, 13}});
        model.score_all(be, pool, hist.cview(), scores[threads - 1].view());
    }
    CHECK(losses[0] == losses[1]);
    for (index_t i = 0; i < scores[0].numel(); ++i) REQUIRE(scores[0].data()[i] == scores[1].data()[i]);
}

TEST_CASE("generative retriever: errors", "[generative]") {
    ThreadPool pool(1);
    const backend::Reference ref{};
    const auto ids = tiny_ids();
    auto bad = tiny_config();
    bad.heads = 3;
    REQUIRE_THROWS_AS((models::GenerativeRetriever<float>(bad, ids, Rng(1))), ValueError);
    bad = tiny_config();
    bad.max_len = 0;
    REQUIRE_THROWS_AS((models::GenerativeRetriever<float>(bad, ids, Rng(1))), ValueError);
    models::GenerativeRetriever<float> model(tiny_config(), ids, Rng(1));
    Matrix<row_id_t> in(Shape<2>{{1, 3}}), pos(Shape<2>{{1, 3}}), wrong(Shape<2>{{1, 4}});
    std::fill(in.begin(), in.end(), row_id_t{1});
    std::fill(pos.begin(), pos.end(), row_id_t{2});
    std::fill(wrong.begin(), wrong.end(), row_id_t{1});
    REQUIRE_THROWS_AS(model.train_step(ref, pool, wrong.cview(), wrong.cview(), 0), ShapeError);
    in(0, 1) = 7;  // outside [0, 6]
    REQUIRE_THROWS_AS(model.train_step(ref, pool, in.cview(), pos.cview(), 0), IndexError);
    in(0, 1) = 1;
    pos(0, 2) = -1;
    REQUIRE_THROWS_AS(model.train_step(ref, pool, in.cview(), pos.cview(), 0), IndexError);
    model.prepare_queries(ref, pool, in.cview());
    std::vector<std::int32_t> query{1};  // only query 0 prepared
    Matrix<std::int32_t> none(Shape<2>{{1, 0}});
    Matrix<float> out(Shape<2>{{1, 3}});
    REQUIRE_THROWS_AS(model.next_code_log_probs({0, query, {}, none.cview()}, out.view()), IndexError);
    query[0] = 0;
    Matrix<float> out_bad(Shape<2>{{1, 4}});
    REQUIRE_THROWS_AS(model.next_code_log_probs({0, query, {}, none.cview()}, out_bad.view()), ShapeError);
    Matrix<float> scores(Shape<2>{{1, 6}});
    REQUIRE_THROWS_AS(model.score_all(ref, pool, in.cview(), scores.view()), ShapeError);
}
