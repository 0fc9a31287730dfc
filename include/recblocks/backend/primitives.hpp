#pragma once
// The primitive set every backend implements, as a specialization of
// Primitives<Backend> (CTranslate2's `primitives<Device>`). Blocks and models
// call only these, through the validating wrappers in recblocks/ops/, so a new
// backend is one new specialization plus one entry in the tests' backend list
// (docs/backends.md).
//
// Memory: a backend's views point into its memory space (backend/memory.hpp:
// host for Reference and Cpu, device for Cuda); TensorOn<T, Rank, B> allocates there.
//
// Contract shared by every backend (ops/ has checked it before the call):
//   * views are row-major with contiguous rows; 2-D views may have ld > cols;
//   * shapes agree as documented in ops/; ids are in range;
//   * element type T is float or double.
//
//   gemm            C = alpha * op(A) * op(B) + beta * C      (beta == 0: C is not read)
//   gemm_batched    the same for each of the leading-dimension batch entries
//   dot, axpy       x·y;  y += alpha * x
//   add, copy       out = a + b (out may be a or b itself);  dst = src  (strided rows)
//   adam_update     one fused Adam/AdamW step of a tensor and its moments, in T
//   softmax_rows    y = softmax(x) per row over entries whose mask byte != 0
//                   (all if no mask); a row with nothing kept becomes all zeros
//   softmax_rows_backward   dx = y * (dy - sum(dy * y))  per row
//   layer_norm_forward / _backward   per row over D, biased variance
//   activation_forward / _backward   ReLU, GELU (erf form)
//   gather_rows     out[i] = table[ids[i]]
//   scatter_add_rows  table[ids[i]] += src[i]  (deterministic order of addition)
//   top_k_rows      k largest per row, descending; ties -> lower index first;
//                   returns the first row holding a NaN, or -1 (outputs then unspecified)
//   sum, max_value, sum_rows   reductions (sum_rows: column sums over rows)
//   prefix_attention   optional (Reference, CPU): fused attention of one
//                   (sequence, head) whose rows see a prefix of the keys
//                   (ops/prefix_attention.hpp); blocks fall back to gemm +
//                   softmax_rows on backends without it
#include <cstdint>

#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/tags.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Whether gemm uses a matrix as stored or transposed.
enum class Trans : bool { no = false, yes = true };

/// Element-wise activations with forward and backward kernels.
enum class Activation : std::uint8_t {
    relu,  ///< max(x, 0); derivative 0 at x == 0 (PyTorch's convention)
    gelu,  ///< x * Phi(x) with the exact erf form (BERT, PyTorch's default)
};

/// The scalars of one fused Adam update (ops/adam_update.hpp says what it computes).
template <class T>
struct AdamUpdate {
    T step_size, beta1, beta2, eps, inv_bc2_sqrt;
    T l2 = T(0);      ///< Adam's weight decay, added to the gradient
    T shrink = T(1);  ///< AdamW's decoupled decay factor
};

template <class Backend>
struct Primitives;  // specialised per backend

/// Whether a backend's tensors live in host memory, where ops/ can inspect
/// data (id ranges) before the call: what its memory space says
/// (backend/memory.hpp). Device backends validate data in their kernels
/// instead and throw the same error types afterwards.
template <class Backend>
inline constexpr bool host_memory_v = memory_space_t<Backend>::host_accessible;

RECBLOCKS_NAMESPACE_END
