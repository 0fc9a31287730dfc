// Matryoshka blocks: the width list's validation, the embedding table's
// prefix views (no copy) with gather / scatter-add, and fMRLRec's nested
// linear layer against PyTorch (tests/golden/matryoshka.safetensors), a dense
// reference, finite differences and every CPU kernel level.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "../support/compare.hpp"
#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/matryoshka_embedding.hpp"
#include "recblocks/blocks/matryoshka_linear.hpp"
#include "recblocks/io/safetensors.hpp"

using namespace recblocks;

TEST_CASE("MatryoshkaWidths: validation with clear messages", "[matryoshka][blocks]") {
    const MatryoshkaWidths w({8, 16, 32, 64}, 64);
    CHECK(w.size() == 4);
    CHECK(w.full() == 64);
    CHECK(w.slice_begin(0) == 0);
    CHECK(w.slice_begin(2) == 16);
    CHECK(w.weight(3) == 1.0);
    CHECK(w.index_of(32) == 2);
    CHECK(MatryoshkaWidths::parse("8,16,32,64", 64).widths() == w.widths());
    using Catch::Contains;
    REQUIRE_THROWS_WITH(MatryoshkaWidths({}, 64), Contains("the list of widths is empty"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 8, 64}, 64), Contains("strictly increasing, but width 1 is 8 after 8"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({16, 8, 64}, 64), Contains("strictly increasing, but width 1 is 8 after 16"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 128}, 64), Contains("width 1 is 128, larger than the full width D = 64"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 32}, 64), Contains("the last width is 32 but must be the full width D = 64"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({0, 64}, 64), Contains("width 0 is 0 (must be >= 1)"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 64}, 64, {1.0, 0.0}), Contains("weight 1 (width 64) is 0 (must be finite and > 0)"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 64}, 64, {-1.0, 1.0}), Contains("weight 0 (width 8) is -1"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 64}, 64, {std::nan(""), 1.0}), Contains("weight 0 (width 8) is nan"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths({8, 64}, 64, {1.0}), Contains("1 weights for 2 widths"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths::parse("8,x,64", 64), Contains("'x' in '8,x,64' is not a positive integer"));
    REQUIRE_THROWS_WITH(MatryoshkaWidths::parse("8,,64", 64), Contains("is not a positive integer"));
    REQUIRE_THROWS_WITH(w.index_of(12), Contains("12 is not one of the nested widths"));
}

TEST_CASE("MatryoshkaEmbedding: prefix views without copies, gather and scatter-add", "[matryoshka][blocks]") {
    blocks::MatryoshkaEmbedding<double> emb(7, MatryoshkaWidths({2, 4, 6}, 6), Rng(3));
    const auto v4 = emb.at_width(4);
    CHECK(v4.data() == emb.table().data());  // the same memory
    CHECK(v4.ld() == 6);
    CHECK(v4.cols() == 4);
    Vector<row_id_t> ids(Shape<1>{{3}});
    ids(0) = 5;
    ids(1) = 1;
    ids(2) = 5;
    Matrix<double> out(Shape<2>{{3, 4}});
    emb.gather(backend::Reference{}, ids.cview(), out.view());
    for (index_t r = 0; r < 3; ++r)
        for (index_t c = 0; c < 4; ++c) CHECK(out(r, c) == emb.table()(ids(r), c));
    Matrix<double> g(Shape<2>{{3, 4}});
    rbtest::fill_uniform(g, 9);
    emb.zero_grad();
    ThreadPool pool(2);
    emb.backward(backend::Cpu<isa::Dispatch>{&pool}, ids.cview(), g.cview());
    for (index_t c = 0; c < 6; ++c) {
        CHECK(emb.grad()(5, c) == (c < 4 ? g(0, c) + g(2, c) : 0.0));  // columns past the width untouched
        CHECK(emb.grad()(1, c) == (c < 4 ? g(1, c) : 0.0));
        CHECK(emb.grad()(0, c) == 0.0);
    }
    Matrix<double> bad(Shape<2>{{3, 3}});
    REQUIRE_THROWS_WITH(emb.gather(backend::Reference{}, ids.cview(), bad.view()), Catch::Contains("3 is not one of the nested widths"));
    ids(1) = 7;
    REQUIRE_THROWS_AS(emb.gather(backend::Reference{}, ids.cview(), out.view()), IndexError);
}

namespace {
/// y = x Wᵀ + b on the top-left m × m block, with the block mask applied explicitly.
Matrix<double> dense_nested(const blocks::MatryoshkaLinear<double>& lin, const Matrix<double>& x) {
    const auto& w = lin.widths();
    const index_t m = x.extent(1);
    Matrix<double> y(x.shape());
    for (index_t r = 0; r < x.extent(0); ++r)
        for (index_t i = 0; i <= w.index_of(m); ++i)
            for (index_t o = w.slice_begin(i); o < w.width(i); ++o) {
                double s = lin.params().bias(o);
                for (index_t c = 0; c < w.width(i); ++c) s += lin.params().weight(o, c) * x(r, c);
                y(r, o) = s;
            }
    return y;
}
}  // namespace

TEST_CASE("MatryoshkaLinear (fMRLRec nested linear) matches PyTorch at every width", "[matryoshka][blocks][golden]") {
    const auto r = io::SafetensorsReader::open(std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/matryoshka.safetensors");
    blocks::MatryoshkaLinear<double> lin(MatryoshkaWidths({3, 5, 8}, 8), Rng(1));
    lin.params().weight = r.load<double, 2>("nested.weight");
    lin.params().bias = r.load<double, 1>("nested.bias");
    const auto x = r.load<double, 2>("nested.x");
    const auto dy = r.load<double, 2>("nested.dy");
    for (index_t m : {3, 5, 8}) {
        Matrix<double> xm(Shape<2>{{x.extent(0), m}}), y(xm.shape());
        for (index_t i = 0; i < x.extent(0); ++i)
            for (index_t c = 0; c < m; ++c) xm(i, c) = x(i, c);
        lin.forward(backend::Reference{}, xm.cview(), y.view());
        const auto want = r.load<double, 2>("nested.y." + std::to_string(m));
        INFO("width " << m);
        REQUIRE(rbtest::compare(y.cview(), want.cview(), {1e-13, 1e-12}).ok);
    }
    Matrix<double> dx(x.shape());
    lin.zero_grads();
    lin.backward(backend::Reference{}, x.cview(), dy.cview(), dx.view());
    const auto want_dx = r.load<double, 2>("nested.grad.x");
    const auto want_dw = r.load<double, 2>("nested.grad.weight");
    const auto want_db = r.load<double, 1>("nested.grad.bias");
    REQUIRE(rbtest::compare(dx.cview(), want_dx.cview(), {1e-13, 1e-12}).ok);
    REQUIRE(rbtest::compare(lin.grads().weight.cview(), want_dw.cview(), {1e-13, 1e-12}).ok);
    REQUIRE(rbtest::compare(lin.grads().bias.cview(), want_db.cview(), {1e-13, 1e-12}).ok);
}

TEST_CASE("MatryoshkaLinear: dense reference, finite differences, zero blocks untouched, every ISA",
          "[matryoshka][blocks]") {
    const MatryoshkaWidths widths({4, 8, 16, 24}, 24);
    blocks::MatryoshkaLinear<double> lin(widths, Rng(5));
    for (index_t o = 0; o < 24; ++o)  // the structural zeros start (and stay) zero
        for (index_t c = o < 4 ? 4 : o < 8 ? 8 : o < 16 ? 16 : 24; c < 24; ++c) REQUIRE(lin.params().weight(o, c) == 0.0);
    for (index_t m : {8, 24}) {
        Matrix<double> x(Shape<2>{{5, m}}), y(x.shape()), dy(x.shape()), dx(x.shape());
        rbtest::fill_uniform(x, 11);
        rbtest::fill_uniform(dy, 12);
        lin.forward(backend::Reference{}, x.cview(), y.view());
        REQUIRE(rbtest::compare(y.cview(), dense_nested(lin, x).cview(), {1e-13, 1e-12}).ok);
        auto loss = [&] {
            lin.forward(backend::Reference{}, x.cview(), y.view());
            double s = 0;
            for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * dy.data()[i];
            return s;
        };
        lin.zero_grads();
        lin.backward(backend::Reference{}, x.cview(), dy.cview(), dx.view());
        const Matrix<double> dw = lin.grads().weight;
        const Vector<double> db = lin.grads().bias;
        rbtest::check_fd("dx", x.data(), dx.data(), dx.numel(), loss);
        rbtest::check_fd("dW", lin.params().weight.data(), dw.data(), dw.numel(), loss, 1e-5, 3);
        rbtest::check_fd("db", lin.params().bias.data(), db.data(), db.numel(), loss);
        for (index_t o = 0; o < 24; ++o)  // no gradient above the block diagonal or past the width
            for (index_t c = 0; c < 24; ++c) {
                const index_t slice = o < 4 ? 4 : o < 8 ? 8 : o < 16 ? 16 : 24;
                if (c >= slice || o >= m) REQUIRE(dw(o, c) == 0.0);
            }
    }
    // f32 on the dispatched CPU kernels (each ISA the run forces) against the f64 reference.
    blocks::MatryoshkaLinear<float> lin32(widths, Rng(5));
    ThreadPool pool(2);
    Matrix<float> x(Shape<2>{{37, 24}}), y(x.shape()), dy(x.shape()), dx(x.shape());
    rbtest::fill_uniform(x, 21);
    rbtest::fill_uniform(dy, 22);
    lin32.forward(backend::Cpu<isa::Dispatch>{&pool}, x.cview(), y.view());
    lin32.backward(backend::Cpu<isa::Dispatch>{&pool}, x.cview(), dy.cview(), dx.view());
    Matrix<float> yr(x.shape()), dxr(x.shape());
    blocks::MatryoshkaLinear<float> ref(widths, Rng(5));
    ref.forward(backend::Reference{}, x.cview(), yr.view());
    ref.backward(backend::Reference{}, x.cview(), dy.cview(), dxr.view());
    REQUIRE(rbtest::compare(y.cview(), yr.cview(), {1e-5, 1e-5}).ok);
    REQUIRE(rbtest::compare(dx.cview(), dxr.cview(), {1e-5, 1e-5}).ok);
    REQUIRE(rbtest::compare(lin32.grads().weight.cview(), ref.grads().weight.cview(), {1e-4, 1e-5}).ok);
    Matrix<float> wrong(Shape<2>{{3, 12}});
    REQUIRE_THROWS_WITH(lin32.forward(backend::Reference{}, wrong.cview(), wrong.view()),
                        Catch::Contains("12 is not one of the nested widths"));
}
