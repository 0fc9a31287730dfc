#pragma once
// Primitives<backend::Cuda>: the primitive set (backend/primitives.hpp) on an
// NVIDIA GPU. Declarations only; the member templates are defined and
// explicitly instantiated for T = float and double in src/cuda/*.cu (link
// recblocks::cuda). Every view points to device memory.
//
// Algorithms, accumulation and determinism ("deterministic" = the same input
// gives the same bits on every run on the same GPU model):
//
//   gemm, gemm_batched   cuBLAS {S,D}gemm / {S,D}gemmStridedBatched on the
//                        row-major views (operands swapped: row-major C = A B is
//                        column-major Cᵀ = Bᵀ Aᵀ). beta == 0 does not read C;
//                        K == 0 scales C by beta. Deterministic as cuBLAS is
//                        (same handle/stream, same GPU; see docs/cuda_backend.md).
//   dot, sum             two-stage tree reduction, double accumulation; the split
//                        depends only on the size: deterministic. Each thread
//                        keeps 8 loads in flight (same combine order).
//   max_value            two-stage reduction in T; a NaN anywhere gives NaN.
//   sum_rows             column sums; per-row-chunk partials in double, then one
//                        warp per column adds them in a fixed tree:
//                        deterministic, no atomics.
//   axpy                 element-wise fma in T.
//   logistic_loss        g element-wise (double math, rounded once to T); the
//                        softplus sum by the same two-stage reduction as sum.
//   add, copy            element-wise over strided rows (copy: cudaMemcpy2DAsync).
//   adam_update          fused: one pass over value, gradient and moments, in T.
//   dropout              the CPU's Philox4x32-10 words (one thread per 4-element
//                        block), so a GPU run drops exactly the elements a CPU run drops.
//   softmax_rows(_backward)  rows of <= 1024 columns: one warp per row, the row
//                        in registers, shuffle reductions; wider rows: one
//                        256-thread block per row. Max in T, sums in double
//                        (forward: the normalisation multiplies by 1/sum
//                        rounded to T); deterministic.
//   layer_norm_forward   one warp per row (<= 1024 columns) or one block per
//                        row; mean and biased variance in double (two passes
//                        over the row).
//   layer_norm_backward  <= 512 columns: one fused pass, a warp per row for dx
//                        (double sums) that also accumulates dgamma/dbeta
//                        partials per fixed row chunk (fixed-tree combine in
//                        the block), then one warp per column adds the chunk
//                        partials in a fixed tree; wider rows: one block per
//                        row for dx plus column partials. dgamma/dbeta are
//                        ACCUMULATED (+=); deterministic, no atomics.
//   activation_*         element-wise in T (GELU via erfc, accurate for x << 0).
//   gather_rows          ids checked on the device first; the copy kernel (a
//                        group of <= 32 lanes per id row) writes nothing if any
//                        id is bad; then IndexError (synchronises).
//   scatter_add_rows     stable radix sort of (id, i) pairs (CUB), then one lane
//                        group per run of equal ids adds its src rows in increasing
//                        i: the same additions in the same order as the Reference
//                        backend (bit-identical), deterministic, no atomics.
//                        Ids checked on the device; a bad id -> nothing written,
//                        IndexError (synchronises).
//   top_k_rows           k selection passes (each pass picks the best (value,
//                        -index) pair below the previous one). Rows of more than
//                        4096 scores with k <= 512: two stages, one block per
//                        4096-score segment (scores in registers) selects the
//                        segment's top k, then one block per row selects from
//                        the candidates; otherwise one block per row over the
//                        whole row. O(k * N) work per row, exact, deterministic
//                        ties (lower index first). Suited to small k
//                        (recommendation top-10..100). Returns the first row
//                        with a NaN (rows with NaN are not written).
//   attention_forward / attention_backward   (src/cuda/attention.cu) batched
//                        prefix attention, flash-style: no [L, L] tensor in
//                        device memory. Forward: one block per (sequence, head,
//                        query tile), online softmax over key tiles in shared
//                        memory; keeps the row log-sum-exp (state) for the
//                        backward. Backward (FlashAttention-2): D_r = dctx·ctx,
//                        then dK/dV with one block per (sequence, head, key
//                        tile) looping over query tiles and dQ with one block
//                        per query tile looping over key tiles, P recomputed
//                        from the saved statistic. Sums in T, fixed order:
//                        deterministic, no atomics. Dropout bits: the Philox
//                        words of core/rng.hpp (the CPU's mask).
//   broadcast_rows, gate_by_nonzero, scale_rows   (src/cuda/glue.cu)
//                        element-wise in T.
//   row_dots             one warp per row, sums in T, fixed shuffle tree:
//                        deterministic.
//   squared_distances,   one warp per row, sums in T in a fixed shuffle tree;
//   shifted_argmin_rows  the argmin keeps the first smallest (NaN ranks last)
//                        (src/cuda/nearest_centroid.cu). Not offer_smallest: the
//                        beam list is a sequential host step (has_beam_selection).
//   mean_by_label        one block per centroid (grid-stride over centroids):
//                        the labels are read in row order in shared-memory tiles
//                        and each thread adds its columns of the matching rows
//                        in double, in row order, then scales once by 1 / count:
//                        the Reference's bits, deterministic, no atomics. A row
//                        whose label is outside [0, K) matches no block (skipped).
//   gathered_dot         ids checked on the device first (a bad id: nothing
//                        written, IndexError; synchronises), then one warp per
//                        id, sums in T, fixed shuffle tree: deterministic.
//   softmax_cross_entropy   (src/cuda/losses_softmax.cu) targets checked on
//                        the device first (a bad one: nothing written,
//                        IndexError). One 256-thread block per row: z += bias
//                        and the row maximum (in T, NaN-ignoring tree), e =
//                        exp(z - max) in T summed in double (fixed tree), then
//                        the gradient scale·(e/sum - onehot) in place; each
//                        row's loss in double, added over rows by one block in
//                        a fixed order. Deterministic, no atomics on values;
//                        synchronises (the sum is returned).
//   DARE (src/cuda/dare.cu):
//   multiply             element-wise in T.
//   bce_with_logits      g element-wise (double math, rounded once to T); the
//                        loss sum in double by one block's fixed tree
//                        (synchronises): deterministic.
//   search_segments      ids and segment lengths checked on the device first
//                        (nothing written on a problem; IndexError / ValueError,
//                        synchronises); scores by one warp per id (its segment
//                        found by bisection of the offsets; the gathered_dot
//                        order); then one block per segment: a NaN pass, and k
//                        selection passes (each takes the best (score, earlier
//                        position) ranking after the previous pick, a fixed
//                        tree per pass). O(k n) per segment, exact,
//                        deterministic ties; returns the first NaN segment.
//   attend_rows          one thread per output element, the k terms in order (fma in T).
//   attend_rows_backward dw: one warp per (segment, j), fixed shuffle tree;
//                        drows element-wise in T. Deterministic, no atomics.
#include <cstdint>

#include "recblocks/backend/cuda/cuda.hpp"
#include "recblocks/backend/cuda/memory.hpp"
#include "recblocks/backend/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN

// CUDA tensors live in device memory (backend/cuda/memory.hpp), so
// host_memory_v<backend::Cuda> is false: ops/ does not read ids on the host;
// the CUDA kernels check them and throw the same IndexError.
static_assert(!host_memory_v<backend::Cuda>);

template <>
struct Primitives<backend::Cuda> {
    using B = backend::Cuda;

    template <class T>
    static void gemm(const B& be, Trans ta, Trans tb, T alpha, MatrixView<const T> a, MatrixView<const T> b, T beta,
                     MatrixView<T> c);

    template <class T>
    static void gemm_batched(const B& be, Trans ta, Trans tb, T alpha, TensorView<const T, 3> a,
                             TensorView<const T, 3> b, T beta, TensorView<T, 3> c);

    template <class T>
    static T dot(const B& be, VectorView<const T> x, VectorView<const T> y);

    template <class T>
    static void axpy(const B& be, T alpha, VectorView<const T> x, VectorView<T> y);

    template <class T>
    static void adam_update(const B& be, const AdamUpdate<T>& u, VectorView<T> w, VectorView<const T> g,
                            VectorView<T> m, VectorView<T> v);

    template <class T>
    static void add(const B& be, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out);

    template <class T>
    static void dropout(const B& be, VectorView<const T> x, VectorView<T> y, index_t first, const DropoutMask& mask,
                        T scale);

    template <class T>
    static void copy(const B& be, MatrixView<const T> src, MatrixView<T> dst);

    template <class T>
    static void softmax_rows(const B& be, MatrixView<const T> x, MatrixView<const std::uint8_t> mask,
                             MatrixView<T> y);

    template <class T>
    static void softmax_rows_backward(const B& be, MatrixView<const T> y, MatrixView<const T> dy, MatrixView<T> dx);

    template <class T>
    static void layer_norm_forward(const B& be, MatrixView<const T> x, VectorView<const T> gamma,
                                   VectorView<const T> beta, T eps, MatrixView<T> y, VectorView<T> mean,
                                   VectorView<T> rstd);

    template <class T>
    static void layer_norm_backward(const B& be, MatrixView<const T> x, VectorView<const T> gamma,
                                    VectorView<const T> mean, VectorView<const T> rstd, MatrixView<const T> dy,
                                    MatrixView<T> dx, VectorView<T> dgamma, VectorView<T> dbeta);

    template <class T>
    static void activation_forward(const B& be, Activation act, MatrixView<const T> x, MatrixView<T> y);

    template <class T>
    static void activation_backward(const B& be, Activation act, MatrixView<const T> x, MatrixView<const T> dy,
                                    MatrixView<T> dx);

    template <class T>
    static void gather_rows(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids, MatrixView<T> out);

    template <class T>
    static void scatter_add_rows(const B& be, MatrixView<const T> src, VectorView<const row_id_t> ids,
                                 MatrixView<T> table);

    template <class T>
    static index_t top_k_rows(const B& be, MatrixView<const T> scores, index_t k, MatrixView<row_id_t> ids,
                              MatrixView<T> values);

    // ---- retrieval (src/cuda/retrieval.cu) ------------------------------------------------------------------
    //   exact_top_k      fused scan-and-select, no [N] score array: each warp of
    //                    the grid scans a fixed range of 64-row panels (lane l:
    //                    rows l and l + 32) for a tile of 1-8 queries at once,
    //                    keeping per query a buffer of 64-bit (score, id) keys
    //                    above a threshold in shared memory (full: sort, keep
    //                    the best k, raise the threshold to the k-th); then one
    //                    block per query merges the warps' k-lists by an 8-pass
    //                    radix select and sorts the k by rank. k + 32 > 512:
    //                    every row's key goes to device memory (queries in
    //                    chunks of 2^25 keys) and the same merge selects.
    //                    Exclusions by binary search, only for scores above the
    //                    threshold. Sums in f32 (fma, column order); selection
    //                    on unique keys: deterministic. int8 scores use the
    //                    float query (the dequantized table; the CPU rounds the
    //                    query to int16). Data checked on the device (flags),
    //                    messages rebuilt on the host; synchronises.
    //   rerank_top_k     one warp per (query, candidate): row gathered whole,
    //                    shuffle-tree sum; the same merge. Synchronises.
    //   max_sim_scores   one warp per item; per query row the first best
    //                    vector, row maxima summed in order, in f32. Synchronises.
    template <class E>
    static void exact_top_k(const B& be, PanelView<E> items, MatrixView<const float> queries, index_t k,
                            VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids,
                            MatrixView<row_id_t> ids, MatrixView<float> scores);

    template <class T>
    static void rerank_top_k(const B& be, MatrixView<const T> rows, MatrixView<const T> queries,
                             MatrixView<const row_id_t> candidates, index_t k, MatrixView<row_id_t> ids,
                             MatrixView<T> scores);

    template <class T>
    static void max_sim_scores(const B& be, MatrixView<const T> query, MatrixView<const T> vectors,
                               VectorView<const index_t> offsets, VectorView<T> scores, MatrixView<index_t> argmax);
    // ---- end of retrieval -----------------------------------------------------------------------------------

    template <class T>
    static T sum(const B& be, MatrixView<const T> x);

    template <class T>
    static T max_value(const B& be, MatrixView<const T> x);

    template <class T>
    static void sum_rows(const B& be, MatrixView<const T> x, VectorView<T> out);

    template <class T>
    static double logistic_loss(const B& be, VectorView<const T> s, VectorView<const T> sign, T weight,
                                VectorView<T> g);

    // ---- attention (src/cuda/attention.cu) ----
    template <class T>
    static index_t attention_state_size(const B& be, AttentionShape s, bool dropout);

    template <class T>
    static void attention_forward(const B& be, AttentionShape s, MatrixView<const T> q, MatrixView<const T> k,
                                  MatrixView<const T> v, VectorView<const index_t> key_end,
                                  MatrixView<const std::uint8_t> keep, T scale, const AttentionDropout<T>& drop,
                                  VectorView<T> state, MatrixView<T> ctx);

    template <class T>
    static void attention_backward(const B& be, AttentionShape s, MatrixView<const T> q, MatrixView<const T> k,
                                   MatrixView<const T> v, VectorView<const index_t> key_end,
                                   MatrixView<const std::uint8_t> keep, T scale, const AttentionDropout<T>& drop,
                                   VectorView<const T> state, MatrixView<const T> ctx, MatrixView<const T> dctx,
                                   MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv);

    // ---- small glue (src/cuda/glue.cu) ----
    template <class T>
    static void broadcast_rows(const B& be, VectorView<const T> row, T beta, MatrixView<T> out);

    template <class T>
    static void gate_by_nonzero(const B& be, VectorView<const T> ref, VectorView<T> g, T scale);

    template <class T>
    static void scale_rows(const B& be, MatrixView<const T> x, VectorView<const T> s, T alpha, MatrixView<T> y);

    template <class T>
    static void row_dots(const B& be, MatrixView<const T> a, MatrixView<const T> b, VectorView<T> out);

    // ---- losses (src/cuda/losses_softmax.cu) ----
    template <class T>
    static double softmax_cross_entropy(const B& be, MatrixView<T> logits, VectorView<const T> bias,
                                        VectorView<const row_id_t> targets, T scale);

    // ---- optional families (src/cuda/glue.cu) ----
    template <class T>
    static void gathered_dot(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids,
                             VectorView<const T> x, T alpha, VectorView<T> y);

    // ---- nearest centroid without the beam list (src/cuda/nearest_centroid.cu) ----
    template <class T>
    static void squared_distances(const B& be, MatrixView<const T> x, VectorView<const T> y, VectorView<T> out);

    template <class T>
    static void shifted_argmin_rows(const B& be, MatrixView<T> g, VectorView<const T> norms, VectorView<index_t> arg,
                                    VectorView<T> best);

    template <class T>
    static void mean_by_label(const B& be, MatrixView<const T> x, VectorView<const index_t> labels,
                              MatrixView<T> centroids, VectorView<index_t> counts);

    // ---- DARE: element-wise product, BCE on logits, target attention (src/cuda/dare.cu) ----
    template <class T>
    static void multiply(const B& be, MatrixView<const T> a, MatrixView<const T> b, MatrixView<T> out);

    template <class T>
    static double bce_with_logits(const B& be, VectorView<const T> z, VectorView<const T> y, T weight,
                                  VectorView<T> g);

    template <class T>
    static index_t search_segments(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids,
                                   VectorView<const index_t> offsets, MatrixView<const T> queries, T alpha, index_t k,
                                   VectorView<T> scores, MatrixView<T> top_values, MatrixView<row_id_t> top_positions,
                                   MatrixView<row_id_t> top_ids);

    template <class T>
    static void attend_rows(const B& be, MatrixView<const T> w, MatrixView<const T> rows, MatrixView<T> out);

    template <class T>
    static void attend_rows_backward(const B& be, MatrixView<const T> w, MatrixView<const T> rows,
                                     MatrixView<const T> dout, MatrixView<T> dw, MatrixView<T> drows);
    // ---- end DARE ----
};

// ---- retrieval: defined in src/cuda/retrieval.cu for exactly these types ----------------------------------------
extern template void Primitives<backend::Cuda>::exact_top_k<float>(const backend::Cuda&, PanelView<float>,
                                                                   MatrixView<const float>, index_t,
                                                                   VectorView<const index_t>,
                                                                   VectorView<const row_id_t>, MatrixView<row_id_t>,
                                                                   MatrixView<float>);
extern template void Primitives<backend::Cuda>::exact_top_k<std::uint16_t>(
    const backend::Cuda&, PanelView<std::uint16_t>, MatrixView<const float>, index_t, VectorView<const index_t>,
    VectorView<const row_id_t>, MatrixView<row_id_t>, MatrixView<float>);
extern template void Primitives<backend::Cuda>::exact_top_k<std::int8_t>(
    const backend::Cuda&, PanelView<std::int8_t>, MatrixView<const float>, index_t, VectorView<const index_t>,
    VectorView<const row_id_t>, MatrixView<row_id_t>, MatrixView<float>);
extern template void Primitives<backend::Cuda>::rerank_top_k<float>(const backend::Cuda&, MatrixView<const float>,
                                                                    MatrixView<const float>,
                                                                    MatrixView<const row_id_t>, index_t,
                                                                    MatrixView<row_id_t>, MatrixView<float>);
extern template void Primitives<backend::Cuda>::max_sim_scores<float>(const backend::Cuda&, MatrixView<const float>,
                                                                      MatrixView<const float>,
                                                                      VectorView<const index_t>, VectorView<float>,
                                                                      MatrixView<index_t>);
// ---- end of retrieval -------------------------------------------------------------------------------------------

// Defined in src/cuda/primitives.cu for exactly these types.
#define RECBLOCKS_CUDA_DECLARE_PRIMITIVES(T)                                                                         \
    extern template void Primitives<backend::Cuda>::gemm<T>(const backend::Cuda&, Trans, Trans, T,                  \
                                                            MatrixView<const T>, MatrixView<const T>, T,             \
                                                            MatrixView<T>);                                          \
    extern template void Primitives<backend::Cuda>::gemm_batched<T>(const backend::Cuda&, Trans, Trans, T,          \
                                                                    TensorView<const T, 3>, TensorView<const T, 3>,  \
                                                                    T, TensorView<T, 3>);                            \
    extern template T Primitives<backend::Cuda>::dot<T>(const backend::Cuda&, VectorView<const T>,                  \
                                                        VectorView<const T>);                                        \
    extern template void Primitives<backend::Cuda>::axpy<T>(const backend::Cuda&, T, VectorView<const T>,           \
                                                            VectorView<T>);                                          \
    extern template void Primitives<backend::Cuda>::adam_update<T>(const backend::Cuda&, const AdamUpdate<T>&,      \
                                                                   VectorView<T>, VectorView<const T>,              \
                                                                   VectorView<T>, VectorView<T>);                   \
    extern template void Primitives<backend::Cuda>::dropout<T>(const backend::Cuda&, VectorView<const T>,          \
                                                               VectorView<T>, index_t, const DropoutMask&, T);      \
    extern template void Primitives<backend::Cuda>::add<T>(const backend::Cuda&, MatrixView<const T>,              \
                                                           MatrixView<const T>, MatrixView<T>);                     \
    extern template void Primitives<backend::Cuda>::copy<T>(const backend::Cuda&, MatrixView<const T>,             \
                                                            MatrixView<T>);                                         \
    extern template void Primitives<backend::Cuda>::softmax_rows<T>(const backend::Cuda&, MatrixView<const T>,      \
                                                                    MatrixView<const std::uint8_t>, MatrixView<T>);  \
    extern template void Primitives<backend::Cuda>::softmax_rows_backward<T>(                                       \
        const backend::Cuda&, MatrixView<const T>, MatrixView<const T>, MatrixView<T>);                              \
    extern template void Primitives<backend::Cuda>::layer_norm_forward<T>(                                          \
        const backend::Cuda&, MatrixView<const T>, VectorView<const T>, VectorView<const T>, T, MatrixView<T>,       \
        VectorView<T>, VectorView<T>);                                                                               \
    extern template void Primitives<backend::Cuda>::layer_norm_backward<T>(                                         \
        const backend::Cuda&, MatrixView<const T>, VectorView<const T>, VectorView<const T>, VectorView<const T>,    \
        MatrixView<const T>, MatrixView<T>, VectorView<T>, VectorView<T>);                                           \
    extern template void Primitives<backend::Cuda>::activation_forward<T>(const backend::Cuda&, Activation,         \
                                                                          MatrixView<const T>, MatrixView<T>);       \
    extern template void Primitives<backend::Cuda>::activation_backward<T>(                                         \
        const backend::Cuda&, Activation, MatrixView<const T>, MatrixView<const T>, MatrixView<T>);                  \
    extern template void Primitives<backend::Cuda>::gather_rows<T>(const backend::Cuda&, MatrixView<const T>,       \
                                                                   VectorView<const row_id_t>, MatrixView<T>);           \
    extern template void Primitives<backend::Cuda>::scatter_add_rows<T>(const backend::Cuda&, MatrixView<const T>,  \
                                                                        VectorView<const row_id_t>, MatrixView<T>);      \
    extern template index_t Primitives<backend::Cuda>::top_k_rows<T>(const backend::Cuda&, MatrixView<const T>,     \
                                                                     index_t, MatrixView<row_id_t>, MatrixView<T>);      \
    extern template T Primitives<backend::Cuda>::sum<T>(const backend::Cuda&, MatrixView<const T>);                 \
    extern template T Primitives<backend::Cuda>::max_value<T>(const backend::Cuda&, MatrixView<const T>);           \
    extern template void Primitives<backend::Cuda>::sum_rows<T>(const backend::Cuda&, MatrixView<const T>,          \
                                                                VectorView<T>);                                      \
    extern template double Primitives<backend::Cuda>::logistic_loss<T>(const backend::Cuda&, VectorView<const T>,   \
                                                                       VectorView<const T>, T, VectorView<T>)

RECBLOCKS_CUDA_DECLARE_PRIMITIVES(float);
RECBLOCKS_CUDA_DECLARE_PRIMITIVES(double);
#undef RECBLOCKS_CUDA_DECLARE_PRIMITIVES

// Defined in src/cuda/attention.cu and src/cuda/glue.cu for exactly these types.
#define RECBLOCKS_CUDA_DECLARE_ATTENTION_AND_GLUE(T)                                                                 \
    extern template index_t Primitives<backend::Cuda>::attention_state_size<T>(const backend::Cuda&, AttentionShape, \
                                                                               bool);                                \
    extern template void Primitives<backend::Cuda>::attention_forward<T>(                                           \
        const backend::Cuda&, AttentionShape, MatrixView<const T>, MatrixView<const T>, MatrixView<const T>,         \
        VectorView<const index_t>, MatrixView<const std::uint8_t>, T, const AttentionDropout<T>&, VectorView<T>,     \
        MatrixView<T>);                                                                                              \
    extern template void Primitives<backend::Cuda>::attention_backward<T>(                                          \
        const backend::Cuda&, AttentionShape, MatrixView<const T>, MatrixView<const T>, MatrixView<const T>,         \
        VectorView<const index_t>, MatrixView<const std::uint8_t>, T, const AttentionDropout<T>&,                    \
        VectorView<const T>, MatrixView<const T>, MatrixView<const T>, MatrixView<T>, MatrixView<T>, MatrixView<T>); \
    extern template void Primitives<backend::Cuda>::broadcast_rows<T>(const backend::Cuda&, VectorView<const T>, T, \
                                                                      MatrixView<T>);                                \
    extern template void Primitives<backend::Cuda>::gate_by_nonzero<T>(const backend::Cuda&, VectorView<const T>,   \
                                                                       VectorView<T>, T);                            \
    extern template void Primitives<backend::Cuda>::scale_rows<T>(const backend::Cuda&, MatrixView<const T>,        \
                                                                  VectorView<const T>, T, MatrixView<T>);            \
    extern template void Primitives<backend::Cuda>::row_dots<T>(const backend::Cuda&, MatrixView<const T>,          \
                                                                MatrixView<const T>, VectorView<T>);                 \
    extern template void Primitives<backend::Cuda>::gathered_dot<T>(const backend::Cuda&, MatrixView<const T>,      \
                                                                    VectorView<const row_id_t>, VectorView<const T>, \
                                                                    T, VectorView<T>)

RECBLOCKS_CUDA_DECLARE_ATTENTION_AND_GLUE(float);
RECBLOCKS_CUDA_DECLARE_ATTENTION_AND_GLUE(double);
#undef RECBLOCKS_CUDA_DECLARE_ATTENTION_AND_GLUE

// Defined in src/cuda/nearest_centroid.cu for exactly these types.
#define RECBLOCKS_CUDA_DECLARE_NEAREST_CENTROID(T)                                                                   \
    extern template void Primitives<backend::Cuda>::squared_distances<T>(const backend::Cuda&, MatrixView<const T>,  \
                                                                         VectorView<const T>, VectorView<T>);        \
    extern template void Primitives<backend::Cuda>::shifted_argmin_rows<T>(                                         \
        const backend::Cuda&, MatrixView<T>, VectorView<const T>, VectorView<index_t>, VectorView<T>)

RECBLOCKS_CUDA_DECLARE_NEAREST_CENTROID(float);
RECBLOCKS_CUDA_DECLARE_NEAREST_CENTROID(double);
#undef RECBLOCKS_CUDA_DECLARE_NEAREST_CENTROID

// ---- losses: defined in src/cuda/losses_softmax.cu for exactly these types ----
#define RECBLOCKS_CUDA_DECLARE_LOSSES(T)                                                                             \
    extern template double Primitives<backend::Cuda>::softmax_cross_entropy<T>(                                     \
        const backend::Cuda&, MatrixView<T>, VectorView<const T>, VectorView<const row_id_t>, T)

RECBLOCKS_CUDA_DECLARE_LOSSES(float);
RECBLOCKS_CUDA_DECLARE_LOSSES(double);
#undef RECBLOCKS_CUDA_DECLARE_LOSSES
// ---- end of losses ----
// ---- DARE: defined in src/cuda/dare.cu for exactly these types ----
#define RECBLOCKS_CUDA_DECLARE_DARE(T)                                                                               \
    extern template void Primitives<backend::Cuda>::multiply<T>(const backend::Cuda&, MatrixView<const T>,          \
                                                                MatrixView<const T>, MatrixView<T>);                 \
    extern template double Primitives<backend::Cuda>::bce_with_logits<T>(const backend::Cuda&, VectorView<const T>, \
                                                                         VectorView<const T>, T, VectorView<T>);     \
    extern template index_t Primitives<backend::Cuda>::search_segments<T>(                                          \
        const backend::Cuda&, MatrixView<const T>, VectorView<const row_id_t>, VectorView<const index_t>,            \
        MatrixView<const T>, T, index_t, VectorView<T>, MatrixView<T>, MatrixView<row_id_t>, MatrixView<row_id_t>);  \
    extern template void Primitives<backend::Cuda>::attend_rows<T>(const backend::Cuda&, MatrixView<const T>,       \
                                                                   MatrixView<const T>, MatrixView<T>);              \
    extern template void Primitives<backend::Cuda>::attend_rows_backward<T>(                                        \
        const backend::Cuda&, MatrixView<const T>, MatrixView<const T>, MatrixView<const T>, MatrixView<T>,          \
        MatrixView<T>)

RECBLOCKS_CUDA_DECLARE_DARE(float);
RECBLOCKS_CUDA_DECLARE_DARE(double);
#undef RECBLOCKS_CUDA_DECLARE_DARE
// ---- end DARE ----

RECBLOCKS_NAMESPACE_END
