// Configure-time probe: prints the highest recblocks ISA level this machine
// (CPU and OS) supports. Keep the criteria identical to detected_isa() in
// include/recblocks/backend/cpu/cpu_features.hpp.
#include <cstdio>

int main() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512cd")) {
        std::puts("avx512");
        return 0;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        std::puts("avx2");
        return 0;
    }
#endif
    std::puts("sse2");
    return 0;
}
