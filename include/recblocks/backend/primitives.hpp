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
//   broadcast_rows  out[r, :] = row + beta * out[r, :]   (biases, positions; beta == 0: out not read)
//   scale_rows      y[r, :] = alpha * s[r] * x[r, :]     (s empty: alpha only; y may be x)
//   gate_by_nonzero g[i] = ref[i] != 0 ? g[i] * scale : 0  (ReLU + dropout backward in one pass)
//   multiply        out = a ⊙ b  (strided rows; out may be a or b itself)
//   row_dots        out[r] = a[r, :] . b[r, :]
//   logistic_loss   returns Σ softplus(sign[m] s[m]); g[m] = weight sign[m] sigmoid(sign[m] s[m])
//   softmax_cross_entropy   per row of logits [R, C] with target t >= 0, z = logits + bias:
//                   returns Σ (logsumexp(z) - z_t); logits = scale (softmax(z) - onehot(t)) in
//                   place; a negative target zeroes the row (ops/softmax_cross_entropy.hpp)
//   bce_with_logits returns Σ max(z, 0) - z y + log1p(e^-|z|); g[m] = weight (sigmoid(z[m]) - y[m])
//   attention_forward / _backward   prefix-masked multi-head attention of a whole
//                   batch (ops/attention.hpp); the forward keeps what the backward
//                   needs in a backend-defined `state` (attention_state_size elements)
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
//   dropout         optional (Reference, CPU): y[i] = keep(first + i) ? x[i] * scale : 0
//                   with keep(j) a pure function of (DropoutMask, j); y may alias x
//   gathered_dot    optional (Reference, CPU): y[i] = alpha * <table[ids[i]], x>
//                   (one query against rows picked by id; CPU: on the calling thread)
//   target attention  optional (Reference, CPU, CUDA; ops/target_attention.hpp):
//     search_segments      per segment of ids: gathered scores against the
//                          segment's query and its top k (positions, ids);
//                          returns the first segment with a NaN score or -1
//     attend_rows          out[s] = Σ_j w[s, j] rows[s k + j]
//     attend_rows_backward dw[s, j] = <dout[s], rows[s k + j]>, drows[s k + j] = w[s, j] dout[s]
//   retrieval       optional (Reference, CPU), float queries against item
//                   tables in column panels (backend/panels.hpp; E = float,
//                   bf16 bits or int8 codes with per-row scales); on the CPU
//                   each runs on the calling thread (the building blocks of the
//                   whole searches below):
//     panel_scores        y[r] = scale[r] * <items[r], x> for every row
//     panel_scores_above  (score, first + r) of the rows scoring > threshold,
//                         in row order; returns how many (outputs: rows + 16)
//     panel_scores_of_ids y[j] = the panel_scores score of row ids[j] (same bits)
//     score_ids           y[j] = <rows[ids[j]], x> for row-major f32 rows
//     offer_top_k         offers s[j] (id first + j, ascending across calls) to a
//                         min-heap of <= k entries (root = worst; result order:
//                         larger score, then smaller id), skipping excluded ids
//                         (sorted); returns the heap's new size
//     collect_above       (s[j], first + j) for s[j] > threshold, in order;
//                         returns how many (outputs: n + 16)
//     kth_largest_key     a threshold t (not necessarily a key) with
//                         count(keys >= t) >= k and count(keys > t) <= k + slack
//     pq4_scan            out[v] = sum_s lut[s][code(v, s)] (u16) for blocks of 32
//                         vectors of 4-bit PQ codes (backend/pq4_codes.hpp),
//                         lut [M][16] u8, and (optional) per block a 32-bit mask
//                         of out >= threshold: the fast scan of retrieval::IvfIndex
//   whole searches  optional (Reference, CPU, Cuda; ops/retrieval.hpp): one
//                   call per search, so each backend does it its own way
//                   (CPU: threaded panel scans + threshold buffer; Cuda: a fused
//                   scan-and-select). Order: score desc, then id asc; the same
//                   results on any thread count. Data errors (non-finite
//                   queries, exclusions unsorted / out of range / leaving fewer
//                   than k items, candidate ids out of range, bad MaxSim
//                   offsets) raise backend/retrieval.hpp's messages; a NaN
//                   score among the results raises ValueError.
//     exact_top_k<E>     queries [Q, D] against panels (E as above): ids [Q, k]
//                        and scores [Q, k] of the k best rows per query, never
//                        an excluded one (ex_offsets [Q + 1] CSR into ex_ids, or
//                        empty: ex_ids excluded for every query); scores empty:
//                        the same k ids per query in any order (a shortlist)
//     rerank_top_k<T>    the k best of candidates [Q, S] (row ids of f32 rows
//                        [N, D]) by <rows[id], query>: ids, scores [Q, k]
//     max_sim_scores<T>  scores[i] = sum_r max_j <query[r], vectors[j]> over
//                        item i's rows offsets[i] .. offsets[i + 1]; argmax
//                        [n, q] (first winner) when not empty
//   nearest centroid   optional (Reference, CPU, Cuda but offer_smallest): k-means / residual quantizer
//                   assignment after g = x·cᵀ (CPU: on the calling thread):
//     squared_distances    out[i] = ||x_i - y||² (y empty: ||x_i||²)
//     shifted_argmin_rows  g[i, k] = norms[k] - 2 g[i, k]; arg[i] = the first k
//                          of the smallest, best[i] its value
//     mean_by_label        counts[k] = rows labelled k; centroid k = their mean
//                          (double sums in row order, scaled once by 1 / count;
//                          a centroid without rows is left as it was); also Cuda
//     offer_smallest       offers (base + norms[k] - 2 g[k], first + k) to a list
//                          of the cap smallest kept sorted (ties: earlier offer
//                          first; g is scratch); returns its new length
//   prefix_attention   optional (Reference, CPU): fused attention of one
//                   (sequence, head) whose rows see a prefix of the keys
//                   (ops/prefix_attention.hpp); blocks fall back to gemm +
//                   softmax_rows on backends without it
#include <cmath>
#include <cstdint>

#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/panels.hpp"
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

namespace detail {
/// One element of an Adam update in T, the host backends' shared arithmetic
/// (so Reference and Cpu give the same bits; torch adds nothing without weight decay).
template <class T>
inline void adam_update_element(const AdamUpdate<T>& u, T& w, T g, T& m, T& v) {
    if (u.l2 != T(0)) g += u.l2 * w;
    w *= u.shrink;
    m = u.beta1 * m + (T(1) - u.beta1) * g;
    v = u.beta2 * v + (T(1) - u.beta2) * g * g;
    w -= u.step_size * m / (std::sqrt(v) * u.inv_bc2_sqrt + u.eps);
}

/// softplus(x) = log(1 + e^x), accurate for both signs; its derivative is
/// sigmoid(x). The logistic loss's arithmetic on the host backends.
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}
}  // namespace detail

/// Which elements dropout keeps: element j is kept iff the 24 high bits of
/// word j of the Philox4x32-10 stream (key, stream) are >= threshold, the
/// words of Rng::u32 (core/rng.hpp), so a mask is the same on every backend.
struct DropoutMask {
    std::uint32_t key0 = 0, key1 = 0;
    std::uint64_t stream = 0;
    std::uint32_t threshold = 0;
};

/// The sizes of one batched attention call: `batch` sequences, `heads` heads of
/// width head_dim (D = heads * head_dim), q_len query rows and kv_len keys per sequence.
struct AttentionShape {
    index_t batch = 0, heads = 1, q_len = 0, kv_len = 0, head_dim = 0;
    [[nodiscard]] index_t width() const { return heads * head_dim; }
};

/// Dropout on attention weights: lane (b * heads + h) draws from
/// Rng(key0 | key1 << 32, stream).substream(lane) (core/rng.hpp); weight (r, j)
/// of that lane is element r * kv_len + j of the lane's stream, kept iff its
/// 24 high bits are >= threshold (DropoutMask's rule) and then multiplied by
/// `scale`. threshold == 0: no dropout.
template <class T>
struct AttentionDropout {
    std::uint32_t key0 = 0, key1 = 0;
    std::uint64_t stream = 0;
    std::uint32_t threshold = 0;
    T scale = T(1);
    [[nodiscard]] bool active() const { return threshold != 0; }
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
