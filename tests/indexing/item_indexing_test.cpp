// Item indexing schemes behind one contract: sequential (hand-checked codes), random (determinism,
// collision statistics against a literal count), the co-occurrence graph (literal pairs),
// collaborative (planted clusters recovered, determinism), semantic RQ-KMeans (planted quadrants),
// and collision resolution (TIGER's extra code, LC-Rec's Sinkhorn, bad inputs named).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/indexing/collaborative_indexing.hpp"
#include "recblocks/indexing/item_codes.hpp"
#include "recblocks/indexing/random_indexing.hpp"
#include "recblocks/indexing/semantic_rq_indexing.hpp"
#include "recblocks/indexing/sequential_indexing.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;
using Be = backend::Cpu<isa::Dispatch>;
using Histories = std::vector<std::vector<row_id_t>>;

namespace {
std::vector<std::int32_t> row(const tokenizers::SemanticIds& ids, index_t i) {
    const auto c = ids.codes(i);
    return {c.begin(), c.end()};
}

/// Items whose tuple is shared, counted literally (pairwise).
index_t colliding_items(const tokenizers::SemanticIds& ids) {
    index_t n = 0;
    for (index_t i = 0; i < ids.num_items(); ++i)
        for (index_t j = 0; j < ids.num_items(); ++j)
            if (i != j && row(ids, i) == row(ids, j)) {
                ++n;
                break;
            }
    return n;
}

/// Four planted blocks of 8 items (block b = items 8b+1 .. 8b+8); each user draws 6 items of one
/// block; `bridges` users mix two blocks.
Histories planted_histories(int users, int bridges) {
    Histories h;
    const Rng rng(7);
    for (int u = 0; u < users; ++u) {
        const int b = u % 4;
        std::vector<row_id_t> s;
        for (int p = 0; p < 6; ++p)
            s.push_back(static_cast<row_id_t>(8 * b + 1 + rng.substream(std::uint64_t(u)).below(std::uint64_t(p), 8)));
        h.push_back(s);
    }
    for (int u = 0; u < bridges; ++u)
        h.push_back({static_cast<row_id_t>(1 + u % 8), static_cast<row_id_t>(9 + (u * 3) % 8)});
    return h;
}
}  // namespace

TEST_CASE("indexing: sequential ids by first appearance, in base K", "[indexing]") {
    const Histories h = {{3, 1}, {2, 3, 5}};
    const auto c = indexing::sequential_indexing(h, 6, {2, 3});
    REQUIRE(c.scheme == "sequential");
    REQUIRE_FALSE(c.distances);
    // First appearance: 3, 1, 2, 5; never seen: 4, 6 (ascending) -> ranks 0..5.
    REQUIRE(row(c.ids, 0) == std::vector<std::int32_t>{0, 0, 1});  // item 1, rank 1
    REQUIRE(row(c.ids, 1) == std::vector<std::int32_t>{0, 1, 0});  // item 2, rank 2
    REQUIRE(row(c.ids, 2) == std::vector<std::int32_t>{0, 0, 0});  // item 3, rank 0
    REQUIRE(row(c.ids, 3) == std::vector<std::int32_t>{1, 0, 0});  // item 4, rank 4
    REQUIRE(row(c.ids, 4) == std::vector<std::int32_t>{0, 1, 1});  // item 5, rank 3
    REQUIRE(row(c.ids, 5) == std::vector<std::int32_t>{1, 0, 1});  // item 6, rank 5
    REQUIRE(c.ids.collisions().rate() == 0.0);
    REQUIRE(c.ids.codebook_sizes().size() == 3);
    const auto c10 = indexing::sequential_indexing(h, 6, {10, 2});
    REQUIRE(row(c10.ids, 3) == std::vector<std::int32_t>{0, 4});

    REQUIRE_THROWS_WITH(indexing::sequential_indexing(h, 9, {2, 3}), Contains("fewer than the 9 tuples"));
    REQUIRE_THROWS_WITH(indexing::sequential_indexing({{1, 7}}, 6, {2, 3}),
                        Contains("history 0 position 1 has item 7, outside 1..6"));
    REQUIRE_THROWS_AS(indexing::sequential_indexing({{1, 0}}, 6, {2, 3}), IndexError);
    REQUIRE_THROWS_WITH(indexing::sequential_indexing(h, 6, {2, 0}), Contains("levels must be in [1, 64]"));
    // No item overflows the capacity check for huge K^M.
    REQUIRE(indexing::sequential_indexing(h, 6, {1 << 30, 64}).ids.collisions().rate() == 0.0);
}

TEST_CASE("indexing: random ids are deterministic at a seed; collisions counted", "[indexing]") {
    const auto a = indexing::random_indexing(40, {3, 2}, 11);
    const auto b = indexing::random_indexing(40, {3, 2}, 11);
    const auto c = indexing::random_indexing(40, {3, 2}, 12);
    REQUIRE(std::equal(a.ids.codes().data(), a.ids.codes().data() + 80, b.ids.codes().data()));
    REQUIRE_FALSE(std::equal(a.ids.codes().data(), a.ids.codes().data() + 80, c.ids.codes().data()));
    std::set<std::vector<std::int32_t>> tuples;
    for (index_t i = 0; i < 40; ++i) {
        const auto r = row(a.ids, i);
        REQUIRE((r[0] >= 0 && r[0] < 3 && r[1] >= 0 && r[1] < 3));
        tuples.insert(r);
    }
    // 40 items in 9 tuples collide; the statistics agree with a literal count.
    const auto st = a.ids.collisions();
    REQUIRE(st.distinct_tuples == static_cast<index_t>(tuples.size()));
    REQUIRE(st.colliding_items == colliding_items(a.ids));
    REQUIRE(st.rate() == Approx(double(colliding_items(a.ids)) / 40.0));

    const auto tiger = indexing::resolve_collisions(a, indexing::Resolution::extra_code);
    REQUIRE(tiger.before.colliding_items == st.colliding_items);
    REQUIRE(tiger.after.rate() == 0.0);
    REQUIRE(tiger.ids.levels() == 3);
    REQUIRE_THROWS_WITH(indexing::resolve_collisions(a, indexing::Resolution::sinkhorn),
                        Contains("the random scheme gives no distances"));
}

TEST_CASE("indexing: co-occurrence graph counts pairs within the window", "[indexing]") {
    const Histories h = {{1, 2, 3, 1}, {2, 3}};
    const auto g1 = indexing::cooccurrence_graph(h, 4, 1);
    // window 1: (1,2), (2,3), (3,1) in the first history; (2,3) again.
    std::map<std::pair<int, int>, float> want1{{{0, 1}, 1}, {{1, 0}, 1}, {{1, 2}, 2}, {{2, 1}, 2}, {{2, 0}, 1}, {{0, 2}, 1}};
    std::map<std::pair<int, int>, float> got;
    for (index_t r = 0; r < 4; ++r)
        for (index_t k = g1.offsets[std::size_t(r)]; k < g1.offsets[std::size_t(r) + 1]; ++k)
            got[{int(r), g1.cols[std::size_t(k)]}] = g1.weights[std::size_t(k)];
    REQUIRE(got == want1);
    // window 2 adds (1,3) and (2,1) of the first history; (1, 1) at distance 3 is never a pair.
    const auto g2 = indexing::cooccurrence_graph(h, 4, 3);
    got.clear();
    for (index_t r = 0; r < 4; ++r)
        for (index_t k = g2.offsets[std::size_t(r)]; k < g2.offsets[std::size_t(r) + 1]; ++k)
            got[{int(r), g2.cols[std::size_t(k)]}] = g2.weights[std::size_t(k)];
    const std::map<std::pair<int, int>, float> want2{{{0, 1}, 2}, {{1, 0}, 2}, {{1, 2}, 2}, {{2, 1}, 2}, {{2, 0}, 2}, {{0, 2}, 2}};
    REQUIRE(got == want2);
    REQUIRE(g2.offsets.back() == 6);
    REQUIRE_THROWS_WITH(indexing::cooccurrence_graph(h, 2, 1), Contains("history 0 position 2 has item 3, outside 1..2"));
    REQUIRE_THROWS_WITH(indexing::cooccurrence_graph(h, 4, 0), Contains("window must be >= 1"));
}

TEST_CASE("indexing: collaborative clustering recovers planted blocks, deterministically", "[indexing]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const auto g = indexing::cooccurrence_graph(planted_histories(64, 3), 32, 3);
    indexing::CollaborativeOptions opt;
    opt.shape = {4, 1};
    opt.seed = 5;
    const auto c = indexing::collaborative_indexing(be, g, opt);
    REQUIRE(c.scheme == "collaborative");
    // Same block <=> same code.
    for (index_t i = 0; i < 32; ++i)
        for (index_t j = 0; j < 32; ++j) {
            CAPTURE(i, j);
            REQUIRE((c.ids.codes(i)[0] == c.ids.codes(j)[0]) == (i / 8 == j / 8));
        }
    // Two levels: the first as before, the second splits each block of 8 into 4 codes.
    opt.shape = {4, 2};
    const auto c2 = indexing::collaborative_indexing(be, g, opt);
    const auto c2b = indexing::collaborative_indexing(be, g, opt);
    REQUIRE(std::equal(c2.ids.codes().data(), c2.ids.codes().data() + 64, c2b.ids.codes().data()));
    for (index_t i = 0; i < 32; ++i)
        for (index_t j = 0; j < 32; ++j) REQUIRE((c2.ids.codes(i)[0] == c2.ids.codes(j)[0]) == (i / 8 == j / 8));
    REQUIRE(c2.ids.collisions().colliding_items == colliding_items(c2.ids));
    // Sinkhorn re-codes from the last level's spectral geometry: only last codes of colliding
    // items change. (Blocks of 8 in 4 codes cannot be collision-free: balancing may even add some.)
    const auto s = indexing::resolve_collisions(c2, indexing::Resolution::sinkhorn);
    REQUIRE(s.before.colliding_items == c2.ids.collisions().colliding_items);
    for (index_t i = 0; i < 32; ++i) {
        REQUIRE(s.ids.codes(i)[0] == c2.ids.codes(i)[0]);
        if (c2.ids.items_with(c2.ids.codes(i)).size() == 1) REQUIRE(s.ids.codes(i)[1] == c2.ids.codes(i)[1]);
    }
    const auto st = indexing::resolve_collisions(c2, indexing::Resolution::sinkhorn_then_extra_code);
    REQUIRE(st.after.rate() == 0.0);

    // Groups no larger than K are enumerated in item order: 32 items, K = 64 -> codes 0..31.
    opt.shape = {64, 2};
    const auto e = indexing::collaborative_indexing(be, g, opt);
    for (index_t i = 0; i < 32; ++i) REQUIRE(row(e.ids, i) == std::vector<std::int32_t>{std::int32_t(i), 0});

    opt.shape = {1, 2};
    REQUIRE_THROWS_WITH(indexing::collaborative_indexing(be, g, opt), Contains("codebook_size must be >= 2"));
    opt.shape = {4, 2};
    auto bad = g;
    bad.cols[0] = 99;
    REQUIRE_THROWS_WITH(indexing::collaborative_indexing(be, bad, opt), Contains("graph edge 0 has column 99"));
    bad = g;
    bad.offsets.pop_back();
    REQUIRE_THROWS_WITH(indexing::collaborative_indexing(be, bad, opt), Contains("not CSR over 32 items"));
}

TEST_CASE("indexing: semantic RQ-KMeans codes planted quadrants level by level", "[indexing]") {
    ThreadPool pool(2);
    const Be be{&pool};
    // 40 items around (+-10, +-1): level 0 splits by the sign of x, level 1 by the sign of y.
    Matrix<float> x(Shape<2>{{40, 2}});
    const Rng rng(3);
    for (index_t i = 0; i < 40; ++i) {
        x(i, 0) = ((i % 2) ? 10.0f : -10.0f) + 0.05f * float(rng.normal(std::uint64_t(2 * i)));
        x(i, 1) = (((i / 2) % 2) ? 1.0f : -1.0f) + 0.05f * float(rng.normal(std::uint64_t(2 * i + 1)));
    }
    indexing::SemanticRqOptions opt;
    opt.shape = {2, 2};
    opt.seed = 9;
    const auto c = indexing::semantic_rq_indexing(be, x.cview(), opt);
    REQUIRE(c.scheme == "semantic-rq");
    for (index_t i = 0; i < 40; ++i)
        for (index_t j = 0; j < 40; ++j) {
            REQUIRE((c.ids.codes(i)[0] == c.ids.codes(j)[0]) == (i % 2 == j % 2));
            REQUIRE((c.ids.codes(i)[1] == c.ids.codes(j)[1]) == ((i / 2) % 2 == (j / 2) % 2));
        }
    // 4 tuples for 40 items: every item collides, and no re-coding of the last level can help;
    // Sinkhorn leaves the first level alone, the extra code makes every tuple unique.
    REQUIRE(c.ids.collisions().rate() == 1.0);
    const auto s = indexing::resolve_collisions(c, indexing::Resolution::sinkhorn_then_extra_code);
    REQUIRE(s.after.rate() == 0.0);
    for (index_t i = 0; i < 40; ++i) REQUIRE(s.ids.codes(i)[0] == c.ids.codes(i)[0]);
    const auto again = indexing::semantic_rq_indexing(be, x.cview(), opt);
    REQUIRE(std::equal(c.ids.codes().data(), c.ids.codes().data() + 80, again.ids.codes().data()));
    std::vector<float> dist(2);
    const row_id_t item = 0;
    c.distances(std::span<const row_id_t>(&item, 1), matrix_view(dist.data(), 1, 2));
    // The residual after level 0 is (noise, y = -1 + noise): about 0 from its own codeword, 4 from the other.
    REQUIRE(dist[std::size_t(c.ids.codes(0)[1])] < 0.05f);
    REQUIRE(dist[std::size_t(1 - c.ids.codes(0)[1])] == Approx(4.0).margin(0.5));
    opt.shape = {64, 2};
    REQUIRE_THROWS_AS(indexing::semantic_rq_indexing(be, x.cview(), opt), ValueError);  // K > N
}

TEST_CASE("indexing: collision resolution on a hand-made catalogue", "[indexing]") {
    // Items 1..5: tuples (0,1) (0,1) (1,0) (0,1) (1,1); items 1, 2, 4 collide.
    const std::int32_t raw[] = {0, 1, 0, 1, 1, 0, 0, 1, 1, 1};
    indexing::ItemCodes c{"hand", tokenizers::SemanticIds(matrix_view(raw, 5, 2), {2, 3}), {}};
    const auto none = indexing::resolve_collisions(c, indexing::Resolution::none);
    REQUIRE(none.before.colliding_items == 3);
    REQUIRE(none.after.colliding_items == 3);
    REQUIRE(none.before.rate() == Approx(0.6));
    const auto t = indexing::resolve_collisions(c, indexing::Resolution::extra_code);
    REQUIRE(row(t.ids, 0) == std::vector<std::int32_t>{0, 1, 0});
    REQUIRE(row(t.ids, 1) == std::vector<std::int32_t>{0, 1, 1});
    REQUIRE(row(t.ids, 3) == std::vector<std::int32_t>{0, 1, 2});
    REQUIRE(row(t.ids, 4) == std::vector<std::int32_t>{1, 1, 0});
    REQUIRE(t.after.rate() == 0.0);
    // Distances that put item 1 near code 1, item 2 near code 0, item 4 near code 2: Sinkhorn
    // gives each its own last code; items 3 and 5 never change.
    c.distances = [](std::span<const row_id_t> items, MatrixView<float> out) {
        const float d[5][3] = {{5, 0, 5}, {0, 5, 5}, {9, 9, 9}, {5, 5, 0}, {9, 9, 9}};
        for (std::size_t r = 0; r < items.size(); ++r)
            for (index_t k = 0; k < 3; ++k) out(index_t(r), k) = d[items[r]][k];
    };
    const auto s = indexing::resolve_collisions(c, indexing::Resolution::sinkhorn);
    REQUIRE(s.after.rate() == 0.0);
    REQUIRE(row(s.ids, 0) == std::vector<std::int32_t>{0, 1});
    REQUIRE(row(s.ids, 1) == std::vector<std::int32_t>{0, 0});
    REQUIRE(row(s.ids, 2) == std::vector<std::int32_t>{1, 0});
    REQUIRE(row(s.ids, 3) == std::vector<std::int32_t>{0, 2});
    REQUIRE(s.items_recoded == 2);
    // Item 2 moved to (0,0): no clash with item 3's (1,0).
}

TEST_CASE("indexing: Sinkhorn stops after a round that changes nothing", "[indexing]") {
    // Three items with one tuple and identical distances: every round gives them one code, the one
    // they have, so re-coding stops after the first round; max_rounds = 1 gives the same IDs.
    const std::int32_t raw[] = {0, 0, 0, 0, 0, 0, 1, 1};
    const tokenizers::SemanticIds start(matrix_view(raw, 4, 2), {2, 2});
    auto dist = [](std::span<const row_id_t> items, MatrixView<float> out) {
        for (std::size_t r = 0; r < items.size(); ++r) {
            out(index_t(r), 0) = 0.0f;
            out(index_t(r), 1) = 1.0f;
        }
    };
    auto ids = start;
    const auto rep = ids.rebalance_last_level(dist, {0.003, 50, 20});
    REQUIRE(rep.rounds == 1);
    REQUIRE(rep.items_changed == 0);
    REQUIRE(rep.after.colliding_items == 3);
    auto once = start;
    once.rebalance_last_level(dist, {0.003, 50, 1});
    REQUIRE(std::equal(ids.codes().data(), ids.codes().data() + 8, once.codes().data()));
}
