#pragma once
// Device-side helpers shared by the CUDA kernels (src/cuda/*.cu): launch
// constants, overloaded math for float/double, deterministic warp and block
// reductions, and stream-ordered scratch memory. CUDA translation units only.
//
// Determinism: every reduction here combines values in a fixed tree (shuffle
// offsets 16, 8, 4, 2, 1 inside a warp, then warp 0 over the warp results), so
// a given block size and data layout always give the same bits.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "recblocks/backend/cuda/cuda.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {

/// Threads per block of every row and reduction kernel (8 warps).
inline constexpr int kBlock = 256;
inline constexpr int kWarps = kBlock / 32;
inline constexpr unsigned kFullMask = 0xffffffffu;
/// "No bad index / no NaN row" value of the device flags (memset 0xFF).
inline constexpr unsigned long long kNone = ~0ull;

/// Throws BackendError if the last kernel launch failed (bad configuration etc.).
#define RECBLOCKS_CUDA_CHECK_LAUNCH() RECBLOCKS_CUDA_CHECK(cudaGetLastError())

__host__ __device__ constexpr index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }
__host__ __device__ constexpr index_t min_index(index_t a, index_t b) { return a < b ? a : b; }

// ---- math overloads --------------------------------------------------------
__device__ inline float dev_exp(float x) { return expf(x); }
__device__ inline double dev_exp(double x) { return exp(x); }
__device__ inline float dev_erfc(float x) { return erfcf(x); }
__device__ inline double dev_erfc(double x) { return erfc(x); }
/// max ignoring NaN (as std::max(acc, x) with acc never NaN, and fmax).
__device__ inline float dev_fmax(float a, float b) { return fmaxf(a, b); }
__device__ inline double dev_fmax(double a, double b) { return fmax(a, b); }

template <class T>
__device__ inline T pos_inf();
template <>
__device__ inline float pos_inf<float>() { return __int_as_float(0x7f800000); }
template <>
__device__ inline double pos_inf<double>() { return __longlong_as_double(0x7ff0000000000000LL); }

// ---- combine operations ----------------------------------------------------
struct SumOp {
    template <class A>
    __device__ A operator()(A a, A b) const { return a + b; }
};
/// max that ignores NaN (softmax's row maximum).
struct FmaxOp {
    template <class A>
    __device__ A operator()(A a, A b) const { return dev_fmax(a, b); }
};
/// max that propagates NaN (ops::max_value).
struct MaxNanOp {
    template <class A>
    __device__ A operator()(A a, A b) const {
        if (a != a) return a;
        if (b != b) return b;
        return a > b ? a : b;
    }
};

// ---- reductions ------------------------------------------------------------
/// Reduces over the 32 lanes of a warp; the result is valid in lane 0.
template <class A, class Op>
__device__ inline A warp_reduce(A v, Op op) {
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_down_sync(kFullMask, v, offset));
    return v;
}

/// Reduces over the 32 lanes of a warp (the warp_reduce tree) and returns the
/// result to every lane (broadcast from lane 0, so all lanes hold the same bits).
template <class A, class Op>
__device__ inline A warp_allreduce(A v, Op op) {
    return __shfl_sync(kFullMask, warp_reduce(v, op), 0);
}

/// Reduces over a block of exactly kBlock threads and returns the result to
/// every thread. Must be reached by all threads of the block (it synchronises);
/// safe to call repeatedly in a row.
template <class A, class Op>
__device__ inline A block_reduce(A v, Op op, A identity) {
    __shared__ A partial[kWarps + 1];
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int warp = static_cast<int>(threadIdx.x) >> 5;
    v = warp_reduce(v, op);
    __syncthreads();  // a previous call's readers of partial[kWarps] are done
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        A w = lane < kWarps ? partial[lane] : identity;
        w = warp_reduce(w, op);
        if (lane == 0) partial[kWarps] = w;
    }
    __syncthreads();
    return partial[kWarps];
}

// ---- scratch memory --------------------------------------------------------
/// Stream-ordered device scratch (cudaMallocAsync / cudaFreeAsync on the
/// backend's stream), carved into 256-byte aligned pieces.
class Scratch {
public:
    Scratch(std::size_t bytes, cudaStream_t stream) : stream_(stream) {
        if (bytes > 0) RECBLOCKS_CUDA_CHECK(cudaMallocAsync(&base_, bytes, stream));
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() {
        if (base_ != nullptr) (void)cudaFreeAsync(base_, stream_);
    }
    /// Bytes needed for pieces of the given sizes (each rounded up to 256).
    static constexpr std::size_t round_up(std::size_t bytes) { return (bytes + 255) / 256 * 256; }
    /// The piece at byte `offset` (a sum of round_up'ed sizes).
    template <class U>
    U* at(std::size_t offset) const {
        return reinterpret_cast<U*>(static_cast<char*>(base_) + offset);
    }

private:
    void* base_ = nullptr;
    cudaStream_t stream_;
};

}  // namespace cuda_detail
RECBLOCKS_NAMESPACE_END
