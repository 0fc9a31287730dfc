// ops::prefix_attention (the fused attention kernel) against the Reference
// backend and against the unfused definition (gemm + masked softmax_rows +
// gemm), on every ISA level, for f32 and f64, with head widths and key counts
// that hit SIMD tails, causal / block-causal / bidirectional prefixes, padded
// keys, rows that see nothing, and both outputs on and off.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../support/compare.hpp"
#include "backends.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/prefix_attention.hpp"
#include "recblocks/ops/softmax.hpp"

using namespace recblocks;
using rbtest::fill_uniform;

namespace {
const backend::Reference ref{};

struct Case {
    index_t rows, keys, dh;
    int kind;  // 0 causal, 1 block-causal (3 tokens), 2 bidirectional
    bool padded;
};

std::vector<index_t> key_ends(const Case& c) {
    std::vector<index_t> e(static_cast<std::size_t>(c.rows));
    for (index_t r = 0; r < c.rows; ++r) {
        index_t v = c.kind == 0 ? r + 1 : c.kind == 1 ? (r / 3 + 1) * 3 : c.keys;
        e[static_cast<std::size_t>(r)] = std::min(v, c.keys);
    }
    return e;
}

std::vector<std::uint8_t> keep_of(const Case& c) {
    std::vector<std::uint8_t> k(static_cast<std::size_t>(c.keys), 1);
    if (c.padded)
        for (index_t j = 0; j < std::min<index_t>(c.keys, 5); ++j) k[static_cast<std::size_t>(j)] = 0;  // left padding
    return k;
}
}  // namespace

TEMPLATE_TEST_CASE("cpu prefix_attention matches the reference and the unfused definition", "[backend][attention]",
                   float, double) {
    using T = TestType;
    const Case cases[] = {{1, 1, 1, 0, false},   {7, 7, 7, 0, false},   {9, 9, 8, 1, false},    {65, 65, 50, 0, true},
                          {64, 64, 64, 2, false}, {33, 65, 9, 2, true},  {200, 200, 50, 0, false}, {70, 70, 65, 1, true},
                          {5, 300, 130, 2, false}};
    for (const Case& c : cases) {
        const index_t rows = c.rows, keys = c.keys, dh = c.dh;
        Matrix<T> q(Shape<2>{{rows, dh}}), kv(Shape<2>{{keys, 2 * dh}});  // k, v interleaved: ld 2 dh
        fill_uniform(q, 11, T(-2), T(2));
        fill_uniform(kv, 12, T(-2), T(2));
        const auto k = matrix_view<const T>(kv.data(), keys, dh, 2 * dh);
        const auto v = matrix_view<const T>(kv.data() + dh, keys, dh, 2 * dh);
        const auto end = key_ends(c);
        std::vector<index_t> wend(end.size());
        for (std::size_t r = 0; r < end.size(); ++r) wend[r] = std::min<index_t>(keys, end[r] + 3);
        const auto keep = keep_of(c);
        const auto endv = vector_view<const index_t>(end.data(), rows);
        const auto wendv = vector_view<const index_t>(wend.data(), rows);
        const auto keepv = c.padded ? vector_view<const std::uint8_t>(keep.data(), keys) : VectorView<const std::uint8_t>{};
        const T scale = T(1) / std::sqrt(T(dh));

        Matrix<T> p_ref(Shape<2>{{rows, keys}}), ctx_ref(Shape<2>{{rows, dh}});
        ops::prefix_attention(ref, q.cview(), k, v, endv, wendv, keepv, scale, p_ref.view(), ctx_ref.view());

        // The definition: scores for every key, masked softmax, P V.
        Matrix<T> s(Shape<2>{{rows, keys}}), ctx_def(Shape<2>{{rows, dh}});
        Tensor<std::uint8_t, 2> mask(Shape<2>{{rows, keys}});
        for (index_t r = 0; r < rows; ++r)
            for (index_t j = 0; j < keys; ++j)
                mask(r, j) = static_cast<std::uint8_t>(j < end[static_cast<std::size_t>(r)] &&
                                                       keep[static_cast<std::size_t>(j)]);
        ops::gemm(ref, Trans::no, Trans::yes, scale, q.cview(), k, T(0), s.view());
        ops::softmax_rows(ref, s.cview(), s.view(), mask.cview());
        ops::gemm(ref, Trans::no, Trans::no, T(1), s.cview(), v, T(0), ctx_def.view());
        INFO("rows=" << rows << " keys=" << keys << " dh=" << dh << " kind=" << c.kind << " padded=" << c.padded);
        const rbtest::Tolerance tol = std::is_same_v<T, float> ? rbtest::Tolerance{2e-5, 2e-5} : rbtest::Tolerance{1e-12, 1e-12};
        RBTEST_REQUIRE_CLOSE(ctx_ref.cview(), ctx_def.cview(), tol);
        for (index_t r = 0; r < rows; ++r)
            for (index_t j = 0; j < wend[static_cast<std::size_t>(r)]; ++j)
                REQUIRE(std::abs(double(p_ref(r, j)) - double(s(r, j))) <= double(tol.atol) + double(tol.rtol) * std::abs(double(s(r, j))));

        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name);
            // Both outputs; P's columns beyond write_end must stay untouched.
            Matrix<T> p(Shape<2>{{rows, keys}}), ctx(Shape<2>{{rows, dh}});
            std::fill(p.begin(), p.end(), std::numeric_limits<T>::quiet_NaN());
            ops::prefix_attention(be, q.cview(), k, v, endv, wendv, keepv, scale, p.view(), ctx.view());
            RBTEST_REQUIRE_CLOSE(ctx.cview(), ctx_ref.cview(), tol);
            for (index_t r = 0; r < rows; ++r) {
                const index_t we = wend[static_cast<std::size_t>(r)];
                for (index_t j = 0; j < keys; ++j) {
                    if (j >= we) {
                        REQUIRE(std::isnan(p(r, j)));
                        continue;
                    }
                    if (j >= end[static_cast<std::size_t>(r)]) REQUIRE(p(r, j) == T(0));
                    REQUIRE(std::abs(double(p(r, j)) - double(p_ref(r, j))) <=
                            double(tol.atol) + double(tol.rtol) * std::abs(double(p_ref(r, j))));
                }
            }
            // Only the context, then only P: the same values.
            Matrix<T> ctx2(Shape<2>{{rows, dh}}), p2(Shape<2>{{rows, keys}});
            ops::prefix_attention(be, q.cview(), k, v, endv, {}, keepv, scale, MatrixView<T>{}, ctx2.view());
            REQUIRE(std::equal(ctx2.begin(), ctx2.end(), ctx.begin()));
            ops::prefix_attention(be, q.cview(), k, v, endv, wendv, keepv, scale, p2.view(), MatrixView<T>{});
            for (index_t r = 0; r < rows; ++r)
                for (index_t j = 0; j < wend[static_cast<std::size_t>(r)]; ++j) REQUIRE(p2(r, j) == p(r, j));
        });
    }
}

TEST_CASE("prefix_attention: a row that sees no kept key gets zeros", "[backend][attention]") {
    using T = float;
    Matrix<T> q(Shape<2>{{3, 4}}), k(Shape<2>{{3, 4}}), v(Shape<2>{{3, 4}});
    fill_uniform(q, 1);
    fill_uniform(k, 2);
    fill_uniform(v, 3);
    const std::vector<index_t> end{0, 1, 3};
    const std::vector<std::uint8_t> keep{0, 1, 1};  // key 0 padded: row 1 sees nothing kept
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        Matrix<T> p(Shape<2>{{3, 3}}), ctx(Shape<2>{{3, 4}});
        ops::prefix_attention(be, q.cview(), k.cview(), v.cview(), vector_view<const index_t>(end.data(), 3),
                              vector_view<const index_t>(end.data(), 3), vector_view<const std::uint8_t>(keep.data(), 3),
                              T(0.5), p.view(), ctx.view());
        for (index_t c = 0; c < 4; ++c) {
            REQUIRE(ctx(0, c) == 0.0f);
            REQUIRE(ctx(1, c) == 0.0f);
        }
        REQUIRE(p(1, 0) == 0.0f);
        REQUIRE(p(2, 0) == 0.0f);
        REQUIRE(std::abs(p(2, 1) + p(2, 2) - 1.0f) < 1e-6f);
    });
}

TEST_CASE("prefix_attention rejects bad arguments with shape errors", "[backend][attention][errors]") {
    using T = float;
    Matrix<T> q(Shape<2>{{4, 8}}), k(Shape<2>{{5, 8}}), v(Shape<2>{{5, 8}}), k7(Shape<2>{{5, 7}});
    Matrix<T> p(Shape<2>{{4, 5}}), ctx(Shape<2>{{4, 8}});
    const std::vector<index_t> good{1, 2, 3, 4}, too_far{1, 2, 3, 6}, three{1, 2, 3};
    const auto gv = vector_view<const index_t>(good.data(), 4);
    REQUIRE_THROWS_AS(ops::prefix_attention(ref, q.cview(), k7.cview(), k7.cview(), gv, gv, {}, T(1), p.view(),
                                            ctx.view()),
                      ShapeError);
    REQUIRE_THROWS_AS(ops::prefix_attention(ref, q.cview(), k.cview(), v.cview(),
                                            vector_view<const index_t>(too_far.data(), 4), gv, {}, T(1), MatrixView<T>{},
                                            ctx.view()),
                      ShapeError);
    REQUIRE_THROWS_AS(ops::prefix_attention(ref, q.cview(), k.cview(), v.cview(),
                                            vector_view<const index_t>(three.data(), 3), gv, {}, T(1), p.view(),
                                            ctx.view()),
                      ShapeError);
    REQUIRE_THROWS_AS(ops::prefix_attention(ref, q.cview(), k.cview(), v.cview(), gv, gv, {}, T(1), MatrixView<T>{},
                                            MatrixView<T>{}),
                      ShapeError);
    const std::vector<index_t> short_write{1, 1, 3, 4};  // write_end below key_end
    REQUIRE_THROWS_AS(ops::prefix_attention(ref, q.cview(), k.cview(), v.cview(), gv,
                                            vector_view<const index_t>(short_write.data(), 4), {}, T(1), p.view(),
                                            ctx.view()),
                      ShapeError);
}

TEMPLATE_TEST_CASE("cpu prefix_attention_backward matches the reference and the unfused definition",
                   "[backend][attention]", float, double) {
    using T = TestType;
    const Case cases[] = {{1, 1, 1, 0, false},  {7, 7, 7, 0, false},    {9, 9, 8, 1, false},   {65, 65, 50, 0, true},
                          {64, 64, 64, 2, false}, {200, 200, 50, 0, true}, {70, 70, 65, 1, false}, {6, 11, 5, 2, false}};
    for (const Case& c : cases) {
        for (const bool dropout : {false, true}) {
            const index_t rows = c.rows, keys = c.keys, dh = c.dh;
            Matrix<T> q(Shape<2>{{rows, dh}}), kv(Shape<2>{{keys, 2 * dh}}), dctx(Shape<2>{{rows, dh}});
            fill_uniform(q, 21, T(-2), T(2));
            fill_uniform(kv, 22, T(-2), T(2));
            fill_uniform(dctx, 23);
            const auto k = matrix_view<const T>(kv.data(), keys, dh, 2 * dh);
            const auto v = matrix_view<const T>(kv.data() + dh, keys, dh, 2 * dh);
            const auto end = key_ends(c);
            const auto keep = keep_of(c);
            const auto endv = vector_view<const index_t>(end.data(), rows);
            const auto keepv =
                c.padded ? vector_view<const std::uint8_t>(keep.data(), keys) : VectorView<const std::uint8_t>{};
            const T scale = T(1) / std::sqrt(T(dh)), drop_scale = T(1.25);
            Matrix<T> p(Shape<2>{{rows, keys}}), ctx(Shape<2>{{rows, dh}}), w(Shape<2>{{rows, keys}});
            ops::prefix_attention(ref, q.cview(), k, v, endv, endv, keepv, scale, p.view(), ctx.view());
            // A dropout mask: every third element dropped, the rest scaled.
            for (index_t r = 0; r < rows; ++r)
                for (index_t j = 0; j < keys; ++j) w(r, j) = (r + 2 * j) % 3 == 0 ? T(0) : p(r, j) * drop_scale;
            const auto wv = dropout ? w.cview() : MatrixView<const T>{};

            Matrix<T> dq_ref(Shape<2>{{rows, dh}}), dk_ref(Shape<2>{{keys, dh}}), dv_ref(Shape<2>{{keys, dh}});
            ops::prefix_attention_backward(ref, q.cview(), k, v, dctx.cview(), p.cview(), wv, endv, drop_scale, scale,
                                           dq_ref.view(), dk_ref.view(), dv_ref.view());

            // The definition: dP' = dctx Vᵀ, dP = mask(dP'), dS = softmax'(P, dP) * scale, dQ = dS K,
            // dK = dSᵀ Q, dV = Wᵀ dctx (W = Drop(P) or P).
            Matrix<T> dp(Shape<2>{{rows, keys}}), dq_def(Shape<2>{{rows, dh}}), dk_def(Shape<2>{{keys, dh}}),
                dv_def(Shape<2>{{keys, dh}});
            ops::gemm(ref, Trans::no, Trans::yes, T(1), dctx.cview(), v, T(0), dp.view());
            for (index_t r = 0; r < rows; ++r)
                for (index_t j = 0; j < keys; ++j) {
                    if (j >= end[static_cast<std::size_t>(r)]) p(r, j) = T(0);  // beyond write_end: unspecified
                    if (dropout) dp(r, j) = w(r, j) != T(0) ? dp(r, j) * drop_scale : T(0);
                }
            ops::softmax_rows_backward(ref, p.cview(), dp.cview(), dp.view());
            ops::gemm(ref, Trans::no, Trans::no, scale, dp.cview(), k, T(0), dq_def.view());
            ops::gemm(ref, Trans::yes, Trans::no, scale, dp.cview(), q.cview(), T(0), dk_def.view());
            ops::gemm(ref, Trans::yes, Trans::no, T(1), dropout ? w.cview() : p.cview(), dctx.cview(), T(0),
                      dv_def.view());
            INFO("rows=" << rows << " keys=" << keys << " dh=" << dh << " kind=" << c.kind << " padded=" << c.padded
                         << " dropout=" << dropout);
            const rbtest::Tolerance tol =
                std::is_same_v<T, float> ? rbtest::Tolerance{5e-5, 5e-5} : rbtest::Tolerance{1e-11, 1e-11};
            RBTEST_REQUIRE_CLOSE(dq_ref.cview(), dq_def.cview(), tol);
            RBTEST_REQUIRE_CLOSE(dk_ref.cview(), dk_def.cview(), tol);
            RBTEST_REQUIRE_CLOSE(dv_ref.cview(), dv_def.cview(), tol);

            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name);
                Matrix<T> dq(Shape<2>{{rows, dh}}), dk(Shape<2>{{keys, dh}}), dv(Shape<2>{{keys, dh}});
                std::fill(dk.begin(), dk.end(), std::numeric_limits<T>::quiet_NaN());  // overwritten, not accumulated
                std::fill(dv.begin(), dv.end(), std::numeric_limits<T>::quiet_NaN());
                ops::prefix_attention_backward(be, q.cview(), k, v, dctx.cview(), p.cview(), wv, endv, drop_scale,
                                               scale, dq.view(), dk.view(), dv.view());
                RBTEST_REQUIRE_CLOSE(dq.cview(), dq_ref.cview(), tol);
                RBTEST_REQUIRE_CLOSE(dk.cview(), dk_ref.cview(), tol);
                RBTEST_REQUIRE_CLOSE(dv.cview(), dv_ref.cview(), tol);
            });
        }
    }
}

TEST_CASE("prefix_attention_backward rejects a decreasing key_end and wrong output shapes",
          "[backend][attention][errors]") {
    using T = float;
    Matrix<T> q(Shape<2>{{3, 4}}), k(Shape<2>{{3, 4}}), p(Shape<2>{{3, 3}}), g(Shape<2>{{3, 4}}), bad(Shape<2>{{2, 4}});
    const std::vector<index_t> decreasing{2, 1, 3}, good{1, 2, 3};
    REQUIRE_THROWS_AS(ops::prefix_attention_backward(ref, q.cview(), k.cview(), k.cview(), q.cview(), p.cview(),
                                                     MatrixView<const T>{},
                                                     vector_view<const index_t>(decreasing.data(), 3), T(1), T(1),
                                                     g.view(), g.view(), g.view()),
                      ShapeError);
    REQUIRE_THROWS_AS(ops::prefix_attention_backward(ref, q.cview(), k.cview(), k.cview(), q.cview(), p.cview(),
                                                     MatrixView<const T>{}, vector_view<const index_t>(good.data(), 3),
                                                     T(1), T(1), g.view(), bad.view(), g.view()),
                      ShapeError);
}
