#pragma once
// Fused attention of one (sequence, head) whose mask shows query row r the
// keys [0, key_end[r]) — causal, block-causal and bidirectional masks all
// do — optionally minus padded keys:
//   P[r, j]  = softmax_j(scale * q_r . k_j) over visible, kept keys; 0 elsewhere
//   ctx[r]   = sum_j P[r, j] v_j
// Scores are never stored as a full [L, L] matrix: P is written only when the
// caller asks for it (training keeps it for the backward pass) and only up to
// write_end[r]. A row that sees no kept key gets P = 0 and ctx = 0.
// Backends without the primitive (has_prefix_attention<B> is false) are served
// by the attention block's GEMM + softmax path.
#include <tuple>
#include <utility>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class T = float>
concept has_prefix_attention = requires(const B& be, MatrixView<const T> m, MatrixView<T> out,
                                        VectorView<const index_t> e, VectorView<const std::uint8_t> keep) {
    Primitives<B>::template prefix_attention<T>(be, m, m, m, e, e, keep, T(1), out, out);
};

/// q [R, dh]; k, v [K, dh]; key_end [R] with 0 <= key_end[r] <= K; keep
/// optional [K] (0 = padded key). p optional [R, >= max write_end]: row r
/// gets P on [0, key_end[r]) and zeros on [key_end[r], write_end[r]) (write_end
/// may be empty when p is). ctx optional [R, dh]. At least one output.
template <class B, class T>
void prefix_attention(const B& be, std::type_identity_t<MatrixView<const T>> q,
                      std::type_identity_t<MatrixView<const T>> k, std::type_identity_t<MatrixView<const T>> v,
                      VectorView<const index_t> key_end, VectorView<const index_t> write_end,
                      VectorView<const std::uint8_t> keep, T scale, MatrixView<T> p, MatrixView<T> ctx) {
    constexpr std::string_view op = "ops::prefix_attention";
    detail::check_layout(op, "q", q);
    detail::check_layout(op, "k", k);
    detail::check_layout(op, "v", v);
    detail::check_same_shape(op, "k", k, "v", v);
    RECBLOCKS_CHECK_SHAPE(k.cols() == q.cols(), op, ": q is ", q.shape(), " but k is ", k.shape(),
                          " (head widths differ)");
    detail::check_length(op, "key_end", key_end, q.rows(), "the number of query rows");
    RECBLOCKS_CHECK_SHAPE(p.data() != nullptr || ctx.data() != nullptr, op, ": neither p nor ctx is given");
    if (keep.data() != nullptr) detail::check_length(op, "keep", keep, k.rows(), "the number of keys");
    if (ctx.data() != nullptr) {
        detail::check_layout(op, "ctx", ctx);
        RECBLOCKS_CHECK_SHAPE(ctx.rows() == q.rows() && ctx.cols() == q.cols(), op, ": ctx is ", ctx.shape(),
                              " but q is ", q.shape());
    }
    if (p.data() != nullptr) {
        detail::check_layout(op, "p", p);
        detail::check_length(op, "write_end", write_end, q.rows(), "the number of query rows");
        RECBLOCKS_CHECK_SHAPE(p.rows() == q.rows(), op, ": p has ", p.rows(), " rows but q has ", q.rows());
    }
    for (index_t r = 0; r < q.rows(); ++r) {
        RECBLOCKS_CHECK_SHAPE(key_end(r) >= 0 && key_end(r) <= k.rows(), op, ": key_end[", r, "] = ", key_end(r),
                              " is outside [0, ", k.rows(), "]");
        if (p.data() != nullptr)
            RECBLOCKS_CHECK_SHAPE(write_end(r) >= key_end(r) && write_end(r) <= p.cols(), op, ": write_end[", r,
                                  "] = ", write_end(r), " is outside [key_end = ", key_end(r), ", p's ", p.cols(),
                                  " columns]");
    }
    if (q.rows() == 0) return;
    Primitives<B>::template prefix_attention<T>(be, q, k, v, key_end, write_end, keep, scale, p, ctx);
}

template <class B, class T = float>
concept has_prefix_attention_backward = requires(const B& be, MatrixView<const T> m, MatrixView<T> out,
                                                 VectorView<const index_t> e) {
    Primitives<B>::template prefix_attention_backward<T>(be, m, m, m, m, m, m, e, T(1), T(1), out, out, out);
};

/// Backward of prefix_attention (its key_end must be non-decreasing over
/// rows, as every prefix mask's is): from dctx [R, dh], the forward's P
/// (p [R, >= key_end[r]]) and, with dropout on the attention weights, the
/// weights that multiplied V (w = Drop(P), same shape; empty: no dropout) and
/// drop_scale = 1 / (1 - p_drop), writes dq [R, dh], dk and dv [K, dh]
/// (overwritten, not accumulated). Keys no row sees get zero gradients.
/// Padded keys need nothing here: their P is 0.
template <class B, class T>
void prefix_attention_backward(const B& be, std::type_identity_t<MatrixView<const T>> q,
                               std::type_identity_t<MatrixView<const T>> k, std::type_identity_t<MatrixView<const T>> v,
                               std::type_identity_t<MatrixView<const T>> dctx,
                               std::type_identity_t<MatrixView<const T>> p,
                               std::type_identity_t<MatrixView<const T>> w, VectorView<const index_t> key_end,
                               T drop_scale, T scale, MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv) {
    constexpr std::string_view op = "ops::prefix_attention_backward";
    for (const auto& [name, m] : {std::pair{"q", q}, std::pair{"k", k}, std::pair{"v", v}, std::pair{"dctx", dctx},
                                  std::pair{"p", p}})
        detail::check_layout(op, name, m);
    detail::check_same_shape(op, "k", k, "v", v);
    detail::check_same_shape(op, "q", q, "dctx", dctx);
    RECBLOCKS_CHECK_SHAPE(k.cols() == q.cols(), op, ": q is ", q.shape(), " but k is ", k.shape(),
                          " (head widths differ)");
    detail::check_length(op, "key_end", key_end, q.rows(), "the number of query rows");
    RECBLOCKS_CHECK_SHAPE(p.rows() == q.rows(), op, ": p has ", p.rows(), " rows but q has ", q.rows());
    if (w.data() != nullptr) {
        detail::check_layout(op, "w", w);
        detail::check_same_shape(op, "p", p, "w", w);
    }
    for (const auto& [name, m, rows] : {std::tuple{"dq", dq, q.rows()}, std::tuple{"dk", dk, k.rows()},
                                        std::tuple{"dv", dv, k.rows()}}) {
        detail::check_layout(op, name, m);
        RECBLOCKS_CHECK_SHAPE(m.rows() == rows && m.cols() == q.cols(), op, ": ", name, " is ", m.shape(),
                              " but expected [", rows, ", ", q.cols(), "]");
    }
    for (index_t r = 0; r < q.rows(); ++r) {
        RECBLOCKS_CHECK_SHAPE(key_end(r) >= 0 && key_end(r) <= k.rows() && key_end(r) <= p.cols(), op, ": key_end[",
                              r, "] = ", key_end(r), " is outside [0, min(keys ", k.rows(), ", p's columns ",
                              p.cols(), ")]");
        RECBLOCKS_CHECK_SHAPE(r == 0 || key_end(r) >= key_end(r - 1), op, ": key_end must not decrease, but key_end[",
                              r, "] = ", key_end(r), " < key_end[", r - 1, "] = ", key_end(r - 1));
    }
    if (q.rows() == 0 && k.rows() == 0) return;
    Primitives<B>::template prefix_attention_backward<T>(be, q, k, v, dctx, p, w, key_end, drop_scale, scale, dq, dk,
                                                         dv);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
