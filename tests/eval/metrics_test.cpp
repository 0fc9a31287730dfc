// Tests for eval/metrics.hpp and eval/protocols.hpp: hand-computed metric
// values, the tie rule, history exclusion, the sampled negatives' properties
// (outside the history, distinct, deterministic per seed) and the named errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "recblocks/core/rng.hpp"
#include "recblocks/eval/metrics.hpp"
#include "recblocks/eval/next_item_evaluation.hpp"
#include "recblocks/eval/protocols.hpp"

using namespace recblocks;

namespace {

VectorView<const float> view_of(const std::vector<float>& v) {
    return vector_view(v.data(), static_cast<index_t>(v.size()));
}

template <class E, class F>
void require_error(F&& f, const std::string& id, const std::string& fragment) {
    try {
        f();
        FAIL("expected an exception containing '" << fragment << "'");
    } catch (const E& e) {
        const std::string what = e.what();
        INFO(what);
        CHECK(e.id() == id);
        CHECK(what.rfind("[" + id + "] ", 0) == 0);
        CHECK(what.find(fragment) != std::string::npos);
    }
}

// Brute force: count items 1..N, not the target, not in history, with a greater score.
index_t brute_rank_full(const std::vector<float>& s, index_t target, const std::vector<row_id_t>& history) {
    index_t r = 0;
    for (index_t j = 1; j < static_cast<index_t>(s.size()); ++j) {
        if (j == target) continue;
        if (std::find(history.begin(), history.end(), static_cast<row_id_t>(j)) != history.end()) continue;
        if (s[static_cast<std::size_t>(j)] > s[static_cast<std::size_t>(target)]) ++r;
    }
    return r;
}

}  // namespace

TEST_CASE("eval: per-user metrics by hand", "[eval][metrics]") {
    CHECK(eval::hit_rate_at(0, 10) == 1.0);
    CHECK(eval::hit_rate_at(9, 10) == 1.0);
    CHECK(eval::hit_rate_at(10, 10) == 0.0);
    CHECK(eval::hit_rate_at(0, 1) == 1.0);
    CHECK(eval::hit_rate_at(1, 1) == 0.0);

    CHECK(eval::ndcg_at(0, 10) == 1.0);
    CHECK(eval::ndcg_at(1, 10) == Approx(1.0 / std::log2(3.0)).epsilon(1e-15));
    CHECK(eval::ndcg_at(3, 10) == Approx(1.0 / std::log2(5.0)).epsilon(1e-15));
    CHECK(eval::ndcg_at(3, 10) == Approx(0.43067655807339306).epsilon(1e-14));
    CHECK(eval::ndcg_at(9, 10) == Approx(1.0 / std::log2(11.0)).epsilon(1e-15));
    CHECK(eval::ndcg_at(10, 10) == 0.0);
    CHECK(eval::ndcg_at(1000, 10) == 0.0);

    CHECK(eval::mrr_at(0, 10) == 1.0);
    CHECK(eval::mrr_at(3, 10) == 0.25);
    CHECK(eval::mrr_at(9, 10) == 0.1);
    CHECK(eval::mrr_at(10, 10) == 0.0);
    CHECK(eval::mrr_at(4, 4) == 0.0);
}

TEST_CASE("eval: per-user metrics reject k <= 0 and negative ranks", "[eval][metrics]") {
    require_error<ValueError>([] { (void)eval::hit_rate_at(0, 0); }, "recblocks.value", "eval::hit_rate_at: k = 0");
    require_error<ValueError>([] { (void)eval::ndcg_at(0, -1); }, "recblocks.value", "eval::ndcg_at: k = -1");
    require_error<ValueError>([] { (void)eval::mrr_at(0, 0); }, "recblocks.value", "eval::mrr_at: k = 0");
    require_error<ValueError>([] { (void)eval::ndcg_at(-1, 10); }, "recblocks.value", "rank = -1");
}

TEST_CASE("eval: MetricsAccumulator averages over users", "[eval][metrics]") {
    eval::MetricsAccumulator acc({1, 5, 10});
    CHECK(acc.count() == 0);
    const std::vector<index_t> ranks{0, 3, 7, 20};
    for (const index_t r : ranks) acc.add(r);
    CHECK(acc.count() == 4);

    const auto res = acc.results();
    REQUIRE(res.size() == 3);
    CHECK(res[0].k == 1);
    CHECK(res[0].hit_rate == 0.25);
    CHECK(res[0].ndcg == 0.25);
    CHECK(res[0].mrr == 0.25);

    CHECK(res[1].k == 5);
    CHECK(res[1].hit_rate == 0.5);
    CHECK(res[1].ndcg == Approx((1.0 + 1.0 / std::log2(5.0)) / 4).epsilon(1e-15));
    CHECK(res[1].mrr == Approx((1.0 + 0.25) / 4).epsilon(1e-15));

    CHECK(acc.hit_rate(10) == 0.75);
    CHECK(acc.ndcg(10) == Approx((1.0 + 1.0 / std::log2(5.0) + 1.0 / std::log2(9.0)) / 4).epsilon(1e-15));
    CHECK(acc.mrr(10) == Approx((1.0 + 0.25 + 0.125) / 4).epsilon(1e-15));
    CHECK(acc.at(10).k == 10);

    // Deterministic: the same ranks in the same order give the same bits.
    eval::MetricsAccumulator again({1, 5, 10});
    for (const index_t r : ranks) again.add(r);
    CHECK(again.ndcg(10) == acc.ndcg(10));
    CHECK(again.mrr(5) == acc.mrr(5));

    acc.reset();
    CHECK(acc.count() == 0);
    CHECK(acc.ks() == std::vector<index_t>{1, 5, 10});
}

TEST_CASE("eval: MetricsAccumulator errors", "[eval][metrics]") {
    require_error<ValueError>([] { eval::MetricsAccumulator a({}); }, "recblocks.value", "ks is empty");
    require_error<ValueError>([] { eval::MetricsAccumulator a({10, 0}); }, "recblocks.value", "ks[1] = 0");
    require_error<ValueError>([] { eval::MetricsAccumulator a({5, 5}); }, "recblocks.value", "repeats");
    eval::MetricsAccumulator acc({10});
    require_error<ValueError>([&] { (void)acc.ndcg(10); }, "recblocks.value", "no user was added");
    acc.add(2);
    require_error<ValueError>([&] { (void)acc.ndcg(5); }, "recblocks.value", "k = 5 is not one of");
    require_error<ValueError>([&] { acc.add(-1); }, "recblocks.value", "rank = -1");
}

TEST_CASE("eval: rank_of_target counts strictly greater scores (ties favour the target)", "[eval][rank]") {
    //                           0     1     2     3     4     5
    const std::vector<float> s{0.5f, 0.9f, 0.5f, 0.1f, 0.5f, 0.7f};
    CHECK(eval::rank_of_target(view_of(s), 1) == 0);
    CHECK(eval::rank_of_target(view_of(s), 5) == 1);
    // Target 2 ties with 0 and 4: only 1 and 5 are strictly greater.
    CHECK(eval::rank_of_target(view_of(s), 2) == 2);
    CHECK(eval::rank_of_target(view_of(s), 0) == 2);
    CHECK(eval::rank_of_target(view_of(s), 3) == 5);
    // Exclusions remove candidates; an exclusion of the target itself is ignored; duplicates are fine.
    const std::vector<row_id_t> ex{1, 3, 2, 1};
    CHECK(eval::rank_of_target(view_of(s), 2, ex) == 1);
    CHECK(eval::rank_of_target(view_of(s), 3, ex) == 3);
    // All equal: rank 0 for everyone.
    const std::vector<float> flat(7, 1.0f);
    for (index_t t = 0; t < 7; ++t) CHECK(eval::rank_of_target(view_of(flat), t) == 0);
    // Infinities are ordinary values.
    const std::vector<float> inf{-std::numeric_limits<float>::infinity(), 0.0f,
                                 std::numeric_limits<float>::infinity()};
    CHECK(eval::rank_of_target(view_of(inf), 0) == 2);
    CHECK(eval::rank_of_target(view_of(inf), 2) == 0);
}

TEST_CASE("eval: rank_of_target errors", "[eval][rank]") {
    std::vector<float> s{0.1f, 0.2f, 0.3f};
    require_error<IndexError>([&] { (void)eval::rank_of_target(view_of(s), 3); }, "recblocks.index",
                              "eval::rank_of_target: target = 3 is out of range");
    require_error<IndexError>([&] { (void)eval::rank_of_target(view_of(s), -1); }, "recblocks.index",
                              "target = -1");
    const std::vector<row_id_t> bad{1, 7};
    require_error<IndexError>([&] { (void)eval::rank_of_target(view_of(s), 0, bad); }, "recblocks.index",
                              "excluded id 7 (entry 1)");
    s[1] = std::numeric_limits<float>::quiet_NaN();
    require_error<ValueError>([&] { (void)eval::rank_of_target(view_of(s), 0); }, "recblocks.value",
                              "scores[1] is NaN");
    require_error<ValueError>([&] { (void)eval::rank_of_target(view_of(s), 1); }, "recblocks.value",
                              "the score of target 1 is NaN");
    // A NaN that is excluded is never read.
    const std::vector<row_id_t> ex{1};
    CHECK(eval::rank_of_target(view_of(s), 0, ex) == 1);
}

TEST_CASE("eval: full protocol by hand", "[eval][full]") {
    //                           pad   1     2     3     4     5     6
    const std::vector<float> s{9.0f, 0.3f, 0.8f, 0.3f, 0.6f, 0.9f, 0.1f};
    // Padding (index 0, score 9) is never a candidate.
    CHECK(eval::rank_full(view_of(s), 5, {}) == 0);
    CHECK(eval::rank_full(view_of(s), 4, {}) == 2);
    // Ties favour the target: 1 and 3 share 0.3.
    CHECK(eval::rank_full(view_of(s), 1, {}) == 3);
    CHECK(eval::rank_full(view_of(s), 3, {}) == 3);
    // History items are skipped; the target inside the history is still ranked; 0 in history is padding.
    const std::vector<row_id_t> hist{0, 0, 5, 2, 4};
    CHECK(eval::rank_full(view_of(s), 1, hist) == 0);
    CHECK(eval::rank_full(view_of(s), 4, hist) == 0);
    CHECK(eval::rank_full(view_of(s), 6, hist) == 2);
    // A NaN padding score is ignored.
    std::vector<float> p = s;
    p[0] = std::numeric_limits<float>::quiet_NaN();
    CHECK(eval::rank_full(view_of(p), 5, {}) == 0);
}

TEST_CASE("eval: full protocol matches a brute-force count on random scores", "[eval][full]") {
    const Rng rng(2024);
    std::uint64_t draw = 0;
    for (int trial = 0; trial < 50; ++trial) {
        const index_t n = 1 + static_cast<index_t>(rng.below(draw++, 300));
        std::vector<float> s(static_cast<std::size_t>(n) + 1);
        // Quantised scores so ties happen often.
        for (auto& v : s) v = static_cast<float>(rng.below(draw++, 16)) * 0.25f - 2.0f;
        std::vector<row_id_t> hist(rng.below(draw++, static_cast<std::uint32_t>(n)));
        for (auto& h : hist) h = static_cast<row_id_t>(rng.below(draw++, static_cast<std::uint32_t>(n + 1)));
        const index_t target = 1 + static_cast<index_t>(rng.below(draw++, static_cast<std::uint32_t>(n)));
        INFO("trial " << trial << ", n = " << n << ", target = " << target);
        CHECK(eval::rank_full(view_of(s), target, hist) == brute_rank_full(s, target, hist));
    }
}

TEST_CASE("eval: full protocol errors", "[eval][full]") {
    std::vector<float> s{0.0f, 0.1f, 0.2f, 0.3f};
    require_error<IndexError>([&] { (void)eval::rank_full(view_of(s), 0, {}); }, "recblocks.index",
                              "eval::rank_full: target = 0 is out of range");
    require_error<IndexError>([&] { (void)eval::rank_full(view_of(s), 4, {}); }, "recblocks.index",
                              "eval::rank_full: target = 4 is out of range");
    const std::vector<row_id_t> bad{2, -1};
    require_error<IndexError>([&] { (void)eval::rank_full(view_of(s), 1, bad); }, "recblocks.index",
                              "excluded id -1");
    const std::vector<float> one{0.0f};
    require_error<ShapeError>([&] { (void)eval::rank_full(view_of(one), 1, {}); }, "recblocks.shape",
                              "eval::rank_full: scores is [1] but need [N + 1]");
    s[2] = std::numeric_limits<float>::quiet_NaN();
    require_error<ValueError>([&] { (void)eval::rank_full(view_of(s), 1, {}); }, "recblocks.value",
                              "eval::rank_full: scores[2] is NaN");
    // NaN on a history item: never read.
    const std::vector<row_id_t> hist{2};
    CHECK(eval::rank_full(view_of(s), 1, hist) == 1);
}

TEST_CASE("eval: sampled candidates are the target then distinct negatives outside the history", "[eval][sampled]") {
    const index_t n = 500;
    std::vector<row_id_t> hist;
    for (row_id_t i = 3; i <= 400; i += 2) hist.push_back(i);  // 199 history items
    hist.push_back(0);                                          // padding is ignored
    const row_id_t target = 42;                                 // not in the history
    for (std::uint64_t user = 0; user < 20; ++user) {
        const auto c = eval::sampled_candidates(n, target, hist, 7, user);
        REQUIRE(c.size() == 101);
        CHECK(c[0] == target);
        std::set<row_id_t> seen;
        for (std::size_t i = 1; i < c.size(); ++i) {
            CHECK(c[i] >= 1);
            CHECK(c[i] <= n);
            CHECK(c[i] != target);
            CHECK(std::find(hist.begin(), hist.end(), c[i]) == hist.end());
            seen.insert(c[i]);
        }
        CHECK(seen.size() == 100);
    }
}

TEST_CASE("eval: sampled candidates are deterministic per (seed, user) and differ across them", "[eval][sampled]") {
    const std::vector<row_id_t> hist{5, 6, 7, 100};
    const auto a = eval::sampled_candidates(1000, 7, hist, 1, 3);
    const auto b = eval::sampled_candidates(1000, 7, hist, 1, 3);
    const auto other_seed = eval::sampled_candidates(1000, 7, hist, 2, 3);
    const auto other_user = eval::sampled_candidates(1000, 7, hist, 1, 4);
    CHECK(a == b);
    CHECK(a != other_seed);
    CHECK(a != other_user);
    // The target may be in the history (repeat consumption) and is still first, never a negative.
    CHECK(a[0] == 7);
    CHECK(std::count(a.begin(), a.end(), 7) == 1);
    // Exactly num_negatives eligible items: all of them are drawn.
    std::vector<row_id_t> big;
    for (row_id_t i = 1; i <= 110; ++i)
        if (i > 10) big.push_back(i);  // eligible: 1..10 minus target 1 -> 9 items
    const auto all = eval::sampled_candidates(110, 1, big, 9, 0, 9);
    REQUIRE(all.size() == 10);
    std::vector<row_id_t> negs(all.begin() + 1, all.end());
    std::sort(negs.begin(), negs.end());
    CHECK(negs == std::vector<row_id_t>{2, 3, 4, 5, 6, 7, 8, 9, 10});
}

TEST_CASE("eval: sampled negatives are roughly uniform over the eligible items", "[eval][sampled]") {
    // 200 items, history 1..50, target 60: 149 eligible; 300 users x 100 draws each.
    std::vector<row_id_t> hist;
    for (row_id_t i = 1; i <= 50; ++i) hist.push_back(i);
    std::vector<int> counts(201, 0);
    const int users = 300;
    for (int u = 0; u < users; ++u)
        for (const row_id_t id : eval::sampled_candidates(200, 60, hist, 11, static_cast<std::uint64_t>(u)))
            ++counts[static_cast<std::size_t>(id)];
    const double expected = users * 100.0 / 149.0;  // ~201 per eligible item
    for (row_id_t i = 1; i <= 200; ++i) {
        if (i <= 50) CHECK(counts[static_cast<std::size_t>(i)] == 0);
        else if (i == 60) CHECK(counts[static_cast<std::size_t>(i)] == users);
        else {
            INFO("item " << i);
            // Hypergeometric-ish count; sd < sqrt(expected) ~ 14; 6 sd bounds.
            CHECK(std::abs(counts[static_cast<std::size_t>(i)] - expected) < 6 * std::sqrt(expected));
        }
    }
}

TEST_CASE("eval: sampled protocol rank by hand and against candidates", "[eval][sampled]") {
    // Scores rising with id: the rank of target t among candidates = number of negatives with id > t.
    const index_t n = 300;
    std::vector<float> s(static_cast<std::size_t>(n) + 1);
    for (index_t i = 0; i <= n; ++i) s[static_cast<std::size_t>(i)] = static_cast<float>(i);
    const std::vector<row_id_t> hist{1, 2, 3};
    for (std::uint64_t user = 0; user < 10; ++user) {
        const index_t target = 150;
        const auto c = eval::sampled_candidates(n, target, hist, 5, user);
        const auto expected = std::count_if(c.begin() + 1, c.end(), [&](row_id_t id) { return id > target; });
        CHECK(eval::rank_among_candidates(view_of(s), c) == expected);
        CHECK(eval::rank_sampled(view_of(s), target, hist, 5, user) == expected);
    }
    // Ties favour the target.
    const std::vector<float> flat(static_cast<std::size_t>(n) + 1, 0.5f);
    CHECK(eval::rank_sampled(view_of(flat), 10, hist, 5, 0) == 0);
    // Explicit candidates.
    const std::vector<float> t{0.0f, 0.2f, 0.9f, 0.2f, 0.4f};
    CHECK(eval::rank_among_candidates(view_of(t), std::vector<row_id_t>{1, 2, 3, 4}) == 2);
    CHECK(eval::rank_among_candidates(view_of(t), std::vector<row_id_t>{2, 1, 3, 4}) == 0);
    CHECK(eval::rank_among_candidates(view_of(t), std::vector<row_id_t>{4}) == 0);
}

TEST_CASE("eval: sampled protocol errors", "[eval][sampled]") {
    std::vector<row_id_t> hist;
    for (row_id_t i = 1; i <= 50; ++i) hist.push_back(i);
    // 150 items, 50 in history, target excluded too: 99 eligible < 100.
    require_error<ValueError>([&] { (void)eval::sampled_candidates(150, 120, hist, 1, 17); }, "recblocks.value",
                              "eval::sampled_candidates: user 17 has 99 eligible negatives");
    CHECK(eval::sampled_candidates(151, 120, hist, 1, 17).size() == 101);
    require_error<IndexError>([&] { (void)eval::sampled_candidates(150, 0, hist, 1, 0); }, "recblocks.index",
                              "eval::sampled_candidates: target = 0 is out of range for items 1..150");
    require_error<IndexError>([&] { (void)eval::sampled_candidates(150, 151, hist, 1, 0); }, "recblocks.index",
                              "target = 151");
    const std::vector<row_id_t> bad{3, 151};
    require_error<IndexError>([&] { (void)eval::sampled_candidates(150, 1, bad, 1, 0); }, "recblocks.index",
                              "history[1] = 151");
    require_error<ValueError>([&] { (void)eval::sampled_candidates(150, 1, {}, 1, 0, 0); }, "recblocks.value",
                              "num_negatives = 0");
    require_error<ValueError>([&] { (void)eval::sampled_candidates(0, 1, {}, 1, 0); }, "recblocks.value",
                              "num_items = 0");

    std::vector<float> s(201, 0.0f);
    s[77] = std::numeric_limits<float>::quiet_NaN();
    require_error<ValueError>([&] { (void)eval::rank_among_candidates(view_of(s), std::vector<row_id_t>{5, 77}); },
                              "recblocks.value", "eval::rank_among_candidates: the score of candidates[1] = 77 is NaN");
    require_error<ValueError>([&] { (void)eval::rank_sampled(view_of(s), 77, {}, 1, 0); }, "recblocks.value",
                              "is NaN");
    require_error<IndexError>([&] { (void)eval::rank_among_candidates(view_of(s), std::vector<row_id_t>{5, 0}); },
                              "recblocks.index", "candidates[1] = 0 is out of range for items 1..200");
    require_error<ShapeError>([&] { (void)eval::rank_among_candidates(view_of(s), std::vector<row_id_t>{}); },
                              "recblocks.shape", "candidates is [0]");
    const std::vector<float> one{0.0f};
    require_error<ShapeError>([&] { (void)eval::rank_sampled(view_of(one), 1, {}, 1, 0); }, "recblocks.shape",
                              "eval::rank_sampled: scores is [1]");
}

TEST_CASE("eval: check_evaluation rejects protocols that cannot run, before training", "[eval][sampled]") {
    data::LeaveOneOut split;
    split.train = {{1, 2, 3}, {4}};
    split.valid = {4, 0};
    split.test = {5, 0};
    eval::NextItemEvalOptions sampled, full;
    full.protocol = eval::Protocol::full;
    // 100 items: too few for 100 negatives besides the target.
    REQUIRE_THROWS_MATCHES(eval::check_evaluation(split, 100, sampled), ValueError,
                           Catch::Message("[recblocks.value] eval::check_evaluation: the sampled protocol ranks the target "
                                          "among 100 sampled negatives, so it needs at least 101 items, but the data set "
                                          "has 100; evaluate with the full protocol instead"));
    REQUIRE_NOTHROW(eval::check_evaluation(split, 100, full));
    // 104 items, user 0 has seen 5 of them: 99 left.
    REQUIRE_THROWS_WITH(eval::check_evaluation(split, 104, sampled),
                        Catch::Contains("user index 0 has interacted with 5 of the 104 items"));
    REQUIRE_NOTHROW(eval::check_evaluation(split, 105, sampled));
    // Repeated items count once.
    split.train[0] = {1, 1, 2, 2, 3};
    REQUIRE_NOTHROW(eval::check_evaluation(split, 105, sampled));
    // Nobody with a test item.
    split.test = {0, 0};
    REQUIRE_THROWS_WITH(eval::check_evaluation(split, 1000, full), Catch::Contains("no user has 3 or more interactions"));
}
