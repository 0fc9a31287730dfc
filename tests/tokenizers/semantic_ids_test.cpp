// Semantic IDs: lookup both ways, collision statistics, TIGER's disambiguation
// code, LC-Rec's Sinkhorn re-assignment of colliding items (a crafted case and
// a random one: fewer collisions, non-colliding items untouched), save / load
// round trip, every truncation and the malformed files, bad inputs.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

using namespace recblocks;
using tokenizers::SemanticIds;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

using rbtest::TempDir;

namespace {

Matrix<std::int32_t> make_codes(const std::vector<std::vector<std::int32_t>>& rows) {
    Matrix<std::int32_t> m(Shape<2>{{static_cast<index_t>(rows.size()), static_cast<index_t>(rows[0].size())}});
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < rows[i].size(); ++j) m(static_cast<index_t>(i), static_cast<index_t>(j)) = rows[i][j];
    return m;
}

std::vector<std::int32_t> tuple_of(const SemanticIds& ids, index_t item) {
    const auto c = ids.codes(item);
    return {c.begin(), c.end()};
}

std::vector<std::byte> read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<std::byte> b(c.size());
    std::memcpy(b.data(), c.data(), c.size());
    return b;
}

void write_bytes(const fs::path& p, std::span<const std::byte> b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Items 0, 2, 5 share (1, 2); items 1, 4 share (0, 3); item 3 is alone.
Matrix<std::int32_t> crafted() { return make_codes({{1, 2}, {0, 3}, {1, 2}, {2, 0}, {0, 3}, {1, 2}}); }

}  // namespace

TEST_CASE("semantic ids: lookup both ways and collision statistics", "[semantic_ids]") {
    const auto codes = crafted();
    const SemanticIds ids(codes.cview(), {3, 4});
    CHECK(ids.num_items() == 6);
    CHECK(ids.levels() == 2);
    CHECK(tuple_of(ids, 3) == std::vector<std::int32_t>{2, 0});
    const std::int32_t t12[] = {1, 2}, t03[] = {0, 3}, t20[] = {2, 0}, t00[] = {0, 0};
    const auto g = ids.items_with(t12);
    CHECK(std::vector<row_id_t>(g.begin(), g.end()) == std::vector<row_id_t>{0, 2, 5});
    CHECK(ids.find_item(t03) == 1);
    CHECK(ids.find_item(t20) == 3);
    CHECK(ids.find_item(t00) == -1);
    CHECK(ids.items_with(t00).empty());
    const auto s = ids.collisions();
    CHECK(s.items == 6);
    CHECK(s.distinct_tuples == 3);
    CHECK(s.colliding_items == 5);
    CHECK(s.groups == 2);
    CHECK(s.largest_group == 3);
    CHECK(s.rate() == Approx(5.0 / 6.0));
}

TEST_CASE("semantic ids: TIGER's extra code makes every tuple unique", "[semantic_ids]") {
    const auto codes = crafted();
    const SemanticIds ids(codes.cview(), {3, 4});
    const SemanticIds t = ids.with_disambiguation_code();
    REQUIRE(t.levels() == 3);
    CHECK(t.has_disambiguation_level());
    CHECK(t.codebook_sizes()[2] == 3);  // the largest group
    // Index within the group in item order; 0 for the unique item.
    CHECK(tuple_of(t, 0) == std::vector<std::int32_t>{1, 2, 0});
    CHECK(tuple_of(t, 2) == std::vector<std::int32_t>{1, 2, 1});
    CHECK(tuple_of(t, 5) == std::vector<std::int32_t>{1, 2, 2});
    CHECK(tuple_of(t, 1) == std::vector<std::int32_t>{0, 3, 0});
    CHECK(tuple_of(t, 4) == std::vector<std::int32_t>{0, 3, 1});
    CHECK(tuple_of(t, 3) == std::vector<std::int32_t>{2, 0, 0});
    CHECK(t.collisions().colliding_items == 0);
    CHECK(t.collisions().distinct_tuples == 6);
    CHECK(t.collisions().largest_group == 1);
    REQUIRE_THROWS_AS(t.with_disambiguation_code(), ValueError);

    // Already unique: one extra level of size 1, all zeros.
    const SemanticIds u(make_codes({{0, 1}, {1, 0}}).cview(), {2, 2});
    const SemanticIds ut = u.with_disambiguation_code();
    CHECK(ut.codebook_sizes()[2] == 1);
    CHECK(ut.codes(1)[2] == 0);

    // A random catalogue with many collisions.
    std::mt19937 gen(5);
    Matrix<std::int32_t> r(Shape<2>{{3000, 3}});
    for (auto& v : r) v = static_cast<std::int32_t>(gen() % 8);
    const SemanticIds big(r.cview(), {8, 8, 8});
    CHECK(big.collisions().rate() > 0.9);
    const auto bt = big.with_disambiguation_code();
    CHECK(bt.collisions().colliding_items == 0);
    CHECK(bt.collisions().distinct_tuples == 3000);
    CHECK(bt.codebook_sizes()[3] == big.collisions().largest_group);
}

TEST_CASE("semantic ids: Sinkhorn re-assignment on a crafted case", "[semantic_ids]") {
    // Items 0, 1, 2 collide on (0, 1); each is nearest to last-level code 1 and
    // has a different second choice. Item 3 holds (0, 2), item 4 (1, 0).
    const auto codes = make_codes({{0, 1}, {0, 1}, {0, 1}, {0, 2}, {1, 0}});
    SemanticIds ids(codes.cview(), {2, 4});
    Matrix<float> d(Shape<2>{{5, 4}});
    const float rows[5][4] = {{1, 0, 5, 5}, {5, 0, 1, 5}, {5, 0, 5, 1}, {5, 5, 0, 5}, {0, 5, 5, 5}};
    for (index_t i = 0; i < 5; ++i)
        for (index_t c = 0; c < 4; ++c) d(i, c) = rows[i][c];
    std::vector<std::vector<row_id_t>> asked;
    const auto report = ids.rebalance_last_level([&](std::span<const row_id_t> items, MatrixView<float> out) {
        asked.emplace_back(items.begin(), items.end());
        REQUIRE(out.rows() == static_cast<index_t>(items.size()));
        REQUIRE(out.cols() == 4);
        for (std::size_t r = 0; r < items.size(); ++r)
            for (index_t c = 0; c < 4; ++c) out(static_cast<index_t>(r), c) = d(items[r], c);
    });
    CHECK(report.before.colliding_items == 3);
    CHECK(report.after.colliding_items == 0);
    CHECK(ids.collisions().colliding_items == 0);
    CHECK(report.rounds >= 1);
    REQUIRE(!asked.empty());
    CHECK(asked[0] == std::vector<row_id_t>{0, 1, 2});  // only the colliding group
    // Non-colliding items and every prefix are unchanged.
    CHECK(tuple_of(ids, 3) == std::vector<std::int32_t>{0, 2});
    CHECK(tuple_of(ids, 4) == std::vector<std::int32_t>{1, 0});
    for (index_t i = 0; i < 3; ++i) CHECK(ids.codes(i)[0] == 0);
    // Balanced: the three items spread over their nearest free codes.
    std::set<std::int32_t> last;
    for (index_t i = 0; i < 3; ++i) last.insert(ids.codes(i)[1]);
    CHECK(last.size() == 3);
    CHECK(last.count(2) == 0);  // taken by item 3
    CHECK(report.items_changed >= 2);

    // The matrix overload gives the same codes.
    SemanticIds again(codes.cview(), {2, 4});
    const auto r2 = again.rebalance_last_level(d.cview());
    CHECK(r2.after.colliding_items == 0);
    for (index_t i = 0; i < 5; ++i) CHECK(tuple_of(again, i) == tuple_of(ids, i));
}

TEST_CASE("semantic ids: Sinkhorn reduces collisions of a random catalogue and leaves the rest alone",
          "[semantic_ids]") {
    // 2 levels (16 x 256). Items come in clusters: a cluster's items are near
    // each other, so they share the first code, their distances to the 256
    // last-level codes are the cluster's plus a little noise, and they all share
    // their nearest code (a collision).
    std::mt19937 gen(17);
    const index_t n = 400, k = 256;
    Matrix<std::int32_t> codes(Shape<2>{{n, 2}});
    Matrix<float> d(Shape<2>{{n, k}});
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::vector<float> centre(static_cast<std::size_t>(k));
    index_t near = 0;
    std::int32_t prefix = 0;
    for (index_t i = 0; i < n; ++i) {
        if (i % 10 == 0 || gen() % 7 == 0) {  // a new cluster (some of size 1: not colliding)
            for (auto& v : centre) v = 4.0f + noise(gen);
            near = static_cast<index_t>(gen() % k);
            centre[static_cast<std::size_t>(near)] = 0.1f;
            prefix = static_cast<std::int32_t>(gen() % 16);  // near items share the earlier codes too
        }
        codes(i, 0) = prefix;
        codes(i, 1) = static_cast<std::int32_t>(near);
        for (index_t c = 0; c < k; ++c) d(i, c) = centre[static_cast<std::size_t>(c)] + 0.02f * noise(gen);
    }
    SemanticIds ids(codes.cview(), {16, static_cast<std::int32_t>(k)});
    const auto before = ids.collisions();
    REQUIRE(before.colliding_items > 200);
    REQUIRE(before.colliding_items < n);
    std::vector<char> was_colliding(n);
    for (index_t i = 0; i < n; ++i) was_colliding[i] = ids.items_with(ids.codes(i)).size() > 1;
    const auto report = ids.rebalance_last_level(d.cview(), {.epsilon = 0.003, .iterations = 50, .max_rounds = 20});
    CHECK(report.before.colliding_items == before.colliding_items);
    CHECK(report.after.colliding_items < before.colliding_items / 4);
    CHECK(report.rounds >= 1);
    CHECK(report.after.distinct_tuples > before.distinct_tuples);
    for (index_t i = 0; i < n; ++i) {
        CHECK(ids.codes(i)[0] == codes(i, 0));
        CHECK(ids.codes(i)[1] >= 0);
        CHECK(ids.codes(i)[1] < k);
        if (!was_colliding[i]) CHECK(ids.codes(i)[1] == codes(i, 1));
    }
    // Deterministic.
    SemanticIds again(codes.cview(), {16, static_cast<std::int32_t>(k)});
    again.rebalance_last_level(d.cview());
    for (index_t i = 0; i < n; ++i) CHECK(again.codes(i)[1] == ids.codes(i)[1]);
}

TEST_CASE("semantic ids: bad inputs raise the library's errors", "[semantic_ids]") {
    const auto codes = crafted();
    REQUIRE_THROWS_AS(SemanticIds(codes.cview(), {3, 2}), IndexError);  // code 3 at level 1, size 2
    REQUIRE_THROWS_WITH(SemanticIds(codes.cview(), {3, 2}), Contains("item 0 has code 2 at level 1, outside [0, 2)"));
    REQUIRE_THROWS_AS(SemanticIds(codes.cview(), {3, 4, 5}), ShapeError);
    REQUIRE_THROWS_AS(SemanticIds(codes.cview(), {3, 0}), ValueError);
    const auto neg = make_codes({{0, -1}});
    REQUIRE_THROWS_AS(SemanticIds(neg.cview(), {3, 4}), IndexError);
    SemanticIds ids(codes.cview(), {3, 4});
    REQUIRE_THROWS_AS(ids.codes(6), IndexError);
    const std::int32_t one[] = {1};
    REQUIRE_THROWS_AS(ids.items_with(one), ShapeError);
    Matrix<float> wrong(Shape<2>{{6, 3}});
    REQUIRE_THROWS_AS(ids.rebalance_last_level(wrong.cview()), ShapeError);
    Matrix<float> d(Shape<2>{{6, 4}});
    d(0, 1) = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_AS(ids.rebalance_last_level(d.cview()), ValueError);
    REQUIRE_THROWS_WITH(ids.rebalance_last_level(d.cview()), Contains("is nan"));
    Matrix<float> ok(Shape<2>{{6, 4}});
    REQUIRE_THROWS_AS(ids.rebalance_last_level(ok.cview(), {.epsilon = 0.0}), ValueError);
    REQUIRE_THROWS_AS(ids.rebalance_last_level(ok.cview(), {.epsilon = 0.003, .iterations = 0}), ValueError);
    auto tiger = ids.with_disambiguation_code();
    Matrix<float> d3(Shape<2>{{6, 3}});
    REQUIRE_THROWS_AS(tiger.rebalance_last_level(d3.cview()), ValueError);
}

TEST_CASE("semantic ids: save and load round trip", "[semantic_ids]") {
    TempDir dir;
    const auto codes = crafted();
    const SemanticIds ids = SemanticIds(codes.cview(), {3, 4}).with_disambiguation_code();
    const fs::path file = dir.path / "ids.safetensors";
    tokenizers::save_semantic_ids(file, ids);
    const SemanticIds back = tokenizers::load_semantic_ids(file);
    REQUIRE(back.num_items() == ids.num_items());
    REQUIRE(back.levels() == ids.levels());
    CHECK(back.has_disambiguation_level());
    CHECK(std::vector<std::int32_t>(back.codebook_sizes().begin(), back.codebook_sizes().end()) ==
          std::vector<std::int32_t>{3, 4, 3});
    for (index_t i = 0; i < ids.num_items(); ++i) CHECK(tuple_of(back, i) == tuple_of(ids, i));
    // Overwrite in place (atomic replace) leaves only the file.
    tokenizers::save_semantic_ids(file, SemanticIds(codes.cview(), {3, 4}));
    CHECK(!tokenizers::load_semantic_ids(file).has_disambiguation_level());
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("semantic ids: truncated and malformed files raise FormatError naming the file and tensor",
          "[semantic_ids]") {
    TempDir dir;
    const auto codes = crafted();
    const fs::path good = dir.path / "good.safetensors";
    tokenizers::save_semantic_ids(good, SemanticIds(codes.cview(), {3, 4}));
    const auto bytes = read_bytes(good);
    const fs::path bad = dir.path / "bad.safetensors";
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        write_bytes(bad, std::span<const std::byte>(bytes.data(), n));
        INFO("prefix of " << n << " bytes");
        REQUIRE_THROWS_AS(tokenizers::load_semantic_ids(bad), FormatError);
        REQUIRE_THROWS_WITH(tokenizers::load_semantic_ids(bad), Contains("bad.safetensors"));
    }
    REQUIRE_THROWS_AS(tokenizers::load_semantic_ids(dir.path / "missing.safetensors"), IoError);

    auto header = [](std::string_view items, std::string_view levels, std::string_view sizes) {
        return std::string("{\"items\":") + std::string(items) + ",\"levels\":" + std::string(levels) +
               ",\"codebook_sizes\":" + std::string(sizes) + ",\"disambiguation_level\":false}";
    };
    struct Case {
        const char* what;
        std::function<void(io::SafetensorsWriter&)> fill;
        const char* message;
    };
    Matrix<std::int32_t> out_of_range = crafted();
    out_of_range(4, 1) = 9;
    Matrix<float> as_float(Shape<2>{{6, 2}});
    const std::int32_t sizes2[] = {3, 4};
    const auto sizes_view = vector_view(sizes2, 2);
    const std::vector<Case> cases = {
        {"code out of range",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", out_of_range.cview());
             w.add("codebook_sizes", sizes_view);
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", header("6", "2", "[3,4]"));
         },
         "tensor \"codes\" element [4, 1] = 9 is outside [0, 4)"},
        {"not a semantic-ID file",
         [&](io::SafetensorsWriter& w) { w.add("codes", codes.cview()); },
         "not a recblocks semantic-ID file"},
        {"missing tensor",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", codes.cview());
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", header("6", "2", "[3,4]"));
         },
         "tensor \"codebook_sizes\" is missing"},
        {"float codes",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", as_float.cview());
             w.add("codebook_sizes", sizes_view);
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", header("6", "2", "[3,4]"));
         },
         "tensor \"codes\" is F32, expected I32"},
        {"header disagrees with the tensor",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", codes.cview());
             w.add("codebook_sizes", sizes_view);
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", header("7", "2", "[3,4]"));
         },
         "tensor \"codes\" is [6, 2] but the header says [7, 2]"},
        {"sizes disagree with the header",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", codes.cview());
             w.add("codebook_sizes", sizes_view);
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", header("6", "2", "[3,5]"));
         },
         "tensor \"codebook_sizes\" element 1 = 4 disagrees with the header"},
        {"header is not JSON",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", codes.cview());
             w.add("codebook_sizes", sizes_view);
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", "{\"items\": 6,");
         },
         "metadata \"semantic_ids\""},
        {"header lacks a field",
         [&](io::SafetensorsWriter& w) {
             w.add("codes", codes.cview());
             w.add("codebook_sizes", sizes_view);
             w.set_metadata("format", "recblocks-semantic-ids-1");
             w.set_metadata("semantic_ids", "{\"items\": 6}");
         },
         "has no \"levels\""},
    };
    for (const auto& c : cases) {
        SECTION(c.what) {
            io::SafetensorsWriter w;
            c.fill(w);
            const fs::path f = dir.path / "case.safetensors";
            w.write(f);
            REQUIRE_THROWS_AS(tokenizers::load_semantic_ids(f), FormatError);
            REQUIRE_THROWS_WITH(tokenizers::load_semantic_ids(f), Contains(c.message) && Contains("case.safetensors"));
        }
    }
}
