#pragma once
// Norm placement policies: where a transformer block puts its two layer norms
// around the attention (A) and feed-forward (F) sublayers. x is the block's
// input, y its output; LN_a / LN_f are the block's two norms; Drop is dropout
// on the sublayer output (the attention weights have their own dropout).
//
//   QueryNorm  q = LN_a(x);  h = q + A(q, x, x);  e = LN_f(h);  y = e + F(e)
//              The SASRec authors' code (and pmixer's port until 2025): only
//              the queries are normalised, keys/values are the raw x, and the
//              residual is taken from the normalised queries. No Drop on A.
//   PreNorm    h = x + Drop(A(LN_a(x)));  y = h + F(LN_f(h))   (SASRec paper text)
//   PostNorm   h = LN_a(x + Drop(A(x)));  y = LN_f(h + F(h))   (BERT, BERT4Rec)
//
// F includes its own dropouts. A policy meets the NormPlacement concept below:
//   static constexpr bool ffn_residual;   // whether F adds its input itself
//   enum Buffer : int { ..., buffer_count };   // its scratch buffers, named by role
//   static void forward(Parts&, be, pool, x, y, key_keep, step, train);
//   static void backward(Parts&, be, pool, dy, dx);
//   static void forward_last(Parts&, be, pool, x, y_last, key_keep);  // optional: serving
//                                                                     // the last position only
// working on blocks::TransformerBlockParts (the sublayers and `buffer_count`
// [B*L, D] scratch matrices, p.buffer(name)). Each policy names its own
// buffers, so a name means one thing: `h` is the block's hidden state between
// the sublayers wherever it appears. A user can write their own placement
// (e.g. sandwich norm) the same way.
#include <concepts>
#include <cstdint>

#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/core/thread_pool.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace policies {


/// What TransformerBlock needs of a norm placement policy P, for block parts
/// Parts on backend Be (checked where the backend is known: at forward/backward).
template <class P, class Parts, class Be>
concept NormPlacement =
    requires {
        { P::ffn_residual } -> std::convertible_to<bool>;
        { static_cast<int>(P::buffer_count) } -> std::convertible_to<int>;
    } &&
    requires(Parts& parts, const Be& be, ThreadPool& pool, TensorView<const typename Parts::value_type, 3> x,
             TensorView<typename Parts::value_type, 3> y, MatrixView<const std::uint8_t> key_keep,
             std::uint64_t step, bool train) {
        P::forward(parts, be, pool, x, y, key_keep, step, train);
        P::backward(parts, be, pool, y, y);
    };

/// The three placements as a run-time value, for what chooses one from data (a checkpoint
/// layout file; models/any_sasrec.hpp turns it into the model type).
enum class NormKind : std::uint8_t { query, pre, post };

struct QueryNorm {
    static constexpr bool ffn_residual = true;
    /// q = LN_a(x); attended = A(q, x, x); h = q + attended; e = LN_f(h); gradients d<name>.
    /// dx_via_norm reuses de's buffer: de is dead once norm_ffn's backward has read it.
    enum Buffer : int { q, attended, h, e, de, dh, dq, buffer_count, dx_via_norm = de };

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts& p, const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                        MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        p.norm_attention.forward(be, p.flat(x), p.buffer(q));
        p.attention.forward(be, p.ccube(p.buffer(q)), x, p.cube(p.buffer(attended)), key_keep);
        ops::add(be, p.cbuffer(q), p.cbuffer(attended), p.buffer(h));
        p.norm_ffn.forward(be, p.cbuffer(h), p.buffer(e));
        p.ffn.forward(be, pool, p.cbuffer(e), p.flat(y), step, train);  // y = e + F(e)
    }

    /// Inference, last position only (see TransformerBlock::forward_last): the
    /// first B rows of each buffer hold the last positions.
    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward_last(Parts& p, const Be& be, ThreadPool&, TensorView<const T, 3> x, MatrixView<T> y,
                             MatrixView<const std::uint8_t> key_keep) {
        auto q_last = p.head_rows(q), att = p.head_rows(attended), h_last = p.head_rows(h), e_last = p.head_rows(e);
        Parts::norm_inference(be, p.norm_attention, p.last_rows(x), q_last);
        p.attention.forward_last(be, MatrixView<const T>(q_last), x, att, key_keep);
        ops::add(be, MatrixView<const T>(q_last), MatrixView<const T>(att), h_last);
        Parts::norm_inference(be, p.norm_ffn, MatrixView<const T>(h_last), e_last);
        p.ffn.forward_inference(be, MatrixView<const T>(e_last), y);
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void backward(Parts& p, const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        p.ffn.backward(be, pool, p.flat(dy), p.buffer(de));
        p.norm_ffn.backward(be, p.cbuffer(de), p.buffer(dh));
        p.attention.backward(be, p.ccube(p.buffer(dh)), p.cube(p.buffer(dq)), dx);  // dq (queries), dx (keys/values)
        ops::add(be, p.buffer(dq), p.cbuffer(dh), p.buffer(dq));                         // h = q + attended
        p.norm_attention.backward(be, p.cbuffer(dq), p.buffer(dx_via_norm));
        ops::add(be, p.flat(dx), p.cbuffer(dx_via_norm), p.flat(dx));
    }
};

struct PreNorm {
    static constexpr bool ffn_residual = false;
    /// normed = LN_a(x); attended = Drop(A(normed)); h = x + attended; e = LN_f(h); y = h + F(e).
    /// Backward reuses two buffers once their first gradient is dead: dattended
    /// (de's) and dnormed (dh_via_norm's).
    enum Buffer : int {
        normed, attended, h, e, de, dh_via_norm, dx_via_norm, buffer_count,
        dattended = de, dnormed = dh_via_norm
    };

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts& p, const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                        MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        const auto x2 = p.flat(x);
        p.norm_attention.forward(be, x2, p.buffer(normed));
        p.attention.forward(be, p.ccube(p.buffer(normed)), p.cube(p.buffer(attended)), key_keep);
        p.dropout_residual(be, step, train, p.buffer(attended));
        ops::add(be, x2, p.cbuffer(attended), p.buffer(h));
        p.norm_ffn.forward(be, p.cbuffer(h), p.buffer(e));
        p.ffn.forward(be, pool, p.cbuffer(e), p.flat(y), step, train);
        ops::add(be, p.flat(y), p.cbuffer(h), p.flat(y));
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward_last(Parts& p, const Be& be, ThreadPool&, TensorView<const T, 3> x, MatrixView<T> y,
                             MatrixView<const std::uint8_t> key_keep) {
        Parts::norm_inference(be, p.norm_attention, p.flat(x), p.buffer(normed));  // every position: keys, values
        auto att = p.head_rows(attended), h_last = p.head_rows(h), e_last = p.head_rows(e);
        const auto normed_x = p.ccube(p.buffer(normed));
        p.attention.forward_last(be, p.last_rows(normed_x), normed_x, att, key_keep);
        ops::add(be, p.last_rows(x), MatrixView<const T>(att), h_last);
        Parts::norm_inference(be, p.norm_ffn, MatrixView<const T>(h_last), e_last);
        p.ffn.forward_inference(be, MatrixView<const T>(e_last), y);
        ops::add(be, y, MatrixView<const T>(h_last), y);
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void backward(Parts& p, const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        auto dx2 = p.flat(dx);
        ops::copy(be, MatrixView<const T>(p.flat(dy)), dx2);  // dh: the residual path of y = h + F(e)
        p.ffn.backward(be, pool, p.flat(dy), p.buffer(de));
        p.norm_ffn.backward(be, p.cbuffer(de), p.buffer(dh_via_norm));
        ops::add(be, dx2, p.cbuffer(dh_via_norm), dx2);             // dx2 = dh, which is also dx's residual part
        ops::copy(be, MatrixView<const T>(dx2), p.buffer(dattended));
        p.dropout_residual_backward(be, p.buffer(dattended));
        p.attention.backward(be, p.ccube(p.buffer(dattended)), p.cube(p.buffer(dnormed)));
        p.norm_attention.backward(be, p.cbuffer(dnormed), p.buffer(dx_via_norm));
        ops::add(be, dx2, p.cbuffer(dx_via_norm), dx2);
    }
};

struct PostNorm {
    static constexpr bool ffn_residual = true;
    /// attended = Drop(A(x)); attention_sum = x + attended; h = LN_a(attention_sum);
    /// ffn_sum = h + F(h); y = LN_f(ffn_sum). Backward reuses dffn_sum's buffer
    /// for dattended and dh's for dx_via_attention once they are dead.
    enum Buffer : int {
        attended, attention_sum, h, ffn_sum, dffn_sum, dh, buffer_count,
        dattended = dffn_sum, dx_via_attention = dh
    };

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts& p, const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                        MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        const auto x2 = p.flat(x);
        p.attention.forward(be, x, p.cube(p.buffer(attended)), key_keep);
        p.dropout_residual(be, step, train, p.buffer(attended));
        ops::add(be, x2, p.cbuffer(attended), p.buffer(attention_sum));
        p.norm_attention.forward(be, p.cbuffer(attention_sum), p.buffer(h));
        p.ffn.forward(be, pool, p.cbuffer(h), p.buffer(ffn_sum), step, train);  // h + F(h)
        p.norm_ffn.forward(be, p.cbuffer(ffn_sum), p.flat(y));
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward_last(Parts& p, const Be& be, ThreadPool&, TensorView<const T, 3> x, MatrixView<T> y,
                             MatrixView<const std::uint8_t> key_keep) {
        auto att = p.head_rows(attended), sum = p.head_rows(attention_sum), h_last = p.head_rows(h),
             ffn_last = p.head_rows(ffn_sum);
        p.attention.forward_last(be, p.last_rows(x), x, att, key_keep);
        ops::add(be, p.last_rows(x), MatrixView<const T>(att), sum);
        Parts::norm_inference(be, p.norm_attention, MatrixView<const T>(sum), h_last);
        p.ffn.forward_inference(be, MatrixView<const T>(h_last), ffn_last);
        Parts::norm_inference(be, p.norm_ffn, MatrixView<const T>(ffn_last), y);
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void backward(Parts& p, const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        auto dx2 = p.flat(dx);
        p.norm_ffn.backward(be, MatrixView<const T>(p.flat(dy)), p.buffer(dffn_sum));
        p.ffn.backward(be, pool, p.buffer(dffn_sum), p.buffer(dh));
        p.norm_attention.backward(be, p.cbuffer(dh), dx2);  // d attention_sum: also dx's residual part
        ops::copy(be, MatrixView<const T>(dx2), p.buffer(dattended));
        p.dropout_residual_backward(be, p.buffer(dattended));
        p.attention.backward(be, p.ccube(p.buffer(dattended)), p.cube(p.buffer(dx_via_attention)));
        ops::add(be, dx2, p.cbuffer(dx_via_attention), dx2);
    }
};

}  // namespace policies
RECBLOCKS_NAMESPACE_END
