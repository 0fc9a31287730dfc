// Primitives<backend::Cuda>::softmax_cross_entropy (ops/softmax_cross_entropy.hpp):
// the softmax cross-entropy of a chunk of logits against one target column
// per row, the gradient written in place. Explicitly instantiated for float
// and double. Conventions as in primitives.cu: row-major views, element
// (r, c) at p[r * ld + c], index_t (64-bit) offsets, grid-stride loops.
//
// Determinism: every sum has a fixed shape. Within a row, thread j of the
// block takes columns j, j + 256, ... in order and block_reduce combines the
// threads in a fixed tree; the rows' losses are then added by one block in a
// fixed order. No atomics on values (the only atomic is the integer minimum
// that finds the first bad target).
#include <cstdint>

#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

// xent_check_targets_kernel: first_bad = min { r : targets[r] >= cols }
// (negative targets are valid: they ignore the row). The minimum does not
// depend on the order of the atomics, so the reported row is deterministic.
__global__ void __launch_bounds__(kBlock)
    xent_check_targets_kernel(const row_id_t* targets, index_t rows, index_t cols, unsigned long long* first_bad) {
    for (index_t r = blockIdx.x * index_t{kBlock} + threadIdx.x; r < rows; r += index_t{gridDim.x} * kBlock)
        if (static_cast<index_t>(targets[r]) >= cols) atomicMin(first_bad, static_cast<unsigned long long>(r));
}

// softmax_xent_rows_kernel: one block of kBlock threads per row (grid-stride
// over rows). For a row with target t >= 0:
//   (1) z = logits + bias, written back, and the row maximum in T (fmax tree:
//       NaN-ignoring, a NaN still reaches the sum through exp);
//   (2) e = exp(z - max) in T, written back, summed in double;
//   (3) logits = e * (scale / sum) in T, minus scale at column t;
// row_loss[r] = log(sum) + max - z_t in double, written by the thread that
// owns column t (it read z_t in pass 1, before pass 2 overwrote it). A row
// with a negative target is zeroed and its loss is 0. Nothing is written if
// any target is out of range (first_bad set by the check kernel).
template <class T>
__global__ void __launch_bounds__(kBlock)
    softmax_xent_rows_kernel(T* logits, index_t ld, const T* bias, const row_id_t* targets, T scale, index_t rows,
                             index_t cols, double* row_loss, const unsigned long long* first_bad) {
    if (*first_bad != kNone) return;
    const T neg_inf = -pos_inf<T>();
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        T* z = logits + r * ld;
        const index_t t = targets[r];  // the same for the whole block: the branches below are uniform
        if (t < 0) {
            for (index_t c = threadIdx.x; c < cols; c += kBlock) z[c] = T(0);
            if (threadIdx.x == 0) row_loss[r] = 0.0;
            continue;
        }
        T m = neg_inf, zt = T(0);
        for (index_t c = threadIdx.x; c < cols; c += kBlock) {
            T v = z[c];
            if (bias != nullptr) {
                v += bias[c];
                z[c] = v;
            }
            if (c == t) zt = v;
            m = dev_fmax(m, v);
        }
        const T mx = block_reduce(m, FmaxOp{}, neg_inf);
        double s = 0.0;
        for (index_t c = threadIdx.x; c < cols; c += kBlock) {
            const T e = dev_exp(z[c] - mx);
            z[c] = e;
            s += static_cast<double>(e);
        }
        const double sum = block_reduce(s, SumOp{}, 0.0);
        const T f = static_cast<T>(static_cast<double>(scale) / sum);
        for (index_t c = threadIdx.x; c < cols; c += kBlock) {
            const T g = z[c] * f;
            z[c] = c == t ? g - scale : g;
        }
        if (t % kBlock == static_cast<index_t>(threadIdx.x))
            row_loss[r] = log(sum) + static_cast<double>(mx) - static_cast<double>(zt);
    }
}

// sum_row_losses_kernel (one block): *out = the sum of row_loss[0..rows),
// thread j adding rows j, j + 256, ... in order, then block_reduce's tree.
__global__ void __launch_bounds__(kBlock)
    sum_row_losses_kernel(const double* row_loss, index_t rows, double* out, const unsigned long long* first_bad) {
    if (*first_bad != kNone) return;
    double s = 0.0;
    for (index_t r = threadIdx.x; r < rows; r += kBlock) s += row_loss[r];
    s = block_reduce(s, SumOp{}, 0.0);
    if (threadIdx.x == 0) *out = s;
}

}  // namespace
}  // namespace cuda_detail

// ============================================================================
// Host entry point
// ============================================================================

using P = Primitives<backend::Cuda>;
using namespace cuda_detail;

template <class T>
double P::softmax_cross_entropy(const B& be, MatrixView<T> logits, VectorView<const T> bias,
                                VectorView<const row_id_t> targets, T scale) {
    const index_t rows = logits.rows(), cols = logits.cols();
    if (rows == 0) return 0.0;
    const std::size_t flag_bytes = Scratch::round_up(sizeof(unsigned long long));
    const std::size_t loss_bytes = Scratch::round_up(static_cast<std::size_t>(rows) * sizeof(double));
    Scratch scratch(flag_bytes + loss_bytes + Scratch::round_up(sizeof(double)), be.stream);
    auto* first_bad = scratch.at<unsigned long long>(0);
    auto* row_loss = scratch.at<double>(flag_bytes);
    auto* total = scratch.at<double>(flag_bytes + loss_bytes);
    RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned long long), be.stream));
    xent_check_targets_kernel<<<static_cast<unsigned>(min_index(ceil_div(rows, kBlock), 4096)), kBlock, 0,
                                be.stream>>>(targets.data(), rows, cols, first_bad);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    const index_t ld = rows <= 1 ? cols : logits.ld();
    softmax_xent_rows_kernel<T><<<static_cast<unsigned>(min_index(rows, 1 << 16)), kBlock, 0, be.stream>>>(
        logits.data(), ld, bias.data(), targets.data(), scale, rows, cols, row_loss, first_bad);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    sum_row_losses_kernel<<<1, kBlock, 0, be.stream>>>(row_loss, rows, total, first_bad);
    RECBLOCKS_CUDA_CHECK_LAUNCH();
    unsigned long long bad = kNone;
    double result = 0.0;
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof bad, cudaMemcpyDeviceToHost, be.stream));
    RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&result, total, sizeof result, cudaMemcpyDeviceToHost, be.stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(be.stream));
    if (bad == kNone) return result;
    const auto r = static_cast<index_t>(bad);
    row_id_t value = 0;
    RECBLOCKS_CUDA_CHECK(cudaMemcpy(&value, targets.data() + r, sizeof(row_id_t), cudaMemcpyDeviceToHost));
    throw IndexError(detail::concat("ops::softmax_cross_entropy: targets[", r, "] = ", value, " is outside [0, ", cols,
                                    ") (logits' columns; negative ignores the row)"));
}

// ============================================================================
// Explicit instantiations (declared extern in backend/cuda/primitives.hpp)
// ============================================================================

#define RECBLOCKS_CUDA_INSTANTIATE_LOSSES(T)                                                                       \
    template double P::softmax_cross_entropy<T>(const backend::Cuda&, MatrixView<T>, VectorView<const T>,          \
                                                VectorView<const row_id_t>, T)

RECBLOCKS_CUDA_INSTANTIATE_LOSSES(float);
RECBLOCKS_CUDA_INSTANTIATE_LOSSES(double);

#undef RECBLOCKS_CUDA_INSTANTIATE_LOSSES

RECBLOCKS_NAMESPACE_END
