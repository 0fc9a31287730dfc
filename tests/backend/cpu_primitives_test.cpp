// Every CPU primitive against the Reference backend, on every ISA level this
// CPU has and on 1 and 3 threads, for f32 and f64, with sizes that hit SIMD
// tails (1, 7, 8, 9, 63, 64, 65, 1000) and several thread chunks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>

#include "../support/compare.hpp"
#include "backends.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/top_k.hpp"

using namespace recblocks;
using rbtest::default_tolerance;
using rbtest::fill_uniform;

namespace {
const backend::Reference ref{};
const index_t kCols[] = {1, 7, 8, 9, 63, 64, 65, 1000};
const index_t kRows[] = {1, 7, 300};
}  // namespace

TEMPLATE_TEST_CASE("cpu gemm matches reference for all transposes", "[backend][gemm]", float, double) {
    using T = TestType;
    const index_t sizes[][3] = {{1, 1, 1},     {7, 9, 8},    {65, 63, 64}, {300, 50, 192},
                                {33, 129, 17}, {1, 50, 1000}, {2, 65, 7},  {1, 7, 3}};  // 1-2 rows: row dot products
    for (const auto& s : sizes) {
        const index_t m = s[0], k = s[1], n = s[2];
        for (Trans ta : {Trans::no, Trans::yes})
            for (Trans tb : {Trans::no, Trans::yes}) {
                Matrix<T> a(ta == Trans::no ? Shape<2>{{m, k}} : Shape<2>{{k, m}});
                Matrix<T> b(tb == Trans::no ? Shape<2>{{k, n}} : Shape<2>{{n, k}});
                Matrix<T> c0(Shape<2>{{m, n}});
                fill_uniform(a, 1);
                fill_uniform(b, 2);
                fill_uniform(c0, 3);
                for (T beta : {T(0), T(1), T(-0.5)}) {
                    Matrix<T> want = c0;
                    ops::gemm(ref, ta, tb, T(1.5), a.view(), b.view(), beta, want.view());
                    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                        Matrix<T> got = c0;
                        ops::gemm(be, ta, tb, T(1.5), a.view(), b.view(), beta, got.view());
                        INFO(name << " m=" << m << " k=" << k << " n=" << n << " ta=" << int(ta) << " tb=" << int(tb)
                                  << " beta=" << beta);
                        RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), (rbtest::Tolerance{1e-5 * k, 1e-5}));
                    });
                }
            }
    }
}

TEMPLATE_TEST_CASE("cpu gemm with beta 0 ignores NaN in c, and works on strided blocks", "[backend][gemm]", float,
                   double) {
    using T = TestType;
    Matrix<T> a(Shape<2>{{5, 4}}), b(Shape<2>{{4, 3}}), big(Shape<2>{{5, 8}}), want(Shape<2>{{5, 3}});
    fill_uniform(a, 4);
    fill_uniform(b, 5);
    std::fill(big.begin(), big.end(), std::numeric_limits<T>::quiet_NaN());
    ops::gemm(ref, Trans::no, Trans::no, T(1), a.view(), b.view(), T(0), want.view());
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        std::fill(big.begin(), big.end(), std::numeric_limits<T>::quiet_NaN());
        auto block = matrix_view(big.data() + 2, 5, 3, 8);  // columns 2..4 of an 8-wide matrix
        ops::gemm(be, Trans::no, Trans::no, T(1), a.view(), b.view(), T(0), block);
        Matrix<T> got(Shape<2>{{5, 3}});
        for (index_t r = 0; r < 5; ++r)
            for (index_t c = 0; c < 3; ++c) got(r, c) = block(r, c);
        INFO(name);
        RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), default_tolerance<T>());
        REQUIRE(std::isnan(big(0, 0)));  // outside the block: untouched
    });
}

TEMPLATE_TEST_CASE("cpu gemm_batched matches reference", "[backend][gemm]", float, double) {
    using T = TestType;
    for (index_t batch : {1, 2, 5}) {
        Tensor<T, 3> a(Shape<3>{{batch, 9, 7}}), b(Shape<3>{{batch, 9, 5}}), want(Shape<3>{{batch, 7, 5}});
        fill_uniform(a, 6);
        fill_uniform(b, 7);
        ops::gemm_batched(ref, Trans::yes, Trans::no, T(1), a.view(), b.view(), T(0), want.view());
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            Tensor<T, 3> got(want.shape());
            ops::gemm_batched(be, Trans::yes, Trans::no, T(1), a.view(), b.view(), T(0), got.view());
            INFO(name << " batch=" << batch);
            RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), (rbtest::Tolerance{1e-5, 1e-5}));
        });
    }
}

TEMPLATE_TEST_CASE("cpu linear (x wT + bias, in blocks of rows) matches reference, strided output", "[backend][gemm]",
                   float, double) {
    using T = TestType;
    // 1-2 rows (row dot products), one block, several blocks with a short last one, SASRec's shapes.
    const index_t sizes[][3] = {{1, 50, 150}, {2, 7, 3}, {17, 9, 5}, {1000, 50, 150}, {25601, 50, 50}, {435, 64, 151}};
    for (const auto& sz : sizes) {
        const index_t m = sz[0], k = sz[1], n = sz[2];
        Matrix<T> x(Shape<2>{{m, k}}), w(Shape<2>{{n, k}}), want(Shape<2>{{m, n}});
        Vector<T> bias(Shape<1>{{n}});
        fill_uniform(x, 41);
        fill_uniform(w, 42);
        fill_uniform(bias, 43);
        ops::broadcast_rows(ref, bias.cview(), T(0), want.view());
        ops::gemm(ref, Trans::no, Trans::yes, T(1), x.view(), w.view(), T(1), want.view());
        Matrix<T> first;
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            Matrix<T> big(Shape<2>{{m, n + 3}});  // y = columns 1..n of a wider matrix
            std::fill(big.begin(), big.end(), std::numeric_limits<T>::quiet_NaN());
            auto y = matrix_view(big.data() + 1, m, n, n + 3);
            ops::linear(be, x.view(), w.view(), bias.cview(), y);
            Matrix<T> got(Shape<2>{{m, n}});
            for (index_t r = 0; r < m; ++r)
                for (index_t c = 0; c < n; ++c) got(r, c) = y(r, c);
            INFO(name << " m=" << m << " k=" << k << " n=" << n);
            RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), (rbtest::Tolerance{1e-5 * k, 1e-5}));
            REQUIRE(std::isnan(big(m - 1, 0)));  // outside y: untouched
            REQUIRE(std::isnan(big(m - 1, n + 1)));
            if (name.rfind("cpu<dispatch", 0) == 0) {  // the same bits on 1 and 3 threads
                if (first.numel() == 0) first = got;
                else REQUIRE(std::equal(got.begin(), got.end(), first.begin()));
            }
        });
    }
    Matrix<float> x(Shape<2>{{4, 3}}), w(Shape<2>{{5, 3}}), y(Shape<2>{{4, 5}});
    Vector<float> b4(Shape<1>{{4}});
    REQUIRE_THROWS_WITH(ops::linear(ref, x.view(), w.view(), b4.cview(), y.view()),
                        Catch::Contains("bias has 4 entries but w has 5 rows"));
}

TEMPLATE_TEST_CASE("cpu dot and axpy match reference", "[backend][blas1]", float, double) {
    using T = TestType;
    for (index_t n : {1, 7, 8, 9, 63, 64, 65, 1000, 200001}) {
        Vector<T> x(Shape<1>{{n}}), y(Shape<1>{{n}});
        fill_uniform(x, 8);
        fill_uniform(y, 9);
        const T want = ops::dot(ref, x.view(), y.view());
        Vector<T> want_axpy = y;
        ops::axpy(ref, T(0.75), x.view(), want_axpy.view());
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name << " n=" << n);
            const T got = ops::dot(be, x.view(), y.view());
            REQUIRE(std::fabs(double(got) - double(want)) <= 1e-5 * std::sqrt(double(n)) + 1e-5 * std::fabs(double(want)));
            Vector<T> got_axpy = y;
            ops::axpy(be, T(0.75), x.view(), got_axpy.view());
            RBTEST_REQUIRE_CLOSE(got_axpy.cview(), want_axpy.cview(), default_tolerance<T>());
        });
    }
}

TEMPLATE_TEST_CASE("cpu add and copy match reference, strided, in place and apart", "[backend][elementwise]", float,
                   double) {
    using T = TestType;
    for (index_t rows : kRows)
        for (index_t cols : kCols) {
            // Views are the left `cols` columns of [rows, cols + 3] matrices: strided rows.
            const Shape<2> wide{{rows, cols + 3}};
            Matrix<T> a(wide), b(wide);
            fill_uniform(a, 11);
            fill_uniform(b, 12);
            const auto left = [&](Matrix<T>& m) { return matrix_view(m.data(), rows, cols, cols + 3); };
            Matrix<T> want(wide), want_copy(wide);
            ops::add(ref, left(a), left(b), left(want));
            ops::copy(ref, MatrixView<const T>(left(a)), left(want_copy));
            for (index_t r = 0; r < rows; ++r)
                for (index_t c = 0; c < cols; ++c) {
                    REQUIRE(want(r, c) == a(r, c) + b(r, c));  // one rounding, as the type's own +
                    REQUIRE(want_copy(r, c) == a(r, c));
                }
            // Exact, element by element over the strided views (rbtest::compare wants contiguous data).
            const auto same = [&](Matrix<T>& got, Matrix<T>& want_m) {
                for (index_t r = 0; r < rows; ++r)
                    for (index_t c = 0; c < cols; ++c)
                        if (got(r, c) != want_m(r, c)) return false;
                return true;
            };
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " rows=" << rows << " cols=" << cols);
                Matrix<T> got(wide);
                got(0, cols) = T(7);  // a column outside the views stays untouched
                ops::add(be, left(a), left(b), left(got));
                REQUIRE(same(got, want));
                REQUIRE(got(0, cols) == T(7));
                Matrix<T> acc = a;  // out is a: acc += b
                ops::add(be, left(acc), left(b), left(acc));
                REQUIRE(same(acc, want));
                Matrix<T> acc_b = b;  // out is b: acc_b = a + acc_b
                ops::add(be, left(a), left(acc_b), left(acc_b));
                REQUIRE(same(acc_b, want));
                Matrix<T> copied(wide);
                ops::copy(be, MatrixView<const T>(left(a)), left(copied));
                REQUIRE(same(copied, want_copy));
            });
        }
}

TEST_CASE("add and copy refuse partial overlaps and shape mismatches", "[backend][elementwise]") {
    Matrix<float> m(Shape<2>{{4, 8}});
    const auto top = m.view().slice_rows(0, 3), shifted = m.view().slice_rows(1, 4);
    const backend::Cpu<isa::Auto> cpu{&rbtest::pool1()};
    REQUIRE_THROWS_WITH(ops::add(cpu, top, top, shifted), Catch::Contains("out partly overlaps a"));
    REQUIRE_THROWS_WITH(ops::copy(ref, MatrixView<const float>(top), shifted), Catch::Contains("src and dst overlap"));
    Matrix<float> small(Shape<2>{{3, 7}});
    REQUIRE_THROWS_AS(ops::add(ref, top, top, small.view()), ShapeError);
    REQUIRE_THROWS_WITH(ops::copy(cpu, MatrixView<const float>(top), small.view()), Catch::Contains("[3, 7]"));
}

TEMPLATE_TEST_CASE("cpu softmax_rows matches reference, masked and unmasked", "[backend][softmax]", float, double) {
    using T = TestType;
    for (index_t rows : kRows)
        for (index_t cols : kCols) {
            Matrix<T> x(Shape<2>{{rows, cols}});
            fill_uniform(x, 10, -8.0, 8.0);
            Matrix<std::uint8_t> mask(x.shape());
            const Rng rng(11);
            for (index_t i = 0; i < mask.numel(); ++i) mask.data()[i] = rng.uniform(i) < 0.7f;
            for (index_t c = 0; c < cols; ++c) mask(0, c) = 0;  // a fully masked row
            Matrix<T> want(x.shape()), want_m(x.shape());
            ops::softmax_rows(ref, x.view(), want.view());
            ops::softmax_rows(ref, x.view(), want_m.view(), mask.cview());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " rows=" << rows << " cols=" << cols);
                Matrix<T> got(x.shape()), got_m(x.shape());
                ops::softmax_rows(be, x.view(), got.view());
                RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), default_tolerance<T>());
                ops::softmax_rows(be, x.view(), got_m.view(), mask.cview());
                RBTEST_REQUIRE_CLOSE(got_m.cview(), want_m.cview(), default_tolerance<T>());
                for (index_t c = 0; c < cols; ++c) REQUIRE(got_m(0, c) == T(0));
                // In place.
                Matrix<T> inplace = x;
                ops::softmax_rows(be, inplace.view(), inplace.view());
                RBTEST_REQUIRE_CLOSE(inplace.cview(), want.cview(), default_tolerance<T>());
            });
        }
}

TEMPLATE_TEST_CASE("softmax rows sum to one (property)", "[backend][softmax][property]", float, double) {
    using T = TestType;
    Matrix<T> x(Shape<2>{{50, 200}}), y(Shape<2>{{50, 200}});
    fill_uniform(x, 12, -30.0, 30.0);
    x(3, 5) = T(1e4);  // extreme logits must not overflow
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        ops::softmax_rows(be, x.view(), y.view());
        for (index_t r = 0; r < 50; ++r) {
            double s = 0;
            for (index_t c = 0; c < 200; ++c) {
                REQUIRE(y(r, c) >= T(0));
                s += y(r, c);
            }
            INFO(name << " row " << r);
            REQUIRE(std::fabs(s - 1.0) < 1e-5);
        }
    });
}

TEMPLATE_TEST_CASE("cpu softmax_rows_backward matches reference", "[backend][softmax]", float, double) {
    using T = TestType;
    for (index_t rows : kRows)
        for (index_t cols : kCols) {
            Matrix<T> x(Shape<2>{{rows, cols}}), y(x.shape()), dy(x.shape()), want(x.shape());
            fill_uniform(x, 13, -4.0, 4.0);
            fill_uniform(dy, 14);
            ops::softmax_rows(ref, x.view(), y.view());
            ops::softmax_rows_backward(ref, y.view(), dy.view(), want.view());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " rows=" << rows << " cols=" << cols);
                Matrix<T> got(x.shape());
                ops::softmax_rows_backward(be, y.view(), dy.view(), got.view());
                RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), default_tolerance<T>());
            });
        }
}

TEMPLATE_TEST_CASE("cpu layer_norm forward and backward match reference", "[backend][layer_norm]", float, double) {
    using T = TestType;
    for (index_t rows : kRows)
        for (index_t d : kCols) {
            Matrix<T> x(Shape<2>{{rows, d}}), dy(x.shape());
            Vector<T> gamma(Shape<1>{{d}}), beta(Shape<1>{{d}});
            fill_uniform(x, 15, -3.0, 5.0);
            fill_uniform(dy, 16);
            fill_uniform(gamma, 17, 0.5, 1.5);
            fill_uniform(beta, 18);
            const T eps = T(1e-5);
            Matrix<T> y_ref(x.shape()), dx_ref(x.shape());
            Vector<T> mean_ref(Shape<1>{{rows}}), rstd_ref(Shape<1>{{rows}}), dg_ref(Shape<1>{{d}}), db_ref(Shape<1>{{d}});
            std::fill(dg_ref.begin(), dg_ref.end(), T(0.25));  // accumulation into existing values
            std::fill(db_ref.begin(), db_ref.end(), T(-0.5));
            ops::layer_norm_forward(ref, x.view(), gamma.view(), beta.view(), eps, y_ref.view(), mean_ref.view(),
                                    rstd_ref.view());
            ops::layer_norm_backward(ref, x.view(), gamma.view(), mean_ref.view(), rstd_ref.view(), dy.view(),
                                     dx_ref.view(), dg_ref.view(), db_ref.view());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " rows=" << rows << " d=" << d);
                Matrix<T> y(x.shape()), dx(x.shape());
                Vector<T> mean(Shape<1>{{rows}}), rstd(Shape<1>{{rows}}), dg(Shape<1>{{d}}), db(Shape<1>{{d}});
                std::fill(dg.begin(), dg.end(), T(0.25));
                std::fill(db.begin(), db.end(), T(-0.5));
                ops::layer_norm_forward(be, x.view(), gamma.view(), beta.view(), eps, y.view(), mean.view(), rstd.view());
                const rbtest::Tolerance tol{std::is_same_v<T, float> ? 2e-5 : 1e-12, std::is_same_v<T, float> ? 2e-5 : 1e-12};
                RBTEST_REQUIRE_CLOSE(y.cview(), y_ref.cview(), tol);
                RBTEST_REQUIRE_CLOSE(mean.cview(), mean_ref.cview(), tol);
                RBTEST_REQUIRE_CLOSE(rstd.cview(), rstd_ref.cview(), tol);
                ops::layer_norm_backward(be, x.view(), gamma.view(), mean.view(), rstd.view(), dy.view(), dx.view(),
                                         dg.view(), db.view());
                const rbtest::Tolerance gtol{std::is_same_v<T, float> ? 1e-4 : 1e-10, std::is_same_v<T, float> ? 1e-4 : 1e-10};
                RBTEST_REQUIRE_CLOSE(dx.cview(), dx_ref.cview(), gtol);
                RBTEST_REQUIRE_CLOSE(dg.cview(), dg_ref.cview(), (rbtest::Tolerance{gtol.atol * rows, gtol.rtol}));
                RBTEST_REQUIRE_CLOSE(db.cview(), db_ref.cview(), (rbtest::Tolerance{gtol.atol * rows, gtol.rtol}));
                // Inference form: no saved statistics.
                Matrix<T> y2(x.shape());
                ops::layer_norm_forward(be, x.view(), gamma.view(), beta.view(), eps, y2.view());
                RBTEST_REQUIRE_CLOSE(y2.cview(), y_ref.cview(), tol);
            });
        }
}

TEMPLATE_TEST_CASE("cpu activations forward and backward match reference", "[backend][activation]", float, double) {
    using T = TestType;
    for (Activation act : {Activation::relu, Activation::gelu})
        for (index_t rows : kRows)
            for (index_t cols : kCols) {
                Matrix<T> x(Shape<2>{{rows, cols}}), dy(x.shape()), y_ref(x.shape()), dx_ref(x.shape());
                fill_uniform(x, 19, -6.0, 6.0);
                fill_uniform(dy, 20);
                ops::activation_forward(ref, act, x.view(), y_ref.view());
                ops::activation_backward(ref, act, x.view(), dy.view(), dx_ref.view());
                rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                    INFO(name << " act=" << int(act) << " rows=" << rows << " cols=" << cols);
                    Matrix<T> y(x.shape()), dx(x.shape());
                    ops::activation_forward(be, act, x.view(), y.view());
                    RBTEST_REQUIRE_CLOSE(y.cview(), y_ref.cview(), default_tolerance<T>());
                    ops::activation_backward(be, act, x.view(), dy.view(), dx.view());
                    RBTEST_REQUIRE_CLOSE(dx.cview(), dx_ref.cview(), default_tolerance<T>());
                });
            }
}

TEMPLATE_TEST_CASE("cpu activations on a strided block leave the rest untouched", "[backend][activation]", float,
                   double) {
    using T = TestType;
    Matrix<T> big(Shape<2>{{9, 20}}), want(Shape<2>{{9, 13}});
    fill_uniform(big, 21, -2.0, 2.0);
    const Matrix<T> orig = big;
    auto x = matrix_view<const T>(orig.data() + 3, 9, 13, 20);
    ops::gelu_forward(ref, x, want.view());
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        big = orig;
        auto y = matrix_view(big.data() + 3, 9, 13, 20);
        ops::gelu_forward(be, x, y);
        Matrix<T> got(Shape<2>{{9, 13}});
        for (index_t r = 0; r < 9; ++r)
            for (index_t c = 0; c < 13; ++c) got(r, c) = y(r, c);
        INFO(name);
        RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), default_tolerance<T>());
        for (index_t r = 0; r < 9; ++r) {
            REQUIRE(big(r, 0) == orig(r, 0));
            REQUIRE(big(r, 19) == orig(r, 19));
        }
    });
}

TEMPLATE_TEST_CASE("cpu gather_rows and scatter_add_rows match reference bit for bit", "[backend][embedding]", float,
                   double) {
    using T = TestType;
    for (index_t n_ids : {1, 7, 1000, 5000})
        for (index_t d : {1, 9, 50, 64, 65}) {
            const index_t n_table = 97;
            Matrix<T> table(Shape<2>{{n_table, d}}), src(Shape<2>{{n_ids, d}});
            fill_uniform(table, 22);
            fill_uniform(src, 23);
            Vector<row_id_t> ids(Shape<1>{{n_ids}});
            const Rng rng(24);
            for (index_t i = 0; i < n_ids; ++i) ids(i) = static_cast<row_id_t>(rng.below(i, n_table));
            Matrix<T> want(Shape<2>{{n_ids, d}});
            ops::gather_rows(ref, table.view(), ids.cview(), want.view());
            Matrix<T> want_table = table;
            ops::scatter_add_rows(ref, src.view(), ids.cview(), want_table.view());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " ids=" << n_ids << " d=" << d);
                Matrix<T> got(Shape<2>{{n_ids, d}});
                ops::gather_rows(be, table.view(), ids.cview(), got.view());
                REQUIRE(std::equal(got.begin(), got.end(), want.begin()));
                Matrix<T> got_table = table;
                ops::scatter_add_rows(be, src.view(), ids.cview(), got_table.view());
                // Reference adds in double; CPU adds in T in the same order.
                RBTEST_REQUIRE_CLOSE(got_table.cview(), want_table.cview(), default_tolerance<T>());
            });
        }
}

TEMPLATE_TEST_CASE("gather and scatter-add are adjoint (property)", "[backend][embedding][property]", float, double) {
    using T = TestType;
    // <gather(E), G> == <E, scatter_add(G)> for any table E and gradient G.
    const index_t n = 40, d = 17, b = 300;
    Matrix<T> e(Shape<2>{{n, d}}), g(Shape<2>{{b, d}});
    fill_uniform(e, 25);
    fill_uniform(g, 26);
    Vector<row_id_t> ids(Shape<1>{{b}});
    for (index_t i = 0; i < b; ++i) ids(i) = static_cast<row_id_t>((i * 7) % n);
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        Matrix<T> gathered(Shape<2>{{b, d}}), scattered(Shape<2>{{n, d}});
        ops::gather_rows(be, e.view(), ids.cview(), gathered.view());
        ops::scatter_add_rows(be, g.view(), ids.cview(), scattered.view());
        double lhs = 0, rhs = 0;
        for (index_t i = 0; i < gathered.numel(); ++i) lhs += double(gathered.data()[i]) * g.data()[i];
        for (index_t i = 0; i < scattered.numel(); ++i) rhs += double(e.data()[i]) * scattered.data()[i];
        INFO(name);
        REQUIRE(std::fabs(lhs - rhs) <= 1e-4 * (1 + std::fabs(lhs)));
    });
}

TEMPLATE_TEST_CASE("cpu top_k_rows matches reference exactly, ties by lower index", "[backend][top_k]", float, double) {
    using T = TestType;
    const index_t shapes[][3] = {{1, 1, 1}, {3, 7, 3}, {5, 65, 10}, {2, 1000, 10}, {1, 300000, 10}, {4, 100, 100}};
    for (const auto& s : shapes) {
        const index_t rows = s[0], n = s[1], k = s[2];
        Matrix<T> scores(Shape<2>{{rows, n}});
        const Rng rng(27);
        // Few distinct values force many ties.
        for (index_t i = 0; i < scores.numel(); ++i) scores.data()[i] = static_cast<T>(rng.below(i, 50)) - T(25);
        if (n > 5) scores(0, 3) = -std::numeric_limits<T>::infinity();
        Matrix<row_id_t> want_ids(Shape<2>{{rows, k}});
        Matrix<T> want_vals(Shape<2>{{rows, k}});
        ops::top_k_rows(ref, scores.view(), k, want_ids.view(), want_vals.view());
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name << " rows=" << rows << " n=" << n << " k=" << k);
            Matrix<row_id_t> ids(Shape<2>{{rows, k}});
            Matrix<T> vals(Shape<2>{{rows, k}});
            ops::top_k_rows(be, scores.view(), k, ids.view(), vals.view());
            REQUIRE(std::equal(ids.begin(), ids.end(), want_ids.begin()));
            REQUIRE(std::equal(vals.begin(), vals.end(), want_vals.begin()));
        });
    }
}

TEMPLATE_TEST_CASE("cpu reductions match reference", "[backend][reduce]", float, double) {
    using T = TestType;
    for (index_t rows : kRows)
        for (index_t cols : kCols) {
            Matrix<T> x(Shape<2>{{rows, cols}});
            fill_uniform(x, 28, -2.0, 3.0);
            const T want_sum = ops::sum(ref, x.view());
            const T want_max = ops::max_value(ref, x.view());
            Vector<T> want_cols(Shape<1>{{cols}});
            ops::sum_rows(ref, x.view(), want_cols.view());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " rows=" << rows << " cols=" << cols);
                REQUIRE(std::fabs(double(ops::sum(be, x.view())) - double(want_sum)) <=
                        1e-5 * double(rows * cols) * (std::is_same_v<T, float> ? 1.0 : 1e-8));
                REQUIRE(ops::max_value(be, x.view()) == want_max);
                Vector<T> got(Shape<1>{{cols}});
                ops::sum_rows(be, x.view(), got.view());
                RBTEST_REQUIRE_CLOSE(got.cview(), want_cols.cview(), (rbtest::Tolerance{1e-5 * rows, 1e-5}));
            });
        }
}

TEST_CASE("reductions give the same bits on 1 and 3 threads", "[backend][reduce][determinism]") {
    Matrix<float> x(Shape<2>{{25600, 64}});
    fill_uniform(x, 29, -1.0, 1e3);
    Vector<float> v(Shape<1>{{x.numel()}});
    std::copy(x.begin(), x.end(), v.begin());
    const backend::Cpu<isa::Dispatch> one{&rbtest::pool1()}, three{&rbtest::pool3()};
    REQUIRE(ops::sum(one, x.view()) == ops::sum(three, x.view()));
    REQUIRE(ops::dot(one, v.view(), v.view()) == ops::dot(three, v.view(), v.view()));
    Vector<float> a(Shape<1>{{64}}), b(Shape<1>{{64}});
    ops::sum_rows(one, x.view(), a.view());
    ops::sum_rows(three, x.view(), b.view());
    REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
}

TEMPLATE_TEST_CASE("NaN is detected inside the SIMD loops on every ISA", "[backend][top_k][reduce]", float, double) {
    using T = TestType;
    // Positions in the unrolled body, the single-batch loop and the scalar tail.
    for (index_t pos : {0, 5, 17, 130, 999}) {
        Matrix<T> s(Shape<2>{{2, 1000}});
        fill_uniform(s, 30);
        s(1, pos) = std::numeric_limits<T>::quiet_NaN();
        Matrix<row_id_t> ids(Shape<2>{{2, 10}});
        Matrix<T> vals(Shape<2>{{2, 10}});
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name << " pos=" << pos);
            REQUIRE_THROWS_WITH(ops::top_k_rows(be, s.view(), 10, ids.view(), vals.view()),
                                Catch::Contains("row 1 of scores contains NaN"));
            REQUIRE(std::isnan(ops::max_value(be, s.view())));
        });
    }
}

TEST_CASE("gemm gives the same bits on 1 and 3 threads", "[backend][gemm][determinism]") {
    for (index_t k : {64, 1000}) {
        Matrix<float> a(Shape<2>{{700, k}}), b(Shape<2>{{k, 96}}), c1(Shape<2>{{700, 96}}), c3(c1.shape());
        fill_uniform(a, 31);
        fill_uniform(b, 32);
        ops::gemm(backend::Cpu<isa::Dispatch>{&rbtest::pool1()}, Trans::no, Trans::no, 1.0f, a.view(), b.view(), 0.0f,
                  c1.view());
        ops::gemm(backend::Cpu<isa::Dispatch>{&rbtest::pool3()}, Trans::no, Trans::no, 1.0f, a.view(), b.view(), 0.0f,
                  c3.view());
        INFO("k = " << k);
        REQUIRE(std::equal(c1.begin(), c1.end(), c3.begin()));
    }
}

TEST_CASE("top-k of a row long enough to be split across threads equals the unsplit result", "[backend][top_k]") {
    // Rows of >= 2^21 scores with fewer rows than threads are cut into
    // segments whose top-k lists are merged; the unsplit (1-thread) path is
    // checked against the Reference backend above.
    const index_t n = (index_t{1} << 21) + 7;
    Matrix<float> s(Shape<2>{{1, n}});
    const Rng rng(33);
    for (index_t i = 0; i < n; ++i) s.data()[i] = static_cast<float>(rng.below(std::uint64_t(i), 1000));  // many ties
    for (index_t k : {1, 10, 300}) {
        Matrix<row_id_t> ids1(Shape<2>{{1, k}}), ids3(Shape<2>{{1, k}});
        Matrix<float> v1(Shape<2>{{1, k}}), v3(Shape<2>{{1, k}});
        ops::top_k_rows(backend::Cpu<isa::Dispatch>{&rbtest::pool1()}, s.view(), k, ids1.view(), v1.view());
        ops::top_k_rows(backend::Cpu<isa::Dispatch>{&rbtest::pool3()}, s.view(), k, ids3.view(), v3.view());
        INFO("k = " << k);
        REQUIRE(std::equal(ids1.begin(), ids1.end(), ids3.begin()));
        REQUIRE(std::equal(v1.begin(), v1.end(), v3.begin()));
        REQUIRE(v1(0, 0) == 999.0f);
        for (index_t j = 1; j < k; ++j) REQUIRE((v1(0, j - 1) > v1(0, j) || (v1(0, j - 1) == v1(0, j) && ids1(0, j - 1) < ids1(0, j))));
    }
    s(0, n - 3) = std::numeric_limits<float>::quiet_NaN();
    Matrix<row_id_t> ids(Shape<2>{{1, 10}});
    Matrix<float> v(Shape<2>{{1, 10}});
    REQUIRE_THROWS_AS(ops::top_k_rows(backend::Cpu<isa::Dispatch>{&rbtest::pool3()}, s.view(), 10, ids.view(), v.view()),
                      ValueError);
}

TEST_CASE("scatter-add, layer-norm gradients and softmax give the same bits on 1 and 3 threads",
          "[backend][determinism]") {
    const backend::Cpu<isa::Dispatch> one{&rbtest::pool1()}, three{&rbtest::pool3()};
    const index_t rows = 25600, d = 50;
    Matrix<float> x(Shape<2>{{rows, d}}), dy(x.shape());
    fill_uniform(x, 34, -2.0, 2.0);
    fill_uniform(dy, 35);
    Vector<row_id_t> ids(Shape<1>{{rows}});
    const Rng rng(36);
    for (index_t i = 0; i < rows; ++i) ids(i) = static_cast<row_id_t>(rng.below(std::uint64_t(i), 300));
    auto run = [&](const auto& be) {
        Matrix<float> table(Shape<2>{{300, d}}), y(x.shape()), dx(x.shape()), sm(x.shape());
        Vector<float> g(Shape<1>{{d}}), b(Shape<1>{{d}}), mean(Shape<1>{{rows}}), rstd(Shape<1>{{rows}}),
            dg(Shape<1>{{d}}), db(Shape<1>{{d}});
        std::fill(g.begin(), g.end(), 1.0f);
        ops::scatter_add_rows(be, dy.view(), ids.cview(), table.view());
        ops::layer_norm_forward(be, x.view(), g.view(), b.view(), 1e-5f, y.view(), mean.view(), rstd.view());
        ops::layer_norm_backward(be, x.view(), g.view(), mean.view(), rstd.view(), dy.view(), dx.view(), dg.view(),
                                 db.view());
        ops::softmax_rows(be, x.view(), sm.view());
        std::vector<float> all(table.begin(), table.end());
        for (const auto* t : {&dx, &sm}) all.insert(all.end(), t->begin(), t->end());
        for (const auto* t : {&dg, &db}) all.insert(all.end(), t->begin(), t->end());
        return all;
    };
    REQUIRE(run(one) == run(three));
}
