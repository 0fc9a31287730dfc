// The backward primitives against central finite differences of their
// forward primitives, in f64 on the Reference backend (the CPU backend is
// checked against the Reference elsewhere): layer norm (x, gamma, beta),
// GELU and ReLU, softmax.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "../support/compare.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/softmax.hpp"

using namespace recblocks;

namespace {
const backend::Reference ref{};
constexpr double kStep = 1e-6;

/// Central difference of `loss` with respect to every element of `param`.
Matrix<double> numeric_gradient(Matrix<double>& param, const std::function<double()>& loss) {
    Matrix<double> g(param.shape());
    for (index_t i = 0; i < param.numel(); ++i) {
        const double keep = param.data()[i];
        param.data()[i] = keep + kStep;
        const double up = loss();
        param.data()[i] = keep - kStep;
        const double down = loss();
        param.data()[i] = keep;
        g.data()[i] = (up - down) / (2 * kStep);
    }
    return g;
}

double weighted_sum(const Matrix<double>& y, const Matrix<double>& w) {
    double s = 0;
    for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * w.data()[i];
    return s;
}
}  // namespace

TEST_CASE("layer norm backward matches finite differences", "[ops][layer_norm][gradcheck]") {
    const index_t rows = 4, d = 9;
    Matrix<double> x(Shape<2>{{rows, d}}), w(x.shape()), gamma(Shape<2>{{1, d}}), beta(Shape<2>{{1, d}});
    rbtest::fill_uniform(x, 1, -2.0, 3.0);
    rbtest::fill_uniform(w, 2);
    rbtest::fill_uniform(gamma, 3, 0.5, 1.5);
    rbtest::fill_uniform(beta, 4);
    const double eps = 1e-5;
    auto loss = [&] {
        Matrix<double> y(x.shape());
        ops::layer_norm_forward(ref, x.view(), vector_view<const double>(gamma.data(), d),
                                vector_view<const double>(beta.data(), d), eps, y.view());
        return weighted_sum(y, w);
    };
    Matrix<double> y(x.shape()), dx(x.shape());
    Vector<double> mean(Shape<1>{{rows}}), rstd(Shape<1>{{rows}}), dg(Shape<1>{{d}}), db(Shape<1>{{d}});
    ops::layer_norm_forward(ref, x.view(), vector_view<const double>(gamma.data(), d),
                            vector_view<const double>(beta.data(), d), eps, y.view(), mean.view(), rstd.view());
    ops::layer_norm_backward(ref, x.view(), vector_view<const double>(gamma.data(), d), mean.view(), rstd.view(),
                             w.view(), dx.view(), dg.view(), db.view());
    const rbtest::Tolerance tol{1e-7, 1e-6};
    RBTEST_REQUIRE_CLOSE(dx.cview(), numeric_gradient(x, loss).cview(), tol);
    const auto ng = numeric_gradient(gamma, loss), nb = numeric_gradient(beta, loss);
    const auto ng_v = vector_view<const double>(ng.data(), d), nb_v = vector_view<const double>(nb.data(), d);
    RBTEST_REQUIRE_CLOSE(dg.cview(), ng_v, tol);
    RBTEST_REQUIRE_CLOSE(db.cview(), nb_v, tol);
}

TEST_CASE("activation backward matches finite differences", "[ops][activation][gradcheck]") {
    for (Activation act : {Activation::gelu, Activation::relu}) {
        Matrix<double> x(Shape<2>{{3, 11}}), w(x.shape()), dx(x.shape());
        rbtest::fill_uniform(x, 5, -4.0, 4.0);
        rbtest::fill_uniform(w, 6);
        auto loss = [&] {
            Matrix<double> y(x.shape());
            ops::activation_forward(ref, act, x.view(), y.view());
            return weighted_sum(y, w);
        };
        ops::activation_backward(ref, act, x.view(), w.view(), dx.view());
        INFO("activation " << int(act));
        RBTEST_REQUIRE_CLOSE(dx.cview(), numeric_gradient(x, loss).cview(), (rbtest::Tolerance{1e-7, 1e-6}));
    }
}

TEST_CASE("softmax backward matches finite differences", "[ops][softmax][gradcheck]") {
    Matrix<double> x(Shape<2>{{3, 13}}), w(x.shape()), y(x.shape()), dx(x.shape());
    rbtest::fill_uniform(x, 7, -3.0, 3.0);
    rbtest::fill_uniform(w, 8);
    auto loss = [&] {
        Matrix<double> out(x.shape());
        ops::softmax_rows(ref, x.view(), out.view());
        return weighted_sum(out, w);
    };
    ops::softmax_rows(ref, x.view(), y.view());
    ops::softmax_rows_backward(ref, y.view(), w.view(), dx.view());
    RBTEST_REQUIRE_CLOSE(dx.cview(), numeric_gradient(x, loss).cview(), (rbtest::Tolerance{1e-8, 1e-6}));
}
