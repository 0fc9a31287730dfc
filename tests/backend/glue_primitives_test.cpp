// The glue primitives (broadcast_rows, scale_rows, gate_by_nonzero, row_dots,
// logistic_loss) and the batched attention (attention_forward / _backward) of
// every CPU backend configuration against the Reference backend, on strided
// views and sizes that hit SIMD tails; and their ops:: wrappers' errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "../support/compare.hpp"
#include "backends.hpp"
#include "recblocks/ops/attention.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/logistic_loss.hpp"

using namespace recblocks;
using rbtest::fill_uniform;

namespace {
const backend::Reference kRef{};

template <class T>
MatrixView<T> cols(Matrix<T>& m, index_t c0, index_t c1) {
    return MatrixView<T>(m.data() + c0, Shape<2>{{m.extent(0), c1 - c0}}, {m.extent(1), 1});
}
}  // namespace

TEMPLATE_TEST_CASE("glue primitives: every CPU backend matches the Reference", "[backend][glue]", float, double) {
    using T = TestType;
    const rbtest::Tolerance tol{std::is_same_v<T, float> ? 1e-6 : 1e-14, std::is_same_v<T, float> ? 1e-5 : 1e-13};
    for (const index_t n : {index_t{1}, index_t{7}, index_t{33}, index_t{130}}) {
        Matrix<T> x(Shape<2>{{9, n + 3}}), y(x.shape());
        Vector<T> row(Shape<1>{{n}}), s(Shape<1>{{9}});
        fill_uniform(x, 1);
        fill_uniform(row, 2);
        fill_uniform(s, 3);
        s(4) = T(0);
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name << " n = " << n);
            for (const T beta : {T(0), T(1), T(0.5)}) {
                Matrix<T> want = y, got = y;
                fill_uniform(want, 4);
                fill_uniform(got, 4);
                if (beta == T(0)) {  // out must not be read
                    std::fill(want.begin(), want.end(), std::numeric_limits<T>::quiet_NaN());
                    std::fill(got.begin(), got.end(), std::numeric_limits<T>::quiet_NaN());
                }
                ops::broadcast_rows(kRef, row.cview(), beta, cols(want, 1, n + 1));
                ops::broadcast_rows(be, row.cview(), beta, cols(got, 1, n + 1));
                const auto w = cols(want, 1, n + 1), g = cols(got, 1, n + 1);
                RBTEST_REQUIRE_CLOSE(MatrixView<const T>(g), MatrixView<const T>(w), tol);
            }
            for (const bool with_s : {false, true}) {
                Matrix<T> want = x, got = x;
                const auto sv = with_s ? s.cview() : VectorView<const T>{};
                ops::scale_rows(kRef, MatrixView<const T>(cols(want, 0, n)), sv, T(-1.5), cols(want, 0, n));  // in place
                ops::scale_rows(be, MatrixView<const T>(cols(got, 0, n)), sv, T(-1.5), cols(got, 0, n));
                RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), tol);
            }
            {
                Vector<T> ref(Shape<1>{{9 * n}}), want(ref.shape()), got(ref.shape());
                fill_uniform(ref, 5);
                fill_uniform(want, 6);
                for (index_t i = 0; i < ref.numel(); i += 3) ref(i) = T(0);
                got = want;
                ops::gate_by_nonzero(kRef, ref.cview(), want.view(), T(2));
                ops::gate_by_nonzero(be, ref.cview(), got.view(), T(2));
                REQUIRE(std::memcmp(got.data(), want.data(), sizeof(T) * std::size_t(got.numel())) == 0);
            }
            {
                Vector<T> want(Shape<1>{{9}}), got(want.shape());
                ops::row_dots(kRef, MatrixView<const T>(cols(x, 1, n + 1)), MatrixView<const T>(cols(x, 2, n + 2)),
                              want.view());
                ops::row_dots(be, MatrixView<const T>(cols(x, 1, n + 1)), MatrixView<const T>(cols(x, 2, n + 2)),
                              got.view());
                RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), (rbtest::Tolerance{tol.atol * 10, tol.rtol * 10}));
            }
            {
                Vector<T> sc(Shape<1>{{5000 + n}}), sign(sc.shape()), want(sc.shape()), got(sc.shape());
                fill_uniform(sc, 7, -30.0, 30.0);
                for (index_t i = 0; i < sc.numel(); ++i) sign(i) = i % 3 == 0 ? T(-1) : T(1);
                const double lw = ops::logistic_loss(kRef, sc.cview(), sign.cview(), T(0.25), want.view());
                const double lg = ops::logistic_loss(be, sc.cview(), sign.cview(), T(0.25), got.view());
                REQUIRE(lg == Approx(lw).epsilon(1e-12));
                REQUIRE(std::memcmp(got.data(), want.data(), sizeof(T) * std::size_t(got.numel())) == 0);
                double direct = 0;
                for (index_t i = 0; i < sc.numel(); ++i) {
                    const double z = double(sign(i)) * double(sc(i));
                    direct += z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
                }
                REQUIRE(lw == Approx(direct).epsilon(1e-12));
            }
        });
    }
}

TEMPLATE_TEST_CASE("batched attention: every CPU backend matches the Reference", "[backend][attention]", float,
                   double) {
    using T = TestType;
    const bool f32 = std::is_same_v<T, float>;
    const rbtest::Tolerance tol{f32 ? 2e-5 : 1e-12, f32 ? 2e-4 : 1e-11};
    const index_t bsz = 3, heads = 2, dh = 13, d = heads * dh, len = 37;
    Matrix<T> qkv(Shape<2>{{bsz * len, 3 * d}}), dctx(Shape<2>{{bsz * len, d}});
    fill_uniform(qkv, 11);
    fill_uniform(dctx, 12);
    Matrix<std::uint8_t> keep(Shape<2>{{bsz, len}});
    for (index_t b = 0; b < bsz; ++b)
        for (index_t t = 0; t < len; ++t) keep(b, t) = static_cast<std::uint8_t>(b != 1 || t >= 20);
    const auto part = [&](Matrix<T>& m, index_t p) { return MatrixView<const T>(cols(m, p * d, (p + 1) * d)); };
    for (const int kind : {0, 1, 2}) {  // causal, block-causal (4), bidirectional
        Vector<index_t> key_end(Shape<1>{{len}});
        for (index_t r = 0; r < len; ++r)
            key_end(r) = kind == 0 ? r + 1 : kind == 1 ? std::min(len, (r / 4 + 1) * 4) : len;
        for (const double p : {0.0, 0.3}) {
            const AttentionShape s{bsz, heads, len, len, dh};
            AttentionDropout<T> drop{};
            if (p > 0) drop = {0x1234u, 0x5678u, 99u, static_cast<std::uint32_t>(p * 0x1.0p24), T(1 / (1 - p))};
            auto run = [&](const auto& be, Matrix<T>& ctx, Matrix<T>& dqkv) {
                Vector<T> state(Shape<1>{{ops::attention_state_size<T>(be, s, drop.active())}});
                ops::attention_forward(be, s, part(qkv, 0), part(qkv, 1), part(qkv, 2), key_end.cview(), keep.cview(),
                                       T(0.3), drop, state.view(), ctx.view());
                ops::attention_backward(be, s, part(qkv, 0), part(qkv, 1), part(qkv, 2), key_end.cview(), keep.cview(),
                                        T(0.3), drop, state.cview(), ctx.cview(), dctx.cview(), cols(dqkv, 0, d),
                                        cols(dqkv, d, 2 * d), cols(dqkv, 2 * d, 3 * d));
            };
            Matrix<T> ctx_ref(Shape<2>{{bsz * len, d}}), dqkv_ref(qkv.shape());
            run(kRef, ctx_ref, dqkv_ref);
            // A fully padded-out row (sequence 1 sees nothing before t = 20 under a causal mask) has ctx = 0.
            if (kind == 0)
                for (index_t c = 0; c < d; ++c) REQUIRE(ctx_ref(len + 5, c) == T(0));
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " mask " << kind << " dropout " << p);
                Matrix<T> ctx(ctx_ref.shape()), dqkv(qkv.shape());
                run(be, ctx, dqkv);
                RBTEST_REQUIRE_CLOSE(ctx.cview(), ctx_ref.cview(), tol);
                RBTEST_REQUIRE_CLOSE(dqkv.cview(), dqkv_ref.cview(), tol);
                // Inference (no state) gives the training forward's output when nothing is dropped.
                if (p == 0) {
                    Matrix<T> ctx2(ctx_ref.shape());
                    ops::attention_forward(be, s, part(qkv, 0), part(qkv, 1), part(qkv, 2), key_end.cview(),
                                           keep.cview(), T(0.3), AttentionDropout<T>{}, VectorView<T>{}, ctx2.view());
                    REQUIRE(std::memcmp(ctx2.data(), ctx.data(), sizeof(T) * std::size_t(ctx.numel())) == 0);
                }
            });
        }
    }
}

TEST_CASE("glue and attention ops: bad arguments are named errors", "[backend][glue][errors]") {
    Matrix<float> m(Shape<2>{{4, 5}}), other(Shape<2>{{3, 5}});
    Vector<float> v4(Shape<1>{{4}}), v3(Shape<1>{{3}});
    REQUIRE_THROWS_WITH(ops::broadcast_rows(kRef, v4.cview(), 0.0f, m.view()),
                        Catch::Contains("ops::broadcast_rows: row has 4 entries but out's columns is 5"));
    REQUIRE_THROWS_WITH(ops::scale_rows(kRef, other.cview(), VectorView<const float>{}, 1.0f, m.view()),
                        Catch::Contains("ops::scale_rows"));
    REQUIRE_THROWS_WITH(ops::scale_rows(kRef, m.cview(), v3.cview(), 1.0f, m.view()),
                        Catch::Contains("s has 3 entries but x's rows is 4"));
    REQUIRE_THROWS_WITH(ops::gate_by_nonzero(kRef, v4.cview(), v3.view(), 1.0f),
                        Catch::Contains("ops::gate_by_nonzero: g has 3 entries"));
    REQUIRE_THROWS_WITH(ops::row_dots(kRef, m.cview(), m.cview(), v3.view()),
                        Catch::Contains("ops::row_dots: out has 3 entries but a's rows is 4"));
    REQUIRE_THROWS_WITH(ops::logistic_loss(kRef, v4.cview(), v3.cview(), 1.0f, v4.view()),
                        Catch::Contains("ops::logistic_loss: sign has 3 entries"));
    REQUIRE_THROWS_WITH(ops::logistic_loss(kRef, v4.cview(), v4.cview(), 1.0f, v4.view()),
                        Catch::Contains("g must not alias"));

    const AttentionShape s{2, 1, 3, 3, 4};
    Matrix<float> q(Shape<2>{{6, 4}}), ctx(Shape<2>{{6, 4}}), bad(Shape<2>{{5, 4}});
    Vector<index_t> ends(Shape<1>{{3}});
    ends(0) = 1;
    ends(1) = 3;
    ends(2) = 2;  // decreasing
    Vector<float> state(Shape<1>{{ops::attention_state_size<float>(kRef, s, false)}}), small(Shape<1>{{5}});
    REQUIRE_THROWS_WITH(ops::attention_forward(kRef, s, q.cview(), q.cview(), q.cview(), ends.cview(), {}, 1.0f, {},
                                               state.view(), ctx.view()),
                        Catch::Contains("key_end must not decrease"));
    ends(2) = 4;
    REQUIRE_THROWS_WITH(ops::attention_forward(kRef, s, q.cview(), q.cview(), q.cview(), ends.cview(), {}, 1.0f, {},
                                               state.view(), ctx.view()),
                        Catch::Contains("key_end[2] = 4 is outside [0, 3]"));
    ends(2) = 3;
    REQUIRE_THROWS_WITH(ops::attention_forward(kRef, s, bad.cview(), q.cview(), q.cview(), ends.cview(), {}, 1.0f, {},
                                               state.view(), ctx.view()),
                        Catch::Contains("q is [5, 4] but expected [6, 4]"));
    REQUIRE_THROWS_WITH(ops::attention_forward(kRef, s, q.cview(), q.cview(), q.cview(), ends.cview(), {}, 1.0f, {},
                                               small.view(), ctx.view()),
                        Catch::Contains("state has 5 entries but this shape needs 18"));
    AttentionDropout<float> drop{1, 2, 3, 1000, 2.0f};
    REQUIRE_THROWS_WITH(ops::attention_forward(kRef, s, q.cview(), q.cview(), q.cview(), ends.cview(), {}, 1.0f, drop,
                                               VectorView<float>{}, ctx.view()),
                        Catch::Contains("dropout on the attention weights needs a state"));
    REQUIRE_THROWS_WITH(ops::attention_backward(kRef, s, q.cview(), q.cview(), q.cview(), ends.cview(), {}, 1.0f, {},
                                                VectorView<const float>{}, ctx.cview(), ctx.cview(), q.view(), q.view(),
                                                q.view()),
                        Catch::Contains("no state"));
}
