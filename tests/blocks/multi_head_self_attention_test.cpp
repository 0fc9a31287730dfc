// MultiHeadSelfAttention: forward against an independent naive implementation,
// every gradient against central finite differences (f64), the mask policies'
// properties, backend agreement, and bad shapes.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/multi_head_self_attention.hpp"

using namespace recblocks;

namespace {

/// Which keys each query may see, written out by the test, not asked of the mask
/// policy under test: visible[q][k] == 'x' (key k visible to query q) or '.'.
using Visibility = std::vector<std::string>;

/// A visibility table for long sequences, from a rule the test states itself.
template <class Rule>
Visibility visibility_from(index_t len, Rule rule) {
    Visibility v(std::size_t(len), std::string(std::size_t(len), '.'));
    for (index_t q = 0; q < len; ++q)
        for (index_t k = 0; k < len; ++k)
            if (rule(q, k)) v[std::size_t(q)][std::size_t(k)] = 'x';
    return v;
}

/// Naive attention straight from the definition, in double, with the expected visibility.
template <class Mask>
std::vector<double> naive_forward(const blocks::MultiHeadSelfAttention<double, Mask>& mha, const Visibility& visible,
                                  const Tensor<double, 3>& x, const Matrix<std::uint8_t>* keep) {
    const index_t bsz = x.extent(0), len = x.extent(1), d = x.extent(2), h = mha.config().heads, dh = d / h;
    REQUIRE(visible.size() == std::size_t(len));
    for (const auto& row : visible) REQUIRE(row.size() == std::size_t(len));
    const auto sees = [&](index_t q, index_t k) { return visible[std::size_t(q)][std::size_t(k)] == 'x'; };
    const auto& p = mha.params();
    std::vector<double> qkv(std::size_t(bsz * len * 3 * d)), ctx(std::size_t(bsz * len * d), 0.0),
        y(std::size_t(bsz * len * d));
    for (index_t r = 0; r < bsz * len; ++r)
        for (index_t o = 0; o < 3 * d; ++o) {
            double s = p.in_proj_bias(o);
            for (index_t i = 0; i < d; ++i) s += x.data()[r * d + i] * p.in_proj_weight(o, i);
            qkv[std::size_t(r * 3 * d + o)] = s;
        }
    for (index_t b = 0; b < bsz; ++b)
        for (index_t hd = 0; hd < h; ++hd)
            for (index_t q = 0; q < len; ++q) {
                std::vector<double> w(std::size_t(len), 0.0);
                double mx = -INFINITY;
                for (index_t k = 0; k < len; ++k) {
                    if (!sees(q, k) || (keep && !(*keep)(b, k))) continue;
                    double s = 0;
                    for (index_t j = 0; j < dh; ++j)
                        s += qkv[std::size_t((b * len + q) * 3 * d + hd * dh + j)] *
                             qkv[std::size_t((b * len + k) * 3 * d + d + hd * dh + j)];
                    w[std::size_t(k)] = s / std::sqrt(double(dh));
                    mx = std::max(mx, w[std::size_t(k)]);
                }
                double z = 0;
                for (index_t k = 0; k < len; ++k) {
                    const bool on = sees(q, k) && (!keep || (*keep)(b, k));
                    w[std::size_t(k)] = on ? std::exp(w[std::size_t(k)] - mx) : 0.0;
                    z += w[std::size_t(k)];
                }
                for (index_t k = 0; k < len; ++k)
                    for (index_t j = 0; j < dh; ++j)
                        if (z > 0)
                            ctx[std::size_t((b * len + q) * d + hd * dh + j)] +=
                                w[std::size_t(k)] / z * qkv[std::size_t((b * len + k) * 3 * d + 2 * d + hd * dh + j)];
            }
    for (index_t r = 0; r < bsz * len; ++r)
        for (index_t o = 0; o < d; ++o) {
            double s = p.out_proj_bias(o);
            for (index_t i = 0; i < d; ++i) s += ctx[std::size_t(r * d + i)] * p.out_proj_weight(o, i);
            y[std::size_t(r * d + o)] = s;
        }
    return y;
}

/// Loss = sum(y * w) for fixed random w, so dL/dy = w.
template <class Mha>
double loss(Mha& mha, const Tensor<double, 3>& x, const Tensor<double, 3>& w, const Matrix<std::uint8_t>* keep) {
    Tensor<double, 3> y(x.shape());
    mha.forward(backend::Reference{}, x.view(), y.view(), keep ? keep->cview() : MatrixView<const std::uint8_t>{});
    double s = 0;
    for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * w.data()[i];
    return s;
}

template <class Mask>
void check_gradients(Mask mask, bool use_keep, const Visibility& visible) {
    const index_t bsz = 2, len = 6, d = 8;
    blocks::MultiHeadSelfAttention<double, Mask> mha({d, 2}, mask, Rng(3));
    for (auto* b : {&mha.params().in_proj_bias, &mha.params().out_proj_bias}) rbtest::fill_uniform(*b, 4, -0.1, 0.1);
    Tensor<double, 3> x(Shape<3>{{bsz, len, d}}), w(x.shape()), dx(x.shape());
    rbtest::fill_uniform(x, 5);
    rbtest::fill_uniform(w, 6);
    Matrix<std::uint8_t> keep(Shape<2>{{bsz, len}});
    std::fill(keep.begin(), keep.end(), std::uint8_t{1});
    keep(0, 0) = keep(0, 1) = 0;  // left padding in sequence 0
    const Matrix<std::uint8_t>* kp = use_keep ? &keep : nullptr;

    // Forward against the naive definition.
    Tensor<double, 3> y(x.shape());
    mha.forward(backend::Reference{}, x.view(), y.view(), use_keep ? keep.cview() : MatrixView<const std::uint8_t>{});
    const auto want = naive_forward(mha, visible, x, kp);
    for (index_t i = 0; i < y.numel(); ++i) REQUIRE(std::fabs(y.data()[i] - want[std::size_t(i)]) < 1e-12);

    mha.zero_grads();
    mha.forward(backend::Reference{}, x.view(), y.view(), use_keep ? keep.cview() : MatrixView<const std::uint8_t>{});
    mha.backward(backend::Reference{}, w.view(), dx.view());

    const double eps = 1e-6;
    auto fd = [&](double* v) {
        const double keep_v = *v;
        *v = keep_v + eps;
        const double up = loss(mha, x, w, kp);
        *v = keep_v - eps;
        const double down = loss(mha, x, w, kp);
        *v = keep_v;
        return (up - down) / (2 * eps);
    };
    auto check = [&](auto& param, auto& grad, const char* name) {
        for (index_t i = 0; i < param.numel(); ++i) {
            INFO(name << "[" << i << "]");
            const double num = fd(param.data() + i);
            REQUIRE(std::fabs(num - grad.data()[i]) <= 1e-6 + 1e-5 * std::fabs(num));
        }
    };
    check(x, dx, "dx");
    check(mha.params().in_proj_weight, mha.grads().in_proj_weight, "in_proj_weight");
    check(mha.params().in_proj_bias, mha.grads().in_proj_bias, "in_proj_bias");
    check(mha.params().out_proj_weight, mha.grads().out_proj_weight, "out_proj_weight");
    check(mha.params().out_proj_bias, mha.grads().out_proj_bias, "out_proj_bias");
}

}  // namespace

TEST_CASE("mhsa: forward matches the definition and gradients match finite differences", "[blocks][attention]") {
    // The expected visibility, written out (row q: the keys query q sees).
    const Visibility causal = {"x.....", "xx....", "xxx...", "xxxx..", "xxxxx.", "xxxxxx"};
    const Visibility everything(6, "xxxxxx");
    // Items of 3 tokens: a token sees every token of its own item and of the items before.
    const Visibility block_causal_3 = {"xxx...", "xxx...", "xxx...", "xxxxxx", "xxxxxx", "xxxxxx"};
    SECTION("causal with key padding") { check_gradients(policies::CausalMask{}, true, causal); }
    SECTION("bidirectional") { check_gradients(policies::BidirectionalMask{}, false, everything); }
    SECTION("bidirectional with key padding") { check_gradients(policies::BidirectionalMask{}, true, everything); }
    SECTION("block-causal, 3 tokens per item") { check_gradients(policies::BlockCausalMask(3), false, block_causal_3); }
}

TEST_CASE("mhsa: causal output at t ignores tokens after t; block-causal sees its own item", "[blocks][attention][property]") {
    const index_t len = 8, d = 16;
    blocks::MultiHeadSelfAttention<float> causal({d, 2}, Rng(7));
    Tensor<float, 3> x(Shape<3>{{1, len, d}}), y1(x.shape()), y2(x.shape());
    rbtest::fill_uniform(x, 8);
    const backend::Cpu<isa::Dispatch> cpu{};
    causal.forward(cpu, x.view(), y1.view());
    for (index_t j = 0; j < d; ++j) x(0, 5, j) += 1.0f;  // change token 5
    causal.forward(cpu, x.view(), y2.view());
    for (index_t t = 0; t < len; ++t) {
        bool same = true;
        for (index_t j = 0; j < d; ++j) same &= y1(0, t, j) == y2(0, t, j);
        INFO("t = " << t);
        REQUIRE(same == (t < 5));
    }
    // Block-causal with items of 4 tokens: token 1 sees tokens 0..3, not 4..7.
    blocks::MultiHeadSelfAttention<float, policies::BlockCausalMask> hybrid({d, 1}, policies::BlockCausalMask(4), Rng(9));
    hybrid.forward(cpu, x.view(), y1.view());
    const auto p = hybrid.attention();
    for (index_t k = 0; k < len; ++k) REQUIRE((p(0, 0, 1, k) > 0.0f) == (k < 4));
    double row = 0;
    for (index_t k = 0; k < len; ++k) row += p(0, 0, 6, k);
    REQUIRE(std::fabs(row - 1.0) < 1e-5);
}

TEST_CASE("mhsa: CPU backend agrees with the Reference backend", "[blocks][attention]") {
    const index_t bsz = 3, len = 50, d = 64;
    blocks::MultiHeadSelfAttention<float> a({d, 2}, Rng(11)), b({d, 2}, Rng(11));
    Tensor<float, 3> x(Shape<3>{{bsz, len, d}}), dy(x.shape()), ya(x.shape()), yb(x.shape()), dxa(x.shape()),
        dxb(x.shape());
    rbtest::fill_uniform(x, 12);
    rbtest::fill_uniform(dy, 13);
    a.zero_grads();
    b.zero_grads();
    a.forward(backend::Reference{}, x.view(), ya.view());
    b.forward(backend::Cpu<isa::Dispatch>{}, x.view(), yb.view());
    RBTEST_REQUIRE_CLOSE(yb.cview(), ya.cview(), (rbtest::Tolerance{1e-5, 1e-4}));
    a.backward(backend::Reference{}, dy.view(), dxa.view());
    b.backward(backend::Cpu<isa::Dispatch>{}, dy.view(), dxb.view());
    RBTEST_REQUIRE_CLOSE(dxb.cview(), dxa.cview(), (rbtest::Tolerance{1e-4, 1e-3}));
    RBTEST_REQUIRE_CLOSE(b.grads().in_proj_weight.cview(), a.grads().in_proj_weight.cview(), (rbtest::Tolerance{1e-3, 1e-3}));
}

TEST_CASE("mhsa: bad shapes and configs are named errors", "[blocks][attention][errors]") {
    REQUIRE_THROWS_AS((blocks::MultiHeadSelfAttention<float>({10, 3}, Rng(1))), ValueError);
    blocks::MultiHeadSelfAttention<float> mha({8, 2}, Rng(1));
    Tensor<float, 3> x(Shape<3>{{2, 4, 7}}), y(x.shape());
    REQUIRE_THROWS_WITH(mha.forward(backend::Reference{}, x.view(), y.view()),
                        Catch::Contains("x is [2, 4, 7] but d_model is 8"));
    Tensor<float, 3> x8(Shape<3>{{2, 4, 8}}), y8(x8.shape()), bad(Shape<3>{{2, 5, 8}});
    Matrix<std::uint8_t> keep(Shape<2>{{2, 5}});
    REQUIRE_THROWS_WITH(mha.forward(backend::Reference{}, x8.view(), y8.view(), keep.cview()),
                        Catch::Contains("key_keep is [2, 5] but expected [2, 4]"));
    REQUIRE_THROWS_AS(mha.backward(backend::Reference{}, bad.view(), bad.view()), ShapeError);
}

namespace {

/// Sequences longer than the attention's query chunk (64 rows), so the
/// chunked causal skipping runs with several chunks and a partial one.
template <class Mask>
void check_long_sequences(Mask mask, double dropout, const Visibility& visible) {
    const index_t bsz = 2, len = 150, d = 4;
    blocks::MultiHeadSelfAttention<double, Mask> mha({d, 2, dropout}, mask, Rng(13));
    for (auto* b : {&mha.params().in_proj_bias, &mha.params().out_proj_bias}) rbtest::fill_uniform(*b, 4, -0.1, 0.1);
    Tensor<double, 3> x(Shape<3>{{bsz, len, d}}), w(x.shape()), dx(x.shape()), y(x.shape());
    rbtest::fill_uniform(x, 7);
    rbtest::fill_uniform(w, 8);
    Matrix<std::uint8_t> keep(Shape<2>{{bsz, len}});
    for (index_t t = 0; t < len; ++t) {
        keep(0, t) = static_cast<std::uint8_t>(t >= 70);  // padding that spans a whole chunk
        keep(1, t) = 1;
    }
    mha.set_step(3, dropout > 0);
    if (dropout == 0) {
        mha.forward(backend::Reference{}, x.view(), y.view(), keep.cview());
        const auto want = naive_forward(mha, visible, x, &keep);
        for (index_t i = 0; i < y.numel(); ++i) REQUIRE(std::fabs(y.data()[i] - want[std::size_t(i)]) < 1e-12);
    }
    mha.zero_grads();
    mha.forward(backend::Reference{}, x.view(), y.view(), keep.cview());
    mha.backward(backend::Reference{}, w.view(), dx.view());
    auto l = [&] { return loss(mha, x, w, &keep); };
    rbtest::check_fd("dx", x.data(), dx.data(), x.numel(), l, 1e-5, 7);
    rbtest::check_fd("in_proj_weight", mha.params().in_proj_weight.data(), mha.grads().in_proj_weight.data(),
                     mha.params().in_proj_weight.numel(), l, 1e-5, 3);
}

}  // namespace

TEST_CASE("mhsa: long sequences (several query chunks) match the definition and finite differences",
          "[blocks][attention]") {
    const index_t len = 150;
    const auto causal = visibility_from(len, [](index_t q, index_t k) { return k <= q; });
    // Items of 5 tokens: key k is visible if its item (k div 5) does not come after the query's.
    const auto block_causal_5 = visibility_from(len, [](index_t q, index_t k) { return k < (q / 5 + 1) * 5; });
    const auto everything = visibility_from(len, [](index_t, index_t) { return true; });
    check_long_sequences(policies::CausalMask{}, 0.0, causal);
    check_long_sequences(policies::CausalMask{}, 0.3, causal);
    check_long_sequences(policies::BlockCausalMask(5), 0.0, block_causal_5);
    check_long_sequences(policies::BidirectionalMask{}, 0.2, everything);
}
