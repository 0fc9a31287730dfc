#pragma once
// Backend tags. A backend is a small value type: its *type* selects the
// primitive implementations at compile time (Primitives<Backend>), its
// *value* carries run-time context (the Cpu thread pool, the Cuda stream).
//
//   backend::Reference         plain loops accumulating in double; the oracle
//   backend::Cpu<isa::Auto>    Eigen + xsimd for the ISA the compiler targets
//   backend::Cpu<isa::Dispatch> the best ISA this CPU has, chosen at run time
//                              (link the per-ISA kernels with
//                              recblocks_enable_runtime_dispatch() in CMake)
//   backend::Cuda              declared in recblocks/backend/cuda/cuda.hpp
#include "recblocks/core/thread_pool.hpp"

RECBLOCKS_NAMESPACE_BEGIN

namespace isa {
/// Kernels for the instruction set the compiler targets (xsimd::default_arch):
/// SSE2 with no -m flags, AVX-512 with -march=native on such a CPU.
struct Auto {};
/// Kernels chosen at run time from the per-ISA translation units, by the
/// library's own CPU detection, overridable with RECBLOCKS_FORCE_ISA.
struct Dispatch {};
}  // namespace isa

namespace backend {

/// The oracle: straightforward loops, double accumulation, single thread.
struct Reference {};

/// CPU backend: Eigen for GEMM, xsimd kernels for the rest, split over a
/// ThreadPool (the global one unless `pool` is set).
template <class Isa = isa::Auto>
struct Cpu {
    ThreadPool* pool = nullptr;
    [[nodiscard]] ThreadPool& threads() const { return pool ? *pool : ThreadPool::global(); }
    /// This backend on the calling thread only: for a primitive called from
    /// inside a parallel region, so it runs whole instead of in chunks.
    [[nodiscard]] Cpu serial() const {
        static ThreadPool one(1);  // no worker threads
        return Cpu{&one};
    }
};

}  // namespace backend

RECBLOCKS_NAMESPACE_END
