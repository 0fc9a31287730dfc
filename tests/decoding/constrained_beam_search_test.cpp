// Beam search over semantic-ID codes, against brute force on a deterministic
// toy model whose next-code distribution depends on the query and the whole
// prefix: a beam as wide as the catalogue returns exactly the brute-force
// top-k (items and scores); narrow beams (RecGPT's schedule, beam 1, 3) return
// only real, unique items with their true scores; the unconstrained search
// equals brute force over the whole code space and its invalid-ID count is
// checked tuple by tuple; the model sees a consistent (query, parent, prefix)
// contract; results are the same on 1 and 2 threads; a warm workspace does not
// grow; bad arguments raise the library's errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"

using namespace recblocks;
using decoding::BeamSearchOptions;
using decoding::BeamSearchWorkspace;
using decoding::DecodeStep;
using tokenizers::CodeTrie;
using Catch::Matchers::Contains;

namespace {

std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// log p(code | query, prefix): log-softmax of hashed logits of (query, prefix, code).
struct ToyModel {
    std::vector<std::int32_t> sizes;
    float temperature = 1.5f;
    bool check_contract = true;
    bool nan = false;
    // What the previous call saw (to check parent / prefix consistency).
    std::vector<std::int32_t> prev_query{}, prev_prefix{};
    index_t prev_level = -1;
    int calls = 0;

    [[nodiscard]] float logit(index_t query, std::span<const std::int32_t> prefix, std::int32_t code) const {
        std::uint64_t h = mix(static_cast<std::uint64_t>(query) * 1000003ULL + prefix.size());
        for (const std::int32_t c : prefix) h = mix(h ^ static_cast<std::uint64_t>(c + 17));
        h = mix(h ^ static_cast<std::uint64_t>(code) * 7919ULL);
        return temperature * static_cast<float>(static_cast<double>(h >> 11) * 0x1.0p-53 * 4.0 - 2.0);
    }

    /// The log-probs of every code after `prefix`, as next_code_log_probs writes them.
    void row(index_t query, std::span<const std::int32_t> prefix, float* out) const {
        const std::int32_t k = sizes[prefix.size()];
        double mx = -1e300;
        for (std::int32_t c = 0; c < k; ++c) {
            out[c] = logit(query, prefix, c);
            mx = std::max(mx, static_cast<double>(out[c]));
        }
        double s = 0;
        for (std::int32_t c = 0; c < k; ++c) s += std::exp(out[c] - mx);
        const auto lse = static_cast<float>(mx + std::log(s));
        for (std::int32_t c = 0; c < k; ++c) out[c] -= lse;
    }

    void next_code_log_probs(const DecodeStep& step, MatrixView<float> out) {
        ++calls;
        const index_t t = step.level;
        REQUIRE(out.cols() == sizes[static_cast<std::size_t>(t)]);
        REQUIRE(out.rows() == step.rows());
        REQUIRE(step.prefixes.rows() == step.rows());
        REQUIRE(step.prefixes.cols() == t);
        if (check_contract) {
            REQUIRE(t == prev_level + 1);
            if (t == 0) REQUIRE(step.parent.empty());
            else REQUIRE(step.parent.size() == step.query.size());
            for (index_t r = 0; r < step.rows(); ++r) {
                if (r) REQUIRE(step.query[r - 1] <= step.query[r]);  // rows grouped by ascending query
                if (t > 0) {
                    const auto p = static_cast<std::size_t>(step.parent[r]);
                    REQUIRE(p < prev_query.size());
                    REQUIRE(prev_query[p] == step.query[r]);
                    for (index_t j = 0; j + 1 < t; ++j)  // row r extends its parent's prefix
                        REQUIRE(step.prefixes(r, j) == prev_prefix[p * (t - 1) + j]);
                }
            }
            prev_query.assign(step.query.begin(), step.query.end());
            prev_prefix.clear();
            for (index_t r = 0; r < step.rows(); ++r)
                for (index_t j = 0; j < t; ++j) prev_prefix.push_back(step.prefixes(r, j));
            prev_level = t;
        }
        std::vector<std::int32_t> prefix(static_cast<std::size_t>(t));
        for (index_t r = 0; r < step.rows(); ++r) {
            for (index_t j = 0; j < t; ++j) prefix[j] = step.prefixes(r, j);
            row(step.query[r], prefix, out.row(r));
        }
        if (nan) out(0, 0) = std::numeric_limits<float>::quiet_NaN();
    }
    void reset() {
        prev_level = -1;
        calls = 0;
    }

    /// Score of a whole tuple: the sum of its log-probs, in the order the search adds them.
    [[nodiscard]] float score(index_t query, std::span<const std::int32_t> tuple) const {
        float s = 0.0f;
        std::vector<float> buf(64);
        for (std::size_t t = 0; t < tuple.size(); ++t) {
            buf.resize(static_cast<std::size_t>(sizes[t]));
            row(query, tuple.subspan(0, t), buf.data());
            s += buf[static_cast<std::size_t>(tuple[t])];
        }
        return s;
    }
};
static_assert(decoding::NextCodeModel<ToyModel>);

struct Ranked {
    float score;
    std::vector<std::int32_t> tuple;
    row_id_t item;
};

/// Brute force: every tuple scored, best first; ties by tuple.
std::vector<Ranked> brute_force(const ToyModel& m, index_t query, const std::vector<std::vector<std::int32_t>>& tuples) {
    std::vector<Ranked> all;
    for (std::size_t i = 0; i < tuples.size(); ++i)
        all.push_back({m.score(query, tuples[i]), tuples[i], static_cast<row_id_t>(i)});
    std::sort(all.begin(), all.end(), [](const Ranked& a, const Ranked& b) {
        return a.score != b.score ? a.score > b.score : a.tuple < b.tuple;
    });
    return all;
}

struct Catalogue {
    std::vector<std::int32_t> sizes{8, 8, 6};
    std::vector<std::vector<std::int32_t>> tuples;
    Matrix<std::int32_t> codes;
    CodeTrie trie;

    explicit Catalogue(index_t n, unsigned seed = 7) {
        std::mt19937 gen(seed);
        std::set<std::vector<std::int32_t>> seen;
        while (static_cast<index_t>(tuples.size()) < n) {
            std::vector<std::int32_t> t{static_cast<std::int32_t>(gen() % 8), static_cast<std::int32_t>(gen() % 8),
                                        static_cast<std::int32_t>(gen() % 6)};
            if (seen.insert(t).second) tuples.push_back(t);
        }
        codes.resize(Shape<2>{{n, 3}});
        for (index_t i = 0; i < n; ++i)
            for (index_t j = 0; j < 3; ++j) codes(i, j) = tuples[static_cast<std::size_t>(i)][static_cast<std::size_t>(j)];
        trie = CodeTrie(codes.cview(), sizes);
    }
};

std::vector<std::vector<std::int32_t>> code_space(const std::vector<std::int32_t>& sizes) {
    std::vector<std::vector<std::int32_t>> all;
    for (std::int32_t a = 0; a < sizes[0]; ++a)
        for (std::int32_t b = 0; b < sizes[1]; ++b)
            for (std::int32_t c = 0; c < sizes[2]; ++c) all.push_back({a, b, c});
    return all;
}

}  // namespace

TEST_CASE("beam search: a beam as wide as the catalogue returns the brute-force top-k", "[beam_search]") {
    const Catalogue cat(200);
    ToyModel model{cat.sizes};
    const index_t q = 5, k = 25;
    Matrix<row_id_t> items(Shape<2>{{q, k}});
    Matrix<float> scores(Shape<2>{{q, k}});
    BeamSearchWorkspace ws;
    BeamSearchOptions opt;
    opt.beam_width = 200;
    decoding::constrained_beam_search(model, cat.trie, q, k, items.view(), scores.view(), ws, opt);
    CHECK(model.calls == 3);
    for (index_t u = 0; u < q; ++u) {
        const auto ref = brute_force(model, u, cat.tuples);
        for (index_t j = 0; j < k; ++j) {
            INFO("query " << u << " rank " << j);
            CHECK(items(u, j) == ref[static_cast<std::size_t>(j)].item);
            CHECK(scores(u, j) == ref[static_cast<std::size_t>(j)].score);
        }
    }
    // k = the whole catalogue: every item once, in brute-force order.
    Matrix<row_id_t> all_items(Shape<2>{{q, 200}});
    Matrix<float> all_scores(Shape<2>{{q, 200}});
    model.reset();
    opt.beam_width = 1;  // the last level keeps max(beam, k) anyway; earlier levels need the width
    opt.beams = {64, 200, 200};
    decoding::constrained_beam_search(model, cat.trie, q, 200, all_items.view(), all_scores.view(), ws, opt);
    for (index_t u = 0; u < q; ++u) {
        const auto ref = brute_force(model, u, cat.tuples);
        for (index_t j = 0; j < 200; ++j) CHECK(all_items(u, j) == ref[static_cast<std::size_t>(j)].item);
    }
}

TEST_CASE("beam search: narrow beams return only real, unique items with their true scores", "[beam_search]") {
    const Catalogue cat(150, 11);
    ToyModel model{cat.sizes};
    const index_t q = 7, k = 10;
    Matrix<row_id_t> items(Shape<2>{{q, k}});
    Matrix<float> scores(Shape<2>{{q, k}});
    BeamSearchWorkspace ws;
    std::vector<BeamSearchOptions> settings;
    settings.push_back(BeamSearchOptions::recgpt(3));
    settings.push_back(BeamSearchOptions{.beam_width = 1});
    settings.push_back(BeamSearchOptions{.beam_width = 3});
    settings.push_back(BeamSearchOptions{.beam_width = 4, .beams = {}, .expansions = {2, 1, 3}});
    for (const auto& opt : settings) {
        model.reset();
        decoding::constrained_beam_search(model, cat.trie, q, k, items.view(), scores.view(), ws, opt);
        for (index_t u = 0; u < q; ++u) {
            std::set<row_id_t> seen;
            index_t found = 0;
            for (index_t j = 0; j < k; ++j) {
                if (items(u, j) < 0) {
                    CHECK(scores(u, j) == -std::numeric_limits<float>::infinity());
                    continue;
                }
                ++found;
                CHECK(j + 1 == found);  // padding only at the tail
                REQUIRE(items(u, j) < 150);
                CHECK(seen.insert(items(u, j)).second);
                CHECK(scores(u, j) == model.score(u, cat.tuples[static_cast<std::size_t>(items(u, j))]));
                if (j) CHECK(scores(u, j - 1) >= scores(u, j));
            }
            CHECK(found >= 1);
        }
    }
    // The greedy path (beam 1 everywhere, k = 1) is the argmax at each level.
    Matrix<row_id_t> one(Shape<2>{{q, 1}});
    Matrix<float> one_s(Shape<2>{{q, 1}});
    model.reset();
    decoding::constrained_beam_search(model, cat.trie, q, 1, one.view(), one_s.view(), ws, {.beam_width = 1});
    for (index_t u = 0; u < q; ++u) {
        CodeTrie::node_t n = CodeTrie::kRoot;
        std::vector<std::int32_t> prefix;
        std::vector<float> lp(8);
        for (index_t t = 0; t < 3; ++t) {
            model.row(u, prefix, lp.data());
            std::int32_t best = -1;
            for (const std::int32_t c : cat.trie.allowed_next(n))
                if (best < 0 || lp[c] > lp[best]) best = c;
            prefix.push_back(best);
            n = cat.trie.child(n, best);
        }
        CHECK(one(u, 0) == cat.trie.items(n)[0]);
    }
}

TEST_CASE("beam search: the unconstrained search equals brute force over the code space", "[beam_search]") {
    const Catalogue cat(120, 5);
    ToyModel model{cat.sizes};
    const index_t q = 4, k = 30;
    Tensor<std::int32_t, 3> codes(Shape<3>{{q, k, 3}});
    Matrix<float> scores(Shape<2>{{q, k}});
    BeamSearchWorkspace ws;
    decoding::beam_search(model, cat.sizes, q, k, codes.view(), scores.view(), ws, {.beam_width = 384});
    const auto space = code_space(cat.sizes);
    index_t invalid = 0;
    for (index_t u = 0; u < q; ++u) {
        const auto ref = brute_force(model, u, space);
        for (index_t j = 0; j < k; ++j) {
            const auto& r = ref[static_cast<std::size_t>(j)];
            for (index_t t = 0; t < 3; ++t) CHECK(codes(u, j, t) == r.tuple[static_cast<std::size_t>(t)]);
            CHECK(scores(u, j) == r.score);
            invalid += !cat.trie.contains(r.tuple);
        }
    }
    const auto stats = decoding::count_invalid_ids(cat.trie, codes.cview());
    CHECK(stats.returned == q * k);
    CHECK(stats.invalid == invalid);
    CHECK(stats.invalid > 0);  // 120 of 384 tuples are items: most are not
    CHECK(stats.rate() == Approx(static_cast<double>(invalid) / static_cast<double>(q * k)));

    // Narrow beams (RecGPT's schedule, and width 2): distinct tuples, each with its true score, best first.
    auto check_narrow = [&](const Tensor<std::int32_t, 3>& c, const Matrix<float>& s) {
        for (index_t u = 0; u < q; ++u) {
            std::set<std::vector<std::int32_t>> seen;
            for (index_t j = 0; j < 5; ++j) {
                const std::vector<std::int32_t> t{c(u, j, 0), c(u, j, 1), c(u, j, 2)};
                CHECK(seen.insert(t).second);
                CHECK(s(u, j) == model.score(u, t));
                if (j > 0) CHECK(s(u, j - 1) >= s(u, j));
            }
        }
    };
    Tensor<std::int32_t, 3> c1(Shape<3>{{q, 5, 3}});
    Matrix<float> s1(Shape<2>{{q, 5}});
    model.reset();
    decoding::beam_search(model, cat.sizes, q, 5, c1.view(), s1.view(), ws, BeamSearchOptions::recgpt(3));
    check_narrow(c1, s1);
    Tensor<std::int32_t, 3> c2(Shape<3>{{q, 5, 3}});
    Matrix<float> s2(Shape<2>{{q, 5}});
    model.reset();
    decoding::beam_search(model, cat.sizes, q, 5, c2.view(), s2.view(), ws, {.beam_width = 2});
    check_narrow(c2, s2);
}

TEST_CASE("beam search: duplicate IDs mapped to all items come out in id order with one score", "[beam_search]") {
    Matrix<std::int32_t> codes(Shape<2>{{4, 2}});
    const std::int32_t rows[4][2] = {{1, 1}, {0, 1}, {1, 1}, {0, 0}};
    for (index_t i = 0; i < 4; ++i)
        for (index_t j = 0; j < 2; ++j) codes(i, j) = rows[i][j];
    const std::int32_t sizes[] = {2, 2};
    const CodeTrie trie(codes.cview(), sizes, tokenizers::DuplicateIds::map_to_all);
    ToyModel model{{2, 2}};
    Matrix<row_id_t> items(Shape<2>{{3, 4}});
    Matrix<float> scores(Shape<2>{{3, 4}});
    BeamSearchWorkspace ws;
    decoding::constrained_beam_search(model, trie, 3, 4, items.view(), scores.view(), ws);
    for (index_t u = 0; u < 3; ++u) {
        std::set<row_id_t> seen;
        for (index_t j = 0; j < 4; ++j) CHECK(seen.insert(items(u, j)).second);
        CHECK(seen == std::set<row_id_t>{0, 1, 2, 3});
        for (index_t j = 0; j + 1 < 4; ++j)
            if (items(u, j) == 0) {
                CHECK(items(u, j + 1) == 2);
                CHECK(scores(u, j + 1) == scores(u, j));
            }
    }
}

TEST_CASE("beam search: same results on 1 and 2 threads; a warm workspace does not grow", "[beam_search]") {
    const Catalogue cat(250, 13);
    ToyModel model{cat.sizes};
    model.check_contract = false;
    const index_t q = 33, k = 10;
    Matrix<row_id_t> a(Shape<2>{{q, k}}), b(Shape<2>{{q, k}});
    Matrix<float> sa(Shape<2>{{q, k}}), sb(Shape<2>{{q, k}});
    BeamSearchWorkspace ws1, ws2;
    ThreadPool pool(2);
    auto opt = BeamSearchOptions::recgpt(3);
    decoding::constrained_beam_search(model, cat.trie, q, k, a.view(), sa.view(), ws1, opt);
    opt.pool = &pool;
    decoding::constrained_beam_search(model, cat.trie, q, k, b.view(), sb.view(), ws2, opt);
    for (index_t u = 0; u < q; ++u)
        for (index_t j = 0; j < k; ++j) {
            CHECK(a(u, j) == b(u, j));
            CHECK(sa(u, j) == sb(u, j));
        }
    const auto grown = ws2.growth_count();
    CHECK(grown > 0);
    for (int i = 0; i < 3; ++i) decoding::constrained_beam_search(model, cat.trie, q, k, b.view(), sb.view(), ws2, opt);
    CHECK(ws2.growth_count() == grown);
    // Unconstrained too.
    Tensor<std::int32_t, 3> codes(Shape<3>{{q, k, 3}});
    decoding::beam_search(model, cat.sizes, q, k, codes.view(), sa.view(), ws2, opt);
    const auto grown2 = ws2.growth_count();
    decoding::beam_search(model, cat.sizes, q, k, codes.view(), sa.view(), ws2, opt);
    decoding::constrained_beam_search(model, cat.trie, q, k, b.view(), sb.view(), ws2, opt);
    CHECK(ws2.growth_count() == grown2);
}

TEST_CASE("beam search: bad arguments raise the library's errors", "[beam_search]") {
    const Catalogue cat(20, 3);
    ToyModel model{cat.sizes};
    model.check_contract = false;
    BeamSearchWorkspace ws;
    Matrix<row_id_t> items(Shape<2>{{2, 5}});
    Matrix<float> scores(Shape<2>{{2, 5}});
    Matrix<row_id_t> big_items(Shape<2>{{2, 21}});
    Matrix<float> big_scores(Shape<2>{{2, 21}});
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 21, big_items.view(), big_scores.view(), ws),
                      ValueError);
    REQUIRE_THROWS_WITH(decoding::constrained_beam_search(model, cat.trie, 2, 21, big_items.view(), big_scores.view(), ws),
                        Contains("k = 21 but the catalogue has 20 items"));
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 0, items.view(), scores.view(), ws),
                      ValueError);
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 3, 5, items.view(), scores.view(), ws),
                      ShapeError);
    Matrix<float> narrow(Shape<2>{{2, 4}});
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 5, items.view(), narrow.view(), ws),
                      ShapeError);
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 5, items.view(), scores.view(), ws,
                                                        {.beam_width = 0}),
                      ValueError);
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 5, items.view(), scores.view(), ws,
                                                        {.beam_width = 4, .beams = {4, 4}}),
                      ValueError);
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 5, items.view(), scores.view(), ws,
                                                        {.beam_width = 4, .beams = {}, .expansions = {1, -1, 1}}),
                      ValueError);
    const CodeTrie empty;
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, empty, 2, 5, items.view(), scores.view(), ws),
                      ValueError);
    model.nan = true;
    REQUIRE_THROWS_AS(decoding::constrained_beam_search(model, cat.trie, 2, 5, items.view(), scores.view(), ws),
                      ValueError);
    REQUIRE_THROWS_WITH(decoding::constrained_beam_search(model, cat.trie, 2, 5, items.view(), scores.view(), ws),
                        Contains("is NaN"));
    model.nan = false;
    // Unconstrained: k above the code space, wrong codes shape, no levels.
    Tensor<std::int32_t, 3> codes(Shape<3>{{2, 5, 3}});
    const std::vector<std::int32_t> tiny{2, 2, 1};
    ToyModel tiny_model{tiny};
    REQUIRE_THROWS_AS(decoding::beam_search(tiny_model, tiny, 2, 5, codes.view(), scores.view(), ws), ValueError);
    Tensor<std::int32_t, 3> wrong(Shape<3>{{2, 5, 2}});
    REQUIRE_THROWS_AS(decoding::beam_search(model, cat.sizes, 2, 5, wrong.view(), scores.view(), ws), ShapeError);
    REQUIRE_THROWS_AS(decoding::beam_search(model, std::span<const std::int32_t>{}, 2, 5, codes.view(), scores.view(), ws),
                      ValueError);
    REQUIRE_THROWS_AS(decoding::count_invalid_ids(cat.trie, wrong.cview()), ShapeError);
    // Tie-break ranks (beam x K_t) must fit 32 bits.
    const std::vector<std::int32_t> wide{8192, 8192};
    ToyModel wide_model{wide};
    Tensor<std::int32_t, 3> wide_codes(Shape<3>{{1, 1, 2}});
    Matrix<float> wide_scores(Shape<2>{{1, 1}});
    BeamSearchOptions huge;
    huge.beam_width = index_t{1} << 20;
    REQUIRE_THROWS_WITH(decoding::beam_search(wide_model, wide, 1, 1, wide_codes.view(), wide_scores.view(), ws, huge),
                        Contains("exceeds 2^32"));
    // Zero queries: nothing to do.
    Matrix<row_id_t> none(Shape<2>{{0, 5}});
    Matrix<float> none_s(Shape<2>{{0, 5}});
    REQUIRE_NOTHROW(decoding::constrained_beam_search(model, cat.trie, 0, 5, none.view(), none_s.view(), ws));
}
