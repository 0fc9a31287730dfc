// FlatCatalogue: its per-level arrays against a std::set of the catalogue's
// prefixes over the whole code space (dense and CSR levels), the mask against a
// literal one, duplicates and bad inputs; the beam search under it against the
// same search under CodeTrie on random catalogues (ties and duplicate IDs
// included, several beam settings and dense-level counts) and against brute
// force (a beam as wide as the catalogue returns exactly the top-k); a warm
// workspace does not grow.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/decoding/flat_catalogue.hpp"

using namespace recblocks;
using decoding::BeamSearchOptions;
using decoding::BeamSearchWorkspace;
using decoding::DecodeStep;
using decoding::FlatCatalogue;
using decoding::FlatCatalogueOptions;
using tokenizers::CodeTrie;
using tokenizers::DuplicateIds;
using Catch::Matchers::Contains;

namespace {

using Tuple = std::vector<std::int32_t>;

/// n random tuples over `sizes`; codes drawn from a skewed distribution so
/// prefixes are shared unevenly; `dup_every` > 0 repeats an earlier tuple every
/// so many items (duplicate IDs), otherwise tuples are distinct.
std::vector<Tuple> random_tuples(index_t n, const std::vector<std::int32_t>& sizes, unsigned seed, int dup_every = 0) {
    std::mt19937 gen(seed);
    std::set<Tuple> seen;
    std::vector<Tuple> out;
    while (static_cast<index_t>(out.size()) < n) {
        if (dup_every > 0 && !out.empty() && out.size() % static_cast<std::size_t>(dup_every) == 0) {
            out.push_back(out[gen() % out.size()]);
            continue;
        }
        Tuple t;
        for (const std::int32_t k : sizes) {
            const double u = std::uniform_real_distribution<double>(0, 1)(gen);
            t.push_back(std::min<std::int32_t>(k - 1, static_cast<std::int32_t>(k * u * u)));  // skewed to low codes
        }
        if (seen.insert(t).second) out.push_back(t);
    }
    return out;
}

Matrix<std::int32_t> to_matrix(const std::vector<Tuple>& tuples) {
    Matrix<std::int32_t> m(Shape<2>{{static_cast<index_t>(tuples.size()), static_cast<index_t>(tuples[0].size())}});
    for (std::size_t i = 0; i < tuples.size(); ++i)
        for (std::size_t j = 0; j < tuples[i].size(); ++j) m(static_cast<index_t>(i), static_cast<index_t>(j)) = tuples[i][j];
    return m;
}

std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// log p(code | query, prefix) from hashed logits rounded to a coarse grid
/// (`levels` distinct values), so equal scores are common: ties must be broken
/// the same way by every search.
struct TiedModel {
    std::vector<std::int32_t> sizes;
    int levels = 4;

    void row(index_t query, std::span<const std::int32_t> prefix, float* out) const {
        const std::int32_t k = sizes[prefix.size()];
        std::uint64_t h = mix(static_cast<std::uint64_t>(query) * 1000003ULL + prefix.size());
        for (const std::int32_t c : prefix) h = mix(h ^ static_cast<std::uint64_t>(c + 17));
        // Values on a dyadic grid, normalised by a power of two: sums are exact in float.
        for (std::int32_t c = 0; c < k; ++c)
            out[c] = -0.5f * static_cast<float>(mix(h ^ static_cast<std::uint64_t>(c) * 7919ULL) % static_cast<std::uint64_t>(levels)) - 1.0f;
    }
    void next_code_log_probs(const DecodeStep& step, MatrixView<float> out) {
        std::vector<std::int32_t> prefix(static_cast<std::size_t>(step.level));
        for (index_t r = 0; r < step.rows(); ++r) {
            for (index_t j = 0; j < step.level; ++j) prefix[static_cast<std::size_t>(j)] = step.prefixes(r, j);
            row(step.query[static_cast<std::size_t>(r)], prefix, out.row(r));
            // Garbage where a constrained search must not look is fine: the search
            // ignores codes no ID continues with (the dense path reads them).
        }
    }
    [[nodiscard]] float score(index_t query, const Tuple& tuple) const {
        float s = 0.0f;
        std::vector<float> buf(256);
        for (std::size_t t = 0; t < tuple.size(); ++t) {
            row(query, std::span<const std::int32_t>(tuple.data(), t), buf.data());
            s += buf[static_cast<std::size_t>(tuple[t])];
        }
        return s;
    }
};
static_assert(decoding::NextCodeModel<TiedModel>);

/// Every prefix of every tuple, with the codes that continue it.
std::map<Tuple, std::set<std::int32_t>> prefix_map(const std::vector<Tuple>& tuples) {
    std::map<Tuple, std::set<std::int32_t>> m;
    for (const auto& t : tuples)
        for (std::size_t l = 0; l < t.size(); ++l) m[Tuple(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(l))].insert(t[l]);
    return m;
}

}  // namespace

TEST_CASE("flat catalogue: arrays agree with the set of prefixes, dense and CSR levels", "[flat_catalogue]") {
    const std::vector<std::int32_t> sizes{5, 4, 6};
    for (const unsigned seed : {1u, 2u, 3u}) {
        for (const index_t dense_limit : {index_t{0}, index_t{5}, index_t{100}, index_t{1} << 20}) {
            const index_t n = 20 + 25 * seed;
            const auto tuples = random_tuples(n, sizes, seed, seed == 3 ? 7 : 0);
            const auto codes = to_matrix(tuples);
            FlatCatalogueOptions opt;
            opt.duplicates = DuplicateIds::map_to_all;
            opt.max_dense_entries = dense_limit;
            const FlatCatalogue cat(codes.cview(), sizes, opt);
            INFO("seed " << seed << " dense limit " << dense_limit);
            CHECK(cat.depth() == 3);
            CHECK(cat.num_items() == n);
            index_t dense = 0;  // levels while rows x K_t fits the limit
            while (dense < 3 && cat.num_prefixes(dense) * sizes[static_cast<std::size_t>(dense)] <= dense_limit) ++dense;
            CHECK(cat.dense_levels() == dense);
            const auto prefixes = prefix_map(tuples);
            // Rows of each level: the distinct prefixes in lexicographic order.
            std::vector<std::vector<Tuple>> rows(4);
            for (const auto& [p, next] : prefixes) rows[p.size()].push_back(p);
            for (const auto& t : std::set<Tuple>(tuples.begin(), tuples.end())) rows[3].push_back(t);
            for (index_t t = 0; t <= 3; ++t) CHECK(cat.num_prefixes(t) == static_cast<index_t>(rows[static_cast<std::size_t>(t)].size()));
            for (index_t t = 0; t < 3; ++t) {
                const auto& level = rows[static_cast<std::size_t>(t)];
                for (std::size_t r = 0; r < level.size(); ++r) {
                    const auto row = static_cast<FlatCatalogue::row_t>(r);
                    REQUIRE(cat.find(level[r]) == row);
                    const auto& next = prefixes.at(level[r]);
                    const auto allowed = cat.allowed_next(t, row);
                    CHECK(Tuple(allowed.begin(), allowed.end()) == Tuple(next.begin(), next.end()));
                    for (std::int32_t c = -1; c <= sizes[static_cast<std::size_t>(t)]; ++c) {
                        auto ext = level[r];
                        ext.push_back(c);
                        const auto& nl = rows[static_cast<std::size_t>(t + 1)];
                        const auto it = std::find(nl.begin(), nl.end(), ext);
                        const auto want = it == nl.end() ? FlatCatalogue::kNone : static_cast<FlatCatalogue::row_t>(it - nl.begin());
                        CHECK(cat.child(t, row, c) == want);
                        if (cat.is_dense(t) && c >= 0 && c < sizes[static_cast<std::size_t>(t)])
                            CHECK(cat.dense_children(t, row)[c] == want);
                        if (want != FlatCatalogue::kNone) {
                            const auto j = std::find(allowed.begin(), allowed.end(), c) - allowed.begin();
                            CHECK(cat.first_child(t, row) + j == want);
                        }
                    }
                }
            }
            // Every tuple of the code space: contained iff an item's; leaves list the items.
            for (std::int32_t a = 0; a < 5; ++a)
                for (std::int32_t b = 0; b < 4; ++b)
                    for (std::int32_t c = 0; c < 6; ++c) {
                        const Tuple t{a, b, c};
                        std::vector<row_id_t> want;
                        for (std::size_t i = 0; i < tuples.size(); ++i)
                            if (tuples[i] == t) want.push_back(static_cast<row_id_t>(i));
                        CHECK(cat.contains(t) == !want.empty());
                        if (!want.empty()) {
                            const auto its = cat.items(cat.find(t));
                            CHECK(std::vector<row_id_t>(its.begin(), its.end()) == want);
                        }
                    }
        }
    }
}

TEST_CASE("flat catalogue: mask_log_probs keeps exactly the allowed codes", "[flat_catalogue]") {
    const std::vector<std::int32_t> sizes{7, 9, 5};
    const auto tuples = random_tuples(80, sizes, 21);
    const auto codes = to_matrix(tuples);
    const auto prefixes = prefix_map(tuples);
    for (const index_t dense_limit : {index_t{0}, index_t{1} << 20}) {
        const FlatCatalogue cat(codes.cview(), sizes, {.duplicates = DuplicateIds::reject, .max_dense_entries = dense_limit});
        std::mt19937 gen(5);
        for (index_t t = 0; t < 3; ++t) {
            const index_t k = sizes[static_cast<std::size_t>(t)];
            std::vector<FlatCatalogue::row_t> rows;
            for (int p = 0; p < 12; ++p) rows.push_back(static_cast<FlatCatalogue::row_t>(gen() % cat.num_prefixes(t)));
            Matrix<float> lp(Shape<2>{{12, k}}), orig(Shape<2>{{12, k}});
            for (index_t i = 0; i < lp.numel(); ++i) orig.data()[i] = lp.data()[i] = static_cast<float>(gen() % 1000) * -0.01f;
            cat.mask_log_probs(t, rows, lp.view());
            // The prefix of each row, recovered literally from the row numbering.
            std::vector<Tuple> level;
            for (const auto& [p, next] : prefixes)
                if (static_cast<index_t>(p.size()) == t) level.push_back(p);
            for (index_t p = 0; p < 12; ++p) {
                const auto& allowed = prefixes.at(level[static_cast<std::size_t>(rows[static_cast<std::size_t>(p)])]);
                for (std::int32_t c = 0; c < k; ++c) {
                    if (allowed.count(c)) CHECK(lp(p, c) == orig(p, c));
                    else CHECK(lp(p, c) == -std::numeric_limits<float>::infinity());
                }
            }
        }
        Matrix<float> wrong(Shape<2>{{2, 3}});
        const std::vector<FlatCatalogue::row_t> two{0, 0};
        REQUIRE_THROWS_AS(cat.mask_log_probs(0, two, wrong.view()), ShapeError);
        Matrix<float> ok(Shape<2>{{2, 7}});
        const std::vector<FlatCatalogue::row_t> bad{0, 1};
        REQUIRE_THROWS_AS(cat.mask_log_probs(0, bad, ok.view()), IndexError);
        REQUIRE_THROWS_AS(cat.mask_log_probs(3, two, ok.view()), IndexError);
    }
}

TEST_CASE("flat catalogue: bad inputs raise named errors", "[flat_catalogue]") {
    const auto codes = to_matrix({{2, 1}, {0, 3}, {2, 1}});
    const std::int32_t sizes[] = {3, 4};
    REQUIRE_THROWS_AS(FlatCatalogue(codes.cview(), sizes), ValueError);
    REQUIRE_THROWS_WITH(FlatCatalogue(codes.cview(), sizes),
                        Contains("FlatCatalogue: items 0 and 2 have the same ID (2, 1)"));
    const FlatCatalogue dup(codes.cview(), sizes, {.duplicates = DuplicateIds::map_to_all});
    CHECK(dup.num_items() == 3);
    const Tuple t21{2, 1};
    const auto its = dup.items(dup.find(t21));
    CHECK(std::vector<row_id_t>(its.begin(), its.end()) == std::vector<row_id_t>{0, 2});

    const std::int32_t small[] = {3, 3};
    REQUIRE_THROWS_AS(FlatCatalogue(codes.cview(), small, {.duplicates = DuplicateIds::map_to_all}), IndexError);
    REQUIRE_THROWS_WITH(FlatCatalogue(codes.cview(), small, {.duplicates = DuplicateIds::map_to_all}),
                        Contains("FlatCatalogue: item 1 has code 3 at level 1, outside [0, 3)"));
    const std::int32_t three[] = {3, 4, 2};
    REQUIRE_THROWS_AS(FlatCatalogue(codes.cview(), three), ShapeError);
    REQUIRE_THROWS_WITH(FlatCatalogue(codes.cview(), three), Contains("codes has 2 levels but 3 codebook sizes"));
    const std::int32_t zero[] = {3, 0};
    REQUIRE_THROWS_AS(FlatCatalogue(codes.cview(), zero), ValueError);
    Matrix<std::int32_t> empty(Shape<2>{{0, 2}});
    REQUIRE_THROWS_AS(FlatCatalogue(empty.cview(), sizes), ValueError);
    REQUIRE_THROWS_WITH(FlatCatalogue(empty.cview(), sizes), Contains("FlatCatalogue: the catalogue is empty"));
    Matrix<std::int32_t> no_levels(Shape<2>{{3, 0}});
    REQUIRE_THROWS_AS(FlatCatalogue(no_levels.cview(), std::span<const std::int32_t>{}), ShapeError);
    REQUIRE_THROWS_AS(FlatCatalogue(codes.cview(), sizes, {.duplicates = DuplicateIds::map_to_all, .max_dense_entries = -1}),
                      ValueError);
    REQUIRE_THROWS_AS(dup.items(7), IndexError);
    REQUIRE_THROWS_AS(dup.child(2, 0, 0), IndexError);
    const Tuple too_long{1, 2, 3};
    REQUIRE_THROWS_AS(dup.find(too_long), ShapeError);
    CHECK_FALSE(dup.contains(too_long));
    // From SemanticIds, and the search refuses an empty catalogue.
    const tokenizers::SemanticIds ids(to_matrix({{0, 1}, {1, 0}}).cview(), {2, 2});
    CHECK(FlatCatalogue(ids).num_items() == 2);
    const FlatCatalogue none;
    TiedModel model{{2, 2}};
    BeamSearchWorkspace ws;
    Matrix<row_id_t> items(Shape<2>{{1, 1}});
    Matrix<float> scores(Shape<2>{{1, 1}});
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, none, 1, 1, items.view(), scores.view(), ws), ValueError);
}

TEST_CASE("flat catalogue: the beam search equals the trie's on random catalogues, ties and duplicates included",
          "[flat_catalogue][beam_search]") {
    struct Setting {
        std::vector<std::int32_t> sizes;
        index_t items;
        int dup_every;
    };
    const std::vector<Setting> settings{{{8, 8, 6}, 150, 0}, {{16, 4, 4, 3}, 300, 0}, {{6, 6, 6}, 120, 5}, {{32, 32}, 400, 9}};
    for (unsigned seed = 1; seed <= 3; ++seed)
        for (const auto& s : settings) {
            const auto tuples = random_tuples(s.items, s.sizes, 100 + seed, s.dup_every);
            const auto codes = to_matrix(tuples);
            const auto dups = s.dup_every > 0 ? DuplicateIds::map_to_all : DuplicateIds::reject;
            const CodeTrie trie(codes.cview(), s.sizes, dups);
            const auto levels = static_cast<index_t>(s.sizes.size());
            std::vector<BeamSearchOptions> opts{{.beam_width = 1}, {.beam_width = 3}, {.beam_width = 20},
                                                BeamSearchOptions::recgpt(levels)};
            BeamSearchOptions expand{.beam_width = 6};
            expand.expansions.assign(static_cast<std::size_t>(levels), 2);
            opts.push_back(expand);
            for (const index_t dense_limit : {index_t{0}, index_t{64}, index_t{1} << 20}) {
                const FlatCatalogue flat(codes.cview(), s.sizes, {.duplicates = dups, .max_dense_entries = dense_limit});
                {  // invalid-ID counts of an unconstrained search: the same under both forms
                    TiedModel model{s.sizes, 4};
                    Tensor<std::int32_t, 3> codes3(Shape<3>{{4, 10, levels}});
                    Matrix<float> s3(Shape<2>{{4, 10}});
                    BeamSearchWorkspace w3;
                    decoding::beam_search(model, s.sizes, 4, 10, codes3.view(), s3.view(), w3, {.beam_width = 10});
                    const auto a = decoding::count_invalid_ids(trie, codes3.cview());
                    const auto b = decoding::count_invalid_ids(flat, codes3.cview());
                    CHECK(a.returned == b.returned);
                    CHECK(a.invalid == b.invalid);
                }
                for (const auto& opt : opts) {
                    TiedModel model{s.sizes, seed == 2 ? 2 : 4};
                    const index_t q = 9, k = 10;
                    Matrix<row_id_t> a(Shape<2>{{q, k}}), b(Shape<2>{{q, k}});
                    Matrix<float> sa(Shape<2>{{q, k}}), sb(Shape<2>{{q, k}});
                    BeamSearchWorkspace wa, wb;
                    decoding::constrained_beam_search(model, trie, q, k, a.view(), sa.view(), wa, opt);
                    decoding::constrained_beam_search(model, flat, q, k, b.view(), sb.view(), wb, opt);
                    INFO("seed " << seed << " items " << s.items << " dense limit " << dense_limit << " beam "
                                 << opt.beam_width);
                    for (index_t u = 0; u < q; ++u)
                        for (index_t j = 0; j < k; ++j) {
                            REQUIRE(a(u, j) == b(u, j));
                            REQUIRE(sa(u, j) == sb(u, j));
                            if (b(u, j) >= 0) REQUIRE(sb(u, j) == model.score(u, tuples[static_cast<std::size_t>(b(u, j))]));
                        }
                }
            }
        }
}

TEST_CASE("flat catalogue: a beam as wide as the catalogue returns exactly the brute-force top-k",
          "[flat_catalogue][beam_search]") {
    for (const int dup_every : {0, 4}) {
        const std::vector<std::int32_t> sizes{6, 7, 5};
        const auto tuples = random_tuples(150, sizes, 77, dup_every);
        const auto codes = to_matrix(tuples);
        const FlatCatalogue flat(codes.cview(), sizes,
                                 {.duplicates = dup_every ? DuplicateIds::map_to_all : DuplicateIds::reject});
        TiedModel model{sizes, 3};
        const index_t q = 6, k = 40;
        Matrix<row_id_t> items(Shape<2>{{q, k}});
        Matrix<float> scores(Shape<2>{{q, k}});
        BeamSearchWorkspace ws;
        decoding::constrained_beam_search(model, flat, q, k, items.view(), scores.view(), ws, {.beam_width = 150});
        for (index_t u = 0; u < q; ++u) {
            // Brute force: every item scored; ties by tuple, then by item id.
            std::vector<std::pair<float, row_id_t>> all;
            for (std::size_t i = 0; i < tuples.size(); ++i)
                all.push_back({model.score(u, tuples[i]), static_cast<row_id_t>(i)});
            std::sort(all.begin(), all.end(), [&](const auto& x, const auto& y) {
                if (x.first != y.first) return x.first > y.first;
                const auto& tx = tuples[static_cast<std::size_t>(x.second)];
                const auto& ty = tuples[static_cast<std::size_t>(y.second)];
                return tx != ty ? tx < ty : x.second < y.second;
            });
            index_t ties = 0;
            for (index_t j = 0; j < k; ++j) {
                INFO("dup " << dup_every << " query " << u << " rank " << j);
                CHECK(items(u, j) == all[static_cast<std::size_t>(j)].second);
                CHECK(scores(u, j) == all[static_cast<std::size_t>(j)].first);
                ties += j > 0 && scores(u, j) == scores(u, j - 1);
            }
            CHECK(ties > 0);  // the grid model makes the tie-break matter
        }
    }
}

TEST_CASE("flat catalogue: a warm workspace does not grow; every item is real and unique", "[flat_catalogue][beam_search]") {
    const std::vector<std::int32_t> sizes{16, 16, 16};
    const auto tuples = random_tuples(1500, sizes, 9);
    const auto codes = to_matrix(tuples);
    const FlatCatalogue flat(codes.cview(), sizes);
    CHECK(flat.dense_levels() == 3);  // 1 x 16, <= 16 x 16, <= 256 x 16 entries
    TiedModel model{sizes, 64};
    const index_t q = 20, k = 10;
    Matrix<row_id_t> items(Shape<2>{{q, k}});
    Matrix<float> scores(Shape<2>{{q, k}});
    BeamSearchWorkspace ws;
    const auto opt = BeamSearchOptions{.beam_width = 50};
    decoding::constrained_beam_search(model, flat, q, k, items.view(), scores.view(), ws, opt);
    const auto grown = ws.growth_count();
    for (int i = 0; i < 3; ++i) decoding::constrained_beam_search(model, flat, q, k, items.view(), scores.view(), ws, opt);
    CHECK(ws.growth_count() == grown);
    for (index_t u = 0; u < q; ++u) {
        std::set<row_id_t> seen;
        for (index_t j = 0; j < k; ++j) {
            REQUIRE(items(u, j) >= 0);
            REQUIRE(items(u, j) < 1500);
            CHECK(seen.insert(items(u, j)).second);
        }
    }
}

TEST_CASE("flat catalogue: NaN where the catalogue forbids is ignored, NaN where it allows is an error",
          "[flat_catalogue][beam_search]") {
    const std::vector<std::int32_t> sizes{8, 8, 6};
    const auto tuples = random_tuples(100, sizes, 31);
    const auto codes = to_matrix(tuples);
    const FlatCatalogue flat(codes.cview(), sizes);  // 3 dense levels: every row is scanned in full
    REQUIRE(flat.dense_levels() == 3);
    const CodeTrie trie(codes.cview(), sizes);
    // The tied model, with NaN written over every forbidden code (or, when `poison`, one allowed one too).
    struct NanModel {
        TiedModel base;
        const FlatCatalogue* cat;
        bool poison = false;
        void next_code_log_probs(const DecodeStep& step, MatrixView<float> out) {
            base.next_code_log_probs(step, out);
            std::vector<std::int32_t> prefix(static_cast<std::size_t>(step.level));
            for (index_t r = 0; r < step.rows(); ++r) {
                for (index_t j = 0; j < step.level; ++j) prefix[static_cast<std::size_t>(j)] = step.prefixes(r, j);
                const auto row = cat->find(prefix);
                for (std::int32_t c = 0; c < out.cols(); ++c)
                    if (cat->child(step.level, row, c) == FlatCatalogue::kNone)
                        out(r, c) = std::numeric_limits<float>::quiet_NaN();
                if (poison && step.level == 1 && r == 0) out(r, cat->allowed_next(1, row)[0]) = std::numeric_limits<float>::quiet_NaN();
            }
        }
    };
    NanModel model{TiedModel{sizes, 4}, &flat};
    TiedModel clean{sizes, 4};
    const index_t q = 5, k = 10;
    Matrix<row_id_t> a(Shape<2>{{q, k}}), b(Shape<2>{{q, k}});
    Matrix<float> sa(Shape<2>{{q, k}}), sb(Shape<2>{{q, k}});
    BeamSearchWorkspace wa, wb;
    decoding::constrained_beam_search(clean, trie, q, k, a.view(), sa.view(), wa, {.beam_width = 4});
    decoding::constrained_beam_search(model, flat, q, k, b.view(), sb.view(), wb, {.beam_width = 4});
    for (index_t u = 0; u < q; ++u)
        for (index_t j = 0; j < k; ++j) {
            CHECK(a(u, j) == b(u, j));
            CHECK(sa(u, j) == sb(u, j));
        }
    model.poison = true;
    REQUIRE_THROWS_WITH(decoding::constrained_beam_search(model, flat, q, k, b.view(), sb.view(), wb, {.beam_width = 4}),
                        Contains("at level 1, row 0 is NaN"));
}
