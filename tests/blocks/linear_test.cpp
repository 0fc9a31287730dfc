// blocks::Linear (nn.Linear): forward against a literal loop, every gradient (weight, bias, input)
// against finite differences of a weighted sum of the outputs, the CPU backend against the
// Reference, the layer without bias, nn.Linear's names, and bad shapes.
#include <catch2/catch.hpp>

#include <cmath>

#include "../backend/backends.hpp"
#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/blocks/linear.hpp"

using namespace recblocks;

namespace {

/// loss = sum_{r,c} g[r, c] * y[r, c] with fixed weights g, so dL/dy = g.
double weighted_sum(const Matrix<double>& y, const Matrix<double>& g) {
    double s = 0;
    for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * g.data()[i];
    return s;
}

}  // namespace

TEST_CASE("Linear: forward, gradients against finite differences, no bias, names", "[blocks][linear]") {
    const backend::Reference ref;
    for (const bool bias : {true, false}) {
        blocks::Linear<double> layer({.in_features = 5, .out_features = 3, .bias = bias}, Rng(4));
        ParamList<double> params;
        layer.append_params("proj.", params);
        REQUIRE(params.size() == (bias ? 2u : 1u));
        CHECK(params[0].name == "proj.weight");
        if (bias) CHECK(params[1].name == "proj.bias");
        for (const auto& p : params)  // nn.Linear's init: |w| <= 1/sqrt(in)
            for (index_t i = 0; i < p.numel(); ++i) CHECK(std::fabs(p.value[i]) <= 1.0 / std::sqrt(5.0));

        Matrix<double> x(Shape<2>{{4, 5}}), y(Shape<2>{{4, 3}}), g(y.shape()), dx(x.shape());
        rbtest::fill_uniform(x, 1);
        rbtest::fill_uniform(g, 2);
        layer.forward(ref, x.cview(), y.view());
        const auto& w = layer.params().weight;
        for (index_t r = 0; r < 4; ++r)
            for (index_t o = 0; o < 3; ++o) {
                double want = bias ? layer.params().bias(o) : 0.0;
                for (index_t i = 0; i < 5; ++i) want += x(r, i) * w(o, i);
                CHECK(y(r, o) == Approx(want).margin(1e-14));
            }

        layer.zero_grads();
        layer.backward(ref, g.cview(), dx.view());
        auto loss = [&] {
            Matrix<double> out(Shape<2>{{4, 3}});
            layer.forward(ref, x.cview(), out.view());
            return weighted_sum(out, g);
        };
        rbtest::check_fd(params, loss, 1e-7);
        rbtest::check_fd("x", x.data(), dx.data(), x.numel(), loss, 1e-7);
    }
}

TEST_CASE("Linear: the CPU backend matches the Reference, gradients accumulate", "[blocks][linear]") {
    const backend::Reference ref;
    blocks::Linear<float> a({50, 150}, Rng(7)), b({50, 150}, Rng(7));
    Matrix<float> x(Shape<2>{{300, 50}}), ya(Shape<2>{{300, 150}}), yb(ya.shape()), g(ya.shape()), dxa(x.shape()),
        dxb(x.shape());
    rbtest::fill_uniform(x, 3);
    rbtest::fill_uniform(g, 4);
    a.forward(ref, x.cview(), ya.view());
    a.backward(ref, g.cview(), dxa.view());
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        b.zero_grads();
        b.forward(be, x.cview(), yb.view());
        b.backward(be, g.cview(), dxb.view());
        RBTEST_REQUIRE_CLOSE(yb.cview(), ya.cview(), (rbtest::Tolerance{1e-4, 1e-5}));
        RBTEST_REQUIRE_CLOSE(dxb.cview(), dxa.cview(), (rbtest::Tolerance{1e-4, 1e-5}));
        RBTEST_REQUIRE_CLOSE(b.grads().weight.cview(), a.grads().weight.cview(), (rbtest::Tolerance{1e-3, 1e-5}));
        RBTEST_REQUIRE_CLOSE(b.grads().bias.cview(), a.grads().bias.cview(), (rbtest::Tolerance{1e-3, 1e-5}));
    });
    // A second backward adds to the gradients (the caller zeroes them per step).
    Vector<float> once = a.grads().bias;
    a.backward(ref, g.cview(), MatrixView<float>{});
    for (index_t o = 0; o < 150; ++o) CHECK(a.grads().bias(o) == Approx(2 * once(o)).epsilon(1e-5));
}

TEST_CASE("Linear: bad configurations and shapes are named", "[blocks][linear]") {
    const backend::Reference ref;
    REQUIRE_THROWS_WITH((blocks::Linear<float>({0, 3}, Rng(1))), Catch::Contains("in_features and out_features"));
    blocks::Linear<float> layer({4, 2}, Rng(1));
    Matrix<float> x(Shape<2>{{3, 5}}), y(Shape<2>{{3, 2}}), dy(Shape<2>{{3, 2}});
    REQUIRE_THROWS_WITH(layer.backward(ref, dy.cview(), MatrixView<float>{}), Catch::Contains("call forward first"));
    REQUIRE_THROWS_WITH(layer.forward(ref, x.cview(), y.view()), Catch::Contains("maps 4 -> 2 features"));
    Matrix<float> x4(Shape<2>{{3, 4}}), dy2(Shape<2>{{2, 2}});
    layer.forward(ref, x4.cview(), y.view());
    REQUIRE_THROWS_WITH(layer.backward(ref, dy2.cview(), MatrixView<float>{}), Catch::Contains("dy is [2, 2]"));
}
