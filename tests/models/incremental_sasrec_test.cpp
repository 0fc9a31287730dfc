// IncrementalSASRec against the model's own full forward (SASRec::score_all on
// the left-padded window): after every append, for 1-2 blocks, 1-2 heads and
// each norm placement, through and beyond max_len (both overflow policies);
// batched appends against one-by-one; candidates against appending each;
// reset against appends; the full-recompute fallback; bad inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/models/incremental_sasrec.hpp"

using namespace recblocks;

namespace {

models::SASRecConfig small_config(index_t blocks, index_t heads) {
    models::SASRecConfig c;
    c.num_items = 40;
    c.max_len = 10;
    c.d_model = 8;
    c.num_blocks = blocks;
    c.heads = heads;
    c.dropout = 0.2;  // inference: unused
    c.positions = blocks::PositionRows::from_oldest;
    c.mask_padding_keys = true;
    return c;
}

/// Every parameter moved off its initial value (norms away from 1 and 0, biases away from 0).
template <class M>
void perturb(M& model, std::uint64_t seed) {
    const Rng rng(seed);
    std::uint64_t k = 0;
    for (const auto& p : model.params())
        for (index_t i = 0; i < p.numel(); ++i) p.value[i] += static_cast<decltype(+p.value[0])>(0.3 * rng.normal(k++));
}

std::vector<row_id_t> random_history(std::size_t n, index_t num_items, std::uint64_t seed) {
    const Rng rng(seed);
    std::vector<row_id_t> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<row_id_t>(1 + rng.u32(i) % std::uint32_t(num_items));
    return h;
}

/// The model's scores [1, N + 1] for a window (left-padded to max_len): the reference.
template <class T, class Norm, class Be>
Matrix<T> full_scores(models::SASRec<T, Norm>& model, const Be& be, ThreadPool& pool, std::span<const row_id_t> window) {
    const index_t len = model.config().max_len, n = static_cast<index_t>(window.size());
    Matrix<row_id_t> ids(Shape<2>{{1, len}});
    std::copy(window.begin(), window.end(), ids.data() + (len - n));
    Matrix<T> s(Shape<2>{{1, model.config().num_items + 1}});
    model.score_all(be, pool, ids.cview(), s.view());
    return s;
}

template <class T, class Norm, class Be>
Matrix<T> engine_scores(models::IncrementalSASRec<T, Norm>& engine, const Be& be, const models::SASRecUserState<T>& s,
                        index_t num_items) {
    Matrix<T> out(Shape<2>{{1, num_items + 1}});
    const models::SASRecUserState<T>* one[] = {&s};
    engine.score_all(be, one, out.view());
    return out;
}

/// |a - b| <= tol * max(1, |b|) on every real item, and the same top 10.
template <class T>
void require_same_scores(const Matrix<T>& got, const Matrix<T>& want, double tol) {
    const index_t n = want.extent(1);
    double worst = 0;
    for (index_t i = 1; i < n; ++i)
        worst = std::max(worst, std::fabs(double(got(0, i)) - double(want(0, i))) / std::max(1.0, std::fabs(double(want(0, i)))));
    INFO("worst relative score difference " << worst);
    REQUIRE(worst <= tol);
    REQUIRE(std::isinf(got(0, 0)));
    std::vector<index_t> a(static_cast<std::size_t>(n - 1)), b(a.size());
    for (index_t i = 1; i < n; ++i) a[std::size_t(i - 1)] = b[std::size_t(i - 1)] = i;
    auto top = [&](std::vector<index_t>& v, const Matrix<T>& s) {
        std::partial_sort(v.begin(), v.begin() + 10, v.end(), [&](index_t x, index_t y) { return s(0, x) > s(0, y); });
        v.resize(10);
    };
    top(a, got);
    top(b, want);
    REQUIRE(a == b);
}

/// The window the engine should hold after appending `history` one event at a time.
std::vector<row_id_t> expected_window(std::span<const row_id_t> history, index_t len, index_t keep) {
    std::vector<row_id_t> w;
    for (row_id_t e : history) {
        if (static_cast<index_t>(w.size()) == len) w.erase(w.begin(), w.end() - (keep - 1));
        w.push_back(e);
    }
    return w;
}

template <class T, class Norm>
void check_every_append(index_t blocks, index_t heads, index_t keep, double tol) {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    auto cfg = small_config(blocks, heads);
    models::SASRec<T, Norm> model(cfg, Rng(31 + std::uint64_t(blocks * 10 + heads)));
    perturb(model, 7);
    models::IncrementalSASRec<T, Norm> engine(model, {keep, false});
    REQUIRE(engine.incremental());
    auto state = engine.make_state();
    require_same_scores(engine_scores(engine, cpu, state, cfg.num_items), full_scores(model, cpu, pool, {}), tol);
    const auto history = random_history(std::size_t(cfg.max_len * 5 / 2), cfg.num_items, 3);
    for (std::size_t t = 0; t < history.size(); ++t) {
        engine.append(cpu, pool, state, history[t]);
        const auto window = expected_window(std::span<const row_id_t>(history).first(t + 1), cfg.max_len,
                                            keep == 0 ? cfg.max_len : keep);
        INFO("after event " << t << ", window of " << window.size());
        REQUIRE(std::vector<row_id_t>(state.events().begin(), state.events().end()) == window);
        require_same_scores(engine_scores(engine, cpu, state, cfg.num_items), full_scores(model, cpu, pool, window), tol);
    }
}

}  // namespace

TEMPLATE_TEST_CASE("IncrementalSASRec: every append equals a full forward on the window", "[models][sasrec][incremental]",
                   policies::QueryNorm, policies::PreNorm, policies::PostNorm) {
    for (index_t blocks : {1, 2})
        for (index_t heads : {1, 2}) {
            INFO(blocks << " blocks, " << heads << " heads");
            check_every_append<float, TestType>(blocks, heads, 0, 1e-5);
            check_every_append<double, TestType>(blocks, heads, 0, 1e-10);
        }
    // Restarting a full window from its last 4 events: the scores are the model's on the events kept.
    check_every_append<float, TestType>(2, 2, 4, 1e-5);
    check_every_append<double, TestType>(2, 1, 1, 1e-10);
}

TEMPLATE_TEST_CASE("IncrementalSASRec: a batch of appends equals one-by-one; reset equals appends",
                   "[models][sasrec][incremental]", policies::QueryNorm, policies::PreNorm, policies::PostNorm) {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    auto cfg = small_config(2, 2);
    models::SASRec<float, TestType> model(cfg, Rng(5));
    perturb(model, 9);
    models::IncrementalSASRec<float, TestType> batched(model), single(model);
    // Users with 0, 1, 4, 9 (one short of max_len), 10 (full: the batch rebuilds it) and 23 events.
    const std::size_t lengths[] = {0, 1, 4, 9, 10, 23};
    std::vector<models::SASRecUserState<float>> a, b;
    for (std::size_t u = 0; u < std::size(lengths); ++u) {
        const auto h = random_history(lengths[u], cfg.num_items, 100 + u);
        a.push_back(batched.make_state());
        b.push_back(single.make_state());
        batched.reset(cpu, pool, a.back(), h);
        for (row_id_t e : h) single.append(cpu, pool, b.back(), e);
        // reset(history) = the appends, and = the full forward on the last max_len events.
        for (index_t c = 0; c < cfg.d_model; ++c) REQUIRE(a.back().hidden()(c) == Approx(b.back().hidden()(c)).margin(1e-5));
        const auto w = std::span<const row_id_t>(h).last(std::min<std::size_t>(h.size(), std::size_t(cfg.max_len)));
        require_same_scores(engine_scores(batched, cpu, a.back(), cfg.num_items), full_scores(model, cpu, pool, w), 1e-5);
    }
    for (int round = 0; round < 3; ++round) {
        std::vector<models::SASRecUserState<float>*> states;
        for (auto& s : a) states.push_back(&s);
        const auto items = random_history(a.size(), cfg.num_items, 200 + std::uint64_t(round));
        batched.append_batch(cpu, pool, states, items);
        for (std::size_t u = 0; u < b.size(); ++u) {
            single.append(cpu, pool, b[u], items[u]);
            REQUIRE(std::equal(a[u].events().begin(), a[u].events().end(), b[u].events().begin(), b[u].events().end()));
            for (index_t c = 0; c < cfg.d_model; ++c)
                REQUIRE(a[u].hidden()(c) == Approx(b[u].hidden()(c)).margin(1e-5));
            require_same_scores(engine_scores(batched, cpu, a[u], cfg.num_items),
                                full_scores(model, cpu, pool, a[u].events()), 1e-5);
        }
    }
    // top_k: the best items of score_all, best first.
    std::vector<const models::SASRecUserState<float>*> cs;
    for (auto& s : a) cs.push_back(&s);
    Matrix<row_id_t> ids(Shape<2>{{index_t(cs.size()), 5}});
    Matrix<float> vals(ids.shape()), all(Shape<2>{{index_t(cs.size()), cfg.num_items + 1}});
    batched.top_k(cpu, cs, 5, ids.view(), vals.view());
    batched.score_all(cpu, cs, all.view());
    for (index_t u = 0; u < ids.extent(0); ++u) {
        const float fifth = vals(u, 4);
        index_t above = 0;
        for (index_t i = 1; i <= cfg.num_items; ++i) above += all(u, i) > fifth;
        REQUIRE(above == 4);
        for (index_t j = 0; j < 5; ++j) REQUIRE(all(u, ids(u, j)) == vals(u, j));
    }
}

TEMPLATE_TEST_CASE("IncrementalSASRec: candidates in one pass equal appending each", "[models][sasrec][incremental]",
                   policies::QueryNorm, policies::PreNorm, policies::PostNorm) {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    auto cfg = small_config(2, 2);
    models::SASRec<float, TestType> model(cfg, Rng(8));
    perturb(model, 4);
    for (index_t keep : {0, 3}) {
        models::IncrementalSASRec<float, TestType> engine(model, {keep, false});
        const auto candidates = random_history(7, cfg.num_items, 55);
        for (std::size_t n : {0, 1, 6, 10, 14}) {  // empty, short, full window (an append would slide or restart)
            INFO(n << " events, overflow_keep " << keep);
            auto state = engine.make_state();
            engine.reset(cpu, pool, state, random_history(n, cfg.num_items, 60 + n));
            const std::vector<row_id_t> before(state.events().begin(), state.events().end());
            Matrix<float> out(Shape<2>{{7, cfg.d_model}});
            engine.encode_candidates(cpu, pool, state, candidates, out.view());
            REQUIRE(std::vector<row_id_t>(state.events().begin(), state.events().end()) == before);  // unchanged
            for (std::size_t c = 0; c < candidates.size(); ++c) {
                auto copy = state;
                engine.append(cpu, pool, copy, candidates[c]);
                for (index_t j = 0; j < cfg.d_model; ++j)
                    REQUIRE(out(index_t(c), j) == Approx(copy.hidden()(j)).margin(1e-5));
            }
            // The state still serves appends exactly (the candidates' scratch slot is overwritten by them).
            engine.append(cpu, pool, state, 5);
            require_same_scores(engine_scores(engine, cpu, state, cfg.num_items),
                                full_scores(model, cpu, pool, state.events()), 1e-5);
        }
    }
}

TEST_CASE("IncrementalSASRec: Reference backend agrees", "[models][sasrec][incremental]") {
    ThreadPool pool(1);
    const backend::Reference ref{};
    auto cfg = small_config(2, 2);
    models::SASRec<double> model(cfg, Rng(12));
    perturb(model, 13);
    models::IncrementalSASRec<double> engine(model);
    auto state = engine.make_state();
    const auto h = random_history(15, cfg.num_items, 14);
    for (std::size_t t = 0; t < h.size(); ++t) {
        engine.append(ref, pool, state, h[t]);
        require_same_scores(engine_scores(engine, ref, state, cfg.num_items), full_scores(model, ref, pool, state.events()),
                            1e-10);
    }
}

TEST_CASE("IncrementalSASRec: configurations that cannot be cached exactly", "[models][sasrec][incremental]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    struct Case {
        blocks::PositionRows positions;
        bool mask, embedding_norm, final_norm;
        const char* named;  // what the refusal must show of this configuration
    };
    for (const Case c : {Case{blocks::PositionRows::from_one, true, false, true, "positions = from_one"},
                         Case{blocks::PositionRows::per_slot, true, false, true, "positions = per_slot"},
                         Case{blocks::PositionRows::from_oldest, false, false, true, "mask_padding_keys = false"},
                         // RecBole's layout: the one-row step has neither its embedding norm nor its missing final norm
                         Case{blocks::PositionRows::from_oldest, true, true, true, "embedding_norm = true"},
                         Case{blocks::PositionRows::from_oldest, true, false, false, "final_norm = false"}}) {
        auto cfg = small_config(2, 1);
        cfg.positions = c.positions;
        cfg.mask_padding_keys = c.mask;
        cfg.embedding_norm = c.embedding_norm;
        cfg.final_norm = c.final_norm;
        models::SASRec<float> model(cfg, Rng(3));
        perturb(model, 5);
        REQUIRE_FALSE(models::IncrementalSASRec<float>::exact_for(cfg));
        REQUIRE_THROWS_WITH(models::IncrementalSASRec<float>(model), Catch::Contains("from_oldest") &&
                                                                         Catch::Contains(c.named) &&
                                                                         Catch::Contains("allow_full_recompute"));
        // The fallback: a full forward per update, exact, with the same API.
        models::IncrementalSASRec<float> engine(model, {0, true});
        REQUIRE_FALSE(engine.incremental());
        auto state = engine.make_state();
        const auto h = random_history(13, cfg.num_items, 21);
        for (row_id_t e : h) {
            engine.append(cpu, pool, state, e);
            require_same_scores(engine_scores(engine, cpu, state, cfg.num_items),
                                full_scores(model, cpu, pool, state.events()), 1e-5);
        }
        const auto candidates = random_history(3, cfg.num_items, 22);
        Matrix<float> out(Shape<2>{{3, cfg.d_model}});
        engine.encode_candidates(cpu, pool, state, candidates, out.view());
        for (std::size_t c = 0; c < 3; ++c) {
            auto copy = state;
            engine.append(cpu, pool, copy, candidates[c]);
            for (index_t j = 0; j < cfg.d_model; ++j) REQUIRE(out(index_t(c), j) == Approx(copy.hidden()(j)).margin(1e-5));
        }
    }
}

TEST_CASE("IncrementalSASRec: bad inputs are named", "[models][sasrec][incremental]") {
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    auto cfg = small_config(1, 1);
    models::SASRec<float> model(cfg, Rng(1));
    models::IncrementalSASRec<float> engine(model);
    auto s = engine.make_state();
    REQUIRE_THROWS_WITH(engine.append(cpu, pool, s, 0), Catch::Contains("items[0] = 0 is outside the item ids [1, 40]"));
    REQUIRE_THROWS_WITH(engine.append(cpu, pool, s, 41), Catch::Contains("41 is outside"));
    const row_id_t bad[] = {3, 99};
    REQUIRE_THROWS_WITH(engine.reset(cpu, pool, s, bad), Catch::Contains("history[1] = 99"));
    models::SASRecUserState<float>* twice[] = {&s, &s};
    const row_id_t two[] = {1, 2};
    REQUIRE_THROWS_WITH(engine.append_batch(cpu, pool, twice, two), Catch::Contains("appears twice"));
    // A state may move between engines of one model (their batches never share a number).
    models::IncrementalSASRec<float> second(model);
    models::SASRecUserState<float>* just_s[] = {&s};
    for (row_id_t item : {1, 2, 3}) {
        const row_id_t it[] = {item};
        engine.append_batch(cpu, pool, just_s, it);
        second.append_batch(cpu, pool, just_s, it);
    }
    REQUIRE(s.size() == 6);
    REQUIRE_THROWS_AS((models::IncrementalSASRec<float>(model, {11, false})), ValueError);  // overflow_keep > max_len
    auto other_cfg = small_config(2, 1);
    models::SASRec<float> other(other_cfg, Rng(1));
    models::IncrementalSASRec<float> other_engine(other);
    auto foreign = other_engine.make_state();
    REQUIRE_THROWS_WITH(engine.append(cpu, pool, foreign, 1), Catch::Contains("not made by this engine"));
    Matrix<float> wrong(Shape<2>{{1, 5}});
    const models::SASRecUserState<float>* one[] = {&s};
    REQUIRE_THROWS_AS(engine.score_all(cpu, one, wrong.view()), ShapeError);
    // Memory per user: window ids, blocks x max_len x 2D cached keys and values, the final state.
    REQUIRE(s.bytes() == 10 * sizeof(row_id_t) + (1 * 10 * 16 + 8) * sizeof(float));
}
