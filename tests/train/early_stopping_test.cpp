// train::EarlyStopping: which evaluations improve, when it says stop, min_delta, lower-is-better,
// restoring, and its errors. Expected verdicts are written out by hand for each sequence.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "recblocks/core/error.hpp"
#include "recblocks/train/early_stopping.hpp"

using namespace recblocks;
using train::EarlyStopping;
using V = EarlyStopping::Verdict;

namespace {

struct Seen {
    std::vector<V> verdicts;
    std::vector<bool> stops;
};

/// Feeds values at epochs 1, 2, ...; records each verdict and should_stop() after it.
Seen feed(EarlyStopping& s, const std::vector<double>& values) {
    Seen out;
    for (std::size_t i = 0; i < values.size(); ++i) {
        out.verdicts.push_back(s.update(values[i], static_cast<std::int64_t>(i + 1)));
        out.stops.push_back(s.should_stop());
    }
    return out;
}

}  // namespace

TEST_CASE("EarlyStopping keeps the best value and stops after patience evaluations without improvement",
          "[train][early_stopping]") {
    EarlyStopping s({.patience = 2});
    CHECK_FALSE(s.best().has_value());
    CHECK(s.best_epoch() == -1);
    CHECK_FALSE(s.should_stop());
    //                         1     2     3     4     5     6
    const auto seen = feed(s, {0.10, 0.30, 0.20, 0.35, 0.35, 0.34});
    CHECK(seen.verdicts == std::vector<V>{V::improved, V::improved, V::not_improved, V::improved, V::not_improved,
                                          V::not_improved});
    // epoch 5 ties the best: not an improvement; epoch 6 is the second in a row without one.
    CHECK(seen.stops == std::vector<bool>{false, false, false, false, false, true});
    CHECK(*s.best() == 0.35);
    CHECK(s.best_epoch() == 4);
    CHECK(s.evaluations_since_best() == 2);
}

TEST_CASE("EarlyStopping: an improvement resets the count", "[train][early_stopping]") {
    EarlyStopping s({.patience = 3});
    const auto seen = feed(s, {0.5, 0.4, 0.4, 0.6, 0.1, 0.2, 0.3});
    CHECK(seen.stops == std::vector<bool>{false, false, false, false, false, false, true});
    CHECK(s.best_epoch() == 4);
}

TEST_CASE("EarlyStopping with patience 0 never stops but still keeps the best", "[train][early_stopping]") {
    EarlyStopping s;
    const auto seen = feed(s, {0.3, 0.2, 0.1, 0.0, -1.0});
    CHECK(seen.stops == std::vector<bool>(5, false));
    CHECK(*s.best() == 0.3);
    CHECK(s.best_epoch() == 1);
    CHECK(s.evaluations_since_best() == 4);
}

TEST_CASE("EarlyStopping: min_delta asks for a gain larger than it", "[train][early_stopping]") {
    EarlyStopping s({.patience = 2, .min_delta = 0.01});
    // gains over the best so far:       +0.005 +0.025 +0.005 +0.009
    const auto seen = feed(s, {0.200, 0.205, 0.225, 0.230, 0.234});
    CHECK(seen.verdicts ==
          std::vector<V>{V::improved, V::not_improved, V::improved, V::not_improved, V::not_improved});
    CHECK(seen.stops.back());
    CHECK(*s.best() == 0.225);
    CHECK(s.best_epoch() == 3);
}

TEST_CASE("EarlyStopping: lower_is_better for losses", "[train][early_stopping]") {
    EarlyStopping s({.patience = 1, .lower_is_better = true});
    const auto seen = feed(s, {2.0, 1.5, 1.7});
    CHECK(seen.verdicts == std::vector<V>{V::improved, V::improved, V::not_improved});
    CHECK(seen.stops == std::vector<bool>{false, false, true});
    CHECK(*s.best() == 1.5);
}

TEST_CASE("EarlyStopping::restore continues a saved tracker", "[train][early_stopping]") {
    EarlyStopping s({.patience = 3});
    s.restore(0.4, 7, 2);
    CHECK(s.update(0.39, 9) == V::not_improved);
    CHECK(s.should_stop());  // the third evaluation in a row without improvement, counting the saved two
    EarlyStopping t({.patience = 3});
    t.restore(0.4, 7, 2);
    CHECK(t.update(0.41, 9) == V::improved);
    CHECK(t.best_epoch() == 9);
    CHECK_FALSE(t.should_stop());
}

TEST_CASE("EarlyStopping rejects bad options and NaN values", "[train][early_stopping]") {
    CHECK_THROWS_AS(EarlyStopping({.patience = -1}), ValueError);
    CHECK_THROWS_AS(EarlyStopping({.min_delta = -0.1}), ValueError);
    CHECK_THROWS_AS(EarlyStopping({.min_delta = std::numeric_limits<double>::infinity()}), ValueError);
    EarlyStopping s;
    CHECK_THROWS_WITH(s.update(std::nan(""), 3), Catch::Contains("epoch 3 is NaN"));
    CHECK_THROWS_AS(s.restore(std::nan(""), 1, 0), ValueError);
    CHECK_THROWS_AS(s.restore(0.1, -1, 0), ValueError);
}
