// Bad input to every public ops:: entry point gets a named error that says
// what was found and what was expected — and leaves outputs untouched.
#include <catch2/catch.hpp>

#include <limits>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/top_k.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {
template <class Be>
void check_all(const Be& be) {
    Matrix<float> a(Shape<2>{{4, 3}}), b(Shape<2>{{5, 2}}), c(Shape<2>{{4, 2}});
    SECTION("gemm inner dimension") {
        REQUIRE_THROWS_MATCHES(ops::gemm(be, Trans::no, Trans::no, 1.0f, a.view(), b.view(), 0.0f, c.view()),
                               ShapeError, Catch::Message("[recblocks.shape] ops::gemm: op(a) is [4, 3] and op(b) is [5, 2]; inner dimensions differ"));
    }
    SECTION("gemm output shape") {
        Matrix<float> b2(Shape<2>{{3, 2}}), c2(Shape<2>{{4, 3}});
        REQUIRE_THROWS_WITH(ops::gemm(be, Trans::no, Trans::no, 1.0f, a.view(), b2.view(), 0.0f, c2.view()),
                            Contains("c is [4, 3] but op(a) * op(b) is [4, 2]"));
    }
    SECTION("gemm overlapping rows") {
        Matrix<float> b2(Shape<2>{{3, 2}});
        auto bad = matrix_view(c.data(), 4, 2, 1);
        REQUIRE_THROWS_AS(ops::gemm(be, Trans::no, Trans::no, 1.0f, a.view(), b2.view(), 0.0f, bad), ShapeError);
    }
    SECTION("gemm_batched batch sizes") {
        Tensor<float, 3> x(Shape<3>{{2, 3, 3}}), y(Shape<3>{{3, 3, 3}}), z(Shape<3>{{2, 3, 3}});
        REQUIRE_THROWS_WITH(ops::gemm_batched(be, Trans::no, Trans::no, 1.0f, x.view(), y.view(), 0.0f, z.view()),
                            Contains("batch sizes differ"));
    }
    SECTION("dot and axpy lengths") {
        Vector<float> x(Shape<1>{{3}}), y(Shape<1>{{4}});
        REQUIRE_THROWS_WITH(ops::dot(be, x.view(), y.view()), Contains("ops::dot: y has 4 entries but x has 3"));
        REQUIRE_THROWS_AS(ops::axpy(be, 1.0f, x.view(), y.view()), ShapeError);
    }
    SECTION("softmax shapes and mask") {
        Matrix<float> y(Shape<2>{{4, 2}});
        REQUIRE_THROWS_WITH(ops::softmax_rows(be, a.view(), y.view()), Contains("y is [4, 2] but x is [4, 3]"));
        Matrix<std::uint8_t> m(Shape<2>{{4, 4}});
        Matrix<float> y2(Shape<2>{{4, 3}});
        REQUIRE_THROWS_WITH(ops::softmax_rows(be, a.view(), y2.view(), m.cview()), Contains("mask is [4, 4]"));
        REQUIRE_THROWS_AS(ops::softmax_rows_backward(be, a.view(), y.view(), y2.view()), ShapeError);
    }
    SECTION("layer norm parameters and eps") {
        Vector<float> g(Shape<1>{{2}}), bt(Shape<1>{{3}}), g3(Shape<1>{{3}});
        Matrix<float> y(Shape<2>{{4, 3}});
        REQUIRE_THROWS_WITH(ops::layer_norm_forward(be, a.view(), g.view(), bt.view(), 1e-5f, y.view()),
                            Contains("gamma has 2 entries but the row width D of x is 3"));
        REQUIRE_THROWS_AS(ops::layer_norm_forward(be, a.view(), g3.view(), bt.view(), 0.0f, y.view()), ValueError);
        Vector<float> mean(Shape<1>{{3}});
        REQUIRE_THROWS_WITH(ops::layer_norm_forward(be, a.view(), g3.view(), bt.view(), 1e-5f, y.view(), mean.view()),
                            Contains("mean has 3 entries but the row count of x is 4"));
        Vector<float> m4(Shape<1>{{4}}), r4(Shape<1>{{4}}), dg(Shape<1>{{3}}), db(Shape<1>{{2}});
        REQUIRE_THROWS_WITH(ops::layer_norm_backward(be, a.view(), g3.view(), m4.view(), r4.view(), a.view(), y.view(),
                                                     dg.view(), db.view()),
                            Contains("dbeta has 2 entries"));
    }
    SECTION("activation shapes") {
        Matrix<float> y(Shape<2>{{3, 4}});
        REQUIRE_THROWS_AS(ops::gelu_forward(be, a.view(), y.view()), ShapeError);
        REQUIRE_THROWS_AS(ops::relu_backward(be, a.view(), a.view(), y.view()), ShapeError);
    }
    SECTION("gather and scatter-add ids out of range leave outputs untouched") {
        Matrix<float> table(Shape<2>{{5, 3}}), out(Shape<2>{{3, 3}});
        Vector<row_id_t> ids(Shape<1>{{3}});
        ids(0) = 1;
        ids(1) = 5;
        ids(2) = 0;
        out(0, 0) = 42.0f;
        REQUIRE_THROWS_MATCHES(ops::gather_rows(be, table.view(), ids.cview(), out.view()), IndexError,
                               Catch::Message("[recblocks.index] ops::gather_rows: ids[1] = 5 is out of range for a table of 5 rows"));
        REQUIRE(out(0, 0) == 42.0f);
        ids(1) = -1;
        REQUIRE_THROWS_WITH(ops::scatter_add_rows(be, out.view(), ids.cview(), table.view()), Contains("ids[1] = -1"));
        REQUIRE(table(1, 0) == 0.0f);
        Matrix<float> wrong(Shape<2>{{2, 3}});
        ids(1) = 2;
        REQUIRE_THROWS_WITH(ops::gather_rows(be, table.view(), ids.cview(), wrong.view()),
                            Contains("out is [2, 3] but expected [3, 3]"));
    }
    SECTION("top-k k range, shapes and NaN") {
        Matrix<float> s(Shape<2>{{2, 5}});
        Matrix<row_id_t> ids(Shape<2>{{2, 3}});
        Matrix<float> vals(Shape<2>{{2, 3}});
        REQUIRE_THROWS_WITH(ops::top_k_rows(be, s.view(), 6, ids.view(), vals.view()), Contains("k = 6 but rows have 5"));
        REQUIRE_THROWS_AS(ops::top_k_rows(be, s.view(), 0, ids.view(), vals.view()), ValueError);
        REQUIRE_THROWS_WITH(ops::top_k_rows(be, s.view(), 2, ids.view(), vals.view()), Contains("ids is [2, 3] but expected [2, 2]"));
        s(1, 4) = std::numeric_limits<float>::quiet_NaN();
        REQUIRE_THROWS_MATCHES(ops::top_k_rows(be, s.view(), 3, ids.view(), vals.view()), ValueError,
                               Catch::Message("[recblocks.value] ops::top_k_rows: row 1 of scores contains NaN"));
    }
    SECTION("reductions") {
        Vector<float> out(Shape<1>{{2}});
        REQUIRE_THROWS_WITH(ops::sum_rows(be, a.view(), out.view()), Contains("out has 2 entries but the column count of x is 3"));
        Matrix<float> nan(Shape<2>{{3, 20}});
        nan(2, 17) = std::numeric_limits<float>::quiet_NaN();
        REQUIRE(std::isnan(ops::max_value(be, nan.view())));
        Matrix<float> empty(Shape<2>{{0, 3}});
        REQUIRE(ops::sum(be, empty.view()) == 0.0f);
        REQUIRE(ops::max_value(be, empty.view()) == -std::numeric_limits<float>::infinity());
    }
}
}  // namespace

TEST_CASE("ops reject bad input on the Reference backend", "[ops][errors]") { check_all(backend::Reference{}); }
TEST_CASE("ops reject bad input on the CPU backend", "[ops][errors]") { check_all(backend::Cpu<isa::Dispatch>{}); }

TEST_CASE("forcing an ISA the CPU lacks is a BackendError", "[ops][errors]") {
    if (detected_isa() != IsaLevel::avx512) {
        Matrix<float> x(Shape<2>{{1, 4}}), y(Shape<2>{{1, 4}});
        REQUIRE_THROWS_AS(ops::softmax_rows(backend::Cpu<isa::Avx512>{}, x.view(), y.view()), BackendError);
    }
    REQUIRE_THROWS_AS(parse_isa("avx9000"), ValueError);
}
