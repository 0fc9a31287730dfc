// Primitives<backend::Cuda>: the nearest-centroid family (ops/nearest_centroid.hpp)
// without the beam search's sequential list: squared_distances and
// shifted_argmin_rows, explicitly instantiated for float and double.
// Conventions as in primitives.cu: row-major views, element (r, c) of a matrix
// with leading dimension ld is p[r * ld + c]; every kernel loops (grid-stride).
#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

unsigned warp_rows_grid(index_t rows) { return static_cast<unsigned>(min_index(ceil_div(rows, kWarps), 65535)); }

template <class V>
index_t nc_ld(const V& m) {
    const index_t ld = m.rows() <= 1 ? m.cols() : m.ld();
    return ld > 0 ? ld : 1;
}

// squared_distances_kernel: out[r] = sum_c (x[r, c] - y[c])^2 (y == nullptr:
// sum_c x[r, c]^2), one warp per row (kWarps rows per block, then grid-stride).
// Lane l adds columns l, l + 32, ... in order (fma in T); the fixed shuffle tree
// of warp_reduce combines the lanes: the same bits on every run.
template <class T>
__global__ void __launch_bounds__(kBlock)
    squared_distances_kernel(const T* x, index_t ldx, const T* y, T* out, index_t rows, index_t cols) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < rows; r += index_t{gridDim.x} * kWarps) {
        const T* xr = x + r * ldx;
        T acc = T(0);
        for (index_t c = lane; c < cols; c += 32) {
            const T t = y != nullptr ? xr[c] - y[c] : xr[c];
            acc = fma(t, t, acc);
        }
        acc = warp_reduce(acc, SumOp{});
        if (lane == 0) out[r] = acc;
    }
}

/// (value, index) order of the argmin: the smaller value, then the smaller
/// index; a NaN ranks as +inf (finite data never meets it: k-means checks its
/// input), so the first smallest finite entry wins, as on the host.
template <class T>
__device__ inline bool ranks_before(T va, index_t ia, T vb, index_t ib) {
    const T a = va != va ? pos_inf<T>() : va;
    const T b = vb != vb ? pos_inf<T>() : vb;
    return a < b || (a == b && ia < ib);
}

// shifted_argmin_kernel: g[r, k] = norms[k] - 2 g[r, k] (written back, in T),
// arg[r] = the first k of the row's smallest, best[r] = its value. One warp per
// row: lane l scans k = l, l + 32, ... keeping its first smallest, then a
// shuffle tree keeps the (value, index)-smallest of the lanes.
template <class T>
__global__ void __launch_bounds__(kBlock) shifted_argmin_kernel(T* g, index_t ldg, const T* norms, index_t* arg,
                                                                T* best, index_t rows, index_t cols) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    for (index_t r = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); r < rows; r += index_t{gridDim.x} * kWarps) {
        T* gr = g + r * ldg;
        T bv = pos_inf<T>();
        index_t bi = cols;  // no column yet
        for (index_t k = lane; k < cols; k += 32) {
            const T v = norms[k] - T(2) * gr[k];
            gr[k] = v;
            if (bi == cols || ranks_before(v, k, bv, bi)) {
                bv = v;
                bi = k;
            }
        }
        for (int off = 16; off > 0; off >>= 1) {
            const T ov = __shfl_down_sync(kFullMask, bv, off);
            const index_t oi = __shfl_down_sync(kFullMask, bi, off);
            if (oi != cols && (bi == cols || ranks_before(ov, oi, bv, bi))) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) {
            arg[r] = bi;
            best[r] = bv;
        }
    }
}

// mean_by_label_kernel: one block per centroid k (grid-stride over k). The
// labels are staged through shared memory a tile at a time, in row order; thread
// t adds column base + t of every row labelled k into a double, so each sum adds
// its rows in row order (as the host backends do) and the result has their bits.
// Columns beyond the block's width take further passes over the labels.
constexpr int kMeanTile = 1024;

template <class T>
__global__ void __launch_bounds__(kBlock)
    mean_by_label_kernel(const T* x, index_t ldx, const index_t* labels, index_t n, T* c, index_t ldc,
                         index_t* counts, index_t k_total, index_t d) {
    __shared__ index_t tile[kMeanTile];
    for (index_t k = blockIdx.x; k < k_total; k += gridDim.x) {
        for (index_t base = 0; base < d; base += kBlock) {
            const index_t col = base + threadIdx.x;
            double acc = 0.0;
            index_t count = 0;
            for (index_t i0 = 0; i0 < n; i0 += kMeanTile) {
                const index_t len = min_index(kMeanTile, n - i0);
                __syncthreads();  // the previous tile has been read
                for (index_t j = threadIdx.x; j < len; j += kBlock) tile[j] = labels[i0 + j];
                __syncthreads();
                for (index_t j = 0; j < len; ++j) {
                    if (tile[j] != k) continue;
                    ++count;
                    if (col < d) acc += static_cast<double>(x[(i0 + j) * ldx + col]);
                }
            }
            if (base == 0 && threadIdx.x == 0) counts[k] = count;
            if (count > 0 && col < d) c[k * ldc + col] = static_cast<T>(acc * (1.0 / static_cast<double>(count)));
        }
    }
}

}  // namespace
}  // namespace cuda_detail

using P = Primitives<backend::Cuda>;
using namespace cuda_detail;

template <class T>
void P::squared_distances(const B& be, MatrixView<const T> x, VectorView<const T> y, VectorView<T> out) {
    const index_t rows = x.rows();
    if (rows == 0) return;
    squared_distances_kernel<T><<<warp_rows_grid(rows), kBlock, 0, be.stream>>>(x.data(), nc_ld(x), y.data(),
                                                                               out.data(), rows, x.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::shifted_argmin_rows(const B& be, MatrixView<T> g, VectorView<const T> norms, VectorView<index_t> arg,
                            VectorView<T> best) {
    const index_t rows = g.rows();
    if (rows == 0) return;
    shifted_argmin_kernel<T><<<warp_rows_grid(rows), kBlock, 0, be.stream>>>(g.data(), nc_ld(g), norms.data(),
                                                                            arg.data(), best.data(), rows, g.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

template <class T>
void P::mean_by_label(const B& be, MatrixView<const T> x, VectorView<const index_t> labels, MatrixView<T> centroids,
                      VectorView<index_t> counts) {
    const index_t k = centroids.rows();
    if (k == 0) return;
    const auto grid = static_cast<unsigned>(min_index(k, 65535));
    mean_by_label_kernel<T><<<grid, kBlock, 0, be.stream>>>(x.data(), nc_ld(x), labels.data(), x.rows(),
                                                           centroids.data(), nc_ld(centroids), counts.data(), k,
                                                           centroids.cols());
    RECBLOCKS_CUDA_CHECK_LAUNCH();
}

#define RECBLOCKS_CUDA_INSTANTIATE_NEAREST(T)                                                                        \
    template void P::squared_distances<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const T>,            \
                                          VectorView<T>);                                                            \
    template void P::shifted_argmin_rows<T>(const backend::Cuda&, MatrixView<T>, VectorView<const T>,                \
                                            VectorView<index_t>, VectorView<T>);                             \
    template void P::mean_by_label<T>(const backend::Cuda&, MatrixView<const T>, VectorView<const index_t>,          \
                                      MatrixView<T>, VectorView<index_t>)

RECBLOCKS_CUDA_INSTANTIATE_NEAREST(float);
RECBLOCKS_CUDA_INSTANTIATE_NEAREST(double);

#undef RECBLOCKS_CUDA_INSTANTIATE_NEAREST

RECBLOCKS_NAMESPACE_END
