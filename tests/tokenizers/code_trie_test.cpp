// CodeTrie: structure on a small catalogue, agreement with a std::set of the
// catalogue's tuples over the whole code space, breadth-first lexicographic
// node order, duplicates (rejected, or mapped to every item), bad inputs.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/tokenizers/code_trie.hpp"

using namespace recblocks;
using tokenizers::CodeTrie;
using tokenizers::DuplicateIds;
using Catch::Matchers::Contains;

namespace {

Matrix<std::int32_t> make_codes(const std::vector<std::vector<std::int32_t>>& rows) {
    Matrix<std::int32_t> m(Shape<2>{{static_cast<index_t>(rows.size()), static_cast<index_t>(rows[0].size())}});
    for (std::size_t i = 0; i < rows.size(); ++i)
        for (std::size_t j = 0; j < rows[i].size(); ++j) m(static_cast<index_t>(i), static_cast<index_t>(j)) = rows[i][j];
    return m;
}

std::vector<std::int32_t> to_vec(std::span<const std::int32_t> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("code trie: structure of a small catalogue", "[trie]") {
    // item: codes
    const auto codes = make_codes({{2, 1, 0}, {0, 3, 1}, {2, 0, 1}, {0, 3, 0}, {1, 1, 1}});
    const std::int32_t sizes[] = {3, 4, 2};
    const CodeTrie trie(codes.cview(), sizes);
    CHECK(trie.depth() == 3);
    CHECK(trie.num_items() == 5);
    CHECK(trie.num_leaves() == 5);
    // root; depth 1: 0, 1, 2; depth 2: (0,3), (1,1), (2,0), (2,1); depth 3: five leaves.
    CHECK(trie.num_nodes() == 1 + 3 + 4 + 5);
    CHECK(trie.level_begin(0) == 0);
    CHECK(trie.level_begin(1) == 1);
    CHECK(trie.level_begin(2) == 4);
    CHECK(trie.level_begin(3) == 8);
    CHECK(trie.level_begin(4) == 13);
    CHECK(to_vec(trie.allowed_next(CodeTrie::kRoot)) == std::vector<std::int32_t>{0, 1, 2});
    const auto n2 = trie.child(CodeTrie::kRoot, 2);
    CHECK(n2 == 3);
    CHECK(to_vec(trie.allowed_next(n2)) == std::vector<std::int32_t>{0, 1});
    CHECK(trie.child(n2, 1) == trie.first_child(n2) + 1);
    CHECK(trie.child(n2, 3) == CodeTrie::kNoNode);
    CHECK(trie.child(CodeTrie::kRoot, 7) == CodeTrie::kNoNode);
    const std::int32_t p03[] = {0, 3};
    const auto n03 = trie.find(p03);
    CHECK(to_vec(trie.allowed_next(n03)) == std::vector<std::int32_t>{0, 1});
    const std::int32_t t030[] = {0, 3, 0}, t031[] = {0, 3, 1}, t032[] = {0, 2, 1};
    CHECK(trie.is_leaf(trie.find(t030)));
    CHECK(!trie.is_leaf(n03));
    CHECK(trie.items(trie.find(t030)).size() == 1);
    CHECK(trie.items(trie.find(t030))[0] == 3);
    CHECK(trie.items(trie.find(t031))[0] == 1);
    CHECK(trie.find(t032) == CodeTrie::kNoNode);
    CHECK(trie.contains(t031));
    CHECK(!trie.contains(t032));
    CHECK(!trie.contains(p03));  // a prefix is not an ID
    CHECK(trie.allowed_next(trie.find(t030)).empty());
    CHECK(trie.memory_bytes() > 0);
}

TEST_CASE("code trie: agrees with the set of catalogue tuples over the whole code space", "[trie]") {
    std::mt19937 gen(3);
    const std::int32_t sizes[] = {5, 4, 6};
    std::set<std::vector<std::int32_t>> ids;
    while (ids.size() < 60) ids.insert({static_cast<std::int32_t>(gen() % 5), static_cast<std::int32_t>(gen() % 4),
                                        static_cast<std::int32_t>(gen() % 6)});
    // Items in a shuffled order, so item ids are not sorted by tuple.
    std::vector<std::vector<std::int32_t>> rows(ids.begin(), ids.end());
    std::shuffle(rows.begin(), rows.end(), gen);
    const auto codes = make_codes(rows);
    const CodeTrie trie(codes.cview(), sizes);
    CHECK(trie.num_items() == 60);
    for (std::int32_t a = 0; a < 5; ++a)
        for (std::int32_t b = 0; b < 4; ++b)
            for (std::int32_t c = 0; c < 6; ++c) {
                const std::vector<std::int32_t> t{a, b, c};
                CHECK(trie.contains(t) == (ids.count(t) == 1));
            }
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto leaf = trie.find(rows[i]);
        REQUIRE(leaf != CodeTrie::kNoNode);
        REQUIRE(trie.items(leaf).size() == 1);
        CHECK(trie.items(leaf)[0] == static_cast<row_id_t>(i));
    }
    // Every node's codes ascend, its children are the next ids at the next
    // depth, and node ids at a depth follow the prefixes' lexicographic order.
    std::vector<std::vector<std::int32_t>> prefix_of(static_cast<std::size_t>(trie.num_nodes()));
    for (CodeTrie::node_t v = 0; v < trie.level_begin(trie.depth()); ++v) {
        const auto next = trie.allowed_next(v);
        REQUIRE(!next.empty());
        for (std::size_t j = 0; j < next.size(); ++j) {
            if (j) CHECK(next[j - 1] < next[j]);
            const auto ch = trie.first_child(v) + static_cast<CodeTrie::node_t>(j);
            CHECK(trie.child(v, next[j]) == ch);
            prefix_of[static_cast<std::size_t>(ch)] = prefix_of[static_cast<std::size_t>(v)];
            prefix_of[static_cast<std::size_t>(ch)].push_back(next[j]);
        }
    }
    for (index_t d = 1; d <= trie.depth(); ++d)
        for (auto v = trie.level_begin(d) + 1; v < trie.level_begin(d + 1); ++v)
            CHECK(prefix_of[static_cast<std::size_t>(v - 1)] < prefix_of[static_cast<std::size_t>(v)]);
}

TEST_CASE("code trie: duplicate IDs are rejected, or mapped to every item", "[trie]") {
    const auto codes = make_codes({{1, 0}, {0, 1}, {1, 0}, {1, 0}});
    const std::int32_t sizes[] = {2, 2};
    REQUIRE_THROWS_AS(CodeTrie(codes.cview(), sizes), ValueError);
    REQUIRE_THROWS_WITH(CodeTrie(codes.cview(), sizes),
                        Contains("items 0 and 2 have the same ID (1, 0)") && Contains("with_disambiguation_code"));
    const CodeTrie trie(codes.cview(), sizes, DuplicateIds::map_to_all);
    CHECK(trie.num_items() == 4);
    CHECK(trie.num_leaves() == 2);
    const std::int32_t t10[] = {1, 0};
    const auto items = trie.items(trie.find(t10));
    CHECK(std::vector<row_id_t>(items.begin(), items.end()) == std::vector<row_id_t>{0, 2, 3});

    // Built from SemanticIds after TIGER's extra code: unique.
    const tokenizers::SemanticIds ids(codes.cview(), {2, 2});
    const CodeTrie t2(ids.with_disambiguation_code());
    CHECK(t2.depth() == 3);
    CHECK(t2.num_leaves() == 4);
}

TEST_CASE("code trie: bad inputs raise the library's errors", "[trie]") {
    const auto codes = make_codes({{1, 0}, {0, 1}});
    const std::int32_t sizes[] = {2, 2};
    const std::int32_t small[] = {2, 1};
    const std::int32_t three[] = {2, 2, 2};
    const std::int32_t zero[] = {2, 0};
    REQUIRE_THROWS_AS(CodeTrie(codes.cview(), small), IndexError);
    REQUIRE_THROWS_WITH(CodeTrie(codes.cview(), small), Contains("item 1 has code 1 at level 1, outside [0, 1)"));
    REQUIRE_THROWS_AS(CodeTrie(codes.cview(), three), ShapeError);
    REQUIRE_THROWS_AS(CodeTrie(codes.cview(), zero), ValueError);
    Matrix<std::int32_t> empty(Shape<2>{{0, 2}});
    REQUIRE_THROWS_AS(CodeTrie(empty.cview(), sizes), ValueError);
    const CodeTrie trie(codes.cview(), sizes);
    REQUIRE_THROWS_AS(trie.items(CodeTrie::kRoot), IndexError);
    REQUIRE_THROWS_AS(trie.child(99, 0), IndexError);
    const std::int32_t too_long[] = {1, 0, 0};
    REQUIRE_THROWS_AS(trie.find(too_long), ShapeError);
}
