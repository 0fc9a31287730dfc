#pragma once
// Multi-head attention of a whole batch under a prefix mask, forward and
// backward, as one backend call: the attention block's work between its input
// and output projections.
//
//   q [batch * q_len, D], k and v [batch * kv_len, D]   (D = heads * head_dim;
//       column blocks of a packed QKV matrix are fine: ld may exceed D)
//   key_end [q_len]    query row r of every sequence sees keys [0, key_end[r])
//                      (non-decreasing: causal, block-causal, bidirectional)
//   keep [batch, kv_len] optional: 0 marks a padded key
//   P = softmax(scale * q kᵀ) over the visible kept keys (a row that sees none
//   gets P = 0 and ctx = 0); W = Drop(P) while training with dropout, else P;
//   ctx = W v  [batch * q_len, D]
//
// The forward keeps what its backward needs in `state`, a buffer of
// attention_state_size(be, shape, dropout) elements in the backend's memory
// whose content is the backend's business: the host backends keep P (and W),
// a GPU keeps one statistic per row and recomputes P (flash-style: no
// [L, L] tensor). An empty state is inference: nothing is kept. The backward
// overwrites dq, dk and dv (keys no row sees get 0).
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class T = float>
concept has_attention = requires(const B& be, AttentionShape s, MatrixView<const T> m, MatrixView<T> out,
                                 VectorView<const index_t> e, MatrixView<const std::uint8_t> keep,
                                 VectorView<T> state, const AttentionDropout<T>& drop) {
    { Primitives<B>::template attention_state_size<T>(be, s, true) } -> std::same_as<index_t>;
    Primitives<B>::template attention_forward<T>(be, s, m, m, m, e, keep, T(1), drop, state, out);
    Primitives<B>::template attention_backward<T>(be, s, m, m, m, e, keep, T(1), drop, VectorView<const T>(state), m,
                                                  m, out, out, out);
};

/// Elements of T the forward must keep for the backward (with or without dropout).
template <class T, class B>
    requires has_attention<B, T>
[[nodiscard]] index_t attention_state_size(const B& be, AttentionShape s, bool dropout) {
    return Primitives<B>::template attention_state_size<T>(be, s, dropout);
}

namespace detail {
template <class B, class T>
void check_attention(std::string_view op, const B& be, const AttentionShape& s, MatrixView<const T> q,
                     MatrixView<const T> k, MatrixView<const T> v, VectorView<const index_t> key_end,
                     MatrixView<const std::uint8_t> keep, const AttentionDropout<T>& drop, index_t state_size) {
    RECBLOCKS_CHECK_SHAPE(s.batch >= 0 && s.heads >= 1 && s.head_dim >= 1 && s.q_len >= 0 && s.kv_len >= 0, op,
                          ": invalid shape batch ", s.batch, ", heads ", s.heads, ", head_dim ", s.head_dim,
                          ", q_len ", s.q_len, ", kv_len ", s.kv_len);
    check_layout(op, "q", q);
    check_layout(op, "k", k);
    check_layout(op, "v", v);
    RECBLOCKS_CHECK_SHAPE(q.rows() == s.batch * s.q_len && q.cols() == s.width(), op, ": q is ", q.shape(),
                          " but expected [", s.batch * s.q_len, ", ", s.width(), "]");
    RECBLOCKS_CHECK_SHAPE(k.rows() == s.batch * s.kv_len && k.cols() == s.width(), op, ": k is ", k.shape(),
                          " but expected [", s.batch * s.kv_len, ", ", s.width(), "]");
    check_same_shape(op, "k", k, "v", v);
    check_length(op, "key_end", key_end, s.q_len, "q_len");
    if (keep.data() != nullptr) {
        check_layout(op, "keep", keep);
        RECBLOCKS_CHECK_SHAPE(keep.rows() == s.batch && keep.cols() == s.kv_len, op, ": keep is ", keep.shape(),
                              " but expected [", s.batch, ", ", s.kv_len, "]");
    }
    const index_t expected = Primitives<B>::template attention_state_size<T>(be, s, drop.active());
    RECBLOCKS_CHECK_SHAPE(state_size == 0 || state_size == expected, op, ": state has ", state_size,
                          " entries but this shape needs ", expected);
    RECBLOCKS_CHECK_VALUE(!drop.active() || state_size != 0, op,
                          ": dropout on the attention weights needs a state (training)");
    if constexpr (host_memory_v<B>)
        for (index_t r = 0; r < s.q_len; ++r) {
            RECBLOCKS_CHECK_SHAPE(key_end(r) >= 0 && key_end(r) <= s.kv_len, op, ": key_end[", r, "] = ", key_end(r),
                                  " is outside [0, ", s.kv_len, "]");
            RECBLOCKS_CHECK_SHAPE(r == 0 || key_end(r) >= key_end(r - 1), op,
                                  ": key_end must not decrease, but key_end[", r, "] = ", key_end(r), " < key_end[",
                                  r - 1, "] = ", key_end(r - 1));
        }
}
}  // namespace detail

/// ctx = attention(q, k, v) (see the top of this file); state empty or of
/// attention_state_size(be, s, drop.active()) elements.
template <class B, class T>
    requires has_attention<B, T>
void attention_forward(const B& be, AttentionShape s, std::type_identity_t<MatrixView<const T>> q,
                       std::type_identity_t<MatrixView<const T>> k, std::type_identity_t<MatrixView<const T>> v,
                       VectorView<const index_t> key_end, MatrixView<const std::uint8_t> keep, T scale,
                       const AttentionDropout<T>& drop, VectorView<T> state, MatrixView<T> ctx) {
    constexpr std::string_view op = "ops::attention_forward";
    detail::check_attention<B, T>(op, be, s, q, k, v, key_end, keep, drop, state.size());
    detail::check_layout(op, "ctx", ctx);
    detail::check_same_shape(op, "q", q, "ctx", MatrixView<const T>(ctx));
    if (q.empty()) return;
    Primitives<B>::template attention_forward<T>(be, s, q, k, v, key_end, keep, scale, drop, state, ctx);
}

/// dq, dk, dv from dctx, with the forward's inputs, state and output ctx.
template <class B, class T>
    requires has_attention<B, T>
void attention_backward(const B& be, AttentionShape s, std::type_identity_t<MatrixView<const T>> q,
                        std::type_identity_t<MatrixView<const T>> k, std::type_identity_t<MatrixView<const T>> v,
                        VectorView<const index_t> key_end, MatrixView<const std::uint8_t> keep, T scale,
                        const AttentionDropout<T>& drop, std::type_identity_t<VectorView<const T>> state,
                        std::type_identity_t<MatrixView<const T>> ctx, std::type_identity_t<MatrixView<const T>> dctx,
                        MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv) {
    constexpr std::string_view op = "ops::attention_backward";
    detail::check_attention<B, T>(op, be, s, q, k, v, key_end, keep, drop, state.size());
    RECBLOCKS_CHECK_SHAPE(state.size() != 0 || q.empty(), op,
                          ": no state (the forward ran for inference; run it with a state to train)");
    for (const auto& [name, m] : {std::pair{"ctx", ctx}, std::pair{"dctx", dctx}}) {
        detail::check_layout(op, name, m);
        detail::check_same_shape(op, "q", q, name, m);
    }
    detail::check_layout(op, "dq", dq);
    detail::check_layout(op, "dk", dk);
    detail::check_layout(op, "dv", dv);
    detail::check_same_shape(op, "q", q, "dq", MatrixView<const T>(dq));
    detail::check_same_shape(op, "k", k, "dk", MatrixView<const T>(dk));
    detail::check_same_shape(op, "v", v, "dv", MatrixView<const T>(dv));
    if (q.empty() && k.empty()) return;
    Primitives<B>::template attention_backward<T>(be, s, q, k, v, key_end, keep, scale, drop, state, ctx, dctx, dq,
                                                  dk, dv);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
