// Tests for core/dtype.hpp (bf16 / f16 conversions, DType) and core/convert.hpp.
//
// f16 is checked bit for bit against GCC's native _Float16 (round to nearest
// even) where the compiler has it; bf16, which GCC 12 has no native type for,
// and f16 as well, are checked against an independent double-precision
// reference: the nearest representable value, ties to even.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "recblocks/core/convert.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor.hpp"

using namespace recblocks;

namespace {

// A small deterministic generator (splitmix64), independent of core/rng.hpp.
struct SplitMix64 {
    std::uint64_t s;
    std::uint64_t next() {
        std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
};

float from_bits32(std::uint32_t u) { return std::bit_cast<float>(u); }
std::uint32_t bits32(float f) { return std::bit_cast<std::uint32_t>(f); }

/// A binary floating-point format with `mant_bits` stored mantissa bits,
/// minimum normal exponent `emin` (subnormals below it) and largest finite value.
struct Format {
    int mant_bits;
    int emin;
    double max_finite;
};
constexpr Format kF16{10, -14, 65504.0};
const Format kBF16{7, -126, std::ldexp(255.0, 120)};  // (2 - 2^-7) * 2^127

/// Nearest value of `fmt` to the finite float `x`, ties to even, overflow to
/// infinity (IEEE round-to-nearest), computed in double arithmetic.
double reference_round(float x, const Format& fmt) {
    const double v = x;
    const double a = std::fabs(v);
    if (a == 0.0) return v;  // keeps the sign of zero
    int k = 0;
    (void)std::frexp(a, &k);  // a = m * 2^k, m in [0.5, 1)
    const int e = std::max(k - 1, fmt.emin);
    const double ulp = std::ldexp(1.0, e - fmt.mant_bits);
    const double q = a / ulp;  // exact: a has 24 significant bits at most
    double r = std::floor(q);
    const double frac = q - r;
    if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1.0;
    double out = r * ulp;
    if (out > fmt.max_finite) out = std::numeric_limits<double>::infinity();
    return std::copysign(out, v);
}

/// Value of an f16 bit pattern from the IEEE definition.
double f16_value(std::uint16_t h) {
    const int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double v;
    if (e == 0x1F) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (e == 0) v = std::ldexp(m, -24);
    else v = std::ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/// Value of a bf16 bit pattern from its definition (1-8-7 layout, bias 127).
double bf16_value(std::uint16_t b) {
    const int s = b >> 15, e = (b >> 7) & 0xFF, m = b & 0x7F;
    double v;
    if (e == 0xFF) v = m ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
    else if (e == 0) v = std::ldexp(m, -133);
    else v = std::ldexp(128 + m, e - 134);
    return s ? -v : v;
}

/// Whether `H::from_float(x)` is the reference rounding of `x` (NaN: stays NaN).
template <class H>
bool matches_reference(float x, const Format& fmt) {
    const std::uint16_t got = H::from_float(x);
    const float back = H::to_float(got);
    if (std::isnan(x)) return std::isnan(back);
    const double want = reference_round(x, fmt);
    return static_cast<double>(back) == want && std::signbit(back) == std::signbit(want);
}

/// The interesting inputs around every pair of adjacent finite values of a
/// 16-bit format: the exact midpoint and its float neighbours, both signs.
template <class H>
std::vector<float> halfway_inputs(std::uint16_t max_finite_bits) {
    std::vector<float> v;
    for (std::uint32_t b = 0; b <= max_finite_bits; ++b) {
        const double lo = static_cast<double>(H::to_float(static_cast<std::uint16_t>(b)));
        const double hi = b == max_finite_bits ? 2.0 * lo - static_cast<double>(H::to_float(static_cast<std::uint16_t>(b - 1)))
                                               : static_cast<double>(H::to_float(static_cast<std::uint16_t>(b + 1)));
        const float mid = static_cast<float>((lo + hi) / 2.0);  // exact in float
        for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f)}) {
            v.push_back(f);
            v.push_back(-f);
        }
    }
    return v;
}

}  // namespace

TEST_CASE("dtype: DType sizes, names and dtype_of", "[core][dtype]") {
    CHECK(dtype_size(DType::f32) == 4);
    CHECK(dtype_size(DType::f64) == 8);
    CHECK(dtype_size(DType::bf16) == 2);
    CHECK(dtype_size(DType::f16) == 2);
    CHECK(dtype_size(DType::i8) == 1);
    CHECK(dtype_size(DType::i32) == 4);
    CHECK(dtype_size(DType::i64) == 8);
    CHECK(dtype_name(DType::f32) == "F32");
    CHECK(dtype_name(DType::f64) == "F64");
    CHECK(dtype_name(DType::bf16) == "BF16");
    CHECK(dtype_name(DType::f16) == "F16");
    CHECK(dtype_name(DType::i8) == "I8");
    CHECK(dtype_name(DType::i32) == "I32");
    CHECK(dtype_name(DType::i64) == "I64");
    static_assert(dtype_of<float>() == DType::f32);
    static_assert(dtype_of<double>() == DType::f64);
    static_assert(dtype_of<bf16>() == DType::bf16);
    static_assert(dtype_of<f16>() == DType::f16);
    static_assert(dtype_of<std::int8_t>() == DType::i8);
    static_assert(dtype_of<std::int32_t>() == DType::i32);
    static_assert(dtype_of<std::int64_t>() == DType::i64);
    // dtype_size agrees with sizeof for every C++ element type.
    CHECK(dtype_size(dtype_of<bf16>()) == sizeof(bf16));
    CHECK(dtype_size(dtype_of<f16>()) == sizeof(f16));
    CHECK(dtype_size(dtype_of<double>()) == sizeof(double));
    CHECK(dtype_size(dtype_of<std::int64_t>()) == sizeof(std::int64_t));
}

TEST_CASE("dtype: bf16 and f16 basics, constexpr", "[core][dtype]") {
    static_assert(bf16::from_float(1.0f) == 0x3F80);
    static_assert(bf16::to_float(0xC000) == -2.0f);
    static_assert(f16::from_float(1.0f) == 0x3C00);
    static_assert(f16::from_float(-2.0f) == 0xC000);
    static_assert(f16::to_float(0x7BFF) == 65504.0f);
    static_assert(f16::to_float(0x0001) == 0x1.0p-24f);
    static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2);

    CHECK(static_cast<float>(bf16(3.0f)) == 3.0f);
    CHECK(static_cast<float>(f16(0.5f)) == 0.5f);
    CHECK(bf16(1.0f) == bf16::from_bits(0x3F80));
    CHECK_FALSE(f16(1.0f) == f16(2.0f));
    CHECK(bf16().bits == 0);
    CHECK(f16().bits == 0);
    CHECK(f16::from_bits(0x1234).bits == 0x1234);
}

TEST_CASE("dtype: f16 to_float matches the IEEE definition for all 2^16 patterns", "[core][dtype][f16]") {
    int bad = 0;
    for (std::uint32_t b = 0; b < 0x10000; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const float f = f16::to_float(h);
        const double want = f16_value(h);
        if (std::isnan(want) ? !std::isnan(f) : (static_cast<double>(f) != want || std::signbit(f) != bool(h >> 15)))
            ++bad;
#if defined(__FLT16_MAX__)
        const auto native = std::bit_cast<_Float16>(h);
        const float nf = static_cast<float>(native);
        if (std::isnan(nf) ? !std::isnan(f) : bits32(nf) != bits32(f)) ++bad;
#endif
    }
    CHECK(bad == 0);
}

TEST_CASE("dtype: f16 round trip of all 2^16 patterns is exact, NaN stays NaN", "[core][dtype][f16]") {
    int bad = 0, nans = 0;
    for (std::uint32_t b = 0; b < 0x10000; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const float f = f16::to_float(h);
        const std::uint16_t back = f16::from_float(f);
        if (std::isnan(f)) {
            ++nans;
            if (!std::isnan(f16::to_float(back))) ++bad;
            if ((back & 0x8000) != (h & 0x8000)) ++bad;  // sign kept
        } else if (back != h) {
            ++bad;
        }
    }
    CHECK(nans == 2 * 1023);
    CHECK(bad == 0);
}

#if defined(__FLT16_MAX__)
namespace {
/// from_float against GCC's _Float16 conversion (round to nearest even).
bool matches_native_f16(float x) {
    const std::uint16_t got = f16::from_float(x);
    const _Float16 n = static_cast<_Float16>(x);
    if (std::isnan(x)) return std::isnan(f16::to_float(got)) && std::isnan(static_cast<float>(n));
    return got == std::bit_cast<std::uint16_t>(n);
}
}  // namespace

TEST_CASE("dtype: f16 from_float matches native _Float16 bit for bit", "[core][dtype][f16]") {
    SplitMix64 rng{0xF16F16};
    int bad = 0;
    std::uint32_t first_bad = 0;
    auto check = [&](float x) {
        if (!matches_native_f16(x) && bad++ == 0) first_bad = bits32(x);
    };
    // (a) every f16 value converted to float and back (also through _Float16).
    for (std::uint32_t b = 0; b < 0x10000; ++b) check(f16::to_float(static_cast<std::uint16_t>(b)));
    // (b) random float bit patterns over the whole float range...
    for (int i = 0; i < 1'000'000; ++i) check(from_bits32(static_cast<std::uint32_t>(rng.next())));
    // ... and random floats whose exponent lies in and around f16's range.
    for (int i = 0; i < 1'000'000; ++i) {
        const std::uint64_t r = rng.next();
        const std::uint32_t exp = 127 - 27 + static_cast<std::uint32_t>((r >> 32) % 45);  // 2^-27 .. 2^17
        check(from_bits32((static_cast<std::uint32_t>(r) & 0x807FFFFFu) | (exp << 23)));
    }
    // (c) every halfway point between adjacent f16 values and its neighbours.
    for (float x : halfway_inputs<f16>(0x7BFF)) check(x);
    // (d) special values.
    const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                              from_bits32(0x7F800001u) /* signalling NaN */, from_bits32(0xFFC00001u),
                              65504.0f, 65519.99f, 65520.0f, -65520.0f, 65536.0f, 1e10f,
                              std::numeric_limits<float>::max(), 0x1.0p-24f, 0x1.0p-25f, 0x1.000002p-25f,
                              0x1.8p-25f, 0x1.0p-26f, 0x1.0p-30f, 0x1.0p-14f, 0x1.ff8p-15f, 0x1.ffcp-15f,
                              std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min()};
    for (float x : specials) check(x);
    INFO("first mismatching float bits: 0x" << std::hex << first_bad);
    CHECK(bad == 0);
}
#endif

TEST_CASE("dtype: f16 from_float matches a double-precision reference", "[core][dtype][f16]") {
    SplitMix64 rng{12345};
    int bad = 0;
    std::uint32_t first_bad = 0;
    auto check = [&](float x) {
        if (!matches_reference<f16>(x, kF16) && bad++ == 0) first_bad = bits32(x);
    };
    for (int i = 0; i < 200'000; ++i) {
        const std::uint64_t r = rng.next();
        const std::uint32_t exp = 127 - 27 + static_cast<std::uint32_t>((r >> 32) % 45);
        check(from_bits32((static_cast<std::uint32_t>(r) & 0x807FFFFFu) | (exp << 23)));
    }
    for (int i = 0; i < 200'000; ++i) check(from_bits32(static_cast<std::uint32_t>(rng.next())));
    for (float x : halfway_inputs<f16>(0x7BFF)) check(x);
    INFO("first mismatching float bits: 0x" << std::hex << first_bad);
    CHECK(bad == 0);
}

TEST_CASE("dtype: f16 special values", "[core][dtype][f16]") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(f16::from_float(0.0f) == 0x0000);
    CHECK(f16::from_float(-0.0f) == 0x8000);
    CHECK(f16::from_float(inf) == 0x7C00);
    CHECK(f16::from_float(-inf) == 0xFC00);
    CHECK(f16::from_float(65504.0f) == 0x7BFF);
    CHECK(f16::from_float(65519.99f) == 0x7BFF);
    CHECK(f16::from_float(65520.0f) == 0x7C00);  // halfway to 2^16: ties to even -> inf
    CHECK(f16::from_float(-65520.0f) == 0xFC00);
    CHECK(f16::from_float(1e20f) == 0x7C00);
    CHECK(f16::from_float(0x1.0p-24f) == 0x0001);    // smallest subnormal
    CHECK(f16::from_float(0x1.0p-25f) == 0x0000);    // halfway to 0: ties to even -> 0
    CHECK(f16::from_float(-0x1.0p-25f) == 0x8000);
    CHECK(f16::from_float(0x1.000002p-25f) == 0x0001);  // just above halfway
    CHECK(f16::from_float(0x1.8p-24f) == 0x0002);    // 1.5 ulp: ties to even -> 2
    CHECK(f16::from_float(0x1.4p-23f) == 0x0002);    // 2.5 ulp: ties to even -> 2
    CHECK(f16::from_float(0x1.0p-30f) == 0x0000);    // far below 2^-25
    CHECK(f16::from_float(std::numeric_limits<float>::denorm_min()) == 0x0000);
    CHECK(f16::from_float(0x1.ffcp-15f) == 0x0400);  // rounds up from subnormal to smallest normal
    CHECK(f16::from_float(1.0f + 0x1.0p-11f) == 0x3C00);  // halfway, even below
    CHECK(f16::from_float(1.0f + 3 * 0x1.0p-11f) == 0x3C02);  // halfway, even above
    CHECK(f16::from_float(2047.5f) == 0x6800);  // 2047.5 -> 2048 (ties to even)
    for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFFC00000u, 0x7FFFFFFFu, 0xFF800001u}) {
        const std::uint16_t h = f16::from_float(from_bits32(nan));
        CHECK((h & 0x7C00) == 0x7C00);
        CHECK((h & 0x03FF) != 0);      // NaN, not inf
        CHECK((h & 0x0200) != 0);      // quiet
        CHECK((h >> 15) == (nan >> 31));  // sign kept
    }
}

TEST_CASE("dtype: bf16 to_float matches the definition; all 2^16 patterns round trip", "[core][dtype][bf16]") {
    int bad = 0, nans = 0;
    for (std::uint32_t b = 0; b < 0x10000; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const float f = bf16::to_float(h);
        const double want = bf16_value(h);
        if (std::isnan(want)) {
            ++nans;
            if (!std::isnan(f)) ++bad;
            const std::uint16_t back = bf16::from_float(f);
            if (!std::isnan(bf16::to_float(back)) || (back & 0x8000) != (h & 0x8000)) ++bad;
        } else {
            if (static_cast<double>(f) != want || std::signbit(f) != bool(h >> 15)) ++bad;
            if (bf16::from_float(f) != h) ++bad;
        }
    }
    CHECK(nans == 2 * 127);
    CHECK(bad == 0);
}

TEST_CASE("dtype: bf16 from_float matches a double-precision reference (ties to even)", "[core][dtype][bf16]") {
    SplitMix64 rng{0xBF16};
    int bad = 0;
    std::uint32_t first_bad = 0;
    auto check = [&](float x) {
        if (!matches_reference<bf16>(x, kBF16) && bad++ == 0) first_bad = bits32(x);
    };
    for (int i = 0; i < 1'000'000; ++i) check(from_bits32(static_cast<std::uint32_t>(rng.next())));
    // Halfway points between all adjacent finite bf16 values (subnormals included)
    // and their float neighbours: midpoint of b and b+1 is (b << 16) | 0x8000.
    for (std::uint32_t b = 0; b <= 0x7F7F; ++b) {
        const std::uint32_t mid = (b << 16) | 0x8000u;
        for (std::uint32_t u : {mid, mid - 1, mid + 1, b << 16, (b << 16) + 1}) {
            check(from_bits32(u));
            check(from_bits32(u | 0x80000000u));
        }
    }
    INFO("first mismatching float bits: 0x" << std::hex << first_bad);
    CHECK(bad == 0);
}

TEST_CASE("dtype: bf16 special values", "[core][dtype][bf16]") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(bf16::from_float(0.0f) == 0x0000);
    CHECK(bf16::from_float(-0.0f) == 0x8000);
    CHECK(bf16::from_float(inf) == 0x7F80);
    CHECK(bf16::from_float(-inf) == 0xFF80);
    CHECK(bf16::from_float(1.0f + 0x1.0p-8f) == 0x3F80);      // halfway, even below
    CHECK(bf16::from_float(1.0f + 3 * 0x1.0p-8f) == 0x3F82);  // halfway, even above
    CHECK(bf16::from_float(1.0f + 0x1.02p-8f) == 0x3F81);     // just above halfway
    CHECK(bf16::to_float(0x7F7F) == 0x1.FEp127f);  // largest finite bf16, ~3.3895e38
    CHECK(bf16::from_float(0x1.FFp127f) == 0x7F80);  // exact halfway above the largest finite (3.39617753e38): ties to even -> inf
    CHECK(bf16::from_float(3.3962e38f) == 0x7F80);
    CHECK(bf16::from_float(3.3961e38f) == 0x7F7F);  // 3.3961e38 lies below halfway: rounds to the max finite
    CHECK(bf16::from_float(from_bits32(0x7F7F7FFFu)) == 0x7F7F);
    CHECK(bf16::from_float(std::numeric_limits<float>::max()) == 0x7F80);
    CHECK(bf16::from_float(-std::numeric_limits<float>::max()) == 0xFF80);
    CHECK(bf16::from_float(std::numeric_limits<float>::denorm_min()) == 0x0000);
    CHECK(bf16::from_float(from_bits32(0x00018000u)) == 0x0002);  // subnormal halfway, ties to even
    for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7F810000u, 0xFFC00000u, 0xFF800001u, 0x7FFFFFFFu}) {
        const std::uint16_t h = bf16::from_float(from_bits32(nan));
        CHECK((h & 0x7F80) == 0x7F80);
        CHECK((h & 0x007F) != 0);         // NaN, not inf
        CHECK((h & 0x0040) != 0);         // quiet
        CHECK((h >> 15) == (nan >> 31));  // sign kept
    }
}

TEST_CASE("convert: f32 -> bf16 / f16 -> f32 matrices", "[core][dtype][convert]") {
    Matrix<float> src(Shape<2>{{3, 5}});
    SplitMix64 rng{7};
    for (float& x : src) x = static_cast<float>(static_cast<std::int64_t>(rng.next() % 2000001) - 1000000) * 1e-3f;
    src(0, 0) = 1.0f + 0x1.0p-8f;  // a bf16 tie
    src(0, 1) = -0.0f;

    Matrix<bf16> b(src.shape());
    convert<float, bf16, 2>(src.cview(), b.view());
    Matrix<float> back(src.shape());
    convert<bf16, float, 2>(b.cview(), back.view());
    for (index_t r = 0; r < 3; ++r)
        for (index_t c = 0; c < 5; ++c) {
            CHECK(b(r, c).bits == bf16::from_float(src(r, c)));
            CHECK(back(r, c) == bf16::to_float(bf16::from_float(src(r, c))));
            CHECK(std::fabs(back(r, c) - src(r, c)) <= std::fabs(src(r, c)) * 0x1.0p-8f);
        }
    CHECK(b(0, 0).bits == 0x3F80);
    CHECK(b(0, 1).bits == 0x8000);

    Matrix<f16> h(src.shape());
    convert<float, f16, 2>(src.cview(), h.view());
    Matrix<double> d(src.shape());
    convert<f16, double, 2>(h.cview(), d.view());
    for (index_t r = 0; r < 3; ++r)
        for (index_t c = 0; c < 5; ++c) {
            CHECK(h(r, c).bits == f16::from_float(src(r, c)));
            CHECK(d(r, c) == static_cast<double>(f16::to_float(h(r, c).bits)));
        }

    // Deduced template arguments with const source views.
    MatrixView<const float> cs = src.view();
    Matrix<double> wide(src.shape());
    convert(cs, wide.view());
    CHECK(wide(2, 4) == static_cast<double>(src(2, 4)));
}

TEST_CASE("convert: shape mismatch and non-contiguous views are ShapeErrors", "[core][dtype][convert]") {
    Matrix<float> src(Shape<2>{{3, 4}});
    Matrix<bf16> wrong(Shape<2>{{4, 3}});
    CHECK_THROWS_AS((convert<float, bf16, 2>(src.cview(), wrong.view())), ShapeError);
    CHECK_THROWS_WITH((convert<float, bf16, 2>(src.cview(), wrong.view())),
                      Catch::Matchers::Contains("[3, 4]") && Catch::Matchers::Contains("[4, 3]"));
    std::vector<bf16> padded(3 * 8);
    auto strided = matrix_view(padded.data(), 3, 4, 8);
    CHECK_THROWS_AS((convert<float, bf16, 2>(src.cview(), strided)), ShapeError);
}
