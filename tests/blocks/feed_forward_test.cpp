// FeedForward: every gradient against finite differences (f64), with ReLU and
// GELU, with and without dropout (the mask is fixed by the step), and the
// residual; CPU agrees with Reference; bad shapes.
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/compare.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/feed_forward.hpp"

using namespace recblocks;

TEST_CASE("feed-forward gradients match finite differences", "[blocks][ffn][gradcheck]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    for (Activation act : {Activation::relu, Activation::gelu})
        for (double p : {0.0, 0.3}) {
            blocks::FeedForward<double> ffn({.d_model = 6, .inner = 10, .activation = act, .dropout = p}, Rng(2));
            Matrix<double> x(Shape<2>{{7, 6}}), w(x.shape()), y(x.shape()), dx(x.shape());
            rbtest::fill_uniform(x, 3);
            rbtest::fill_uniform(w, 4);
            auto loss = [&] {
                Matrix<double> o(x.shape());
                ffn.forward(ref, pool, x.view(), o.view(), 5, true);
                double s = 0;
                for (index_t i = 0; i < o.numel(); ++i) s += o.data()[i] * w.data()[i];
                return s;
            };
            ffn.zero_grads();
            ffn.forward(ref, pool, x.view(), y.view(), 5, true);
            Matrix<double> dy = w;
            ffn.backward(ref, pool, dy.view(), dx.view());
            auto check = [&](double* param, const double* grad, index_t n, const char* name) {
                for (index_t i = 0; i < n; ++i) {
                    const double keep = param[i];
                    param[i] = keep + 1e-6;
                    const double up = loss();
                    param[i] = keep - 1e-6;
                    const double down = loss();
                    param[i] = keep;
                    const double num = (up - down) / 2e-6;
                    INFO(name << "[" << i << "] act=" << int(act) << " p=" << p);
                    REQUIRE(std::fabs(num - grad[i]) <= 1e-6 + 1e-5 * std::fabs(num));
                }
            };
            auto& P = ffn.params();
            auto& G = ffn.grads();
            check(x.data(), dx.data(), x.numel(), "dx");
            check(P.w1.data(), G.w1.data(), P.w1.numel(), "w1");
            check(P.b1.data(), G.b1.data(), P.b1.numel(), "b1");
            check(P.w2.data(), G.w2.data(), P.w2.numel(), "w2");
            check(P.b2.data(), G.b2.data(), P.b2.numel(), "b2");
        }
}

TEST_CASE("feed-forward: residual, inference, backends, bad shapes", "[blocks][ffn]") {
    ThreadPool pool(2);
    blocks::FeedForward<float> a({.d_model = 50, .dropout = 0.2}, Rng(6)), b({.d_model = 50, .dropout = 0.2}, Rng(6));
    REQUIRE(a.config().inner == 50);  // SASRec: inner width D by default
    Matrix<float> x(Shape<2>{{300, 50}}), ya(x.shape()), yb(x.shape());
    rbtest::fill_uniform(x, 7);
    a.forward(backend::Reference{}, pool, x.view(), ya.view(), 1, false);
    b.forward(backend::Cpu<isa::Dispatch>{&pool}, pool, x.view(), yb.view(), 1, false);
    RBTEST_REQUIRE_CLOSE(yb.cview(), ya.cview(), (rbtest::Tolerance{1e-5, 1e-5}));
    // Zero weights: the block is the identity (the residual).
    std::fill(a.params().w2.begin(), a.params().w2.end(), 0.0f);
    std::fill(a.params().b2.begin(), a.params().b2.end(), 0.0f);
    a.forward(backend::Reference{}, pool, x.view(), ya.view(), 1, true);
    REQUIRE(std::equal(ya.begin(), ya.end(), x.begin()));
    Matrix<float> wrong(Shape<2>{{300, 49}});
    REQUIRE_THROWS_WITH(a.forward(backend::Reference{}, pool, x.view(), wrong.view(), 0, false),
                        Catch::Contains("but d_model is 50"));
    REQUIRE_THROWS_AS((blocks::FeedForward<float>({.d_model = 0}, Rng(1))), ValueError);
}
