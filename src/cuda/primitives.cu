// Primitives<backend::Cuda>: kernels and host entry points, explicitly
// instantiated for float and double. The overview (algorithm, accumulation
// type, determinism of each primitive) is in
// include/recblocks/backend/cuda/primitives.hpp; each kernel below starts with
// its own short note. Conventions: views are row-major, element (r, c) of a
// matrix with leading dimension ld is p[r * ld + c]; all offsets are index_t
// (64-bit); every kernel loops (grid-stride) so any grid size is correct.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

// ============================================================================
// Launch shapes
// ============================================================================

/// Blocks for a one-block-per-row kernel (the kernel loops over rows).
unsigned row_grid(index_t rows) { return static_cast<unsigned>(min_index(rows, 65535)); }

/// 2-D grid for an element-wise kernel over rows x cols: x covers columns in
/// kBlock-wide strips, y covers rows; both loop.
dim3 elementwise_grid(index_t rows, index_t cols) {
    return dim3(static_cast<unsigned>(min_index(ceil_div(cols, kBlock), 1024)),
                static_cast<unsigned>(min_index(rows, 65535)), 1);
}

/// A single-row view may carry any ld; kernels and cuBLAS need ld >= cols.
template <class V>
index_t safe_ld(const V& m) {
    const index_t ld = m.rows() <= 1 ? m.cols() : m.ld();
    return ld > 0 ? ld : 1;
}

// ============================================================================
// Element-wise kernels
// ============================================================================

// scale_kernel: c[b] (rows x cols, ld, batch stride sb) = beta * c, or 0 when
// beta == 0 (C is then not read). Used by gemm when K == 0. Element-wise in T.
template <class T>
__global__ void __launch_bounds__(kBlock)
    scale_kernel(T* c, index_t batch, index_t sb, index_t rows, index_t cols, index_t ld, T beta) {
    for (index_t b = blockIdx.z; b < batch; b += gridDim.z)
        for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
            for (index_t j = blockIdx.x * index_t{kBlock} + threadIdx.x; j < cols;
                 j += index_t{gridDim.x} * kBlock) {
                T& v = c[b * sb + r * ld + j];
                v = beta == T(0) ? T(0) : beta * v;
            }
}

// axpy_kernel: y[i] += alpha * x[i], i < n (contiguous vectors). fma in T.
template <class T>
__global__ void __launch_bounds__(kBlock) axpy_kernel(index_t n, T alpha, const T* x, T* y) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += index_t{gridDim.x} * kBlock)
        y[i] = fma(alpha, x[i], y[i]);
}

// adam_update_kernel: one fused Adam step per element, the Reference's
// expression in T (ops/adam_update.hpp); nvcc contracts its multiply-adds into
// fmas, so results match the CPU within rounding, not bit for bit.
template <class T>
__global__ void __launch_bounds__(kBlock) adam_update_kernel(index_t n, AdamUpdate<T> u, T* w, const T* g, T* m,
                                                             T* v) {
    for (index_t j = blockIdx.x * index_t{kBlock} + threadIdx.x; j < n; j += index_t{gridDim.x} * kBlock) {
        T gj = g[j];
        if (u.l2 != T(0)) gj += u.l2 * w[j];  // torch adds nothing without weight decay
        T wj = w[j] * u.shrink;
        const T mj = u.beta1 * m[j] + (T(1) - u.beta1) * gj;
        const T vj = u.beta2 * v[j] + (T(1) - u.beta2) * gj * gj;
        m[j] = mj;
        v[j] = vj;
        w[j] = wj - u.step_size * mj / (sqrt(vj) * u.inv_bc2_sqrt + u.eps);
    }
}

// dropout_kernel: element j of the mask's stream is kept iff the 24 high bits of
// word j & 3 of Philox4x32-10 block j >> 2 (counter {block, stream}, key
// {key0, key1}) are >= threshold: the words of Rng::u32 (core/rng.hpp) and of
// the CPU kernel, so masks agree bit for bit across backends. One thread per
// 4-element block; y may alias x (each element is read and written once, by
// one thread).
__device__ __forceinline__ void philox4x32_10(std::uint32_t c[4], std::uint32_t k0, std::uint32_t k1) {
    constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
    constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += kWeyl0;
            k1 += kWeyl1;
        }
        const std::uint32_t hi0 = __umulhi(kMul0, c[0]), lo0 = kMul0 * c[0];
        const std::uint32_t hi1 = __umulhi(kMul1, c[2]), lo1 = kMul1 * c[2];
        const std::uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = lo1;
        c[2] = n2;
        c[3] = lo0;
    }
}

template <class T>
__global__ void __launch_bounds__(kBlock) dropout_kernel(const T* x, T* y, index_t n, index_t first,
                                                         DropoutMask mask, T scale) {
    const index_t first_block = first >> 2, blocks = ((first + n - 1) >> 2) - first_block + 1;
    for (index_t b = blockIdx.x * index_t{kBlock} + threadIdx.x; b < blocks; b += index_t{gridDim.x} * kBlock) {
        const auto block = static_cast<std::uint64_t>(first_block + b);
        std::uint32_t c[4] = {static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                              static_cast<std::uint32_t>(mask.stream), static_cast<std::uint32_t>(mask.stream >> 32)};
        philox4x32_10(c, mask.key0, mask.key1);
#pragma unroll
        for (int lane = 0; lane < 4; ++lane) {
            const index_t i = (first_block + b) * 4 + lane - first;  // index into x / y
            if (i < 0 || i >= n) continue;
            y[i] = (c[lane] >> 8) >= mask.threshold ? x[i] * scale : T(0);
        }
    }
}

// add_kernel: out = a + b over rows x cols with leading dimensions; out may be
// a or b itself (each element is read and written by the same thread).
template <class T>
__global__ void __launch_bounds__(kBlock) add_kernel(const T* a, index_t lda, const T* b, index_t ldb, T* out,
                                                     index_t ldo, index_t rows, index_t cols) {
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock)
            out[r * ldo + c] = a[r * lda + c] + b[r * ldb + c];
}

// activation_forward_kernel: y = act(x) over rows x cols. In T.
//   ReLU: x > 0 ? x : 0 (NaN -> 0, as the Reference backend).
//   GELU: x * Phi(x) = 0.5 x erfc(-x / sqrt 2) (erfc keeps accuracy for x << 0,
//         where 1 + erf(x / sqrt 2) would cancel).
// y may alias x: each element is read and written by the same thread.
template <class T>
__global__ void __launch_bounds__(kBlock) activation_forward_kernel(Activation act, const T* x, index_t ldx, T* y,
                                                                    index_t ldy, index_t rows, index_t cols) {
    constexpr T kInvSqrt2 = T(0.70710678118654752440);
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock) {
            const T v = x[r * ldx + c];
            y[r * ldy + c] = act == Activation::relu ? (v > T(0) ? v : T(0)) : T(0.5) * v * dev_erfc(-v * kInvSqrt2);
        }
}

// activation_backward_kernel: dx = dy * act'(x) over rows x cols. In T.
//   ReLU': x > 0 ? 1 : 0.   GELU': Phi(x) + x * phi(x).
// dx may alias dy (same-thread read then write).
template <class T>
__global__ void __launch_bounds__(kBlock)
    activation_backward_kernel(Activation act, const T* x, index_t ldx, const T* dy, index_t lddy, T* dx,
                               index_t lddx, index_t rows, index_t cols) {
    constexpr T kInvSqrt2 = T(0.70710678118654752440);
    constexpr T kInvSqrt2Pi = T(0.39894228040143267794);
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock) {
            const T v = x[r * ldx + c];
            const T g = act == Activation::relu
                            ? (v > T(0) ? T(1) : T(0))
                            : T(0.5) * dev_erfc(-v * kInvSqrt2) + v * kInvSqrt2Pi * dev_exp(T(-0.5) * v * v);
            dx[r * lddx + c] = dy[r * lddy + c] * g;
        }
}

// ============================================================================
// Row kernels (one kBlock-thread block per row)
// ============================================================================

// softmax_rows_kernel: y[r, :] = softmax of x[r, :] over kept entries (mask
// byte != 0, or all when mask == nullptr). Three passes over the row: max in T
// (NaN ignored), sum of exp(x - max) in double, then write exp(x - max) * inv
// in T, inv = 1 / sum rounded to T (one rounding more than a division in
// double, and no conversions per element), 0 for dropped entries. A row whose max is -inf (nothing kept) or whose sum is
// not > 0 (e.g. +inf entries) becomes zeros, as the Reference backend.
// y may alias x: the last pass reads and writes each element in one thread,
// after the reductions' barriers.
template <class T>
__global__ void __launch_bounds__(kBlock)
    softmax_rows_kernel(const T* x, index_t ldx, const std::uint8_t* mask, index_t ldm, T* y, index_t ldy,
                        index_t rows, index_t cols) {
    const T neg_inf = -pos_inf<T>();
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * ldx;
        const std::uint8_t* mr = mask != nullptr ? mask + r * ldm : nullptr;
        T* yr = y + r * ldy;

        T mx = neg_inf;
        for (index_t c = threadIdx.x; c < cols; c += kBlock)
            if (mr == nullptr || mr[c] != 0) mx = dev_fmax(mx, xr[c]);
        mx = block_reduce(mx, FmaxOp{}, neg_inf);

        double s = 0.0;
        if (mx != neg_inf)
            for (index_t c = threadIdx.x; c < cols; c += kBlock)
                if (mr == nullptr || mr[c] != 0) s += static_cast<double>(dev_exp(xr[c] - mx));
        s = block_reduce(s, SumOp{}, 0.0);

        const bool ok = s > 0.0;  // the same in every thread
        const T inv = ok ? static_cast<T>(1.0 / s) : T(0);
        for (index_t c = threadIdx.x; c < cols; c += kBlock) {
            T v = T(0);
            if (ok && (mr == nullptr || mr[c] != 0)) v = dev_exp(xr[c] - mx) * inv;
            yr[c] = v;
        }
    }
}

// softmax_rows_backward_kernel: dx = y * (dy - sum(dy * y)) per row; the sum in
// double. dx may alias dy.
template <class T>
__global__ void __launch_bounds__(kBlock)
    softmax_rows_backward_kernel(const T* y, index_t ldy, const T* dy, index_t lddy, T* dx, index_t lddx,
                                 index_t rows, index_t cols) {
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* yr = y + r * ldy;
        const T* dyr = dy + r * lddy;
        T* dxr = dx + r * lddx;
        double s = 0.0;
        for (index_t c = threadIdx.x; c < cols; c += kBlock)
            s += static_cast<double>(dyr[c]) * static_cast<double>(yr[c]);
        s = block_reduce(s, SumOp{}, 0.0);
        for (index_t c = threadIdx.x; c < cols; c += kBlock)
            dxr[c] = static_cast<T>(static_cast<double>(yr[c]) * (static_cast<double>(dyr[c]) - s));
    }
}

// layer_norm_forward_kernel: per row of x [rows, d]: mean, biased variance
// (second pass over the row, sum of squared deviations), both in double;
// y = (x - mean) * rstd * gamma + beta computed in double. mean/rstd [rows]
// are written when non-null. y may alias x.
template <class T>
__global__ void __launch_bounds__(kBlock)
    layer_norm_forward_kernel(const T* x, index_t ldx, const T* gamma, const T* beta, T eps, T* y, index_t ldy,
                              T* mean, T* rstd, index_t rows, index_t d) {
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * ldx;
        T* yr = y + r * ldy;
        double s = 0.0;
        for (index_t c = threadIdx.x; c < d; c += kBlock) s += static_cast<double>(xr[c]);
        const double mu = block_reduce(s, SumOp{}, 0.0) / static_cast<double>(d);
        double q = 0.0;
        for (index_t c = threadIdx.x; c < d; c += kBlock) {
            const double dev = static_cast<double>(xr[c]) - mu;
            q += dev * dev;
        }
        const double var = block_reduce(q, SumOp{}, 0.0) / static_cast<double>(d);
        const double rs = 1.0 / sqrt(var + static_cast<double>(eps));
        for (index_t c = threadIdx.x; c < d; c += kBlock)
            yr[c] = static_cast<T>((static_cast<double>(xr[c]) - mu) * rs * static_cast<double>(gamma[c]) +
                                   static_cast<double>(beta[c]));
        if (threadIdx.x == 0) {
            if (mean != nullptr) mean[r] = static_cast<T>(mu);
            if (rstd != nullptr) rstd[r] = static_cast<T>(rs);
        }
    }
}

// layer_norm_backward_dx_kernel: per row, with xhat = (x - mean) * rstd and
// g = dy * gamma: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); both
// means in double. dx is overwritten (it may alias dy).
template <class T>
__global__ void __launch_bounds__(kBlock)
    layer_norm_backward_dx_kernel(const T* x, index_t ldx, const T* gamma, const T* mean, const T* rstd,
                                  const T* dy, index_t lddy, T* dx, index_t lddx, index_t rows, index_t d) {
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* xr = x + r * ldx;
        const T* dyr = dy + r * lddy;
        T* dxr = dx + r * lddx;
        const double mu = static_cast<double>(mean[r]);
        const double rs = static_cast<double>(rstd[r]);
        double m1 = 0.0, m2 = 0.0;
        for (index_t c = threadIdx.x; c < d; c += kBlock) {
            const double xhat = (static_cast<double>(xr[c]) - mu) * rs;
            const double g = static_cast<double>(dyr[c]) * static_cast<double>(gamma[c]);
            m1 += g;
            m2 += g * xhat;
        }
        m1 = block_reduce(m1, SumOp{}, 0.0) / static_cast<double>(d);
        m2 = block_reduce(m2, SumOp{}, 0.0) / static_cast<double>(d);
        for (index_t c = threadIdx.x; c < d; c += kBlock) {
            const double xhat = (static_cast<double>(xr[c]) - mu) * rs;
            const double g = static_cast<double>(dyr[c]) * static_cast<double>(gamma[c]);
            dxr[c] = static_cast<T>(rs * (g - m1 - xhat * m2));
        }
    }
}

// ============================================================================
// Row kernels, narrow rows (one warp per row)
// ============================================================================
//
// For narrow rows (widths below): a block of kBlock threads handles
// kWarps rows at a time, one warp per row (rows r = blockIdx.x * kWarps + warp,
// then + gridDim.x * kWarps). Lane l holds columns l, l + 32, ..., l + 32 (VPT-1)
// in registers (coalesced 128-byte loads per warp, VPT independent loads in
// flight per lane), so the row is read from memory once; the row reductions are
// warp shuffles (warp_allreduce: offsets 16..1, then a broadcast from lane 0),
// no shared memory, no __syncthreads. Accumulation types are those of the
// block kernels above (max in T, sums in double): each lane adds its VPT terms
// in column order, then the fixed shuffle tree combines the lanes, so a given
// row width always gives the same bits. VPT is the smallest of 2, 4, ..., 32
// with 32 VPT >= cols (dispatch_warp_rows: up to 1024 columns for softmax and
// layer-norm forward, 512 for layer-norm backward); wider rows use the block
// kernels.

/// Blocks for a warp-per-row kernel (each block takes kWarps rows; the kernel loops).
unsigned warp_row_grid(index_t rows) { return static_cast<unsigned>(min_index(ceil_div(rows, kWarps), 1 << 20)); }

/// Calls f(std::integral_constant<int, VPT>{}) for the smallest VPT in
/// {2, 4, 8, 16, 32} (capped at max_vpt) with 32 * VPT >= cols; returns false
/// (calling nothing) when cols is wider than 32 * max_vpt.
template <int MaxVpt, class F>
bool dispatch_warp_rows(index_t cols, F&& f) {
    if (cols <= 64) { f(std::integral_constant<int, 2>{}); return true; }
    if (cols <= 128) { f(std::integral_constant<int, 4>{}); return true; }
    if (cols <= 256) { f(std::integral_constant<int, 8>{}); return true; }
    if constexpr (MaxVpt >= 16)
        if (cols <= 512) { f(std::integral_constant<int, 16>{}); return true; }
    if constexpr (MaxVpt >= 32)
        if (cols <= 1024) { f(std::integral_constant<int, 32>{}); return true; }
    return false;
}

// softmax_rows_warp_kernel: softmax_rows_kernel's semantics (see there) with a
// warp per row: max in T (NaN ignored), sum of exp(x - max) in double, write
// exp(x - max) * (1 / sum rounded to T) in T (the exp values are kept in
// registers between the sum and the write); masked entries and rows with nothing kept or a sum not > 0 give
// zeros. y may alias x (each warp reads its whole row before writing it).
template <class T, int VPT>
__global__ void __launch_bounds__(kBlock)
    softmax_rows_warp_kernel(const T* x, index_t ldx, const std::uint8_t* mask, index_t ldm, T* y, index_t ldy,
                             index_t rows, index_t cols) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const T neg_inf = -pos_inf<T>();
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < rows; r += index_t{gridDim.x} * kWarps) {
        const T* xr = x + r * ldx;
        const std::uint8_t* mr = mask != nullptr ? mask + r * ldm : nullptr;
        T* yr = y + r * ldy;
        T v[VPT];
        bool keep[VPT];
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            const bool in = c < cols;
            v[j] = in ? xr[c] : neg_inf;
            keep[j] = in && (mr == nullptr || mr[c] != 0);
        }
        T mx = neg_inf;
#pragma unroll
        for (int j = 0; j < VPT; ++j)
            if (keep[j]) mx = dev_fmax(mx, v[j]);
        mx = warp_allreduce(mx, FmaxOp{});

        double s = 0.0;
        if (mx != neg_inf) {
#pragma unroll
            for (int j = 0; j < VPT; ++j)
                if (keep[j]) {
                    v[j] = dev_exp(v[j] - mx);
                    s += static_cast<double>(v[j]);
                }
        }
        s = warp_allreduce(s, SumOp{});
        const bool ok = s > 0.0;  // the same in every lane
        const T inv = ok ? static_cast<T>(1.0 / s) : T(0);
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            if (c < cols) yr[c] = ok && keep[j] ? v[j] * inv : T(0);
        }
    }
}

// softmax_rows_backward_warp_kernel: dx = y * (dy - sum(dy * y)) per row, the
// sum and the products in double, a warp per row. dx may alias dy.
template <class T, int VPT>
__global__ void __launch_bounds__(kBlock)
    softmax_rows_backward_warp_kernel(const T* y, index_t ldy, const T* dy, index_t lddy, T* dx, index_t lddx,
                                      index_t rows, index_t cols) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < rows; r += index_t{gridDim.x} * kWarps) {
        const T* yr = y + r * ldy;
        const T* dyr = dy + r * lddy;
        T* dxr = dx + r * lddx;
        T yv[VPT], gv[VPT];
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            yv[j] = c < cols ? yr[c] : T(0);
            gv[j] = c < cols ? dyr[c] : T(0);
        }
        double s = 0.0;
#pragma unroll
        for (int j = 0; j < VPT; ++j)
            if (lane + 32 * j < cols) s += static_cast<double>(gv[j]) * static_cast<double>(yv[j]);
        s = warp_allreduce(s, SumOp{});
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            if (c < cols)
                dxr[c] = static_cast<T>(static_cast<double>(yv[j]) * (static_cast<double>(gv[j]) - s));
        }
    }
}

// layer_norm_forward_warp_kernel: layer_norm_forward_kernel's semantics with a
// warp per row: mean, then the biased variance as the mean of squared
// deviations from the row held in registers (two passes, no cancellation),
// both in double; y = (x - mean) * rstd * gamma + beta in double. y may
// alias x.
template <class T, int VPT>
__global__ void __launch_bounds__(kBlock)
    layer_norm_forward_warp_kernel(const T* x, index_t ldx, const T* gamma, const T* beta, T eps, T* y, index_t ldy,
                                   T* mean, T* rstd, index_t rows, index_t d) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < rows; r += index_t{gridDim.x} * kWarps) {
        const T* xr = x + r * ldx;
        T* yr = y + r * ldy;
        T v[VPT];
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            v[j] = c < d ? xr[c] : T(0);
        }
        double s = 0.0;
#pragma unroll
        for (int j = 0; j < VPT; ++j)
            if (lane + 32 * j < d) s += static_cast<double>(v[j]);
        const double mu = warp_allreduce(s, SumOp{}) / static_cast<double>(d);
        double q = 0.0;
#pragma unroll
        for (int j = 0; j < VPT; ++j)
            if (lane + 32 * j < d) {
                const double dev = static_cast<double>(v[j]) - mu;
                q += dev * dev;
            }
        const double var = warp_allreduce(q, SumOp{}) / static_cast<double>(d);
        const double rs = 1.0 / sqrt(var + static_cast<double>(eps));
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            if (c < d)
                yr[c] = static_cast<T>((static_cast<double>(v[j]) - mu) * rs * static_cast<double>(gamma[c]) +
                                       static_cast<double>(beta[c]));
        }
        if (lane == 0) {
            if (mean != nullptr) mean[r] = static_cast<T>(mu);
            if (rstd != nullptr) rstd[r] = static_cast<T>(rs);
        }
    }
}

// layer_norm_backward_warp_kernel: dx and the dgamma/dbeta partials in one pass
// over x and dy, for d <= 32 * VPT (VPT <= 16).
// Block b owns rows [b * chunk, (b + 1) * chunk) (chunk from
// layer_norm_backward_split, a function of the row count only: grid = nchunks
// exactly, no grid-stride); its warp w takes rows b * chunk + w, + kWarps, ...
// Per row, as layer_norm_backward_dx_kernel: xhat = (x - mean) * rstd,
// g = dy * gamma, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), the means
// in double over the warp. Each lane also accumulates, in double and in row
// order, dy * xhat (dgamma) and dy (dbeta) for its columns. The block then
// combines its 8 warps' partials in a fixed tree (warps 4-7 into 0-3, 2-3 into
// 0-1, 1 into 0, through shared memory) and warp 0 writes partial[o][c][b]
// (o = 0 dgamma, 1 dbeta); column_finish_kernel adds the nchunks partials of
// each column in a fixed tree and accumulates into dgamma/dbeta. Bit-
// reproducible, no atomics. dx may alias dy: a row's dy is read, by the warp
// that owns the row, before that warp writes the row's dx.
template <class T, int VPT>
__global__ void __launch_bounds__(kBlock)
    layer_norm_backward_warp_kernel(const T* x, index_t ldx, const T* gamma, const T* mean, const T* rstd,
                                    const T* dy, index_t lddy, T* dx, index_t lddx, index_t rows, index_t d,
                                    index_t chunk, double* partial) {
    static_assert(VPT <= 16, "shared memory for the warp combine: 2 KiB * VPT");
    __shared__ double red[kWarps / 2][2][32 * VPT];
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int warp = static_cast<int>(threadIdx.x) >> 5;
    T gam[VPT];
    double pg[VPT], pb[VPT];
#pragma unroll
    for (int j = 0; j < VPT; ++j) {
        const index_t c = lane + 32 * j;
        gam[j] = c < d ? gamma[c] : T(0);
        pg[j] = 0.0;
        pb[j] = 0.0;
    }
    const index_t r0 = blockIdx.x * chunk;
    const index_t r1 = min_index(rows, r0 + chunk);
    for (index_t r = r0 + warp; r < r1; r += kWarps) {
        const T* xr = x + r * ldx;
        const T* dyr = dy + r * lddy;
        T* dxr = dx + r * lddx;
        T xv[VPT], gv[VPT];
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            xv[j] = c < d ? xr[c] : T(0);
            gv[j] = c < d ? dyr[c] : T(0);
        }
        const double mu = static_cast<double>(mean[r]);
        const double rs = static_cast<double>(rstd[r]);
        double m1 = 0.0, m2 = 0.0;
#pragma unroll
        for (int j = 0; j < VPT; ++j)
            if (lane + 32 * j < d) {
                const double xh = (static_cast<double>(xv[j]) - mu) * rs;
                const double up = static_cast<double>(gv[j]);
                const double g = up * static_cast<double>(gam[j]);
                m1 += g;
                m2 += g * xh;
                pg[j] += up * xh;
                pb[j] += up;
            }
        m1 = warp_allreduce(m1, SumOp{}) / static_cast<double>(d);
        m2 = warp_allreduce(m2, SumOp{}) / static_cast<double>(d);
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            if (c < d) {  // xhat and g recomputed (fewer live registers), the same values
                const double xh = (static_cast<double>(xv[j]) - mu) * rs;
                const double g = static_cast<double>(gv[j]) * static_cast<double>(gam[j]);
                dxr[c] = static_cast<T>(rs * (g - m1 - xh * m2));
            }
        }
    }
    // Fixed-tree combine of the warps' partials.
    for (int h = kWarps / 2; h >= 1; h >>= 1) {
        if (warp >= h && warp < 2 * h)
#pragma unroll
            for (int j = 0; j < VPT; ++j) {
                red[warp - h][0][lane + 32 * j] = pg[j];
                red[warp - h][1][lane + 32 * j] = pb[j];
            }
        __syncthreads();
        if (warp < h)
#pragma unroll
            for (int j = 0; j < VPT; ++j) {
                pg[j] += red[warp][0][lane + 32 * j];
                pb[j] += red[warp][1][lane + 32 * j];
            }
        __syncthreads();
    }
    if (warp == 0) {
        const index_t nchunks = gridDim.x;
#pragma unroll
        for (int j = 0; j < VPT; ++j) {
            const index_t c = lane + 32 * j;
            if (c < d) {
                partial[c * nchunks + blockIdx.x] = pg[j];
                partial[(d + c) * nchunks + blockIdx.x] = pb[j];
            }
        }
    }
}

// ============================================================================
// Column reductions (sum_rows, layer-norm dgamma/dbeta): deterministic, no atomics
// ============================================================================
//
// Stage 1, column_partials_kernel: grid (ceil(cols/32), nchunks), block 32 x 8.
// Block (bx, by) owns columns [32 bx, 32 bx + 32) and rows [by*chunk,
// (by+1)*chunk): thread (tx, ty) accumulates rows ty, ty + 8, ... of the chunk
// for column 32 bx + tx in double, then thread ty == 0 adds the 8 partials in
// order and writes the partial of (o, col, by). Warps read 32 consecutive columns
// (coalesced); partials are stored per column, partial[(o * cols + col) *
// nchunks + by]. Stage 2, column_finish_kernel: one warp per column; lane l
// adds partials l, l + 32, ... in order, then the warp_reduce tree combines the
// lanes, and lane 0 hands the totals to an epilogue. nchunks and chunk depend
// only on the row count, so the result is bit-reproducible.
inline constexpr int kColX = 32;
inline constexpr int kColY = 8;

struct ColumnSplit {
    index_t nchunks;
    index_t chunk;
};
ColumnSplit column_split(index_t rows) {
    const index_t nchunks = min_index(ceil_div(rows, 64), 1024);
    return {nchunks, ceil_div(rows, nchunks)};
}
/// Row chunks of layer_norm_backward_warp_kernel (one block each, 4 rows per
/// warp up to 2048 chunks); a function of the row count only.
ColumnSplit layer_norm_backward_split(index_t rows) {
    const index_t nchunks = min_index(ceil_div(rows, 4 * kWarps), 2048);
    return {nchunks, ceil_div(rows, nchunks)};
}

template <int NOut, class F>
__global__ void __launch_bounds__(kColX* kColY)
    column_partials_kernel(F f, index_t rows, index_t cols, index_t chunk, double* partial) {
    __shared__ double sm[NOut][kColY][kColX];
    const index_t c = blockIdx.x * index_t{kColX} + threadIdx.x;
    const index_t r0 = blockIdx.y * chunk;
    const index_t r1 = min_index(rows, r0 + chunk);
    double acc[NOut];
    for (int o = 0; o < NOut; ++o) acc[o] = 0.0;
    if (c < cols)
        for (index_t r = r0 + threadIdx.y; r < r1; r += kColY) f(r, c, acc);
    for (int o = 0; o < NOut; ++o) sm[o][threadIdx.y][threadIdx.x] = acc[o];
    __syncthreads();
    if (threadIdx.y == 0 && c < cols)
        for (int o = 0; o < NOut; ++o) {
            double t = 0.0;
            for (int j = 0; j < kColY; ++j) t += sm[o][j][threadIdx.x];
            partial[(o * cols + c) * index_t{gridDim.y} + blockIdx.y] = t;
        }
}

template <int NOut, class E>
__global__ void __launch_bounds__(kBlock)
    column_finish_kernel(const double* partial, index_t nchunks, index_t cols, E epilogue) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t c = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); c < cols; c += index_t{gridDim.x} * kWarps) {
        double t[NOut];
        for (int o = 0; o < NOut; ++o) {
            const double* p = partial + (o * cols + c) * nchunks;
            double a = 0.0;
            for (index_t b = lane; b < nchunks; b += 32) a += p[b];
            t[o] = warp_reduce(a, SumOp{});
        }
        if (lane == 0) epilogue(c, t);
    }
}

template <int NOut, class E>
void launch_column_finish(cudaStream_t stream, const double* partial, index_t nchunks, index_t cols, E epilogue) {
    const auto blocks = static_cast<unsigned>(min_index(ceil_div(cols, kWarps), 4096));
    column_finish_kernel<NOut><<<blocks, kBlock, 0, stream>>>(partial, nchunks, cols, epilogue);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <int NOut, class F, class E>
void column_reduce(cudaStream_t stream, index_t rows, index_t cols, F f, E epilogue) {
    const ColumnSplit split = column_split(rows);
    Scratch scratch(static_cast<std::size_t>(NOut * split.nchunks * cols) * sizeof(double), stream);
    double* partial = scratch.at<double>(0);
    const dim3 grid(static_cast<unsigned>(ceil_div(cols, kColX)), static_cast<unsigned>(split.nchunks), 1);
    column_partials_kernel<NOut><<<grid, dim3(kColX, kColY, 1), 0, stream>>>(f, rows, cols, split.chunk, partial);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    launch_column_finish<NOut>(stream, partial, split.nchunks, cols, epilogue);
}

template <class T>
struct SumRowsLoad {
    const T* x;
    index_t ld;
    __device__ void operator()(index_t r, index_t c, double* acc) const { acc[0] += static_cast<double>(x[r * ld + c]); }
};
template <class T>
struct StoreColumn {
    T* out;
    __device__ void operator()(index_t c, const double* t) const { out[c] = static_cast<T>(t[0]); }
};

/// dgamma partial: dy * xhat; dbeta partial: dy.
template <class T>
struct LayerNormParamLoad {
    const T* x;
    index_t ldx;
    const T* dy;
    index_t lddy;
    const T* mean;
    const T* rstd;
    __device__ void operator()(index_t r, index_t c, double* acc) const {
        const double g = static_cast<double>(dy[r * lddy + c]);
        const double xhat =
            (static_cast<double>(x[r * ldx + c]) - static_cast<double>(mean[r])) * static_cast<double>(rstd[r]);
        acc[0] += g * xhat;
        acc[1] += g;
    }
};
/// dgamma += total 0, dbeta += total 1 (accumulated, as the contract says).
template <class T>
struct AccumulateParams {
    T* dgamma;
    T* dbeta;
    __device__ void operator()(index_t c, const double* t) const {
        dgamma[c] = static_cast<T>(static_cast<double>(dgamma[c]) + t[0]);
        dbeta[c] = static_cast<T>(static_cast<double>(dbeta[c]) + t[1]);
    }
};

// ============================================================================
// Scalar reductions (dot, sum, max_value): two stages, deterministic
// ============================================================================
//
// Stage 1, reduce_stage1_kernel: G blocks of kBlock threads; thread t of block
// b combines elements i = b*kBlock + t, + G*kBlock, ... (grid-stride) in Acc,
// in that order, then the block tree-reduces and writes partial[b]. The loads
// are issued kReduceUnroll at a time (all loads of a group before its
// combines), so each thread keeps that many loads in flight; the combine order
// is unchanged. Stage 2 (one block) reduces the G partials the same way. G
// depends only on n.
template <class T>
struct FlatLoad {  // a contiguous run of n elements
    const T* p;
    __device__ T operator()(index_t i) const { return p[i]; }
};
template <class T>
struct StridedLoad {  // a rows x cols matrix with ld > cols, flattened row-major
    const T* p;
    index_t cols;
    index_t ld;
    __device__ T operator()(index_t i) const { return p[(i / cols) * ld + i % cols]; }
};
template <class T>
struct DotLoad {
    const T* x;
    const T* y;
    __device__ double operator()(index_t i) const { return static_cast<double>(x[i]) * static_cast<double>(y[i]); }
};

inline constexpr int kReduceUnroll = 8;

template <class A, class Op, class L>
__global__ void __launch_bounds__(kBlock) reduce_stage1_kernel(L load, index_t n, Op op, A identity, A* partial) {
    A v = identity;
    const index_t stride = index_t{gridDim.x} * kBlock;
    index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x;
    for (; i + (kReduceUnroll - 1) * stride < n; i += kReduceUnroll * stride) {
        A t[kReduceUnroll];
#pragma unroll
        for (int u = 0; u < kReduceUnroll; ++u) t[u] = static_cast<A>(load(i + u * stride));
#pragma unroll
        for (int u = 0; u < kReduceUnroll; ++u) v = op(v, t[u]);
    }
    for (; i < n; i += stride) v = op(v, static_cast<A>(load(i)));
    v = block_reduce(v, op, identity);
    if (threadIdx.x == 0) partial[blockIdx.x] = v;
}

template <class A, class Op>
__global__ void __launch_bounds__(kBlock) reduce_stage2_kernel(const A* partial, index_t n, Op op, A identity,
                                                               A* out) {
    A v = identity;
    for (index_t i = threadIdx.x; i < n; i += kBlock) v = op(v, partial[i]);
    v = block_reduce(v, op, identity);
    if (threadIdx.x == 0) *out = v;
}

/// A small page-locked host buffer per thread (64 bytes), the target of the
/// device-to-host copies of results and flags: a copy into pageable memory
/// goes through the driver's staging buffer. Freed at thread exit (errors
/// ignored: the runtime may already be shutting down).
void* pinned_slot() {
    struct Slot {
        void* p = nullptr;
        Slot() = default;
        Slot(const Slot&) = delete;
        Slot& operator=(const Slot&) = delete;
        ~Slot() {
            if (p != nullptr) (void)cudaFreeHost(p);
        }
    };
    thread_local Slot slot;
    if (slot.p == nullptr) RECBLOCKS_CUDA_CHECK(cudaMallocHost(&slot.p, 64));
    return slot.p;
}

/// Copies one value from the device on `stream`, waits for the stream, and
/// returns it.
template <class U>
U fetch_from_device(cudaStream_t stream, const U* d) {
    static_assert(sizeof(U) <= 64);
    U* h = static_cast<U*>(pinned_slot());
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(h, d, sizeof(U), cudaMemcpyDeviceToHost, stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    return *h;
}

/// Runs both stages on `stream`, copies the result to the host and waits.
template <class A, class Op, class L>
A reduce_all(cudaStream_t stream, L load, index_t n, Op op, A identity) {
    const index_t blocks = min_index(ceil_div(n, index_t{kBlock} * 4), 1024);
    const std::size_t part_bytes = Scratch::round_up(static_cast<std::size_t>(blocks) * sizeof(A));
    Scratch scratch(part_bytes + Scratch::round_up(sizeof(A)), stream);
    A* partial = scratch.at<A>(0);
    A* out = scratch.at<A>(part_bytes);
    reduce_stage1_kernel<A><<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(load, n, op, identity, partial);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    reduce_stage2_kernel<A><<<1, kBlock, 0, stream>>>(partial, blocks, op, identity, out);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    return fetch_from_device(stream, out);
}

// logistic_loss: the terms of a binary cross-entropy on logits, in double
// (the host backends' expressions): softplus(x) = log(1 + e^x) for the loss,
// sigmoid(x) for the gradient, x = sign * s.
__device__ inline double device_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
__device__ inline double device_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    const double e = exp(x);
    return e / (1.0 + e);
}
template <class T>
struct SoftplusLoad {  // term m of the loss sum
    const T* s;
    const T* sign;
    __device__ double operator()(index_t i) const {
        return device_softplus(static_cast<double>(sign[i]) * static_cast<double>(s[i]));
    }
};
// logistic_grad_kernel: g[m] = weight * sign[m] * sigmoid(sign[m] * s[m]),
// element-wise in double, rounded once to T.
template <class T>
__global__ void __launch_bounds__(kBlock) logistic_grad_kernel(const T* s, const T* sign, T weight, T* g, index_t n) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += index_t{gridDim.x} * kBlock) {
        const double sg = static_cast<double>(sign[i]);
        g[i] = static_cast<T>(static_cast<double>(weight) * sg * device_sigmoid(sg * static_cast<double>(s[i])));
    }
}

/// Reduces every element of a matrix (contiguous or with ld > cols); each
/// element is converted to A before combining.
template <class A, class T, class Op>
A reduce_matrix(cudaStream_t stream, MatrixView<const T> x, Op op, A identity) {
    const index_t n = x.rows() * x.cols();
    if (x.rows() == 1 || x.ld() == x.cols()) return reduce_all<A>(stream, FlatLoad<T>{x.data()}, n, op, identity);
    return reduce_all<A>(stream, StridedLoad<T>{x.data(), x.cols(), x.ld()}, n, op, identity);
}

// ============================================================================
// Ids: device-side range check, gather, scatter-add
// ============================================================================

// check_ids_kernel: first_bad = min { i : ids[i] not in [0, rows) } (atomicMin
// on a value initialised to kNone). The minimum is order-independent, so the
// reported id is deterministic (the first bad one, as on the host).
__global__ void __launch_bounds__(kBlock)
    check_ids_kernel(const row_id_t* ids, index_t n, index_t rows, unsigned long long* first_bad) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += index_t{gridDim.x} * kBlock) {
        const index_t v = ids[i];
        if (v < 0 || v >= rows) atomicMin(first_bad, static_cast<unsigned long long>(i));
    }
}

// Row groups for the id kernels: a group of lpr = 2^lpr_log2 lanes (the
// smallest power of two >= cols, at most 32) handles one row (one id), so a
// block of kBlock threads covers kBlock / lpr rows at a time and short rows do
// not leave lanes idle; lane l of a group takes columns l, l + lpr, ...
struct RowGroups {
    int lpr_log2;
    index_t rows_per_block;
};
RowGroups row_groups(index_t cols) {
    int lg = 0;
    while (lg < 5 && (index_t{1} << lg) < cols) ++lg;
    return {lg, index_t{kBlock} >> lg};
}
unsigned row_group_grid(index_t n, const RowGroups& g) {
    return static_cast<unsigned>(min_index(ceil_div(n, g.rows_per_block), 1 << 20));
}

// gather_rows_kernel: out[i, :] = table[ids[i], :] for i < n, one row group
// (RowGroups) per id; each lane loads up to 4 of its columns before storing
// them. Writes nothing if check_ids_kernel (earlier on the stream) found a bad id.
template <class T>
__global__ void __launch_bounds__(kBlock)
    gather_rows_kernel(const T* table, index_t ldt, const row_id_t* ids, index_t n, index_t cols, T* out, index_t ldo,
                       const unsigned long long* first_bad, int lpr_log2) {
    if (*first_bad != kNone) return;
    const index_t lpr = index_t{1} << lpr_log2;
    const index_t rows_per_block = index_t{kBlock} >> lpr_log2;
    const index_t lane = threadIdx.x & (lpr - 1);
    for (index_t i = blockIdx.x * rows_per_block + (threadIdx.x >> lpr_log2); i < n;
         i += index_t{gridDim.x} * rows_per_block) {
        const T* src = table + static_cast<index_t>(ids[i]) * ldt;
        T* dst = out + i * ldo;
        for (index_t c0 = lane; c0 < cols; c0 += 4 * lpr) {
            T v[4];
#pragma unroll
            for (int u = 0; u < 4; ++u)
                if (c0 + u * lpr < cols) v[u] = src[c0 + u * lpr];
#pragma unroll
            for (int u = 0; u < 4; ++u)
                if (c0 + u * lpr < cols) dst[c0 + u * lpr] = v[u];
        }
    }
}

__global__ void __launch_bounds__(kBlock) iota_kernel(int* v, index_t n) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += index_t{gridDim.x} * kBlock)
        v[i] = static_cast<int>(i);
}

// scatter_add_sorted_kernel: keys [n] are the ids sorted stably, perm [n] the
// original positions (so equal ids keep increasing i). Each run of equal keys
// starting at p is handled by the row group (RowGroups) of position p (other
// positions skip): for its columns, t = table[id, c]; t += src[perm[q], c]
// for q in the run, in order; table[id, c] = t (two columns per lane at a
// time, each with its own chain). Accumulation in T in the Reference backend's
// order, so the result is bit-identical to it. Distinct runs write distinct
// rows: no races, no atomics. Writes nothing if a bad id was found.
template <class T>
__global__ void __launch_bounds__(kBlock)
    scatter_add_sorted_kernel(const T* src, index_t lds, const std::uint32_t* keys, const int* perm, index_t n,
                              index_t cols, T* table, index_t ldt, const unsigned long long* first_bad,
                              int lpr_log2) {
    if (*first_bad != kNone) return;
    const index_t lpr = index_t{1} << lpr_log2;
    const index_t rows_per_block = index_t{kBlock} >> lpr_log2;
    const index_t lane = threadIdx.x & (lpr - 1);
    for (index_t p = blockIdx.x * rows_per_block + (threadIdx.x >> lpr_log2); p < n;
         p += index_t{gridDim.x} * rows_per_block) {
        const std::uint32_t id = keys[p];
        if (p > 0 && keys[p - 1] == id) continue;  // not the head of a run
        index_t end = p + 1;
        while (end < n && keys[end] == id) ++end;
        T* row = table + static_cast<index_t>(id) * ldt;
        for (index_t c0 = lane; c0 < cols; c0 += 2 * lpr) {
            const index_t c1 = c0 + lpr;
            const bool has1 = c1 < cols;
            T t0 = row[c0];
            T t1 = has1 ? row[c1] : T(0);
            for (index_t q = p; q < end; ++q) {
                const T* sr = src + static_cast<index_t>(perm[q]) * lds;
                t0 = t0 + sr[c0];
                if (has1) t1 = t1 + sr[c1];
            }
            row[c0] = t0;
            if (has1) row[c1] = t1;
        }
    }
}

/// After the kernels: reads the device flag; throws IndexError for a bad id.
void throw_if_bad_id(cudaStream_t stream, const unsigned long long* d_first_bad, const row_id_t* d_ids, index_t rows,
                     const char* op) {
    const unsigned long long first_bad = fetch_from_device(stream, d_first_bad);
    if (first_bad == kNone) return;
    const auto i = static_cast<index_t>(first_bad);
    row_id_t value = 0;
    RECBLOCKS_CUDA_CHECK(cudaMemcpy(&value, d_ids + i, sizeof(row_id_t), cudaMemcpyDeviceToHost));
    throw IndexError(detail::concat(op, ": ids[", i, "] = ", value, " is out of range for a table of ", rows,
                                    " rows"));
}

void launch_check_ids(cudaStream_t stream, const row_id_t* ids, index_t n, index_t rows,
                      unsigned long long* first_bad) {
    RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned long long), stream));
    const auto blocks = static_cast<unsigned>(min_index(ceil_div(n, kBlock), 1024));
    check_ids_kernel<<<blocks, kBlock, 0, stream>>>(ids, n, rows, first_bad);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

// ============================================================================
// Top-k
// ============================================================================

/// (v, i) ranks before (w, j): larger value first, then lower index.
template <class T>
__device__ inline bool ranks_before(T v, int i, T w, int j) {
    return v > w || (v == w && i < j);
}

// Leaves lane 0 of the warp holding the pair that ranks first among the
// warp's 32 (value, index) pairs (ranks_before order).
template <class T>
__device__ void warp_best(T& best_v, int& best_i) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        const T ov = __shfl_down_sync(kFullMask, best_v, offset);
        const int oi = __shfl_down_sync(kFullMask, best_i, offset);
        if (ranks_before(ov, oi, best_v, best_i)) {
            best_v = ov;
            best_i = oi;
        }
    }
}

// top_k_rows_kernel: one block per row of scores [rows, n]. First a NaN scan
// (__syncthreads_or); a row with NaN records its index in nan_row (atomicMin,
// so the smallest such row is reported) and is skipped. Otherwise k passes:
// pass j finds, over the whole row, the pair (value, index) ranking first
// among those ranking after the pass j-1 pick (each thread scans its strided
// columns, then a warp-shuffle and a cross-warp reduction pick the block's
// best), and writes it to ids[r, j], values[r, j]. Work O(k * n) per row;
// ties go to the lower index; -inf and +inf are ordinary values. The "none
// yet" candidate is (-inf, INT_MAX), which every real entry outranks because
// n <= INT_MAX (checked by ops::top_k_rows).
template <class T>
__global__ void __launch_bounds__(kBlock)
    top_k_rows_kernel(const T* scores, index_t lds, index_t rows, index_t n, index_t k, row_id_t* ids, index_t ldi,
                      T* values, index_t ldv, unsigned long long* nan_row) {
    __shared__ T warp_v[kWarps];
    __shared__ int warp_i[kWarps];
    __shared__ T pick_v;
    __shared__ int pick_i;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int warp = static_cast<int>(threadIdx.x) >> 5;
    const T inf = pos_inf<T>();

    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* row = scores + r * lds;
        int has_nan = 0;
        for (index_t c = threadIdx.x; c < n; c += kBlock) has_nan |= row[c] != row[c] ? 1 : 0;
        if (__syncthreads_or(has_nan) != 0) {
            if (threadIdx.x == 0) atomicMin(nan_row, static_cast<unsigned long long>(r));
            continue;
        }
        T prev_v = inf;  // the previous pick; (+inf, -1) ranks before everything
        int prev_i = -1;
        for (index_t j = 0; j < k; ++j) {
            T best_v = -inf;
            int best_i = INT_MAX;
            for (index_t c = threadIdx.x; c < n; c += kBlock) {
                const T v = row[c];
                const int ci = static_cast<int>(c);
                if (ranks_before(prev_v, prev_i, v, ci) && ranks_before(v, ci, best_v, best_i)) {
                    best_v = v;
                    best_i = ci;
                }
            }
            warp_best(best_v, best_i);
            if (lane == 0) {
                warp_v[warp] = best_v;
                warp_i[warp] = best_i;
            }
            __syncthreads();
            if (warp == 0) {
                best_v = lane < kWarps ? warp_v[lane] : -inf;
                best_i = lane < kWarps ? warp_i[lane] : INT_MAX;
                warp_best(best_v, best_i);
                if (lane == 0) {
                    pick_v = best_v;
                    pick_i = best_i;
                    ids[r * ldi + j] = static_cast<row_id_t>(best_i);
                    values[r * ldv + j] = best_v;
                }
            }
            __syncthreads();
            prev_v = pick_v;
            prev_i = pick_i;
        }
    }
}


// ---- top-k over long rows: two stages --------------------------------------
//
// For rows longer than one segment (kTopKSegment = kBlock * kTopKPer scores),
// k <= kTopKMaxTwoStage and segments * k <= kTopKMaxCandidates; the host runs
// the rows in batches (of kTopKMaxCandidates / (segments * k) rows; scores,
// ids and values offset, row0 = the batch's first row). Stage 1,
// top_k_segments_kernel: grid (segments, rows); block (s, r) loads segment s
// of row r (columns s * kTopKSegment + t + kBlock * q, q < kTopKPer: thread t,
// coalesced) into registers, checks it for NaN (a segment with
// NaN records its row in nan_row, atomicMin as above, sets its seg_nan flag
// and writes no candidates), and runs the k selection passes of
// top_k_rows_kernel on the registers: candidate j of the segment is the pair
// ranking first among those ranking after candidate j - 1 (when the segment
// holds fewer than k scores the rest are the "none" pair (-inf, INT_MAX)).
// Stage 2, top_k_merge_kernel: one block per row runs the same k passes over
// the row's segments * k candidates (value, column) and writes ids/values; a
// row with a NaN segment is skipped (nothing written, as top_k_rows_kernel).
// The row's top k pairs are among the candidates (each is in the top k of its
// segment) and the order on (value, -index) pairs is total, so the result,
// ties to the lower index included, is that of the one-block kernel: exact and
// deterministic.
inline constexpr int kTopKPer = 16;
inline constexpr index_t kTopKSegment = index_t{kBlock} * kTopKPer;
inline constexpr index_t kTopKMaxTwoStage = kTopKSegment / 8;
/// Candidates (segments * k per row) of one batch of rows in the two-stage
/// scheme: at most 32 MiB of scratch for float. Rows need nseg * k <= this.
inline constexpr index_t kTopKMaxCandidates = index_t{1} << 22;

/// Every thread's (v, i) becomes the block's best pair (ranks_before order).
/// All threads must call it; safe to call repeatedly.
template <class T>
__device__ void block_best(T& v, int& i) {
    __shared__ T warp_v[kWarps];
    __shared__ int warp_i[kWarps];
    __shared__ T pick_v;
    __shared__ int pick_i;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const int warp = static_cast<int>(threadIdx.x) >> 5;
    warp_best(v, i);
    if (lane == 0) {
        warp_v[warp] = v;
        warp_i[warp] = i;
    }
    __syncthreads();
    if (warp == 0) {
        v = lane < kWarps ? warp_v[lane] : -pos_inf<T>();
        i = lane < kWarps ? warp_i[lane] : INT_MAX;
        warp_best(v, i);
        if (lane == 0) {
            pick_v = v;
            pick_i = i;
        }
    }
    __syncthreads();
    v = pick_v;
    i = pick_i;
}

template <class T>
__global__ void __launch_bounds__(kBlock)
    top_k_segments_kernel(const T* scores, index_t lds, index_t row0, index_t rows, index_t n, index_t k, index_t nseg,
                          T* cand_v, int* cand_i, int* seg_nan, unsigned long long* nan_row) {
    const T inf = pos_inf<T>();
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (index_t s = blockIdx.x; s < nseg; s += gridDim.x) {
            const T* row = scores + r * lds;
            const index_t base = s * kTopKSegment + threadIdx.x;
            T v[kTopKPer];
            int has_nan = 0;
#pragma unroll
            for (int q = 0; q < kTopKPer; ++q) {
                const index_t c = base + index_t{kBlock} * q;
                v[q] = c < n ? row[c] : -inf;
                has_nan |= v[q] != v[q] ? 1 : 0;
            }
            const index_t slot = r * nseg + s;
            if (__syncthreads_or(has_nan) != 0) {
                if (threadIdx.x == 0) {
                    seg_nan[slot] = 1;
                    atomicMin(nan_row, static_cast<unsigned long long>(row0 + r));
                }
                continue;
            }
            if (threadIdx.x == 0) seg_nan[slot] = 0;
            T prev_v = inf;
            int prev_i = -1;
            for (index_t j = 0; j < k; ++j) {
                T best_v = -inf;
                int best_i = INT_MAX;
#pragma unroll
                for (int q = 0; q < kTopKPer; ++q) {
                    const index_t c = base + index_t{kBlock} * q;
                    const int ci = static_cast<int>(c);
                    if (c < n && ranks_before(prev_v, prev_i, v[q], ci) && ranks_before(v[q], ci, best_v, best_i)) {
                        best_v = v[q];
                        best_i = ci;
                    }
                }
                block_best(best_v, best_i);
                if (threadIdx.x == 0) {
                    cand_v[slot * k + j] = best_v;
                    cand_i[slot * k + j] = best_i;
                }
                prev_v = best_v;
                prev_i = best_i;
            }
        }
}

template <class T>
__global__ void __launch_bounds__(kBlock)
    top_k_merge_kernel(const T* cand_v, const int* cand_i, const int* seg_nan, index_t rows, index_t nseg, index_t k,
                       row_id_t* ids, index_t ldi, T* values, index_t ldv) {
    const T inf = pos_inf<T>();
    const index_t m = nseg * k;
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        int has_nan = 0;
        for (index_t s = threadIdx.x; s < nseg; s += kBlock) has_nan |= seg_nan[r * nseg + s];
        if (__syncthreads_or(has_nan) != 0) continue;
        const T* cv = cand_v + r * m;
        const int* ci = cand_i + r * m;
        T prev_v = inf;
        int prev_i = -1;
        for (index_t j = 0; j < k; ++j) {
            T best_v = -inf;
            int best_i = INT_MAX;
            for (index_t p = threadIdx.x; p < m; p += kBlock) {
                const T v = cv[p];
                const int i = ci[p];
                if (ranks_before(prev_v, prev_i, v, i) && ranks_before(v, i, best_v, best_i)) {
                    best_v = v;
                    best_i = i;
                }
            }
            block_best(best_v, best_i);
            if (threadIdx.x == 0) {
                ids[r * ldi + j] = static_cast<row_id_t>(best_i);
                values[r * ldv + j] = best_v;
            }
            prev_v = best_v;
            prev_i = best_i;
        }
    }
}

// ============================================================================
// cuBLAS glue
// ============================================================================

int to_int(index_t v, const char* what) {
    if (v < 0 || v > index_t{INT_MAX})
        throw BackendError(detail::concat("CUDA backend: ", what, " = ", v, " exceeds cuBLAS's int range"));
    return static_cast<int>(v);
}

cublasOperation_t op_of(Trans t) { return t == Trans::yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

template <class T>
cublasStatus_t gemm_strided_batched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                    const T* alpha, const T* a, int lda, long long sa, const T* b, int ldb,
                                    long long sb, const T* beta, T* c, int ldc, long long sc, int batch) {
    if constexpr (std::is_same_v<T, float>)
        return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
    else
        return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc, batch);
}

template <class T>
cublasStatus_t gemm_one(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                        const T* alpha, const T* a, int lda, const T* b, int ldb, const T* beta, T* c, int ldc) {
    if constexpr (std::is_same_v<T, float>)
        return cublasSgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        return cublasDgemm(h, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// Row-major C [M, N] = alpha op(A) op(B) + beta C, for `batch` matrices with
/// element strides sa, sb, sc between them, as column-major cuBLAS calls.
///
/// The memory of a row-major R x C matrix with leading dimension ld is the
/// column-major C x R matrix (its transpose) with the same ld. So
///   row-major  C = op(A) op(B)   <=>   column-major  Cᵀ = op(B)ᵀ op(A)ᵀ
/// and cuBLAS gets: first operand B's memory (transposed iff tb == yes), second
/// operand A's memory (transposed iff ta == yes), m = N, n = M, k = K, ldc as is.
/// Leading dimensions then satisfy cuBLAS's rules: B's memory is N x K (ldb >= N)
/// without transposition or K x N (ldb >= K) with it; likewise for A; C's
/// memory is N x M (ldc >= N).
template <class T>
void gemm_rowmajor(const backend::Cuda& be, Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha,
                   const T* a, index_t lda, index_t sa, const T* b, index_t ldb, index_t sb, T beta, T* c,
                   index_t ldc, index_t sc, index_t batch) {
    if (k == 0) {  // C = beta * C (alpha * empty sum), C not read when beta == 0
        const dim3 grid(static_cast<unsigned>(min_index(ceil_div(n, kBlock), 1024)),
                        static_cast<unsigned>(min_index(m, 65535)), static_cast<unsigned>(min_index(batch, 65535)));
        scale_kernel<<<grid, kBlock, 0, be.stream>>>(c, batch, sc, m, n, ldc, beta);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
        return;
    }
    cublasHandle_t h = be.blas();
    RECBLOCKS_CUBLAS_CHECK(cublasSetStream(h, be.stream));
    const int mi = to_int(m, "M"), ni = to_int(n, "N"), ki = to_int(k, "K");
    const int ldai = to_int(lda, "lda"), ldbi = to_int(ldb, "ldb"), ldci = to_int(ldc, "ldc");
    if (batch == 1) {
        RECBLOCKS_CUBLAS_CHECK(gemm_one<T>(h, op_of(tb), op_of(ta), ni, mi, ki, &alpha, b, ldbi, a, ldai, &beta, c,
                                           ldci));
    } else {
        RECBLOCKS_CUBLAS_CHECK(gemm_strided_batched<T>(h, op_of(tb), op_of(ta), ni, mi, ki, &alpha, b, ldbi, sb, a,
                                                       ldai, sa, &beta, c, ldci, sc, to_int(batch, "batch")));
    }
}

/// ld of one matrix of a 3-D [batch, rows, cols] view (any value when rows <= 1).
template <class U>
index_t batched_ld(const TensorView<U, 3>& t) {
    const index_t ld = t.extent(1) <= 1 ? t.extent(2) : t.strides()[1];
    return ld > 0 ? ld : 1;
}

}  // namespace
}  // namespace cuda_detail

// ============================================================================
// Host entry points
// ============================================================================

using P = Primitives<backend::Cuda>;
using namespace cuda_detail;

template <class T>
void P::gemm(const B& be, Trans ta, Trans tb, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta,
             MatrixView<T> c) {
    const index_t m = c.rows(), n = c.cols();
    const index_t k = ta == Trans::yes ? a.rows() : a.cols();
    if (m == 0 || n == 0) return;
    gemm_rowmajor<T>(be, ta, tb, m, n, k, alpha, a.data(), safe_ld(a), 0, b.data(), safe_ld(b), 0, beta, c.data(),
                     safe_ld(c), 0, 1);
}

template <class T>
void P::gemm_batched(const B& be, Trans ta, Trans tb, T alpha, TensorView<const T, 3> a, TensorView<const T, 3> b,
                     T beta, TensorView<T, 3> c) {
    const index_t batch = c.extent(0), m = c.extent(1), n = c.extent(2);
    const index_t k = ta == Trans::yes ? a.extent(1) : a.extent(2);
    if (batch == 0 || m == 0 || n == 0) return;
    gemm_rowmajor<T>(be, ta, tb, m, n, k, alpha, a.data(), batched_ld(a), a.strides()[0], b.data(), batched_ld(b),
                     b.strides()[0], beta, c.data(), batched_ld(c), c.strides()[0], batch);
}

template <class T>
T P::dot(const B& be, VectorView<const T> x, VectorView<const T> y) {
    if (x.size() == 0) return T(0);
    return static_cast<T>(reduce_all<double>(be.stream, DotLoad<T>{x.data(), y.data()}, x.size(), SumOp{}, 0.0));
}

template <class T>
void P::axpy(const B& be, T alpha, VectorView<const T> x, VectorView<T> y) {
    const index_t n = x.size();
    if (n == 0) return;
    const auto blocks = static_cast<unsigned>(min_index(ceil_div(n, kBlock), 4096));
    axpy_kernel<<<blocks, kBlock, 0, be.stream>>>(n, alpha, x.data(), y.data());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::adam_update(const B& be, const AdamUpdate<T>& u, VectorView<T> w, VectorView<const T> g, VectorView<T> m,
                    VectorView<T> v) {
    const index_t n = w.size();
    if (n == 0) return;
    const auto blocks = static_cast<unsigned>(min_index(ceil_div(n, kBlock), 4096));
    adam_update_kernel<<<blocks, kBlock, 0, be.stream>>>(n, u, w.data(), g.data(), m.data(), v.data());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::dropout(const B& be, VectorView<const T> x, VectorView<T> y, index_t first, const DropoutMask& mask, T scale) {
    const index_t n = x.size();
    if (n == 0) return;
    const index_t blocks4 = ((first + n - 1) >> 2) - (first >> 2) + 1;
    const auto grid = static_cast<unsigned>(min_index(ceil_div(blocks4, kBlock), 4096));
    dropout_kernel<<<grid, kBlock, 0, be.stream>>>(x.data(), y.data(), n, first, mask, scale);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::add(const B& be, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out) {
    const index_t rows = out.rows(), cols = out.cols();
    if (rows == 0 || cols == 0) return;
    const dim3 grid(static_cast<unsigned>(min_index(ceil_div(cols, kBlock), 64)),
                    static_cast<unsigned>(min_index(rows, 65535)));
    add_kernel<<<grid, kBlock, 0, be.stream>>>(a.data(), a.ld(), b.data(), b.ld(), out.data(), out.ld(), rows, cols);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::copy(const B& be, MatrixView<const T> src, MatrixView<T> dst) {
    if (dst.empty()) return;
    // A one-row view may have ld < cols (ops/ allows it); cudaMemcpy2D wants pitches >= the row width.
    const auto pitch = [&](index_t ld) { return static_cast<std::size_t>(std::max(ld, dst.cols())) * sizeof(T); };
    RECBLOCKS_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), pitch(dst.ld()), src.data(), pitch(src.ld()),
                                           static_cast<std::size_t>(dst.cols()) * sizeof(T),
                                           static_cast<std::size_t>(dst.rows()), cudaMemcpyDeviceToDevice, be.stream));
}

template <class T>
void P::softmax_rows(const B& be, MatrixView<const T> x, MatrixView<const std::uint8_t> mask, MatrixView<T> y) {
    if (x.rows() == 0 || x.cols() == 0) return;
    const std::uint8_t* m = mask.data();
    const index_t ldm = m != nullptr ? safe_ld(mask) : 0;
    const bool narrow = dispatch_warp_rows<32>(x.cols(), [&](auto vpt) {
        softmax_rows_warp_kernel<T, decltype(vpt)::value><<<warp_row_grid(x.rows()), kBlock, 0, be.stream>>>(
            x.data(), safe_ld(x), m, ldm, y.data(), safe_ld(y), x.rows(), x.cols());
    });
    if (!narrow)
        softmax_rows_kernel<<<row_grid(x.rows()), kBlock, 0, be.stream>>>(x.data(), safe_ld(x), m, ldm, y.data(),
                                                                          safe_ld(y), x.rows(), x.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::softmax_rows_backward(const B& be, MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx) {
    if (y.rows() == 0 || y.cols() == 0) return;
    const bool narrow = dispatch_warp_rows<32>(y.cols(), [&](auto vpt) {
        softmax_rows_backward_warp_kernel<T, decltype(vpt)::value><<<warp_row_grid(y.rows()), kBlock, 0, be.stream>>>(
            y.data(), safe_ld(y), dy.data(), safe_ld(dy), dx.data(), safe_ld(dx), y.rows(), y.cols());
    });
    if (!narrow)
        softmax_rows_backward_kernel<<<row_grid(y.rows()), kBlock, 0, be.stream>>>(
            y.data(), safe_ld(y), dy.data(), safe_ld(dy), dx.data(), safe_ld(dx), y.rows(), y.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::layer_norm_forward(const B& be, MatrixView<const T> x, VectorView<const T> gamma, VectorView<const T> beta,
                           T eps, MatrixView<T> y, VectorView<T> mean, VectorView<T> rstd) {
    if (x.rows() == 0 || x.cols() == 0) return;
    const bool narrow = dispatch_warp_rows<32>(x.cols(), [&](auto vpt) {
        layer_norm_forward_warp_kernel<T, decltype(vpt)::value><<<warp_row_grid(x.rows()), kBlock, 0, be.stream>>>(
            x.data(), safe_ld(x), gamma.data(), beta.data(), eps, y.data(), safe_ld(y), mean.data(), rstd.data(),
            x.rows(), x.cols());
    });
    if (!narrow)
        layer_norm_forward_kernel<<<row_grid(x.rows()), kBlock, 0, be.stream>>>(
            x.data(), safe_ld(x), gamma.data(), beta.data(), eps, y.data(), safe_ld(y), mean.data(), rstd.data(),
            x.rows(), x.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::layer_norm_backward(const B& be, MatrixView<const T> x, VectorView<const T> gamma, VectorView<const T> mean,
                            VectorView<const T> rstd, MatrixView<const T> dy, MatrixView<T> dx, VectorView<T> dgamma,
                            VectorView<T> dbeta) {
    const index_t rows = x.rows(), d = x.cols();
    if (rows == 0 || d == 0) return;
    // Narrow rows: one fused pass (dx and the dgamma/dbeta partials), then the
    // column finish.
    const ColumnSplit split = layer_norm_backward_split(rows);
    std::optional<Scratch> scratch;
    const bool narrow = dispatch_warp_rows<16>(d, [&](auto vpt) {
        scratch.emplace(static_cast<std::size_t>(2 * split.nchunks * d) * sizeof(double), be.stream);
        layer_norm_backward_warp_kernel<T, decltype(vpt)::value>
            <<<static_cast<unsigned>(split.nchunks), kBlock, 0, be.stream>>>(
                x.data(), safe_ld(x), gamma.data(), mean.data(), rstd.data(), dy.data(), safe_ld(dy), dx.data(),
                safe_ld(dx), rows, d, split.chunk, scratch->at<double>(0));
        RECBLOCKS_CUDA_CHECK_LAUNCH();
        launch_column_finish<2>(be.stream, scratch->at<double>(0), split.nchunks, d,
                                AccumulateParams<T>{dgamma.data(), dbeta.data()});
    });
    if (narrow) return;
    // Wide rows. Parameter gradients first: they read dy, which dx may alias.
    column_reduce<2>(be.stream, rows, d,
                     LayerNormParamLoad<T>{x.data(), safe_ld(x), dy.data(), safe_ld(dy), mean.data(), rstd.data()},
                     AccumulateParams<T>{dgamma.data(), dbeta.data()});
    layer_norm_backward_dx_kernel<<<row_grid(rows), kBlock, 0, be.stream>>>(
        x.data(), safe_ld(x), gamma.data(), mean.data(), rstd.data(), dy.data(), safe_ld(dy), dx.data(), safe_ld(dx),
        rows, d);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::activation_forward(const B& be, Activation act, MatrixView<const T> x, MatrixView<T> y) {
    if (x.rows() == 0 || x.cols() == 0) return;
    activation_forward_kernel<<<elementwise_grid(x.rows(), x.cols()), kBlock, 0, be.stream>>>(
        act, x.data(), safe_ld(x), y.data(), safe_ld(y), x.rows(), x.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::activation_backward(const B& be, Activation act, MatrixView<const T> x, MatrixView<const T> dy,
                            MatrixView<T> dx) {
    if (x.rows() == 0 || x.cols() == 0) return;
    activation_backward_kernel<<<elementwise_grid(x.rows(), x.cols()), kBlock, 0, be.stream>>>(
        act, x.data(), safe_ld(x), dy.data(), safe_ld(dy), dx.data(), safe_ld(dx), x.rows(), x.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::gather_rows(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids, MatrixView<T> out) {
    const index_t n = ids.size(), cols = table.cols();
    if (n == 0) return;
    Scratch scratch(sizeof(unsigned long long), be.stream);
    auto* first_bad = scratch.at<unsigned long long>(0);
    launch_check_ids(be.stream, ids.data(), n, table.rows(), first_bad);
    if (cols > 0) {
        const RowGroups g = row_groups(cols);
        gather_rows_kernel<<<row_group_grid(n, g), kBlock, 0, be.stream>>>(
            table.data(), safe_ld(table), ids.data(), n, cols, out.data(), safe_ld(out), first_bad, g.lpr_log2);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    // Ids checked on the host: no wait for the device's verdict (graph capture allows none).
    if (!be.trusted_ids) throw_if_bad_id(be.stream, first_bad, ids.data(), table.rows(), "ops::gather_rows");
}

template <class T>
void P::scatter_add_rows(const B& be, MatrixView<const T> src, VectorView<const row_id_t> ids, MatrixView<T> table) {
    const index_t n = ids.size(), cols = table.cols();
    if (n == 0) return;
    if (n > index_t{INT_MAX})
        throw BackendError(detail::concat("ops::scatter_add_rows: ", n, " ids exceed the CUDA backend's limit of ",
                                          INT_MAX));
    cudaStream_t stream = be.stream;
    // Key bits that can differ between valid ids (ids in [0, rows), rows <= 2^31).
    const auto max_id = static_cast<std::uint64_t>(table.rows() > 1 ? table.rows() - 1 : 1);
    const int end_bit = std::min(32, static_cast<int>(std::bit_width(max_id)));
    const auto keys_in = reinterpret_cast<const std::uint32_t*>(ids.data());  // valid ids are >= 0
    const int ni = static_cast<int>(n);

    std::size_t sort_bytes = 0;
    RECBLOCKS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, keys_in, static_cast<std::uint32_t*>(nullptr),
                                                         static_cast<const int*>(nullptr), static_cast<int*>(nullptr), ni,
                                                         0, end_bit, stream));
    const std::size_t flag_off = 0;
    const std::size_t keys_off = flag_off + Scratch::round_up(sizeof(unsigned long long));
    const std::size_t perm_in_off = keys_off + Scratch::round_up(static_cast<std::size_t>(n) * sizeof(std::uint32_t));
    const std::size_t perm_off = perm_in_off + Scratch::round_up(static_cast<std::size_t>(n) * sizeof(int));
    const std::size_t sort_off = perm_off + Scratch::round_up(static_cast<std::size_t>(n) * sizeof(int));
    Scratch scratch(sort_off + Scratch::round_up(sort_bytes), stream);
    auto* first_bad = scratch.at<unsigned long long>(flag_off);
    auto* keys = scratch.at<std::uint32_t>(keys_off);
    int* perm_in = scratch.at<int>(perm_in_off);
    int* perm = scratch.at<int>(perm_off);

    launch_check_ids(stream, ids.data(), n, table.rows(), first_bad);
    if (cols > 0) {
        const auto blocks = static_cast<unsigned>(min_index(ceil_div(n, kBlock), 1024));
        iota_kernel<<<blocks, kBlock, 0, stream>>>(perm_in, n);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
        RECBLOCKS_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(scratch.at<void>(sort_off), sort_bytes, keys_in, keys,
                                                             static_cast<const int*>(perm_in), perm, ni, 0, end_bit,
                                                             stream));
        const RowGroups g = row_groups(cols);
        scatter_add_sorted_kernel<<<row_group_grid(n, g), kBlock, 0, stream>>>(
            src.data(), safe_ld(src), keys, perm, n, cols, table.data(), safe_ld(table), first_bad, g.lpr_log2);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    throw_if_bad_id(stream, first_bad, ids.data(), table.rows(), "ops::scatter_add_rows");
}

template <class T>
index_t P::top_k_rows(const B& be, MatrixView<const T> scores, index_t k, MatrixView<row_id_t> ids, MatrixView<T> values) {
    const index_t rows = scores.rows(), n = scores.cols();
    if (rows == 0 || k <= 0) return -1;
    if (n > index_t{INT_MAX})
        throw BackendError(detail::concat("ops::top_k_rows: rows of ", n, " scores exceed the CUDA backend's limit"));
    cudaStream_t stream = be.stream;
    // Two stages when a row spans several segments, k is small against a
    // segment, and one row's candidates fit the scratch budget (else one block
    // per row). Rows go in batches of `batch` rows: batch * nseg * k candidates.
    const index_t nseg = ceil_div(n, kTopKSegment);
    const bool two_stage = nseg > 1 && k <= kTopKMaxTwoStage && nseg * k <= kTopKMaxCandidates;
    const index_t batch = two_stage ? min_index(rows, kTopKMaxCandidates / (nseg * k)) : 0;
    const std::size_t flag_off = 0;
    const std::size_t seg_off = flag_off + Scratch::round_up(sizeof(unsigned long long));
    const std::size_t cv_off = seg_off + Scratch::round_up(static_cast<std::size_t>(batch * nseg) * sizeof(int));
    const std::size_t ci_off = cv_off + Scratch::round_up(static_cast<std::size_t>(batch * nseg * k) * sizeof(T));
    const std::size_t end = ci_off + Scratch::round_up(static_cast<std::size_t>(batch * nseg * k) * sizeof(int));
    Scratch scratch(end, stream);
    auto* nan_row = scratch.at<unsigned long long>(flag_off);
    RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(nan_row, 0xFF, sizeof(unsigned long long), stream));
    if (two_stage) {
        int* seg_nan = scratch.at<int>(seg_off);
        T* cand_v = scratch.at<T>(cv_off);
        int* cand_i = scratch.at<int>(ci_off);
        const index_t lds = safe_ld(scores), ldi = safe_ld(ids), ldv = safe_ld(values);
        for (index_t r0 = 0; r0 < rows; r0 += batch) {
            const index_t nr = min_index(batch, rows - r0);
            const dim3 grid(static_cast<unsigned>(min_index(nseg, 1 << 20)),
                            static_cast<unsigned>(min_index(nr, 65535)), 1);
            top_k_segments_kernel<<<grid, kBlock, 0, stream>>>(scores.data() + r0 * lds, lds, r0, nr, n, k, nseg,
                                                               cand_v, cand_i, seg_nan, nan_row);
            RECBLOCKS_CUDA_CHECK_LAUNCH();
            top_k_merge_kernel<<<row_grid(nr), kBlock, 0, stream>>>(cand_v, cand_i, seg_nan, nr, nseg, k,
                                                                    ids.data() + r0 * ldi, ldi,
                                                                    values.data() + r0 * ldv, ldv);
            RECBLOCKS_CUDA_CHECK_LAUNCH();
        }
    } else {
        top_k_rows_kernel<<<row_grid(rows), kBlock, 0, stream>>>(scores.data(), safe_ld(scores), rows, n, k,
                                                                 ids.data(), safe_ld(ids), values.data(),
                                                                 safe_ld(values), nan_row);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    const unsigned long long host = fetch_from_device(stream, nan_row);
    return host == kNone ? index_t{-1} : static_cast<index_t>(host);
}

template <class T>
T P::sum(const B& be, MatrixView<const T> x) {
    if (x.empty()) return T(0);
    return static_cast<T>(reduce_matrix<double, T>(be.stream, x, SumOp{}, 0.0));
}

template <class T>
T P::max_value(const B& be, MatrixView<const T> x) {
    if (x.empty()) return -std::numeric_limits<T>::infinity();
    return reduce_matrix<T, T>(be.stream, x, MaxNanOp{}, -std::numeric_limits<T>::infinity());
}

template <class T>
void P::sum_rows(const B& be, MatrixView<const T> x, VectorView<T> out) {
    const index_t rows = x.rows(), cols = x.cols();
    if (cols == 0) return;
    if (rows == 0) {
        RECBLOCKS_CUDA_CHECK(
            cudaMemsetAsync(out.data(), 0, static_cast<std::size_t>(cols) * sizeof(T), be.stream));  // +0.0
        return;
    }
    column_reduce<1>(be.stream, rows, cols, SumRowsLoad<T>{x.data(), safe_ld(x)}, StoreColumn<T>{out.data()});
}

// ============================================================================
// Explicit instantiations (declared extern in backend/cuda/primitives.hpp)
// ============================================================================

template <class T>
double P::logistic_loss(const B& be, VectorView<const T> s, VectorView<const T> sign, T weight, VectorView<T> g) {
    const index_t n = s.size();
    if (n == 0) return 0.0;
    logistic_grad_kernel<T><<<static_cast<unsigned>(min_index(ceil_div(n, kBlock), 4096)), kBlock, 0, be.stream>>>(
        s.data(), sign.data(), weight, g.data(), n);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    return reduce_all<double>(be.stream, SoftplusLoad<T>{s.data(), sign.data()}, n, SumOp{}, 0.0);
}

#define RECBLOCKS_CUDA_INSTANTIATE(T)                                                                               \
    template void P::gemm<T>(const backend::Cuda&, Trans, Trans, T, MatrixView<const T>, MatrixView<const T>, T,   \
                             MatrixView<T>);                                                                        \
    template void P::gemm_batched<T>(const backend::Cuda&, Trans, Trans, T, TensorView<const T, 3>,                \
                                     TensorView<const T, 3>, T, TensorView<T, 3>);                                  \
    template T P::dot<T>(const backend::Cuda&, VectorView<const T>, VectorView<const T>);                          \
    template void P::axpy<T>(const backend::Cuda&, T, VectorView<const T>, VectorView<T>);                         \
    template void P::adam_update<T>(const backend::Cuda&, const AdamUpdate<T>&, VectorView<T>, VectorView<const T>, \
                                    VectorView<T>, VectorView<T>);                                                  \
    template void P::dropout<T>(const backend::Cuda&, VectorView<const T>, VectorView<T>, index_t,                 \
                                const DropoutMask&, T);                                                             \
    template void P::add<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const T>, MatrixView<T>);        \
    template void P::copy<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<T>);                            \
    template void P::softmax_rows<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const std::uint8_t>,    \
                                     MatrixView<T>);                                                                \
    template void P::softmax_rows_backward<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const T>,      \
                                              MatrixView<T>);                                                       \
    template void P::layer_norm_forward<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const T>,         \
                                           VectorView<const T>, T, MatrixView<T>, VectorView<T>, VectorView<T>);    \
    template void P::layer_norm_backward<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const T>,        \
                                            VectorView<const T>, VectorView<const T>, MatrixView<const T>,          \
                                            MatrixView<T>, VectorView<T>, VectorView<T>);                           \
    template void P::activation_forward<T>(const backend::Cuda&, Activation, MatrixView<const T>, MatrixView<T>);  \
    template void P::activation_backward<T>(const backend::Cuda&, Activation, MatrixView<const T>,                 \
                                            MatrixView<const T>, MatrixView<T>);                                    \
    template void P::gather_rows<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const row_id_t>,             \
                                    MatrixView<T>);                                                                 \
    template void P::scatter_add_rows<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const row_id_t>,        \
                                         MatrixView<T>);                                                            \
    template index_t P::top_k_rows<T>(const backend::Cuda&, MatrixView<const T>, index_t, MatrixView<row_id_t>,        \
                                      MatrixView<T>);                                                               \
    template T P::sum<T>(const backend::Cuda&, MatrixView<const T>);                                               \
    template T P::max_value<T>(const backend::Cuda&, MatrixView<const T>);                                         \
    template void P::sum_rows<T>(const backend::Cuda&, MatrixView<const T>, VectorView<T>);                       \
    template double P::logistic_loss<T>(const backend::Cuda&, VectorView<const T>, VectorView<const T>, T,         \
                                        VectorView<T>)

RECBLOCKS_CUDA_INSTANTIATE(float);
RECBLOCKS_CUDA_INSTANTIATE(double);

#undef RECBLOCKS_CUDA_INSTANTIATE

RECBLOCKS_NAMESPACE_END
