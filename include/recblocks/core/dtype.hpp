#pragma once
// Storage types: bf16 and f16 (IEEE binary16) with round-to-nearest-even
// conversions from float, exact conversions to float, and a runtime DType tag.
//
// bf16 is the top half of an f32: same exponent range, 8 bits of mantissa.
// f16 has 5 exponent bits (max 65504, subnormals below 2^-14) and 11 bits of
// mantissa. NaN stays NaN (quiet); overflow rounds to infinity as IEEE says.
#include <bit>
#include <cstdint>
#include <string_view>

#include "recblocks/version.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Brain float 16: the upper 16 bits of an IEEE f32.
struct bf16 {
    std::uint16_t bits = 0;

    constexpr bf16() = default;
    /// Round-to-nearest-even from float.
    constexpr explicit bf16(float f) : bits(from_float(f)) {}
    constexpr explicit operator float() const { return to_float(bits); }

    static constexpr bf16 from_bits(std::uint16_t b) {
        bf16 r;
        r.bits = b;
        return r;
    }
    static constexpr std::uint16_t from_float(float f) {
        const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
        if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
        const std::uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);  // ties to even
        return static_cast<std::uint16_t>((u + rounding) >> 16);
    }
    static constexpr float to_float(std::uint16_t b) { return std::bit_cast<float>(std::uint32_t{b} << 16); }
    friend constexpr bool operator==(bf16 a, bf16 b) { return a.bits == b.bits; }
};

/// IEEE 754 binary16.
struct f16 {
    std::uint16_t bits = 0;

    constexpr f16() = default;
    /// Round-to-nearest-even from float (subnormals and overflow to inf included).
    constexpr explicit f16(float f) : bits(from_float(f)) {}
    constexpr explicit operator float() const { return to_float(bits); }

    static constexpr f16 from_bits(std::uint16_t b) {
        f16 r;
        r.bits = b;
        return r;
    }

    static constexpr std::uint16_t from_float(float f) {
        const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
        const std::uint32_t sign = (u >> 16) & 0x8000u;
        const std::uint32_t abs = u & 0x7FFFFFFFu;
        if (abs > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));  // NaN
        if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to >= 65520: inf
        if (abs >= 0x38800000u) {
            // Normal f16: rebias the exponent (127 -> 15) and round 13 mantissa bits away.
            const std::uint32_t rebased = abs - 0x38000000u;
            const std::uint32_t rounding = 0xFFFu + ((rebased >> 13) & 1u);
            return static_cast<std::uint16_t>(sign | ((rebased + rounding) >> 13));
        }
        if (abs < 0x33000000u) return static_cast<std::uint16_t>(sign);  // below half the smallest subnormal
        // Subnormal f16: value = m * 2^-24 with m in [1, 1023]; shift the full
        // 24-bit significand into place and round to nearest even.
        const std::uint32_t exp = abs >> 23;
        const std::uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
        const std::uint32_t shift = 126u - exp;  // 14..24
        const std::uint32_t half = 1u << (shift - 1);
        const std::uint32_t rem = mant & ((1u << shift) - 1u);
        std::uint32_t q = mant >> shift;
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return static_cast<std::uint16_t>(sign | q);
    }

    static constexpr float to_float(std::uint16_t h) {
        const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
        const std::uint32_t exp = (h >> 10) & 0x1Fu;
        const std::uint32_t mant = h & 0x3FFu;
        if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / NaN
        if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
        // Subnormal or zero: mant * 2^-24, exact in float.
        const float v = static_cast<float>(mant) * 0x1.0p-24f;
        return sign ? -v : v;
    }
    friend constexpr bool operator==(f16 a, f16 b) { return a.bits == b.bits; }
};

/// Runtime tag for the element types recblocks stores.
enum class DType : std::uint8_t { f32, f64, bf16, f16, i8, i32, i64 };

/// Bytes per element of `t`.
constexpr std::size_t dtype_size(DType t) {
    switch (t) {
        case DType::f64:
        case DType::i64: return 8;
        case DType::f32:
        case DType::i32: return 4;
        case DType::bf16:
        case DType::f16: return 2;
        case DType::i8: return 1;
    }
    return 0;
}

/// Name as used in safetensors headers ("F32", "BF16", ...).
constexpr std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::f32: return "F32";
        case DType::f64: return "F64";
        case DType::bf16: return "BF16";
        case DType::f16: return "F16";
        case DType::i8: return "I8";
        case DType::i32: return "I32";
        case DType::i64: return "I64";
    }
    return "?";
}

/// The DType of a C++ element type.
template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }
template <> constexpr DType dtype_of<std::int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }

RECBLOCKS_NAMESPACE_END
