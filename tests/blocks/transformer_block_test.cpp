// TransformerBlock and TransformerStack: every gradient (input and parameters)
// against finite differences (f64) for each norm placement policy, with
// causal/bidirectional masks, padded keys and dropout active; CPU agrees with
// Reference; the stack's timeline mask; bad shapes.
#include <catch2/catch.hpp>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/transformer_stack.hpp"

using namespace recblocks;

namespace {

constexpr index_t kB = 2, kL = 5, kD = 8;

// The shipped norm placements meet the concept; a policy without backward
// does not, so TransformerBlock rejects it at compile time.
using RefParts = blocks::TransformerBlockParts<double, policies::CausalMask>;
static_assert(policies::NormPlacement<policies::QueryNorm, RefParts, backend::Reference>);
static_assert(policies::NormPlacement<policies::PreNorm, RefParts, backend::Reference>);
static_assert(policies::NormPlacement<policies::PostNorm, RefParts, backend::Reference>);
static_assert(policies::NormPlacement<policies::PreNorm, RefParts, backend::Cpu<isa::Auto>>);
struct ForwardOnlyNorm {
    static constexpr bool ffn_residual = false;
    enum Buffer : int { buffer_count };
    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts&, const Be&, ThreadPool&, TensorView<const T, 3>, TensorView<T, 3>,
                        MatrixView<const std::uint8_t>, std::uint64_t, bool) {}
};
static_assert(!policies::NormPlacement<ForwardOnlyNorm, RefParts, backend::Reference>);

Matrix<std::uint8_t> left_padding() {
    Matrix<std::uint8_t> keep(Shape<2>{{kB, kL}});
    for (index_t b = 0; b < kB; ++b)
        for (index_t t = 0; t < kL; ++t) keep(b, t) = static_cast<std::uint8_t>(b == 0 ? t >= 2 : 1);
    return keep;
}

template <class Norm, class Mask>
void gradcheck_block(double dropout, bool with_padding) {
    const backend::Reference ref{};
    ThreadPool pool(1);
    blocks::TransformerBlockConfig cfg{.d_model = kD, .heads = 2, .ffn_inner = 12, .activation = Activation::gelu, .dropout = dropout,
                                     .attention_dropout = -1.0, .ln_eps = 1e-5};
    blocks::TransformerBlock<double, Mask, Norm> block(cfg, Rng(21));
    ParamList<double> params;
    block.append_params("", params);
    // Non-trivial norm parameters, so their gradients are exercised.
    for (auto& p : params)
        if (p.kind != ParamKind::weight)
            for (index_t i = 0; i < p.numel(); ++i) p.value[i] += 0.1 * std::sin(double(i + 1));
    const auto keep = left_padding();
    const auto key_keep = with_padding ? keep.cview() : MatrixView<const std::uint8_t>{};
    Tensor<double, 3> x(Shape<3>{{kB, kL, kD}}), w(x.shape()), y(x.shape()), dx(x.shape());
    rbtest::fill_uniform(x, 5);
    rbtest::fill_uniform(w, 6);
    auto loss = [&] {
        Tensor<double, 3> o(x.shape());
        block.forward(ref, pool, x.cview(), o.view(), key_keep, 9, true);
        double s = 0;
        for (index_t i = 0; i < o.numel(); ++i) s += o.data()[i] * w.data()[i];
        return s;
    };
    recblocks::zero_grads(params);
    block.forward(ref, pool, x.cview(), y.view(), key_keep, 9, true);
    Tensor<double, 3> dy = w;
    block.backward(ref, pool, dy.view(), dx.view());
    rbtest::check_fd("dx", x.data(), dx.data(), x.numel(), loss);
    rbtest::check_fd(params, loss);
}

}  // namespace

TEST_CASE("transformer block gradients match finite differences", "[blocks][transformer][gradcheck]") {
    for (double p : {0.0, 0.25}) {
        INFO("dropout " << p);
        SECTION("query norm, causal, dropout " + std::to_string(p)) {
            gradcheck_block<policies::QueryNorm, policies::CausalMask>(p, false);
            gradcheck_block<policies::QueryNorm, policies::CausalMask>(p, true);
        }
        SECTION("pre norm, causal, dropout " + std::to_string(p)) {
            gradcheck_block<policies::PreNorm, policies::CausalMask>(p, true);
        }
        SECTION("post norm, bidirectional, dropout " + std::to_string(p)) {
            gradcheck_block<policies::PostNorm, policies::BidirectionalMask>(p, true);
        }
    }
}

TEST_CASE("transformer stack gradients match finite differences", "[blocks][transformer][gradcheck]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    using Stack = blocks::TransformerStack<double, policies::CausalMask, policies::QueryNorm>;
    Stack::Config cfg;
    cfg.block = {kD, 2, 0, Activation::relu, 0.2, -1.0, 1e-8};
    cfg.num_blocks = 2;
    Stack stack(cfg, Rng(4));
    ParamList<double> params;
    stack.append_params("", params);
    REQUIRE(params.size() == 2 * 12 + 2);
    CHECK(params.front().name == "blocks.0.attention.in_proj_weight");
    CHECK(params.back().name == "final_norm.bias");
    const auto keep = left_padding();
    Tensor<double, 3> x(Shape<3>{{kB, kL, kD}}), w(x.shape()), y(x.shape()), dx(x.shape());
    rbtest::fill_uniform(x, 7);
    rbtest::fill_uniform(w, 8);
    auto loss = [&] {
        Tensor<double, 3> o(x.shape());
        stack.forward(ref, pool, x.cview(), keep.cview(), o.view(), 3, true);
        double s = 0;
        for (index_t i = 0; i < o.numel(); ++i) s += o.data()[i] * w.data()[i];
        return s;
    };
    recblocks::zero_grads(params);
    stack.forward(ref, pool, x.cview(), keep.cview(), y.view(), 3, true);
    Tensor<double, 3> dy = w;
    stack.backward(ref, pool, dy.view(), dx.view());
    rbtest::check_fd("dx", x.data(), dx.data(), x.numel(), loss);
    rbtest::check_fd(params, loss);
    // Padded inputs cannot influence anything: zero gradient there.
    for (index_t t = 0; t < 2; ++t)
        for (index_t c = 0; c < kD; ++c) CHECK(dx(0, t, c) == 0.0);
}

TEST_CASE("transformer stack: CPU matches Reference, inference is deterministic", "[blocks][transformer]") {
    ThreadPool pool(3);
    using Stack = blocks::TransformerStack<float, policies::CausalMask, policies::PreNorm>;
    Stack::Config cfg;
    cfg.block = {16, 2, 0, Activation::relu, 0.2, -1.0, 1e-8};
    Stack a(cfg, Rng(3)), b(cfg, Rng(3));
    Matrix<std::uint8_t> keep(Shape<2>{{3, 7}});
    for (index_t i = 0; i < keep.numel(); ++i) keep.data()[i] = static_cast<std::uint8_t>(i % 7 >= 2);
    Tensor<float, 3> x(Shape<3>{{3, 7, 16}}), ya(x.shape()), yb(x.shape());
    rbtest::fill_uniform(x, 1);
    for (bool train : {false, true}) {
        a.forward(backend::Reference{}, pool, x.cview(), keep.cview(), ya.view(), 11, train);
        b.forward(backend::Cpu<isa::Dispatch>{&pool}, pool, x.cview(), keep.cview(), yb.view(), 11, train);
        RBTEST_REQUIRE_CLOSE(yb.cview(), ya.cview(), (rbtest::Tolerance{2e-5, 2e-5}));
    }
    Tensor<float, 3> bad(Shape<3>{{3, 7, 8}});
    REQUIRE_THROWS_AS(a.forward(backend::Reference{}, pool, bad.cview(), keep.cview(), bad.view(), 0, false), ShapeError);
    Matrix<std::uint8_t> keep_bad(Shape<2>{{2, 7}});
    REQUIRE_THROWS_WITH(a.forward(backend::Reference{}, pool, x.cview(), keep_bad.cview(), ya.view(), 0, false),
                        Catch::Contains("keep is"));
}

namespace {
template <class Norm>
void check_forward_last(bool mask_keys) {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    using Stack = blocks::TransformerStack<double, policies::CausalMask, Norm>;
    typename Stack::Config cfg;
    cfg.block = {kD, 2, 0, Activation::gelu, 0.3, -1.0, 1e-8};
    cfg.mask_padding_keys = mask_keys;
    Stack stack(cfg, Rng(8));
    Matrix<std::uint8_t> keep(Shape<2>{{3, kL}});
    for (index_t t = 0; t < kL; ++t) {
        keep(0, t) = static_cast<std::uint8_t>(t >= 2);
        keep(1, t) = 1;
        keep(2, t) = 0;  // an empty history
    }
    Tensor<double, 3> x(Shape<3>{{3, kL, kD}}), y(x.shape());
    rbtest::fill_uniform(x, 12);
    Matrix<double> last(Shape<2>{{3, kD}});
    for (int rep = 0; rep < 2; ++rep) {  // alternating with full forwards must not disturb either
        stack.forward(be, pool, x.cview(), keep.cview(), y.view(), 0, false);
        stack.forward_last(be, pool, x.cview(), keep.cview(), last.view());
        for (index_t b = 0; b < 3; ++b)
            for (index_t c = 0; c < kD; ++c) REQUIRE(last(b, c) == Approx(y(b, kL - 1, c)).margin(1e-12));
    }
}
}  // namespace

TEST_CASE("forward_last equals the last row of a full forward", "[blocks][transformer]") {
    for (bool mask_keys : {false, true}) {
        check_forward_last<policies::QueryNorm>(mask_keys);
        check_forward_last<policies::PreNorm>(mask_keys);
        check_forward_last<policies::PostNorm>(mask_keys);
    }
}
