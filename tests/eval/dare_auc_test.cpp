// AUC and GAUC (eval/auc.hpp): hand-computed values, ties at half credit, a
// brute-force pair count, the streaming histogram within its error bound.
#include <catch2/catch.hpp>

#include <vector>

#include "recblocks/core/rng.hpp"
#include "recblocks/eval/auc.hpp"

using namespace recblocks;

namespace {
double brute_auc(const std::vector<double>& s, const std::vector<int>& y) {
    double credit = 0, pairs = 0;
    for (std::size_t i = 0; i < s.size(); ++i)
        for (std::size_t j = 0; j < s.size(); ++j)
            if (y[i] == 1 && y[j] == 0) {
                pairs += 1;
                credit += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return credit / pairs;
}
}  // namespace

TEST_CASE("eval::auc: hand-computed values and ties at half credit", "[dare][auc]") {
    const std::vector<double> s{0.1, 0.4, 0.35, 0.8};
    const std::vector<int> y{0, 0, 1, 1};
    REQUIRE(eval::auc<double, int>(s, y) == Approx(0.75));  // pairs: (.35>.1) (.35<.4) (.8>.1) (.8>.4) = 3/4
    const std::vector<double> tie{0.5, 0.5, 0.2};
    const std::vector<int> yt{1, 0, 0};
    REQUIRE(eval::auc<double, int>(tie, yt) == Approx(0.75));  // 0.5 + 1 over 2 pairs
    const std::vector<int> one_class{1, 1, 1};
    REQUIRE_THROWS_AS((eval::auc<double, int>(tie, one_class)), ValueError);
    const std::vector<int> bad{1, 2, 0};
    REQUIRE_THROWS_AS((eval::auc<double, int>(tie, bad)), ValueError);
    const std::vector<int> short_y{1, 0};
    REQUIRE_THROWS_AS((eval::auc<double, int>(tie, short_y)), ShapeError);
}

TEST_CASE("eval::auc and StreamingAuc against a brute-force pair count (many ties)", "[dare][auc]") {
    const Rng r(17);
    std::vector<double> s(700);
    std::vector<int> y(700);
    for (std::size_t i = 0; i < s.size(); ++i) {
        y[i] = int(r.below(2 * i, 3) == 0);
        s[i] = double(r.below(2 * i + 1, 40) + 12 * std::uint32_t(y[i])) / 40.0;  // a 1/40 grid: many exact ties
    }
    const double want = brute_auc(s, y);
    REQUIRE(eval::auc<double, int>(s, y) == Approx(want).epsilon(1e-12));
    // Bins no wider than the score grid's step: the histogram is exact.
    eval::StreamingAuc fine(1300, 0.0, 1.3);
    fine.add<double, int>(s, y);
    REQUIRE(fine.value() == Approx(want).epsilon(1e-12));
    // Coarse bins: off by at most the reported bound.
    eval::StreamingAuc coarse(8, 0.0, 1.3);
    for (std::size_t i = 0; i < s.size(); ++i) coarse.add(s[i], y[i]);
    REQUIRE(std::fabs(coarse.value() - want) <= coarse.error_bound() + 1e-12);
    REQUIRE(coarse.error_bound() > 0);
}

TEST_CASE("eval::gauc: impression-weighted per-user AUC, one-class users skipped", "[dare][auc]") {
    // user 7: AUC 1 over 2 impressions; user 8: AUC 0 over 3; user 9: positives only (skipped).
    const std::vector<double> s{0.9, 0.1, 0.2, 0.8, 0.5, 0.3, 0.6};
    const std::vector<int> y{1, 0, 1, 0, 0, 1, 1};
    const std::vector<std::int64_t> u{7, 7, 8, 8, 8, 9, 9};
    const auto g = eval::gauc<double, int>(s, y, u);
    REQUIRE(g.gauc == Approx(0.4));
    REQUIRE(g.users == 2);
    REQUIRE(g.skipped_users == 1);
    REQUIRE(g.impressions == 5);
    eval::StreamingGauc sg(1000);
    for (std::size_t i = 0; i < s.size(); ++i) sg.add(u[i], s[i], y[i]);
    double err = -1;
    const auto gs = sg.value(&err);
    REQUIRE(gs.gauc == Approx(0.4));
    REQUIRE(err == 0.0);
    REQUIRE(gs.skipped_users == 1);
    const std::vector<std::int64_t> u_single{1, 1, 1, 1, 1, 1, 1};
    const std::vector<int> y_pos{1, 1, 1, 1, 1, 1, 1};
    REQUIRE_THROWS_AS((eval::gauc<double, int>(s, y_pos, u_single)), ValueError);
}
