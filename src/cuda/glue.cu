// Primitives<backend::Cuda>: small glue between the big primitives
// (broadcast_rows, gate_by_nonzero, scale_rows, row_dots) and the optional
// gathered_dot (ops/gathered_dot.hpp), explicitly
// instantiated for float and double. Conventions as in primitives.cu: views are
// row-major, element (r, c) of a matrix with leading dimension ld is
// p[r * ld + c]; offsets are index_t (64-bit); every kernel loops (grid-stride)
// so any grid size is correct.
#include <cstdint>

#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

/// 2-D grid for an element-wise kernel over rows x cols: x covers columns in
/// kBlock-wide strips, y covers rows; both loop.
dim3 glue_grid(index_t rows, index_t cols) {
    return dim3(static_cast<unsigned>(min_index(ceil_div(cols, kBlock), 1024)),
                static_cast<unsigned>(min_index(rows, 65535)), 1);
}

/// Blocks for a one-dimensional kernel over n elements (the kernel loops).
unsigned glue_blocks(index_t n) { return static_cast<unsigned>(min_index(ceil_div(n, kBlock), 4096)); }

/// A single-row view may carry any ld; kernels need ld >= cols.
template <class V>
index_t glue_ld(const V& m) {
    const index_t ld = m.rows() <= 1 ? m.cols() : m.ld();
    return ld > 0 ? ld : 1;
}

// broadcast_rows_kernel: out[r, c] = row[c] + beta * out[r, c], in T; with
// beta == 0 out is not read (NaN in out does not leak). Each element is read
// and written by one thread.
template <class T>
__global__ void __launch_bounds__(kBlock)
    broadcast_rows_kernel(const T* row, T beta, T* out, index_t ldo, index_t rows, index_t cols) {
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock) {
            T& o = out[r * ldo + c];
            o = beta == T(0) ? row[c] : row[c] + beta * o;
        }
}

// gate_by_nonzero_kernel: g[i] = ref[i] != 0 ? g[i] * scale : 0 (ReLU and
// dropout backward in one pass; a NaN ref counts as nonzero). In T.
template <class T>
__global__ void __launch_bounds__(kBlock) gate_by_nonzero_kernel(const T* ref, T* g, index_t n, T scale) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += index_t{gridDim.x} * kBlock)
        g[i] = ref[i] != T(0) ? g[i] * scale : T(0);
}

// scale_rows_kernel: y[r, c] = (alpha * s[r]) * x[r, c] (s == nullptr: alpha *
// x[r, c]), in T. y may alias x exactly: each element is read and written by
// one thread.
template <class T>
__global__ void __launch_bounds__(kBlock) scale_rows_kernel(const T* x, index_t ldx, const T* s, T alpha, T* y,
                                                            index_t ldy, index_t rows, index_t cols) {
    for (index_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const T f = s != nullptr ? alpha * s[r] : alpha;
        for (index_t c = blockIdx.x * index_t{kBlock} + threadIdx.x; c < cols; c += index_t{gridDim.x} * kBlock)
            y[r * ldy + c] = f * x[r * ldx + c];
    }
}

// row_dots_kernel: out[r] = sum_c a[r, c] * b[r, c], one warp per row (kWarps
// rows per block, then grid-stride). Lane l adds the products of columns l,
// l + 32, ... in column order (fma in T), then the fixed shuffle tree of
// warp_reduce combines the lanes: the same bits for the same row width on
// every run, no atomics.
template <class T>
__global__ void __launch_bounds__(kBlock) row_dots_kernel(const T* a, index_t lda, const T* b, index_t ldb, T* out,
                                                          index_t rows, index_t cols) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < rows; r += index_t{gridDim.x} * kWarps) {
        const T* ar = a + r * lda;
        const T* br = b + r * ldb;
        T acc = T(0);
        for (index_t c = lane; c < cols; c += 32) acc = fma(ar[c], br[c], acc);
        acc = warp_reduce(acc, SumOp{});
        if (lane == 0) out[r] = acc;
    }
}

// gathered_dot_check_kernel: first_bad = min { i : ids[i] not in [0, rows) }
// (atomicMin on a flag initialised to kNone; the minimum does not depend on the
// order, so the reported id is the first bad one, as on the host).
__global__ void __launch_bounds__(kBlock)
    gathered_dot_check_kernel(const row_id_t* ids, index_t n, index_t rows, unsigned long long* first_bad) {
    for (index_t i = blockIdx.x * index_t{kBlock} + threadIdx.x; i < n; i += index_t{gridDim.x} * kBlock) {
        const index_t v = ids[i];
        if (v < 0 || v >= rows) atomicMin(first_bad, static_cast<unsigned long long>(i));
    }
}

// gathered_dot_kernel: y[i] = alpha * <table[ids[i]], x>, one warp per id
// (kWarps ids per block, then grid-stride). Lane l adds the products of
// columns l, l + 32, ... in order (fma in T), the fixed shuffle tree combines
// the lanes: deterministic. Writes nothing when the check kernel (earlier on
// the stream) found a bad id.
template <class T>
__global__ void __launch_bounds__(kBlock)
    gathered_dot_kernel(const T* table, index_t ldt, const row_id_t* ids, index_t n, const T* x, index_t cols,
                        T alpha, T* y, const unsigned long long* first_bad) {
    if (*first_bad != kNone) return;
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t i = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); i < n; i += index_t{gridDim.x} * kWarps) {
        const T* row = table + static_cast<index_t>(ids[i]) * ldt;
        T acc = T(0);
        for (index_t c = lane; c < cols; c += 32) acc = fma(row[c], x[c], acc);
        acc = warp_reduce(acc, SumOp{});
        if (lane == 0) y[i] = alpha * acc;
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
void P::broadcast_rows(const B& be, VectorView<const T> row, T beta, MatrixView<T> out) {
    const index_t rows = out.rows(), cols = out.cols();
    if (rows == 0 || cols == 0) return;
    broadcast_rows_kernel<<<glue_grid(rows, cols), kBlock, 0, be.stream>>>(row.data(), beta, out.data(),
                                                                           glue_ld(out), rows, cols);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::gate_by_nonzero(const B& be, VectorView<const T> ref, VectorView<T> g, T scale) {
    const index_t n = g.size();
    if (n == 0) return;
    gate_by_nonzero_kernel<<<glue_blocks(n), kBlock, 0, be.stream>>>(ref.data(), g.data(), n, scale);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::scale_rows(const B& be, MatrixView<const T> x, VectorView<const T> s, T alpha, MatrixView<T> y) {
    const index_t rows = x.rows(), cols = x.cols();
    if (rows == 0 || cols == 0) return;
    scale_rows_kernel<<<glue_grid(rows, cols), kBlock, 0, be.stream>>>(x.data(), glue_ld(x), s.data(), alpha,
                                                                       y.data(), glue_ld(y), rows, cols);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::row_dots(const B& be, MatrixView<const T> a, MatrixView<const T> b, VectorView<T> out) {
    const index_t rows = a.rows(), cols = a.cols();
    if (rows == 0) return;
    if (cols == 0) {
        RECBLOCKS_CUDA_CHECK(
            cudaMemsetAsync(out.data(), 0, static_cast<std::size_t>(rows) * sizeof(T), be.stream));  // +0.0
        return;
    }
    const auto blocks = static_cast<unsigned>(min_index(ceil_div(rows, kWarps), 1 << 20));
    row_dots_kernel<<<blocks, kBlock, 0, be.stream>>>(a.data(), glue_ld(a), b.data(), glue_ld(b), out.data(), rows,
                                                      cols);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::gathered_dot(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids, VectorView<const T> x,
                     T alpha, VectorView<T> y) {
    const index_t n = ids.size();
    if (n == 0) return;
    Scratch scratch(sizeof(unsigned long long), be.stream);
    auto* first_bad = scratch.at<unsigned long long>(0);
    RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned long long), be.stream));
    gathered_dot_check_kernel<<<glue_blocks(n), kBlock, 0, be.stream>>>(ids.data(), n, table.rows(), first_bad);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    const auto blocks = static_cast<unsigned>(min_index(ceil_div(n, kWarps), 1 << 20));
    gathered_dot_kernel<<<blocks, kBlock, 0, be.stream>>>(table.data(), glue_ld(table), ids.data(), n, x.data(),
                                                          table.cols(), alpha, y.data(), first_bad);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    unsigned long long bad = kNone;
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof bad, cudaMemcpyDeviceToHost, be.stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(be.stream));
    if (bad == kNone) return;
    const auto i = static_cast<index_t>(bad);
    row_id_t value = 0;
    RECBLOCKS_CUDA_CHECK(cudaMemcpy(&value, ids.data() + i, sizeof(row_id_t), cudaMemcpyDeviceToHost));
    throw IndexError(detail::concat("ops::gathered_dot: ids[", i, "] = ", value, " is out of range for a table of ",
                                    table.rows(), " rows"));
}

// ============================================================================
// Explicit instantiations (declared extern in backend/cuda/primitives.hpp)
// ============================================================================

#define RECBLOCKS_CUDA_INSTANTIATE_GLUE(T)                                                                         \
    template void P::broadcast_rows<T>(const backend::Cuda&, VectorView<const T>, T, MatrixView<T>);              \
    template void P::gate_by_nonzero<T>(const backend::Cuda&, VectorView<const T>, VectorView<T>, T);             \
    template void P::scale_rows<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const T>, T,             \
                                   MatrixView<T>);                                                                 \
    template void P::row_dots<T>(const backend::Cuda&, MatrixView<const T>, MatrixView<const T>, VectorView<T>); \
    template void P::gathered_dot<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const row_id_t>,      \
                                     VectorView<const T>, T, VectorView<T>)

RECBLOCKS_CUDA_INSTANTIATE_GLUE(float);
RECBLOCKS_CUDA_INSTANTIATE_GLUE(double);

#undef RECBLOCKS_CUDA_INSTANTIATE_GLUE

RECBLOCKS_NAMESPACE_END
