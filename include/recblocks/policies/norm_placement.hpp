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
// F includes its own dropouts. A policy is a type with
//   static constexpr bool ffn_residual;   // whether F adds its input itself
//   static void forward(Parts&, be, pool, x, y, key_keep, step, train);
//   static void backward(Parts&, be, pool, dy, dx);
//   static void forward_last(Parts&, be, pool, x, y_last, key_keep);  // optional: serving
//                                                                     // the last position only
// working on blocks::TransformerBlockParts (the sublayers and the scratch);
// a user can write their own (e.g. sandwich norm) the same way.
#include <algorithm>

#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_pool.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace policies {

namespace norm_detail {
// Row-wise, so strided views (e.g. the last position of each sequence) work.
template <class T>
void add_into(MatrixView<T> acc, MatrixView<const T> v) {
    for (index_t r = 0; r < acc.rows(); ++r) {
        T* a = acc.row(r);
        const T* b = v.row(r);
        for (index_t c = 0; c < acc.cols(); ++c) a[c] += b[c];
    }
}
template <class T>
void sum_into(MatrixView<T> out, MatrixView<const T> a, MatrixView<const T> b) {
    for (index_t r = 0; r < out.rows(); ++r)
        for (index_t c = 0; c < out.cols(); ++c) out(r, c) = a(r, c) + b(r, c);
}
template <class T>
void copy_into(MatrixView<T> out, MatrixView<const T> v) {
    std::copy(v.data(), v.data() + v.numel(), out.data());
}
}  // namespace norm_detail

struct QueryNorm {
    static constexpr bool ffn_residual = true;

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts& p, const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                        MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        (void)step;
        (void)train;
        const auto x2 = p.flat(x);
        p.norm_attention.forward(be, x2, p.a());                            // q
        p.attention.forward(be, p.ccube(p.a()), x, p.cube(p.b()), key_keep);  // A(q, x, x)
        norm_detail::sum_into(p.c(), MatrixView<const T>(p.a()), MatrixView<const T>(p.b()));  // h
        p.norm_ffn.forward(be, MatrixView<const T>(p.c()), p.e());           // e
        p.ffn.forward(be, pool, MatrixView<const T>(p.e()), p.flat(y), step, train);
    }

    /// Inference, last position only (see TransformerBlock::forward_last).
    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward_last(Parts& p, const Be& be, ThreadPool&, TensorView<const T, 3> x, MatrixView<T> y,
                             MatrixView<const std::uint8_t> key_keep) {
        auto q = p.head_rows(p.a()), att = p.head_rows(p.b()), h = p.head_rows(p.c()), e = p.head_rows(p.e());
        Parts::norm_inference(be, p.norm_attention, p.last_rows(x), q);
        p.attention.forward_last(be, MatrixView<const T>(q), x, att, key_keep);
        norm_detail::sum_into(h, MatrixView<const T>(q), MatrixView<const T>(att));
        Parts::norm_inference(be, p.norm_ffn, MatrixView<const T>(h), e);
        p.ffn.forward_inference(be, MatrixView<const T>(e), y);
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void backward(Parts& p, const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        p.ffn.backward(be, pool, p.flat(dy), p.g1());                               // de
        p.norm_ffn.backward(be, MatrixView<const T>(p.g1()), p.g2());               // dh
        p.attention.backward(be, p.ccube(p.g2()), p.cube(p.g3()), dx);             // dq (attn), dx (keys/values)
        norm_detail::add_into(p.g3(), MatrixView<const T>(p.g2()));                 // dq += dh (residual)
        p.norm_attention.backward(be, MatrixView<const T>(p.g3()), p.g1());
        norm_detail::add_into(p.flat(dx), MatrixView<const T>(p.g1()));
    }
};

struct PreNorm {
    static constexpr bool ffn_residual = false;

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts& p, const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                        MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        const auto x2 = p.flat(x);
        p.norm_attention.forward(be, x2, p.a());
        p.attention.forward(be, p.ccube(p.a()), p.cube(p.b()), key_keep);
        p.dropout_residual(be, step, train, p.b());
        norm_detail::sum_into(p.c(), x2, MatrixView<const T>(p.b()));        // h
        p.norm_ffn.forward(be, MatrixView<const T>(p.c()), p.e());
        p.ffn.forward(be, pool, MatrixView<const T>(p.e()), p.flat(y), step, train);
        norm_detail::add_into(p.flat(y), MatrixView<const T>(p.c()));
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward_last(Parts& p, const Be& be, ThreadPool&, TensorView<const T, 3> x, MatrixView<T> y,
                             MatrixView<const std::uint8_t> key_keep) {
        Parts::norm_inference(be, p.norm_attention, p.flat(x), p.a());       // every position: keys and values
        auto att = p.head_rows(p.b()), h = p.head_rows(p.c()), e = p.head_rows(p.e());
        const auto normed = p.ccube(p.a());
        p.attention.forward_last(be, p.last_rows(normed), normed, att, key_keep);
        norm_detail::sum_into(h, p.last_rows(x), MatrixView<const T>(att));
        Parts::norm_inference(be, p.norm_ffn, MatrixView<const T>(h), e);
        p.ffn.forward_inference(be, MatrixView<const T>(e), y);
        norm_detail::add_into(y, MatrixView<const T>(h));
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void backward(Parts& p, const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        auto dx2 = p.flat(dx);
        norm_detail::copy_into(dx2, MatrixView<const T>(p.flat(dy)));     // dh, residual part
        p.ffn.backward(be, pool, p.flat(dy), p.g1());                     // de
        p.norm_ffn.backward(be, MatrixView<const T>(p.g1()), p.g2());
        norm_detail::add_into(dx2, MatrixView<const T>(p.g2()));          // dh; dx gets it through the residual
        norm_detail::copy_into(p.g1(), MatrixView<const T>(dx2));
        p.dropout_residual_backward(be, p.g1());                        // d(attention output)
        p.attention.backward(be, p.ccube(p.g1()), p.cube(p.g2()));
        p.norm_attention.backward(be, MatrixView<const T>(p.g2()), p.g3());
        norm_detail::add_into(dx2, MatrixView<const T>(p.g3()));
    }
};

struct PostNorm {
    static constexpr bool ffn_residual = true;

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward(Parts& p, const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                        MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        const auto x2 = p.flat(x);
        p.attention.forward(be, x, p.cube(p.b()), key_keep);
        p.dropout_residual(be, step, train, p.b());
        norm_detail::sum_into(p.c(), x2, MatrixView<const T>(p.b()));
        p.norm_attention.forward(be, MatrixView<const T>(p.c()), p.a());   // h
        p.ffn.forward(be, pool, MatrixView<const T>(p.a()), p.e(), step, train);  // h + F(h)
        p.norm_ffn.forward(be, MatrixView<const T>(p.e()), p.flat(y));
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void forward_last(Parts& p, const Be& be, ThreadPool&, TensorView<const T, 3> x, MatrixView<T> y,
                             MatrixView<const std::uint8_t> key_keep) {
        auto att = p.head_rows(p.b()), h = p.head_rows(p.c()), a = p.head_rows(p.a()), e = p.head_rows(p.e());
        p.attention.forward_last(be, p.last_rows(x), x, att, key_keep);
        norm_detail::sum_into(h, p.last_rows(x), MatrixView<const T>(att));
        Parts::norm_inference(be, p.norm_attention, MatrixView<const T>(h), a);
        p.ffn.forward_inference(be, MatrixView<const T>(a), e);
        Parts::norm_inference(be, p.norm_ffn, MatrixView<const T>(e), y);
    }

    template <class Parts, class Be, class T = typename Parts::value_type>
    static void backward(Parts& p, const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        auto dx2 = p.flat(dx);
        p.norm_ffn.backward(be, MatrixView<const T>(p.flat(dy)), p.g1());
        p.ffn.backward(be, pool, p.g1(), p.g2());                          // dh
        p.norm_attention.backward(be, MatrixView<const T>(p.g2()), dx2);   // d(x + attention), residual part of dx
        norm_detail::copy_into(p.g1(), MatrixView<const T>(dx2));
        p.dropout_residual_backward(be, p.g1());
        p.attention.backward(be, p.ccube(p.g1()), p.cube(p.g2()));
        norm_detail::add_into(dx2, MatrixView<const T>(p.g2()));
    }
};

}  // namespace policies
RECBLOCKS_NAMESPACE_END
