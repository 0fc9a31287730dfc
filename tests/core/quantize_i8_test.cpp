// Tests for core/quantize_i8.hpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "recblocks/core/error.hpp"
#include "recblocks/core/quantize_i8.hpp"
#include "recblocks/core/tensor.hpp"

using namespace recblocks;

namespace {
struct Lcg {
    std::uint64_t s;
    float next(float lo, float hi) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return lo + (hi - lo) * static_cast<float>(s >> 40) * 0x1.0p-24f;
    }
};

struct Quantized {
    Matrix<std::int8_t> codes;
    Vector<float> scales;
    Matrix<float> back;
};

Quantized round_trip(const Matrix<float>& x) {
    Quantized q{Matrix<std::int8_t>(x.shape()), Vector<float>(Shape<1>{{x.extent(0)}}), Matrix<float>(x.shape())};
    quantize_rows_i8(x.view(), q.codes.view(), q.scales.view());
    dequantize_rows_i8(q.codes.cview(), q.scales.cview(), q.back.view());
    return q;
}
}  // namespace

TEST_CASE("quantize_i8: error <= scale/2, max-abs maps to +-127", "[core][quantize]") {
    const index_t R = 17, C = 67;
    Matrix<float> x(Shape<2>{{R, C}});
    Lcg rng{42};
    for (index_t r = 0; r < R; ++r) {
        const float mag = std::ldexp(1.0f, static_cast<int>(r) - 8);  // rows span 2^-8 .. 2^8
        for (index_t c = 0; c < C; ++c) x(r, c) = rng.next(-mag, mag);
    }
    x(3, 5) = -40.0f;   // the row's max-abs element is negative
    x(4, 66) = 1e30f;   // a huge row maximum
    const auto q = round_trip(x);

    for (index_t r = 0; r < R; ++r) {
        float amax = 0.0f;
        index_t arg = 0;
        for (index_t c = 0; c < C; ++c)
            if (std::fabs(x(r, c)) > amax) amax = std::fabs(x(r, c)), arg = c;
        const float scale = q.scales(r);
        CHECK(scale == amax / 127.0f);
        CHECK(q.codes(r, arg) == (x(r, arg) > 0 ? 127 : -127));
        int worst_ok = 1;
        for (index_t c = 0; c < C; ++c) {
            const float err = std::fabs(q.back(r, c) - x(r, c));
            // scale/2 plus the float rounding of x/scale and q*scale (a few ulps of |x|).
            const float bound = scale / 2 * (1 + 1e-6f) + std::fabs(x(r, c)) * 4e-7f;
            if (!(err <= bound)) worst_ok = 0;
            const int code = q.codes(r, c);
            if (code < -127 || code > 127) worst_ok = 0;
            if (q.back(r, c) != static_cast<float>(code) * scale) worst_ok = 0;
        }
        INFO("row " << r);
        CHECK(worst_ok == 1);
    }
    CHECK(q.codes(3, 5) == -127);
    CHECK(q.codes(4, 66) == 127);
    CHECK(q.back(4, 66) == Approx(1e30f).epsilon(1e-6));
}

TEST_CASE("quantize_i8: a zero row gets scale 0 and codes 0", "[core][quantize]") {
    Matrix<float> x(Shape<2>{{3, 4}});
    x(0, 1) = 2.0f;
    x(2, 3) = -0.0f;  // row 2 is all (signed) zeros, row 1 all zeros
    const auto q = round_trip(x);
    CHECK(q.scales(0) == 2.0f / 127.0f);
    CHECK(q.codes(0, 1) == 127);
    CHECK(q.codes(0, 0) == 0);
    for (index_t r : {1, 2}) {
        CHECK(q.scales(r) == 0.0f);
        for (index_t c = 0; c < 4; ++c) {
            CHECK(q.codes(r, c) == 0);
            CHECK(q.back(r, c) == 0.0f);
        }
    }
}

TEST_CASE("quantize_i8: exact halves round to even", "[core][quantize]") {
    // Max-abs 127 gives scale exactly 1, so x / scale is x itself.
    Matrix<float> x(Shape<2>{{1, 12}});
    const float vals[] = {127.0f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, -0.5f, 1.5f, 126.5f, -125.5f, 2.4999998f, 2.5000002f};
    const int want[] = {127, 2, 4, -2, -4, 0, 0, 2, 126, -126, 2, 3};
    for (index_t c = 0; c < 12; ++c) x(0, c) = vals[c];
    const auto q = round_trip(x);
    REQUIRE(q.scales(0) == 1.0f);
    for (index_t c = 0; c < 12; ++c) {
        INFO("x = " << vals[c]);
        CHECK(static_cast<int>(q.codes(0, c)) == want[c]);
    }

    // Scale 0.5 (max-abs 63.5): x = 1.25 is 2.5 steps -> 2; x = 1.75 is 3.5 steps -> 4.
    Matrix<float> y(Shape<2>{{1, 3}});
    y(0, 0) = 63.5f;
    y(0, 1) = 1.25f;
    y(0, 2) = -1.75f;
    const auto qy = round_trip(y);
    REQUIRE(qy.scales(0) == 0.5f);
    CHECK(qy.codes(0, 1) == 2);
    CHECK(qy.codes(0, 2) == -4);
}

TEST_CASE("quantize_i8: strided inputs and outputs", "[core][quantize]") {
    std::vector<float> big(4 * 10, 1000.0f);  // padding that must be ignored
    auto x = matrix_view(big.data(), 4, 6, 10);
    for (index_t r = 0; r < 4; ++r)
        for (index_t c = 0; c < 6; ++c) x(r, c) = static_cast<float>((r + 1) * (c - 2));
    std::vector<std::int8_t> cbuf(4 * 8, 99);
    auto codes = matrix_view(cbuf.data(), 4, 6, 8);
    std::vector<float> scales(4);
    quantize_rows_i8(MatrixView<const float>(x), codes, vector_view(scales.data(), 4));
    for (index_t r = 0; r < 4; ++r) {
        CHECK(scales[static_cast<std::size_t>(r)] == static_cast<float>(3 * (r + 1)) / 127.0f);
        CHECK(codes(r, 5) == 127);
        CHECK(codes(r, 2) == 0);
        CHECK(cbuf[static_cast<std::size_t>(r * 8 + 6)] == 99);  // padding untouched
    }
    std::vector<float> out(4 * 7, -1.0f);
    auto xo = matrix_view(out.data(), 4, 6, 7);
    dequantize_rows_i8(MatrixView<const std::int8_t>(codes), VectorView<const float>(vector_view(scales.data(), 4)), xo);
    CHECK(xo(3, 5) == Approx(12.0f).epsilon(1e-6));
    CHECK(out[6] == -1.0f);  // padding untouched
}

TEST_CASE("quantize_i8: NaN and Inf are ValueErrors that name the position", "[core][quantize]") {
    Matrix<float> x(Shape<2>{{3, 4}});
    Matrix<std::int8_t> codes(x.shape());
    Vector<float> scales(Shape<1>{{3}});
    x(1, 2) = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(quantize_rows_i8(x.view(), codes.view(), scales.view()), ValueError);
    CHECK_THROWS_WITH(quantize_rows_i8(x.view(), codes.view(), scales.view()),
                      Catch::Matchers::StartsWith("[recblocks.value]") && Catch::Matchers::Contains("x[1, 2]"));
    x(1, 2) = 0.0f;
    x(2, 0) = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(quantize_rows_i8(x.view(), codes.view(), scales.view()), Catch::Matchers::Contains("x[2, 0]"));
    x(2, 0) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_AS(quantize_rows_i8(x.view(), codes.view(), scales.view()), ValueError);
    x(2, 0) = 1.0f;
    CHECK_NOTHROW(quantize_rows_i8(x.view(), codes.view(), scales.view()));
}

TEST_CASE("quantize_i8: shape mismatches are ShapeErrors", "[core][quantize]") {
    Matrix<float> x(Shape<2>{{3, 4}});
    Matrix<std::int8_t> codes(x.shape()), bad_codes(Shape<2>{{3, 5}});
    Vector<float> scales(Shape<1>{{3}}), bad_scales(Shape<1>{{2}});
    CHECK_THROWS_AS(quantize_rows_i8(x.view(), bad_codes.view(), scales.view()), ShapeError);
    CHECK_THROWS_WITH(quantize_rows_i8(x.view(), bad_codes.view(), scales.view()),
                      Catch::Matchers::Contains("[3, 5]") && Catch::Matchers::Contains("[3, 4]"));
    CHECK_THROWS_AS(quantize_rows_i8(x.view(), codes.view(), bad_scales.view()), ShapeError);
    CHECK_THROWS_AS(dequantize_rows_i8(bad_codes.cview(), scales.cview(), x.view()), ShapeError);
    CHECK_THROWS_AS(dequantize_rows_i8(codes.cview(), bad_scales.cview(), x.view()), ShapeError);
    CHECK_NOTHROW(dequantize_rows_i8(codes.cview(), scales.cview(), x.view()));

    // Empty matrices are fine.
    Matrix<float> e(Shape<2>{{0, 4}});
    Matrix<std::int8_t> ec(e.shape());
    Vector<float> es(Shape<1>{{0}});
    CHECK_NOTHROW(quantize_rows_i8(e.view(), ec.view(), es.view()));
}
