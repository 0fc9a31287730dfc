#pragma once
// Batched attention (ops/attention.hpp) for host backends, written once over
// a backend's per-(sequence, head) primitives: prefix_attention,
// prefix_attention_backward, dropout and gemm. Sequences run in parallel on
// the backend's pool when it has one (each writes only its own slices, so the
// result does not depend on the thread count).
//
// The state holds P [batch, heads, q_len, kv_len] (row r written on
// [0, key_end[r])) and, with dropout, W = Drop(P) after it (zero beyond
// key_end[r]): the weights the backward needs, which the host can afford to
// keep (a GPU recomputes them instead).
#include <algorithm>

#include "recblocks/backend/primitives.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/thread_pool.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace detail {

template <class B, class T>
struct HostAttention {
    using P = Primitives<B>;
    static constexpr index_t kQueryChunk = 32;  // rows per W V product (skips keys no row of the chunk sees)

    static index_t state_size(const AttentionShape& s, bool dropout) {
        return s.batch * s.heads * s.q_len * s.kv_len * (dropout ? 2 : 1);
    }

    static void forward(const B& be, const AttentionShape& s, MatrixView<const T> q, MatrixView<const T> k,
                        MatrixView<const T> v, VectorView<const index_t> key_end, MatrixView<const std::uint8_t> keep,
                        T scale, const AttentionDropout<T>& drop, VectorView<T> state, MatrixView<T> ctx) {
        const bool keep_p = state.data() != nullptr;
        if (!drop.active() && split_rows(be, s)) {
            forward_row_blocks(be, s, q, k, v, key_end, keep, scale, state, ctx);
            return;
        }
        for_each_sequence(be, s.batch, [&](const B& inner, index_t b) {
            const auto keys_kept = keep.data() ? VectorView<const std::uint8_t>(keep.row(b), Shape<1>{{s.kv_len}})
                                               : VectorView<const std::uint8_t>{};
            for (index_t h = 0; h < s.heads; ++h) {
                auto c = head(ctx, b, s.q_len, h, s.head_dim);
                const auto p = keep_p ? probs(state, s, b, h, 0) : MatrixView<T>{};
                P::template prefix_attention<T>(inner, head(q, b, s.q_len, h, s.head_dim),
                                                head(k, b, s.kv_len, h, s.head_dim), head(v, b, s.kv_len, h, s.head_dim),
                                                key_end, key_end, keys_kept, scale, p,
                                                drop.active() ? MatrixView<T>{} : c);
                if (!drop.active()) continue;
                // W = Drop(P) on each row's visible keys, zero beyond; then ctx = W V in chunks of rows.
                auto w = probs(state, s, b, h, 1);
                const DropoutMask mask = lane_mask(drop, b * s.heads + h);
                for (index_t r = 0; r < s.q_len; ++r) {
                    const index_t end = key_end(r);
                    if (end > 0)
                        P::template dropout<T>(inner, VectorView<const T>(p.row(r), Shape<1>{{end}}),
                                               VectorView<T>(w.row(r), Shape<1>{{end}}), r * s.kv_len, mask, drop.scale);
                    std::fill(w.row(r) + end, w.row(r) + s.kv_len, T(0));
                }
                for (index_t r0 = 0; r0 < s.q_len; r0 += kQueryChunk) {
                    const index_t r1 = std::min(s.q_len, r0 + kQueryChunk), kend = key_end(r1 - 1);
                    auto c_rows = c.slice_rows(r0, r1);
                    if (kend == 0) {
                        for (index_t r = r0; r < r1; ++r) std::fill(c.row(r), c.row(r) + s.head_dim, T(0));
                        continue;
                    }
                    P::template gemm<T>(inner, Trans::no, Trans::no, T(1),
                                        MatrixView<const T>(w.row(r0), Shape<2>{{r1 - r0, kend}}, {s.kv_len, 1}),
                                        head(v, b, s.kv_len, h, s.head_dim).slice_rows(0, kend), T(0), c_rows);
                }
            }
        });
    }

    static void backward(const B& be, const AttentionShape& s, MatrixView<const T> q, MatrixView<const T> k,
                         MatrixView<const T> v, VectorView<const index_t> key_end, const AttentionDropout<T>& drop,
                         VectorView<const T> state, MatrixView<const T> dctx, T scale, MatrixView<T> dq,
                         MatrixView<T> dk, MatrixView<T> dv) {
        for_each_sequence(be, s.batch, [&](const B& inner, index_t b) {
            for (index_t h = 0; h < s.heads; ++h) {
                const MatrixView<const T> p = probs(state, s, b, h, 0);
                const MatrixView<const T> w = drop.active() ? probs(state, s, b, h, 1) : MatrixView<const T>{};
                P::template prefix_attention_backward<T>(
                    inner, head(q, b, s.q_len, h, s.head_dim), head(k, b, s.kv_len, h, s.head_dim),
                    head(v, b, s.kv_len, h, s.head_dim), head(dctx, b, s.q_len, h, s.head_dim), p, w, key_end,
                    drop.scale, scale, head(dq, b, s.q_len, h, s.head_dim), head(dk, b, s.kv_len, h, s.head_dim),
                    head(dv, b, s.kv_len, h, s.head_dim));
            }
        });
    }

    /// The dropout mask of lane (b * heads + h), as AttentionDropout defines it.
    static DropoutMask lane_mask(const AttentionDropout<T>& drop, index_t lane) {
        const Rng r = Rng(std::uint64_t{drop.key0} | (std::uint64_t{drop.key1} << 32), drop.stream)
                          .substream(static_cast<std::uint64_t>(lane));
        const auto key = r.key();
        return {key[0], key[1], r.stream(), drop.threshold};
    }

private:
    /// Query rows per task when one sequence's attention is shared by threads: a
    /// multiple of the kernels' row tile, so every row is computed the same way
    /// however the rows are split (the result does not depend on the thread count).
    static constexpr index_t kRowBlock = 32;

    /// Fewer (sequence, head) lanes than threads and rows enough to share (batch 1 serving).
    static bool split_rows(const B& be, const AttentionShape& s) {
        if constexpr (requires { be.threads(); }) {
            return s.batch * s.heads < be.threads().size() && s.q_len >= 2 * kRowBlock;
        } else {
            return false;
        }
    }

    /// forward() without dropout, as tasks of (sequence, head, block of kRowBlock query
    /// rows); the pool hands them out in order, so the long causal rows at the end are
    /// shared too. Each task writes only its own rows of P and ctx.
    static void forward_row_blocks(const B& be, const AttentionShape& s, MatrixView<const T> q,
                                   MatrixView<const T> k, MatrixView<const T> v, VectorView<const index_t> key_end,
                                   MatrixView<const std::uint8_t> keep, T scale, VectorView<T> state,
                                   MatrixView<T> ctx) {
        if constexpr (requires { be.threads(); be.serial(); }) {
            const B inner = be.serial();
            const index_t blocks = (s.q_len + kRowBlock - 1) / kRowBlock, lanes = s.batch * s.heads;
            parallel_for(be.threads(), 0, lanes * blocks, 1, [&](index_t t0, index_t t1) {
                for (index_t t = t0; t < t1; ++t) {
                    const index_t lane = t / blocks, b = lane / s.heads, h = lane % s.heads;
                    const index_t r0 = (t % blocks) * kRowBlock, r1 = std::min(s.q_len, r0 + kRowBlock);
                    // Only the keys some row of the block sees (key_end grows with the row).
                    index_t seen = 0;
                    for (index_t r = r0; r < r1; ++r) seen = std::max(seen, key_end(r));
                    const auto keys_kept = keep.data() ? VectorView<const std::uint8_t>(keep.row(b), Shape<1>{{seen}})
                                                       : VectorView<const std::uint8_t>{};
                    const VectorView<const index_t> ends(key_end.data() + r0, Shape<1>{{r1 - r0}});
                    auto c = head(ctx, b, s.q_len, h, s.head_dim).slice_rows(r0, r1);
                    if (state.data()) {  // row r of P written on [0, key_end[r]), as forward() writes it
                        auto p = probs(state, s, b, h, 0).slice_rows(r0, r1);
                        P::template prefix_attention<T>(
                            inner, head(q, b, s.q_len, h, s.head_dim).slice_rows(r0, r1),
                            head(k, b, s.kv_len, h, s.head_dim).slice_rows(0, seen),
                            head(v, b, s.kv_len, h, s.head_dim).slice_rows(0, seen), ends, ends, keys_kept, scale,
                            MatrixView<T>(p.data(), Shape<2>{{r1 - r0, seen}}, {p.ld(), 1}), c);
                    } else {
                        P::template prefix_attention<T>(
                            inner, head(q, b, s.q_len, h, s.head_dim).slice_rows(r0, r1),
                            head(k, b, s.kv_len, h, s.head_dim).slice_rows(0, seen),
                            head(v, b, s.kv_len, h, s.head_dim).slice_rows(0, seen), ends, ends, keys_kept, scale,
                            MatrixView<T>{}, c);
                    }
                }
            });
        }
    }

    /// Head h of sequence b: rows [b * len, (b + 1) * len), columns [h * dh, (h + 1) * dh).
    template <class U>
    static MatrixView<U> head(MatrixView<U> m, index_t b, index_t len, index_t h, index_t dh) {
        return MatrixView<U>(m.data() + b * len * m.ld() + h * dh, Shape<2>{{len, dh}}, {m.ld(), 1});
    }
    /// P (which = 0) or W (which = 1) of (b, h) in the state, [q_len, kv_len].
    template <class U>
    static MatrixView<U> probs(VectorView<U> state, const AttentionShape& s, index_t b, index_t h, index_t which) {
        const index_t plane = s.q_len * s.kv_len;
        return MatrixView<U>(state.data() + (which * s.batch * s.heads + b * s.heads + h) * plane,
                             Shape<2>{{s.q_len, s.kv_len}}, {s.kv_len, 1});
    }
    template <class Fn>
    static void for_each_sequence(const B& be, index_t batch, Fn&& fn) {
        if constexpr (requires { be.threads(); be.serial(); }) {
            const B inner = be.serial();
            parallel_for(be.threads(), 0, batch, 1, [&](index_t b0, index_t b1) {
                for (index_t b = b0; b < b1; ++b) fn(inner, b);
            });
        } else {
            for (index_t b = 0; b < batch; ++b) fn(be, b);
        }
    }
};

/// The batched-attention primitives of a host backend B (attention_state_size,
/// attention_forward, attention_backward) as HostAttention<B, T> runs them;
/// Primitives<Reference> and Primitives<Cpu<Isa>> inherit them.
template <class B>
struct HostAttentionPrimitives {
    template <class T>
    static index_t attention_state_size(const B&, AttentionShape s, bool dropout) {
        return HostAttention<B, T>::state_size(s, dropout);
    }
    template <class T>
    static void attention_forward(const B& be, AttentionShape s, MatrixView<const T> q, MatrixView<const T> k,
                                  MatrixView<const T> v, VectorView<const index_t> key_end,
                                  MatrixView<const std::uint8_t> keep, T scale, const AttentionDropout<T>& drop,
                                  VectorView<T> state, MatrixView<T> ctx) {
        HostAttention<B, T>::forward(be, s, q, k, v, key_end, keep, scale, drop, state, ctx);
    }
    template <class T>
    static void attention_backward(const B& be, AttentionShape s, MatrixView<const T> q, MatrixView<const T> k,
                                   MatrixView<const T> v, VectorView<const index_t> key_end,
                                   MatrixView<const std::uint8_t> /*keep: the forward's state holds it*/, T scale,
                                   const AttentionDropout<T>& drop, VectorView<const T> state,
                                   MatrixView<const T> /*ctx*/, MatrixView<const T> dctx, MatrixView<T> dq,
                                   MatrixView<T> dk, MatrixView<T> dv) {
        HostAttention<B, T>::backward(be, s, q, k, v, key_end, drop, state, dctx, scale, dq, dk, dv);
    }
};

}  // namespace detail
RECBLOCKS_NAMESPACE_END
