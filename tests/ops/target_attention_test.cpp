// The target-attention primitives (ops/target_attention.hpp) and the two
// element-wise ones DARE added (ops::multiply, ops::bce_with_logits): every
// CPU backend against the Reference backend (exact where the sums are exact:
// integer-valued rows), batches of ragged segments, and every argument error.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "../backend/backends.hpp"
#include "../support/compare.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/logistic_loss.hpp"
#include "recblocks/ops/target_attention.hpp"

using namespace recblocks;

namespace {

struct Segments {
    Matrix<float> table, queries;
    std::vector<row_id_t> ids;
    std::vector<index_t> offsets{0};
};

/// Integer-valued rows (exact dot products, many exact ties) and segments of the given lengths.
Segments make_segments(index_t items, index_t dim, std::vector<index_t> lengths, std::uint64_t seed) {
    const Rng r(seed);
    Segments s;
    s.table.resize(Shape<2>{{items, dim}});
    for (index_t i = 0; i < s.table.numel(); ++i) s.table.data()[i] = float(int(r.below(std::uint64_t(i), 5)) - 2);
    s.queries.resize(Shape<2>{{static_cast<index_t>(lengths.size()), dim}});
    for (index_t i = 0; i < s.queries.numel(); ++i)
        s.queries.data()[i] = float(int(r.below(1u << 24 | std::uint64_t(i), 5)) - 2);
    std::uint64_t c = 0;
    for (index_t n : lengths) {
        for (index_t j = 0; j < n; ++j) s.ids.push_back(static_cast<row_id_t>(r.below(1u << 28 | c++, std::uint32_t(items))));
        s.offsets.push_back(static_cast<index_t>(s.ids.size()));
    }
    return s;
}

template <class Be>
void run_search(const Be& be, const Segments& s, index_t k, float alpha, std::vector<float>& scores, Matrix<float>& values,
                Matrix<row_id_t>& positions, Matrix<row_id_t>& ids) {
    const index_t segs = static_cast<index_t>(s.offsets.size()) - 1;
    scores.assign(s.ids.size(), -7.0f);
    values.resize(Shape<2>{{segs, k}});
    positions.resize(Shape<2>{{segs, k}});
    ids.resize(Shape<2>{{segs, k}});
    ops::search_segments(be, s.table.cview(), vector_view<const row_id_t>(s.ids.data(), index_t(s.ids.size())),
                         vector_view<const index_t>(s.offsets.data(), index_t(s.offsets.size())), s.queries.cview(),
                         alpha, k, vector_view(scores.data(), index_t(scores.size())), values.view(), positions.view(),
                         ids.view());
}

}  // namespace

TEST_CASE("search_segments: per-segment scores and top k, ties by earlier position, on every CPU backend",
          "[ops][dare]") {
    for (index_t dim : {7, 16, 64}) {
        const Segments s = make_segments(40, dim, {5, 1000, 33, 8, 257, 12, 5}, 3 + std::uint64_t(dim));
        for (index_t k : {1, 5}) {
            std::vector<float> want_scores;
            Matrix<float> want_v, got_v;
            Matrix<row_id_t> want_p, want_i, got_p, got_i;
            run_search(backend::Reference{}, s, k, 0.5f, want_scores, want_v, want_p, want_i);
            // The Reference against a brute-force stable sort of each segment.
            for (std::size_t seg = 0; seg + 1 < s.offsets.size(); ++seg) {
                const index_t b = s.offsets[seg], n = s.offsets[seg + 1] - b;
                std::vector<row_id_t> order(static_cast<std::size_t>(n));
                std::iota(order.begin(), order.end(), row_id_t{0});
                std::vector<float> sc(static_cast<std::size_t>(n));
                for (index_t j = 0; j < n; ++j) {
                    double acc = 0;
                    for (index_t c = 0; c < dim; ++c)
                        acc += double(s.table(s.ids[std::size_t(b + j)], c)) * s.queries(index_t(seg), c);
                    sc[std::size_t(j)] = float(0.5 * acc);
                    REQUIRE(want_scores[std::size_t(b + j)] == sc[std::size_t(j)]);
                }
                std::stable_sort(order.begin(), order.end(), [&](row_id_t x, row_id_t y) { return sc[x] > sc[y]; });
                for (index_t j = 0; j < k; ++j) {
                    REQUIRE(want_p(index_t(seg), j) == order[std::size_t(j)]);
                    REQUIRE(want_i(index_t(seg), j) == s.ids[std::size_t(b + order[std::size_t(j)])]);
                    REQUIRE(want_v(index_t(seg), j) == sc[std::size_t(order[std::size_t(j)])]);
                }
            }
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                std::vector<float> got_scores;
                run_search(be, s, k, 0.5f, got_scores, got_v, got_p, got_i);
                INFO(name << " dim " << dim << " k " << k);
                REQUIRE(got_scores == want_scores);
                REQUIRE(rbtest::compare(got_v.cview(), want_v.cview(), {0, 0}).ok);
                REQUIRE(std::equal(got_p.begin(), got_p.end(), want_p.begin()));
                REQUIRE(std::equal(got_i.begin(), got_i.end(), want_i.begin()));
            });
        }
    }
}

TEST_CASE("search_segments: bad offsets, short segments, bad ids, shapes and NaN are named errors", "[ops][dare]") {
    Segments s = make_segments(10, 4, {3, 4}, 1);
    std::vector<float> scores;
    Matrix<float> v;
    Matrix<row_id_t> p, i;
    const backend::Reference ref;
    run_search(ref, s, 3, 1.0f, scores, v, p, i);  // valid
    using Catch::Contains;
    REQUIRE_THROWS_WITH(run_search(ref, s, 4, 1.0f, scores, v, p, i), Contains("segment 0 has 3 ids but k is 4"));
    REQUIRE_THROWS_AS(run_search(ref, s, 0, 1.0f, scores, v, p, i), ValueError);
    Segments bad = s;
    bad.offsets.back() = 6;
    REQUIRE_THROWS_WITH(run_search(ref, bad, 2, 1.0f, scores, v, p, i), Contains("must start at 0 and end at the number of ids 7"));
    bad = s;
    bad.ids[5] = 10;
    REQUIRE_THROWS_AS(run_search(ref, bad, 2, 1.0f, scores, v, p, i), IndexError);
    REQUIRE_THROWS_WITH(run_search(ref, bad, 2, 1.0f, scores, v, p, i), Contains("ids[5] = 10"));
    bad = s;
    bad.queries.resize(Shape<2>{{3, 4}});
    REQUIRE_THROWS_WITH(run_search(ref, bad, 2, 1.0f, scores, v, p, i), Contains("queries is [3, 4]"));
    bad = s;
    bad.ids = {0, 1, 2, 3, 9, 4, 5};  // row 9 only in segment 1
    bad.table(9, 0) = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(run_search(ref, bad, 2, 1.0f, scores, v, p, i), Contains("segment 1 has a NaN score"));
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        REQUIRE_THROWS_WITH(run_search(be, bad, 2, 1.0f, scores, v, p, i), Contains("segment 1 has a NaN score"));
    });
    Matrix<row_id_t> wrong(Shape<2>{{2, 3}});
    Matrix<float> vv(Shape<2>{{2, 2}});
    Matrix<row_id_t> pp(Shape<2>{{2, 2}});
    scores.assign(7, 0.0f);
    REQUIRE_THROWS_WITH(ops::search_segments(ref, s.table.cview(), vector_view<const row_id_t>(s.ids.data(), 7),
                                             vector_view<const index_t>(s.offsets.data(), 3), s.queries.cview(), 1.0f,
                                             2, vector_view(scores.data(), 7), vv.view(), pp.view(), wrong.view()),
                        Contains("top_ids is [2, 3]"));
}

TEST_CASE("attend_rows and its backward: every CPU backend against the Reference", "[ops][dare]") {
    for (index_t d : {1, 7, 64, 65}) {
        const index_t S = 9, k = 5;
        Matrix<double> w(Shape<2>{{S, k}}), rows(Shape<2>{{S * k, d + 3}}), dout(Shape<2>{{S, d}});
        rbtest::fill_uniform(w, 1);
        rbtest::fill_uniform(rows, 2);
        rbtest::fill_uniform(dout, 3);
        const auto rv = matrix_view<const double>(rows.data(), S * k, d, d + 3);  // strided rows
        Matrix<double> want(Shape<2>{{S, d}}), want_dw(w.shape()), want_dr(Shape<2>{{S * k, d}});
        const backend::Reference ref;
        ops::attend_rows(ref, w.cview(), rv, want.view());
        ops::attend_rows_backward(ref, w.cview(), rv, dout.cview(), want_dw.view(), want_dr.view());
        for (index_t s = 0; s < S; ++s)
            for (index_t c = 0; c < d; ++c) {
                double acc = 0;
                for (index_t j = 0; j < k; ++j) acc += w(s, j) * rv(s * k + j, c);
                REQUIRE(want(s, c) == Approx(acc).epsilon(1e-14));
                for (index_t j = 0; j < k; ++j) REQUIRE(want_dr(s * k + j, c) == w(s, j) * dout(s, c));
            }
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name << " d " << d);
            Matrix<double> got(want.shape()), got_dw(w.shape()), got_dr(want_dr.shape()), only_dr(want_dr.shape());
            ops::attend_rows(be, w.cview(), rv, got.view());
            ops::attend_rows_backward(be, w.cview(), rv, dout.cview(), got_dw.view(), got_dr.view());
            ops::attend_rows_backward(be, w.cview(), rv, dout.cview(), MatrixView<double>{}, only_dr.view());
            REQUIRE(rbtest::compare(got.cview(), want.cview(), {1e-13, 1e-13}).ok);
            REQUIRE(rbtest::compare(got_dw.cview(), want_dw.cview(), {1e-13, 1e-13}).ok);
            REQUIRE(rbtest::compare(got_dr.cview(), want_dr.cview(), {0, 0}).ok);
            REQUIRE(rbtest::compare(only_dr.cview(), want_dr.cview(), {0, 0}).ok);
        });
    }
    using Catch::Contains;
    const backend::Reference ref;
    Matrix<float> w(Shape<2>{{2, 3}}), rows(Shape<2>{{5, 4}}), out(Shape<2>{{2, 4}});
    REQUIRE_THROWS_WITH(ops::attend_rows(ref, w.cview(), rows.cview(), out.view()), Contains("rows [5, 4]"));
    Matrix<float> rows6(Shape<2>{{6, 4}}), dw(Shape<2>{{2, 2}});
    REQUIRE_THROWS_WITH(ops::attend_rows_backward(ref, w.cview(), rows6.cview(), out.cview(), dw.view(), MatrixView<float>{}),
                        Contains("dw is [2, 2] but w is [2, 3]"));
    REQUIRE_THROWS_WITH(ops::attend_rows(ref, w.cview(), rows6.cview(), matrix_view(rows6.data(), 2, 4)),
                        Contains("out overlaps w or rows"));
}

TEST_CASE("multiply and bce_with_logits: CPU against the Reference, errors", "[ops][dare]") {
    Matrix<float> a(Shape<2>{{37, 19}}), b(a.shape()), want(a.shape());
    rbtest::fill_uniform(a, 4);
    rbtest::fill_uniform(b, 5);
    const backend::Reference ref;
    ops::multiply(ref, a.cview(), b.cview(), want.view());
    for (index_t i = 0; i < a.numel(); ++i) REQUIRE(want.data()[i] == a.data()[i] * b.data()[i]);
    std::vector<float> z{-30.0f, -1.5f, 0.0f, 0.25f, 2.0f, 40.0f}, y{0.0f, 1.0f, 0.5f, 1.0f, 0.0f, 1.0f};
    std::vector<float> g_ref(z.size());
    const auto zv = vector_view<const float>(z.data(), 6), yv = vector_view<const float>(y.data(), 6);
    const double l_ref = ops::bce_with_logits(ref, zv, yv, 0.5f, vector_view(g_ref.data(), 6));
    double want_l = 0;  // -(y log p + (1 - y) log(1 - p)) with log p = -log(1 + e^-z), log(1 - p) = -log(1 + e^z)
    for (std::size_t m = 0; m < z.size(); ++m) {
        const double zm = z[m], p = 1.0 / (1.0 + std::exp(-zm));
        want_l += y[m] * std::log1p(std::exp(-zm)) + (1 - y[m]) * std::log1p(std::exp(zm));
        REQUIRE(g_ref[m] == Approx(0.5 * (p - y[m])).margin(1e-7));
    }
    REQUIRE(l_ref == Approx(want_l).epsilon(1e-12));
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        Matrix<float> got(a.shape());
        ops::multiply(be, a.cview(), b.cview(), got.view());
        REQUIRE(rbtest::compare(got.cview(), want.cview(), {0, 0}).ok);
        ops::multiply(be, got.cview(), b.cview(), got.view());  // in place
        std::vector<float> g(z.size());
        REQUIRE(ops::bce_with_logits(be, zv, yv, 0.5f, vector_view(g.data(), 6)) == l_ref);
        REQUIRE(g == g_ref);
    });
    using Catch::Contains;
    Matrix<float> c(Shape<2>{{37, 18}});
    REQUIRE_THROWS_WITH(ops::multiply(ref, a.cview(), c.cview(), want.view()), Contains("ops::multiply: b is [37, 18]"));
    REQUIRE_THROWS_WITH(ops::multiply(ref, a.cview(), b.cview(), matrix_view(a.data() + 1, 37, 19)), Contains("partly overlaps"));
    y[1] = 1.5f;
    std::vector<float> g(6);
    REQUIRE_THROWS_WITH(ops::bce_with_logits(ref, zv, yv, 1.0f, vector_view(g.data(), 6)), Contains("y[1] = 1.5 is not in [0, 1]"));
    REQUIRE_THROWS_WITH(ops::bce_with_logits(ref, zv, vector_view<const float>(y.data(), 5), 1.0f, vector_view(g.data(), 6)),
                        Contains("ops::bce_with_logits: y has 5 entries"));
}
