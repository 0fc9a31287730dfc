#pragma once
// The library's own CPU detection (xsimd 8.1's misreports AVX and ignores
// OS-disabled state). Uses GCC/Clang's __builtin_cpu_supports, which checks
// both CPUID and the OS-enabled register state (XGETBV).
//
// RECBLOCKS_FORCE_ISA=sse2|avx2|avx512 lowers the chosen level, so the tests
// can run every kernel set the machine supports.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/error.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Instruction-set levels with a kernel set of their own.
enum class IsaLevel : int {
    sse2 = 0,    ///< x86-64 baseline
    avx2 = 1,    ///< AVX2 + FMA3
    avx512 = 2,  ///< AVX-512 F, CD, BW, DQ, VL
};

constexpr std::string_view isa_name(IsaLevel l) {
    switch (l) {
        case IsaLevel::sse2: return "sse2";
        case IsaLevel::avx2: return "avx2";
        case IsaLevel::avx512: return "avx512";
    }
    return "?";
}

/// Parses "sse2" / "avx2" / "avx512"; throws ValueError otherwise.
inline IsaLevel parse_isa(std::string_view s) {
    if (s == "sse2") return IsaLevel::sse2;
    if (s == "avx2") return IsaLevel::avx2;
    if (s == "avx512") return IsaLevel::avx512;
    throw ValueError(detail::concat("unknown ISA '", s, "'; expected sse2, avx2 or avx512"));
}

/// The highest level this CPU (and OS) supports.
inline IsaLevel detected_isa() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd"))
        return IsaLevel::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return IsaLevel::avx2;
#endif
    return IsaLevel::sse2;
}

/// Every level this CPU supports, lowest first.
inline std::vector<IsaLevel> supported_isas() {
    std::vector<IsaLevel> out;
    for (int l = 0; l <= static_cast<int>(detected_isa()); ++l) out.push_back(static_cast<IsaLevel>(l));
    return out;
}

/// The level runtime dispatch uses: detected_isa(), or RECBLOCKS_FORCE_ISA
/// when set. Forcing a level the CPU lacks throws BackendError.
inline IsaLevel active_isa() {
    const IsaLevel best = detected_isa();
    const char* env = std::getenv("RECBLOCKS_FORCE_ISA");
    if (!env || !*env) return best;
    const IsaLevel forced = parse_isa(env);
    if (static_cast<int>(forced) > static_cast<int>(best))
        throw BackendError(detail::concat("RECBLOCKS_FORCE_ISA=", env, " but this CPU supports at most ",
                                          isa_name(best)));
    return forced;
}

RECBLOCKS_NAMESPACE_END
