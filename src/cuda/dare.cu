// Primitives<backend::Cuda> for DARE (models/dare.hpp): the element-wise
// product `multiply`, the binary cross-entropy on logits `bce_with_logits`,
// and the target-attention family (ops/target_attention.hpp):
// search_segments, attend_rows, attend_rows_backward. Explicitly instantiated
// for float and double. Conventions as in glue.cu: row-major views, element
// (r, c) of a matrix with leading dimension ld is p[r * ld + c]; every kernel
// loops (grid-stride), so any grid size is correct. Every reduction combines
// in a fixed order (no float atomics): the same input gives the same bits on
// every run.
#include <cstdint>

#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

dim3 dare_grid(index_t rows, index_t cols) {
    return dim3(static_cast<unsigned>(min_index(ceil_div(cols, kBlock), 1024)),
                static_cast<unsigned>(min_index(rows, 65535)), 1);
}
unsigned dare_blocks(index_t n) { return static_cast<unsigned>(min_index(ceil_div(n, kBlock), 4096)); }
template <class V>
index_t dare_ld(const V& m) {
    const index_t ld = m.rows() <= 1 ? m.cols() : m.ld();
    return ld > 0 ? ld : 1;
}

__device__ inline double dev_log1p(double x) { return log1p(x); }

// multiply_kernel: out[r, c] = a[r, c] * b[r, c] in T; out may alias a or b
// exactly (each element is read and written by one thread).
template <class T>
__global__ void __launch_bounds__(kBlock) multiply_kernel(const T* a, index_t lda, const T* b, index_t ldb, T* out,
                                                          index_t ldo, index_t rows, index_t cols) {
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock)
            out[r * ldo + c] = a[r * lda + c] * b[r * ldb + c];
}

// bce_kernel: one block. g[m] = weight (sigmoid(z) - y) (double math, rounded
// once); thread t adds the loss terms m = t, t + kBlock, ... in order, then the
// fixed block tree: deterministic. The total goes to *total.
template <class T>
__global__ void __launch_bounds__(kBlock) bce_kernel(const T* z, const T* y, T weight, T* g, index_t n, double* total) {
    double part = 0.0;
    for (index_t m = threadIdx.x; m < n; m += kBlock) {
        const double zm = z[m], ym = y[m];
        part += (zm > 0.0 ? zm : 0.0) - zm * ym + dev_log1p(exp(-fabs(zm)));
        const double s = zm >= 0.0 ? 1.0 / (1.0 + exp(-zm)) : exp(zm) / (1.0 + exp(zm));
        g[m] = static_cast<T>(double(weight) * (s - ym));
    }
    part = block_reduce(part, SumOp{}, 0.0);
    if (threadIdx.x == 0) *total = part;
}

// search_check_kernel: flags[0] = the first id outside [0, rows);
// flags[1] = the first segment shorter than k, or 0 when the offsets do not
// start at 0 / end at n (atomicMin on integer flags: the minimum does not
// depend on the order, so the report matches the host's).
__global__ void __launch_bounds__(kBlock)
    search_check_kernel(const row_id_t* ids, index_t n, index_t rows, const index_t* offsets, index_t segments,
                        index_t k, unsigned long long* flags) {
    const index_t stride = index_t{gridDim.x} * kBlock;
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += stride) {
        const index_t v = ids[i];
        if (v < 0 || v >= rows) atomicMin(flags, static_cast<unsigned long long>(i));
    }
    for (index_t s = blockIdx.x * index_t{kBlock} + threadIdx.x; s < segments; s += stride) {
        const bool ends = (s > 0 || offsets[0] == 0) && (s + 1 < segments || offsets[segments] == n);
        if (!ends || offsets[s + 1] - offsets[s] < k) atomicMin(flags + 1, static_cast<unsigned long long>(s));
    }
}

// search_dots_kernel: scores[j] = alpha <table[ids[j]], queries[s]> for j in
// segment s (found by bisection of the offsets), one warp per id: lane l adds
// columns l, l + 32, ... in order (fma in T), the fixed shuffle tree combines
// the lanes (the gathered_dot kernel's order). Nothing is written when the
// check found a problem.
template <class T>
__global__ void __launch_bounds__(kBlock)
    search_dots_kernel(const T* table, index_t ldt, const row_id_t* ids, index_t n, const index_t* offsets,
                       index_t segments, const T* queries, index_t ldq, index_t cols, T alpha, T* scores,
                       const unsigned long long* flags) {
    if (flags[0] != kNone || flags[1] != kNone) return;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t j = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); j < n; j += index_t{gridDim.x} * kWarps) {
        index_t lo = 0, hi = segments;  // the segment s with offsets[s] <= j < offsets[s + 1]
        while (hi - lo > 1) {
            const index_t mid = (lo + hi) / 2;
            if (offsets[mid] <= j) lo = mid;
            else hi = mid;
        }
        const T* row = table + static_cast<index_t>(ids[j]) * ldt;
        const T* q = queries + lo * ldq;
        T acc = T(0);
        for (index_t c = lane; c < cols; c += 32) acc = fma(row[c], q[c], acc);
        acc = warp_reduce(acc, SumOp{});
        if (lane == 0) scores[j] = alpha * acc;
    }
}

/// A (score, position) candidate; position < 0 = none.
template <class T>
struct Candidate {
    T v;
    index_t i;
};
/// Whether a ranks before b: higher score, then the earlier position; any candidate before none.
template <class T>
__device__ inline bool ranks_before(const Candidate<T>& a, const Candidate<T>& b) {
    if (b.i < 0) return a.i >= 0;
    if (a.i < 0) return false;
    return a.v > b.v || (a.v == b.v && a.i < b.i);
}
/// The best candidate of the block (fixed tree: lanes by shuffles, then warp 0 over the warps).
template <class T>
__device__ inline Candidate<T> block_best(Candidate<T> c) {
    __shared__ T sv[kWarps];
    __shared__ index_t si[kWarps];
    __shared__ Candidate<T> result;
    const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
    for (int off = 16; off > 0; off >>= 1) {
        const Candidate<T> o{__shfl_down_sync(kFullMask, c.v, off), __shfl_down_sync(kFullMask, c.i, off)};
        if (ranks_before(o, c)) c = o;
    }
    __syncthreads();  // a previous call's readers of result are done
    if (lane == 0) {
        sv[warp] = c.v;
        si[warp] = c.i;
    }
    __syncthreads();
    if (warp == 0) {
        c = lane < kWarps ? Candidate<T>{sv[lane], si[lane]} : Candidate<T>{T(0), -1};
        for (int off = 16; off > 0; off >>= 1) {
            const Candidate<T> o{__shfl_down_sync(kFullMask, c.v, off), __shfl_down_sync(kFullMask, c.i, off)};
            if (ranks_before(o, c)) c = o;
        }
        if (lane == 0) result = c;
    }
    __syncthreads();
    return result;
}

// search_top_k_kernel: one block per segment (grid-stride). A NaN score
// marks the segment (flags[2] = the first such segment) and writes nothing.
// Otherwise k selection passes: pass p takes the best candidate that ranks
// after pass p - 1's pick. O(k n) per segment, exact, deterministic ties
// (the earlier position first), as the host's top-k. Suited to DARE's k (~20-32).
template <class T>
__global__ void __launch_bounds__(kBlock)
    search_top_k_kernel(const T* scores, const row_id_t* ids, const index_t* offsets, index_t segments, index_t k,
                        T* top_values, index_t ldv, row_id_t* top_positions, index_t ldp, row_id_t* top_ids,
                        index_t ldi, unsigned long long* flags) {
    if (flags[0] != kNone || flags[1] != kNone) return;
    for (index_t s = blockIdx.x; s < segments; s += gridDim.x) {
        const index_t b = offsets[s], n = offsets[s + 1] - b;
        const T* x = scores + b;
        int nan = 0;
        for (index_t j = threadIdx.x; j < n; j += kBlock) nan |= x[j] != x[j] ? 1 : 0;
        if (block_reduce(nan, SumOp{}, 0) != 0) {
            if (threadIdx.x == 0) atomicMin(flags + 2, static_cast<unsigned long long>(s));
            continue;
        }
        Candidate<T> prev{T(0), -1};
        for (index_t p = 0; p < k; ++p) {
            Candidate<T> best{T(0), -1};
            for (index_t j = threadIdx.x; j < n; j += kBlock) {
                const Candidate<T> c{x[j], j};
                if ((p == 0 || ranks_before(prev, c)) && ranks_before(c, best)) best = c;
            }
            prev = block_best(best);
            if (threadIdx.x == 0) {
                top_values[s * ldv + p] = prev.v;
                top_positions[s * ldp + p] = static_cast<row_id_t>(prev.i);
                if (top_ids != nullptr) top_ids[s * ldi + p] = ids[b + prev.i];
            }
        }
    }
}

// attend_rows_kernel: out[s, c] = Σ_j w[s, j] rows[s k + j, c], one thread per
// (s, c), j in order (fma in T): deterministic.
template <class T>
__global__ void __launch_bounds__(kBlock) attend_rows_kernel(const T* w, index_t ldw, const T* rows, index_t ldr,
                                                             T* out, index_t ldo, index_t segments, index_t k,
                                                             index_t cols) {
    for (index_t s = blockIdx.y; s < segments; s += gridDim.y)
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock) {
            T acc = T(0);
            for (index_t j = 0; j < k; ++j) acc = fma(w[s * ldw + j], rows[(s * k + j) * ldr + c], acc);
            out[s * ldo + c] = acc;
        }
}

// attend_dw_kernel: dw[s, j] = <dout[s], rows[s k + j]>, one warp per (s, j):
// lanes over columns in order, the fixed shuffle tree.
template <class T>
__global__ void __launch_bounds__(kBlock) attend_dw_kernel(const T* rows, index_t ldr, const T* dout, index_t ldd,
                                                           T* dw, index_t ldw, index_t segments, index_t k,
                                                           index_t cols) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < segments * k;
         r += index_t{gridDim.x} * kWarps) {
        const index_t s = r / k, j = r % k;
        const T* v = rows + r * ldr;
        const T* g = dout + s * ldd;
        T acc = T(0);
        for (index_t c = lane; c < cols; c += 32) acc = fma(g[c], v[c], acc);
        acc = warp_reduce(acc, SumOp{});
        if (lane == 0) dw[s * ldw + j] = acc;
    }
}

// attend_drows_kernel: drows[s k + j, c] = w[s, j] dout[s, c], in T.
template <class T>
__global__ void __launch_bounds__(kBlock) attend_drows_kernel(const T* w, index_t ldw, const T* dout, index_t ldd,
                                                              T* drows, index_t ldr, index_t segments, index_t k,
                                                              index_t cols) {
    for (index_t r = blockIdx.y; r < segments * k; r += gridDim.y) {
        const index_t s = r / k, j = r % k;
        const T f = w[s * ldw + j];
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock)
            drows[r * ldr + c] = f * dout[s * ldd + c];
    }
}

}  // namespace
}  // namespace cuda_detail

// ============================================================================
// Host entry points
// ============================================================================

using P = Primitives<backend::Cuda>;
using namespace cuda_detail;

template <class T>
void P::multiply(const B& be, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out) {
    const index_t rows = out.rows(), cols = out.cols();
    if (rows == 0 || cols == 0) return;
    multiply_kernel<<<dare_grid(rows, cols), kBlock, 0, be.stream>>>(a.data(), dare_ld(a), b.data(), dare_ld(b),
                                                                     out.data(), dare_ld(out), rows, cols);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
double P::bce_with_logits(const B& be, VectorView<const T> z, VectorView<const T> y, T weight, VectorView<T> g) {
    const index_t n = z.size();
    if (n == 0) return 0.0;
    Scratch scratch(sizeof(double), be.stream);
    auto* total = scratch.at<double>(0);
    bce_kernel<<<1, kBlock, 0, be.stream>>>(z.data(), y.data(), weight, g.data(), n, total);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    double out = 0.0;
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&out, total, sizeof out, cudaMemcpyDeviceToHost, be.stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(be.stream));
    return out;
}

template <class T>
index_t P::search_segments(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids,
                           VectorView<const index_t> offsets, MatrixView<const T> queries, T alpha, index_t k,
                           VectorView<T> scores, MatrixView<T> top_values, MatrixView<row_id_t> top_positions,
                           MatrixView<row_id_t> top_ids) {
    const index_t n = ids.size(), segments = offsets.size() - 1;
    if (segments <= 0) return -1;
    Scratch scratch(3 * sizeof(unsigned long long), be.stream);
    auto* flags = scratch.at<unsigned long long>(0);  // bad id, bad segment, first NaN segment
    RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(flags, 0xFF, 3 * sizeof(unsigned long long), be.stream));
    search_check_kernel<<<dare_blocks(n > segments ? n : segments), kBlock, 0, be.stream>>>(
        ids.data(), n, table.rows(), offsets.data(), segments, k, flags);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    if (n > 0) {
        const auto blocks = static_cast<unsigned>(min_index(ceil_div(n, kWarps), 1 << 20));
        search_dots_kernel<<<blocks, kBlock, 0, be.stream>>>(table.data(), dare_ld(table), ids.data(), n,
                                                             offsets.data(), segments, queries.data(),
                                                             dare_ld(queries), table.cols(), alpha, scores.data(),
                                                             flags);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    search_top_k_kernel<<<static_cast<unsigned>(min_index(segments, 65535)), kBlock, 0, be.stream>>>(
        scores.data(), ids.data(), offsets.data(), segments, k, top_values.data(), dare_ld(top_values),
        top_positions.data(), dare_ld(top_positions), top_ids.data(), top_ids.data() ? dare_ld(top_ids) : 0, flags);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    unsigned long long host_flags[3] = {kNone, kNone, kNone};
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(host_flags, flags, sizeof host_flags, cudaMemcpyDeviceToHost, be.stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(be.stream));
    if (host_flags[0] != kNone) {
        const auto i = static_cast<index_t>(host_flags[0]);
        row_id_t value = 0;
        RECBLOCKS_CUDA_CHECK(cudaMemcpy(&value, ids.data() + i, sizeof(row_id_t), cudaMemcpyDeviceToHost));
        throw IndexError(detail::concat("ops::search_segments: ids[", i, "] = ", value,
                                        " is out of range for a table of ", table.rows(), " rows"));
    }
    if (host_flags[1] != kNone) {
        const auto s = static_cast<index_t>(host_flags[1]);
        index_t ends[2] = {0, 0};
        RECBLOCKS_CUDA_CHECK(cudaMemcpy(ends, offsets.data() + s, sizeof ends, cudaMemcpyDeviceToHost));
        throw ValueError(detail::concat("ops::search_segments: segment ", s, " has ", ends[1] - ends[0],
                                        " ids but k is ", k,
                                        " (k must not exceed a segment; offsets must start at 0 and end at ", n, ")"));
    }
    return host_flags[2] != kNone ? static_cast<index_t>(host_flags[2]) : -1;
}

template <class T>
void P::attend_rows(const B& be, MatrixView<const T> w, MatrixView<const T> rows, MatrixView<T> out) {
    const index_t segments = w.rows(), k = w.cols(), cols = rows.cols();
    if (segments == 0 || cols == 0) return;
    attend_rows_kernel<<<dare_grid(segments, cols), kBlock, 0, be.stream>>>(
        w.data(), dare_ld(w), rows.data(), dare_ld(rows), out.data(), dare_ld(out), segments, k, cols);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::attend_rows_backward(const B& be, MatrixView<const T> w, MatrixView<const T> rows, MatrixView<const T> dout,
                             MatrixView<T> dw, MatrixView<T> drows) {
    const index_t segments = w.rows(), k = w.cols(), cols = rows.cols();
    if (segments == 0 || k == 0) return;
    if (dw.data() != nullptr) {
        if (cols == 0) {
            for (index_t s = 0; s < segments; ++s)
                RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(dw.data() + s * dare_ld(dw), 0,
                                                     static_cast<std::size_t>(k) * sizeof(T), be.stream));
        } else {
            const auto blocks = static_cast<unsigned>(min_index(ceil_div(segments * k, kWarps), 1 << 20));
            attend_dw_kernel<<<blocks, kBlock, 0, be.stream>>>(rows.data(), dare_ld(rows), dout.data(), dare_ld(dout),
                                                               dw.data(), dare_ld(dw), segments, k, cols);
            RECBLOCKS_CUDA_CHECK_LAUNCH();
        }
    }
    if (drows.data() != nullptr && cols > 0) {
        attend_drows_kernel<<<dare_grid(segments * k, cols), kBlock, 0, be.stream>>>(
            w.data(), dare_ld(w), dout.data(), dare_ld(dout), drows.data(), dare_ld(drows), segments, k, cols);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
}

// ============================================================================
// Explicit instantiations (declared extern in backend/cuda/primitives.hpp)
// ============================================================================

#define RECBLOCKS_CUDA_INSTANTIATE_DARE(T)                                                                          \
    template void P::multiply<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const T>, MatrixView<T>);   \
    template double P::bce_with_logits<T>(const backend::Cuda&, VectorView<const T>, VectorView<const T>, T,       \
                                          VectorView<T>);                                                           \
    template index_t P::search_segments<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const row_id_t>,  \
                                           VectorView<const index_t>, MatrixView<const T>, T, index_t,             \
                                           VectorView<T>, MatrixView<T>, MatrixView<row_id_t>,                      \
                                           MatrixView<row_id_t>);                                                   \
    template void P::attend_rows<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const T>, MatrixView<T>); \
    template void P::attend_rows_backward<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const T>,       \
                                             MatrixView<const T>, MatrixView<T>, MatrixView<T>)

RECBLOCKS_CUDA_INSTANTIATE_DARE(float);
RECBLOCKS_CUDA_INSTANTIATE_DARE(double);

#undef RECBLOCKS_CUDA_INSTANTIATE_DARE

RECBLOCKS_NAMESPACE_END
