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

}  // namespace ops
RECBLOCKS_NAMESPACE_END
