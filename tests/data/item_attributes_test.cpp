// S3-Rec item2attributes.json reader (bags, empty items, repeats, the bundled Sports file, every
// malformed input with its file:line:column) and the item vectors built from it (TF-IDF +
// projection against a literal reference) or from an item table.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/data/item_attributes.hpp"
#include "recblocks/data/item_vectors.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {
std::string write(const rbtest::TempDir& dir, const std::string& text) {
    const auto p = (dir.path / "attrs.json").string();
    std::ofstream(p, std::ios::binary) << text;
    return p;
}
}  // namespace

TEST_CASE("item attributes: bags by item, empty items, repeats kept", "[data][attributes]") {
    rbtest::TempDir dir;
    const auto p = write(dir, "{\"3\": [4, 0, 4], \"1\":[7],\n \"5\" : [ ] }\n");
    const auto a = data::read_item_attributes(p, 5);
    REQUIRE(a.num_items() == 5);
    REQUIRE(a.bags.size() == 6);
    REQUIRE(a.bags[0].empty());
    REQUIRE(a.bags[1] == std::vector<std::int32_t>{7});
    REQUIRE(a.bags[2].empty());  // not in the file: an empty bag
    REQUIRE(a.bags[3] == std::vector<std::int32_t>{4, 0, 4});
    REQUIRE(a.bags[4].empty());
    REQUIRE(a.bags[5].empty());
    REQUIRE(a.num_attributes == 8);

    const auto none = data::read_item_attributes(write(dir, " {} "), 2);
    REQUIRE(none.num_items() == 2);
    REQUIRE(none.num_attributes == 0);
}

TEST_CASE("item attributes: the bundled Amazon Sports file", "[data][attributes]") {
    const std::string p = std::string(RECBLOCKS_SOURCE_DIR) + "/data/amazon-sports/Sports_and_Outdoors_item2attributes.json";
    const auto a = data::read_item_attributes(p, 18357);
    REQUIRE(a.num_items() == 18357);
    REQUIRE(a.num_attributes == 2278);  // ids 1..2277 (README: 2,277 distinct attributes)
    REQUIRE(a.bags[1] == std::vector<std::int32_t>{1, 2, 3, 4, 5, 6});
    REQUIRE(a.bags[156] == std::vector<std::int32_t>{7, 2, 8, 9, 10});
    std::size_t longest = 0, with_repeats = 0;
    for (index_t i = 1; i <= 18357; ++i) {
        const auto& b = a.bags[static_cast<std::size_t>(i)];
        REQUIRE(b.size() >= 2);
        longest = std::max(longest, b.size());
        with_repeats += std::set<std::int32_t>(b.begin(), b.end()).size() != b.size();
    }
    REQUIRE(longest == 37);
    REQUIRE(with_repeats == 957);
    // A smaller catalogue than the file names: the first id beyond it is an error.
    REQUIRE_THROWS_WITH(data::read_item_attributes(p, 100), Contains("is outside the catalogue 1..100"));
}

TEST_CASE("item attributes: malformed files name the file, line and column", "[data][attributes]") {
    rbtest::TempDir dir;
    struct Case {
        const char* text;
        const char* where;
        const char* what;
    };
    const Case cases[] = {
        {"", ":1:1:", "expected '{'"},
        {"[1]", ":1:1:", "expected '{'"},
        {"{\"1\": [1, 2]", ":1:13:", "found the end of the file"},
        {"{\"0\": [1]}", ":1:3:", "item id 0 is outside the catalogue 1..4"},
        {"{\"5\": [1]}", ":1:3:", "item id 5 is outside the catalogue 1..4"},
        {"{\"-1\": [1]}", ":1:2:", "item ids must be >= 1"},
        {"{\"1\": [-3]}", ":1:8:", "attribute id -3 of item 1 is negative"},
        {"{\"1\": [1],\n \"2\": [2],\n  \"1\": [3]}", ":3:3:", "item 1 is listed twice"},
        {"{\"1\": [1.5]}", ":1:8:", "must be an integer"},
        {"{\"1\": [1e3]}", ":1:8:", "must be an integer"},
        {"{\"a\": [1]}", ":1:3:", "expected the item id (an integer)"},
        {"{\"1x\": [1]}", ":1:4:", "decimal integer in quotes"},
        {"{1: [1]}", ":1:2:", "expected an item id in quotes"},
        {"{\"01\": [1]}", ":1:3:", "leading zero"},
        {"{\"1\": [1]} x", ":1:12:", "unexpected 'x' after the object"},
        {"{\"1\": [1]}{}", ":1:11:", "after the object"},
        {"{\"1\": [1,]}", ":1:10:", "expected an attribute id"},
        {"{\"1\" [1]}", ":1:6:", "expected ':'"},
        {"{\"1\": 1}", ":1:7:", "expected '['"},
        {"{\"1\": [1] \"2\": [2]}", ":1:11:", "expected ',' or '}'"},
        {"{\"1\": [1 2]}", ":1:10:", "expected ',' or ']'"},
        {"{\"1\": [3000000000]}", ":1:8:", "exceeds the int32 range"},
        {"{\"1\": [99999999999999999999]}", ":1:8:", "out of range"},
        {"{\"99999999999999999999\": [1]}", ":1:3:", "out of range"},
        {"{\"1\": [1],}", ":1:11:", "expected an item id in quotes"},
        {"{\"1\": [\x01]}", ":1:8:", "byte 1"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto p = write(dir, c.text);
        try {
            (void)data::read_item_attributes(p, 4);
            FAIL("accepted a malformed file");
        } catch (const FormatError& e) {
            const std::string msg = e.what();
            CAPTURE(msg);
            CHECK_THAT(msg, Contains(p + c.where));
            CHECK_THAT(msg, Contains(c.what));
        }
    }
    REQUIRE_THROWS_AS(data::read_item_attributes((dir.path / "missing.json").string(), 4), IoError);
    REQUIRE_THROWS_AS(data::read_item_attributes(dir.path.string(), 4), IoError);
    REQUIRE_THROWS_AS(data::read_item_attributes(write(dir, "{}"), -1), ValueError);
}

TEST_CASE("item vectors: attribute TF-IDF projection equals the literal formula", "[data][attributes]") {
    data::ItemAttributes a;
    a.bags = {{}, {1, 2, 2}, {2, 5}, {}, {5, 1, 7}};
    a.num_attributes = 8;
    const data::AttributeFeatureConfig cfg{6, 42};
    const auto x = data::attribute_tfidf_projection(a, cfg);
    REQUIRE(x.extent(0) == 4);
    REQUIRE(x.extent(1) == 6);
    // Literal: counts, smooth idf over the 4 items, unit TF-IDF, R(a, j) ~ N(0, 1/d), unit y.
    const double n = 4;
    std::map<int, double> df{{1, 2}, {2, 2}, {5, 2}, {7, 1}};
    const std::vector<std::map<int, double>> tf = {{{1, 1}, {2, 2}}, {{2, 1}, {5, 1}}, {}, {{1, 1}, {5, 1}, {7, 1}}};
    const Rng rng(42);
    for (index_t i = 0; i < 4; ++i) {
        std::vector<double> y(6, 0.0);
        double norm = 0;
        for (const auto& [attr, c] : tf[static_cast<std::size_t>(i)]) {
            const double v = c * (std::log((1 + n) / (1 + df[attr])) + 1);
            norm += v * v;
        }
        for (const auto& [attr, c] : tf[static_cast<std::size_t>(i)]) {
            const double v = c * (std::log((1 + n) / (1 + df[attr])) + 1) / std::sqrt(norm);
            for (int j = 0; j < 6; ++j) y[std::size_t(j)] += v * rng.substream(std::uint64_t(attr)).normal(std::uint64_t(j)) / std::sqrt(6.0);
        }
        double ny = 0;
        for (const double v : y) ny += v * v;
        for (index_t j = 0; j < 6; ++j) {
            const double want = ny > 0 ? y[std::size_t(j)] / std::sqrt(ny) : 0.0;
            CHECK(x(i, j) == Approx(want).margin(1e-6));
        }
    }
    // Item 3 has no attributes: a zero row. Deterministic at the seed; another seed differs.
    for (index_t j = 0; j < 6; ++j) REQUIRE(x(2, j) == 0.0f);
    const auto again = data::attribute_tfidf_projection(a, cfg);
    REQUIRE(std::equal(x.begin(), x.end(), again.begin()));
    const auto other = data::attribute_tfidf_projection(a, {6, 43});
    REQUIRE_FALSE(std::equal(x.begin(), x.end(), other.begin()));
    REQUIRE_THROWS_WITH(data::attribute_tfidf_projection(a, {0, 1}), Contains("dim must be >= 1"));
}

TEST_CASE("item vectors: from an item table (padding row skipped, optional normalisation)", "[data][attributes]") {
    Matrix<float> t(Shape<2>{{3, 2}});
    const float v[] = {9, 9, 3, 4, 0, 0};
    std::copy(std::begin(v), std::end(v), t.data());
    const auto x = data::item_table_vectors(t.cview());
    REQUIRE(x.extent(0) == 2);
    REQUIRE(x(0, 0) == 3.0f);
    REQUIRE(x(0, 1) == 4.0f);
    const auto u = data::item_table_vectors(t.cview(), {true, true});
    REQUIRE(u(0, 0) == Approx(0.6));
    REQUIRE(u(0, 1) == Approx(0.8));
    REQUIRE(u(1, 0) == 0.0f);  // a zero row stays zero
    const auto all = data::item_table_vectors(t.cview(), {false, false});
    REQUIRE(all.extent(0) == 3);
    t(2, 1) = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(data::item_table_vectors(t.cview()), Contains("table row 2 column 1"));
    Matrix<float> one(Shape<2>{{1, 2}});
    REQUIRE_THROWS_WITH(data::item_table_vectors(one.cview()), Contains("need at least one item row"));
}
