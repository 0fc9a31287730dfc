#pragma once
// Included by the three generated runtime-dispatch translation units (CMake:
// recblocks_enable_runtime_dispatch), each compiled with its ISA's flags:
//
//   #include "recblocks/backend/cpu/dispatch_instantiate.hpp"
//   RECBLOCKS_DEFINE_CPU_KERNEL_TABLES(avx512)
//
// Each defines isa_kernel_table<Level, T>() for float and double (the float
// table carries the retrieval kernels too) from the kernels instantiated for
// the arch those flags enable. Only kernel headers are
// included here (see kernel_table.hpp for why).
#include "recblocks/backend/cpu/kernel_table.hpp"

// Eigen's GEMM for this ISA, with Eigen's namespace renamed so that its
// instantiations cannot collide with other ISAs' (see kernels/gemm_eigen.hpp).
// The generated unit defines RECBLOCKS_DISPATCH_EIGEN_NAMESPACE first.
#ifdef RECBLOCKS_DISPATCH_EIGEN_NAMESPACE
#ifdef EIGEN_CORE_H
#error "dispatch_instantiate.hpp must be included before any Eigen header"
#endif
#define Eigen RECBLOCKS_DISPATCH_EIGEN_NAMESPACE
#include "recblocks/backend/cpu/kernels/gemm_eigen.hpp"
#undef Eigen
#define RECBLOCKS_DETAIL_DISPATCH_GEMM(T) table.gemm = &gemm_kernel<T>;
#else
#define RECBLOCKS_DETAIL_DISPATCH_GEMM(T)
#endif

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
        static const CpuKernelTable<float> table = [] {                                                 \
            auto table = make_kernel_table<RECBLOCKS_DETAIL_ARCH(isa), float>();                        \
            RECBLOCKS_DETAIL_DISPATCH_GEMM(float)                                                       \
            return table;                                                                               \
        }();                                                                                            \
        return table;                                                                                   \
    }                                                                                                   \
    template <>                                                                                         \
    const CpuKernelTable<double>& isa_kernel_table<RECBLOCKS_DETAIL_LEVEL(isa), double>() {             \
        static const CpuKernelTable<double> table = [] {                                                \
            auto table = make_kernel_table<RECBLOCKS_DETAIL_ARCH(isa), double>();                       \
            RECBLOCKS_DETAIL_DISPATCH_GEMM(double)                                                      \
            return table;                                                                               \
        }();                                                                                            \
        return table;                                                                                   \
    }                                                                                                   \
    } } }
