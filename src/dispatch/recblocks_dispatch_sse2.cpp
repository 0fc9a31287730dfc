// The recblocks CPU kernels (xsimd kernels and Eigen's GEMM) for sse2, one of the
// three units behind backend::Cpu<isa::Dispatch>. Compile with exactly these flags:
//   -msse2
// CMake does that for you (recblocks_enable_runtime_dispatch); by hand see
// docs/backends.md, "Runtime dispatch without CMake".
#define RECBLOCKS_DISPATCH_EIGEN_NAMESPACE recblocks_eigen_sse2
#include "recblocks/backend/cpu/dispatch_instantiate.hpp"
RECBLOCKS_DEFINE_CPU_KERNEL_TABLES(sse2)
