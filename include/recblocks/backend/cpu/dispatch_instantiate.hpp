#pragma once
// Included by the three generated runtime-dispatch translation units (CMake:
// recblocks_enable_runtime_dispatch), each compiled with its ISA's flags:
//
//   #include "recblocks/backend/cpu/dispatch_instantiate.hpp"
//   RECBLOCKS_DEFINE_CPU_KERNEL_TABLES(avx512)
//
// Each defines isa_kernel_table<Level, T>() for float and double from the
// kernels instantiated for the arch those flags enable. Only kernel headers are
// included here (see kernel_table.hpp for why).
#include "recblocks/backend/cpu/kernel_table.hpp"

#define RECBLOCKS_ISA_LEVEL_sse2 0
#define RECBLOCKS_ISA_LEVEL_avx2 1
#define RECBLOCKS_ISA_LEVEL_avx512 2
#define RECBLOCKS_ISA_ARCH_sse2 ::xsimd::sse2
#define RECBLOCKS_ISA_ARCH_avx2 ::xsimd::fma3<::xsimd::avx2>
#define RECBLOCKS_ISA_ARCH_avx512 ::xsimd::avx512bw

#define RECBLOCKS_DETAIL_CAT(a, b) a##b
#define RECBLOCKS_DETAIL_LEVEL(isa) RECBLOCKS_DETAIL_CAT(RECBLOCKS_ISA_LEVEL_, isa)
#define RECBLOCKS_DETAIL_ARCH(isa) RECBLOCKS_DETAIL_CAT(RECBLOCKS_ISA_ARCH_, isa)

#define RECBLOCKS_DEFINE_CPU_KERNEL_TABLES(isa)                                                         \
    namespace recblocks { inline namespace v0 { namespace cpu {                                        \
    static_assert(RECBLOCKS_DETAIL_ARCH(isa)::supported(),                                              \
                  "compile this translation unit with the " #isa " flags (see recblocksDispatch.cmake)"); \
    template <>                                                                                         \
    const CpuKernelTable<float>& isa_kernel_table<RECBLOCKS_DETAIL_LEVEL(isa), float>() {               \
        static constexpr CpuKernelTable<float> table = make_kernel_table<RECBLOCKS_DETAIL_ARCH(isa), float>(); \
        return table;                                                                                   \
    }                                                                                                   \
    template <>                                                                                         \
    const CpuKernelTable<double>& isa_kernel_table<RECBLOCKS_DETAIL_LEVEL(isa), double>() {             \
        static constexpr CpuKernelTable<double> table = make_kernel_table<RECBLOCKS_DETAIL_ARCH(isa), double>(); \
        return table;                                                                                   \
    }                                                                                                   \
    } } }
