#pragma once
// Multi-head self-attention with a fused QKV projection, forward and backward.
//
// Shapes (B batch, L sequence, D model width, H heads, dh = D / H):
//   x, y            [B, L, D]
//   in_proj_weight  [3D, D]   rows: W_q, W_k, W_v (nn.MultiheadAttention's packing)
//   in_proj_bias    [3D]
//   out_proj_weight [D, D],  out_proj_bias [D]
//   key_keep        [B, L]   optional bytes: 0 marks a padded key (left padding)
//
//   qkv = x W_inᵀ + b_in;  per (b, h): S = Q Kᵀ / sqrt(dh), masked by the
//   Mask policy and key_keep; P = softmax(S) (a query that sees no key gets
//   P = 0, so its output is the bias); ctx = Drop(P) V;  y = ctx W_outᵀ + b_out.
//
// Queries and keys/values may come from different tensors of the same shape
// (forward(q_in, kv_in, ...)): SASRec's original block attends from the
// layer-normalised queries to the unnormalised sequence. Dropout on the
// attention weights (Config::dropout, as nn.MultiheadAttention's) is active
// between set_step(step, true) and set_step(.., false); its masks are a pure
// function of (seed, step, sequence, head).
//
// backward() takes dy and ADDS the parameter gradients into grads() (as
// autograd does), and writes dx (or dq_in and dkv_in). It uses the
// activations of the last forward (which keeps views of the inputs: they must
// stay alive and unchanged until backward). The block owns its scratch, sized
// at the first call of a shape: later calls of the same shape do not allocate.
#include <cmath>
#include <cstdint>

#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/prefix_attention.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/policies/attention_mask.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, policies::AttentionMask Mask = policies::CausalMask>
class MultiHeadSelfAttention {
public:
    struct Config {
        index_t d_model = 0;  ///< D
        index_t heads = 1;    ///< H; must divide D
        double dropout = 0.0; ///< on the attention weights, while training
    };
    struct Params {
        Matrix<T> in_proj_weight;   ///< [3D, D]
        Vector<T> in_proj_bias;     ///< [3D]
        Matrix<T> out_proj_weight;  ///< [D, D]
        Vector<T> out_proj_bias;    ///< [D]
        explicit Params(index_t d = 0)
            : in_proj_weight(Shape<2>{{3 * d, d}}), in_proj_bias(Shape<1>{{3 * d}}),
              out_proj_weight(Shape<2>{{d, d}}), out_proj_bias(Shape<1>{{d}}) {}
    };

    /// Zero biases; in_proj Xavier-uniform, out_proj U(-1/sqrt(D), 1/sqrt(D))
    /// (nn.MultiheadAttention's defaults), drawn from `rng`.
    MultiHeadSelfAttention(Config cfg, Mask mask, const Rng& rng)
        : cfg_(cfg), mask_(mask), params_(cfg.d_model), grads_(cfg.d_model), dropout_(cfg.dropout, rng.substream(2)) {
        RECBLOCKS_CHECK_VALUE(cfg.d_model >= 1 && cfg.heads >= 1 && cfg.d_model % cfg.heads == 0,
                              "MultiHeadSelfAttention: d_model ", cfg.d_model, " must be a positive multiple of heads ",
                              cfg.heads);
        const index_t d = cfg.d_model;
        const double xavier = std::sqrt(6.0 / double(d + 3 * d));
        const Rng a = rng.substream(0), b = rng.substream(1);
        for (index_t i = 0; i < params_.in_proj_weight.numel(); ++i)
            params_.in_proj_weight.data()[i] = static_cast<T>(xavier * (2.0 * a.uniform_double(std::uint64_t(i)) - 1.0));
        const double bound = 1.0 / std::sqrt(double(d));
        for (index_t i = 0; i < params_.out_proj_weight.numel(); ++i)
            params_.out_proj_weight.data()[i] = static_cast<T>(bound * (2.0 * b.uniform_double(std::uint64_t(i)) - 1.0));
    }
    MultiHeadSelfAttention(Config cfg, const Rng& rng) requires std::default_initializable<Mask>
        : MultiHeadSelfAttention(cfg, Mask{}, rng) {}

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    /// Appends the four tensors under nn.MultiheadAttention's names.
    void append_params(std::string_view prefix, ParamList<T>& out) {
        append_param(out, prefix, "in_proj_weight", params_.in_proj_weight, grads_.in_proj_weight, ParamKind::weight);
        append_param(out, prefix, "in_proj_bias", params_.in_proj_bias, grads_.in_proj_bias, ParamKind::bias);
        append_param(out, prefix, "out_proj.weight", params_.out_proj_weight, grads_.out_proj_weight, ParamKind::weight);
        append_param(out, prefix, "out_proj.bias", params_.out_proj_bias, grads_.out_proj_bias, ParamKind::bias);
    }
    /// Sets every gradient to zero.
    void zero_grads() {
        for (auto* t : {&grads_.in_proj_bias, &grads_.out_proj_bias}) std::fill(t->begin(), t->end(), T(0));
        for (auto* t : {&grads_.in_proj_weight, &grads_.out_proj_weight}) std::fill(t->begin(), t->end(), T(0));
    }
    /// Attention probabilities of the last forward (before dropout), [B, H, L, L].
    [[nodiscard]] TensorView<const T, 4> attention() const { return probs_.view(); }

    /// Selects the dropout masks of the next forward/backward (`step`) and
    /// whether dropout is active (`train`); inactive by default. With
    /// `for_backward` false (serving) the next forwards keep nothing for
    /// backward (no attention weights are stored; backward then throws).
    void set_step(std::uint64_t step, bool train, bool for_backward = true) {
        step_ = step;
        train_ = train && cfg_.dropout > 0;
        for_backward_ = for_backward || train_;
    }

    /// Self-attention: y [B, L, D] = attention(x [B, L, D]); key_keep [B, L]
    /// optional (0 = padded key).
    template <HostBackend Be>
    void forward(const Be& be, TensorView<const T, 3> x, TensorView<T, 3> y,
                 MatrixView<const std::uint8_t> key_keep = {}) {
        forward(be, x, x, y, key_keep);
    }

    /// Attention from queries q_in to keys/values kv_in (both [B, L, D]); the
    /// same tensor for both is self-attention (one fused projection).
    template <HostBackend Be>
    void forward(const Be& be, TensorView<const T, 3> q_in, TensorView<const T, 3> kv_in, TensorView<T, 3> y,
                 MatrixView<const std::uint8_t> key_keep = {}) {
        const index_t bsz = q_in.extent(0), len = q_in.extent(1), d = cfg_.d_model, h = cfg_.heads, dh = d / h;
        RECBLOCKS_CHECK_SHAPE(q_in.extent(2) == d, "MultiHeadSelfAttention::forward: x is ", q_in.shape(),
                              " but d_model is ", d);
        RECBLOCKS_CHECK_SHAPE(kv_in.shape() == q_in.shape(), "MultiHeadSelfAttention::forward: keys/values are ",
                              kv_in.shape(), " but queries are ", q_in.shape());
        RECBLOCKS_CHECK_SHAPE(y.shape() == q_in.shape(), "MultiHeadSelfAttention::forward: y is ", y.shape(),
                              " but x is ", q_in.shape());
        RECBLOCKS_CHECK_SHAPE(q_in.is_contiguous() && kv_in.is_contiguous() && y.is_contiguous(),
                              "MultiHeadSelfAttention::forward: x and y must be contiguous");
        if (key_keep.data())
            RECBLOCKS_CHECK_SHAPE(key_keep.rows() == bsz && key_keep.cols() == len,
                                  "MultiHeadSelfAttention::forward: key_keep is ", key_keep.shape(), " but expected [",
                                  bsz, ", ", len, "]");
        resize(bsz, len);
        const index_t rows = bsz * len;
        q_in_ = q_in;  // kept (views) for backward
        kv_in_ = kv_in;
        auto qkv = qkv_.view();
        detail::broadcast_rows(params_.in_proj_bias.cview(), qkv);
        if (is_self()) {
            ops::gemm(be, Trans::no, Trans::yes, T(1), matrix_view(q_in.data(), rows, d), params_.in_proj_weight.view(),
                      T(1), qkv);
        } else {
            ops::gemm(be, Trans::no, Trans::yes, T(1), matrix_view(q_in.data(), rows, d), w_q(), T(1),
                      matrix_view(qkv.data(), rows, d, 3 * d));
            ops::gemm(be, Trans::no, Trans::yes, T(1), matrix_view(kv_in.data(), rows, d), w_kv(), T(1),
                      matrix_view(qkv.data() + d, rows, 2 * d, 3 * d));
        }
        const T scale = static_cast<T>(1.0 / std::sqrt(double(dh)));
        if constexpr (fused_prefix<Be>()) {
            // P for backward (zeros up to each chunk's key end, as below); the
            // context straight from the kernel unless dropout must come between.
            for_each_sequence(be, bsz, [&](index_t b) {
                const auto keep = key_keep.data() ? vector_view(key_keep.row(b), len) : VectorView<const std::uint8_t>{};
                for (index_t hd = 0; hd < h; ++hd) {
                    auto ctx = matrix_view(ctx_.data() + b * len * d + hd * dh, len, dh, d);
                    ops::prefix_attention(be, head(qkv, b, 0, hd), head(qkv, b, 1, hd), head(qkv, b, 2, hd),
                                          key_end_.cview(), write_end_.cview(), keep, scale,
                                          for_backward_ ? prob_matrix(b, hd) : MatrixView<T>{},
                                          train_ ? MatrixView<T>{} : ctx);
                    if (train_) weighted_values(be, b, hd, ctx);
                }
            });
        } else {
            for_each_sequence(be, bsz, [&](index_t b) { unfused_attention(be, b, len, key_keep, scale); });
        }
        auto y2 = matrix_view(y.data(), rows, d);
        detail::broadcast_rows(params_.out_proj_bias.cview(), y2);
        ops::gemm(be, Trans::no, Trans::yes, T(1), ctx_.view(), params_.out_proj_weight.view(), T(1), y2);
        if (!for_backward_) {  // nothing kept: backward would read stale weights
            q_in_ = {};
            kv_in_ = {};
        }
    }

    /// From dy [B, L, D] after a self-attention forward: writes dx and adds
    /// the parameter gradients into grads().
    template <HostBackend Be>
    void backward(const Be& be, TensorView<const T, 3> dy, TensorView<T, 3> dx) {
        RECBLOCKS_CHECK_SHAPE(q_in_.data() == nullptr || is_self(),
                              "MultiHeadSelfAttention::backward: the last forward had separate queries and "
                              "keys/values; use backward(be, dy, dq_in, dkv_in)");
        backward(be, dy, dx, dx);
    }

    /// From dy [B, L, D]: writes the gradients of the queries' input (dq_in)
    /// and of the keys/values' input (dkv_in) of the last forward, and adds the
    /// parameter gradients into grads(). After a self-attention forward pass
    /// the same tensor for both (it receives the sum).
    template <HostBackend Be>
    void backward(const Be& be, TensorView<const T, 3> dy, TensorView<T, 3> dq_in, TensorView<T, 3> dkv_in) {
        const index_t bsz = q_in_.extent(0), len = q_in_.extent(1), d = cfg_.d_model, h = cfg_.heads, dh = d / h;
        RECBLOCKS_CHECK_SHAPE(q_in_.data() != nullptr, "MultiHeadSelfAttention::backward: call forward first");
        RECBLOCKS_CHECK_SHAPE(dy.shape() == q_in_.shape() && dq_in.shape() == q_in_.shape() &&
                                  dkv_in.shape() == q_in_.shape(),
                              "MultiHeadSelfAttention::backward: dy is ", dy.shape(), " and dx is ", dq_in.shape(),
                              " but the last forward's x was ", q_in_.shape());
        RECBLOCKS_CHECK_SHAPE(dy.is_contiguous() && dq_in.is_contiguous() && dkv_in.is_contiguous(),
                              "MultiHeadSelfAttention::backward: dy and dx must be contiguous");
        RECBLOCKS_CHECK_SHAPE(is_self() == (dq_in.data() == dkv_in.data()),
                              "MultiHeadSelfAttention::backward: dq_in and dkv_in must be the same tensor exactly "
                              "when the last forward was self-attention");
        const index_t rows = bsz * len;
        const auto dy2 = matrix_view(dy.data(), rows, d);
        // Output projection.
        ops::gemm(be, Trans::yes, Trans::no, T(1), dy2, ctx_.view(), T(1), grads_.out_proj_weight.view());
        detail::add_column_sums(be, dy2, grads_.out_proj_bias.view(), col_sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), dy2, params_.out_proj_weight.view(), T(0), dctx_.view());
        // Attention, per (b, h).
        const T scale = static_cast<T>(1.0 / std::sqrt(double(dh)));
        auto qkv = qkv_.view();
        auto dqkv = dqkv_.view();
        for_each_sequence(be, bsz, [&](index_t b) {
            for (index_t hd = 0; hd < h; ++hd) {
                const MatrixView<const T> p = prob_matrix(b, hd);
                const auto w = weights_used(be, b, hd);
                const auto dctx = matrix_view<const T>(dctx_.data() + b * len * d + hd * dh, len, dh, d);
                const auto q = head(qkv, b, 0, hd), k = head(qkv, b, 1, hd), v = head(qkv, b, 2, hd);
                auto dq = head(dqkv, b, 0, hd), dk = head(dqkv, b, 1, hd), dv = head(dqkv, b, 2, hd);
                if constexpr (fused_prefix_backward<Be>()) {
                    ops::prefix_attention_backward(be, q, k, v, dctx, p, train_ ? w : MatrixView<const T>{},
                                                   key_end_.cview(), static_cast<T>(1.0 / (1.0 - dropout_.p())), scale,
                                                   dq, dk, dv);
                    continue;
                }
                auto dp = matrix_view(dp_.data() + b * len * len, len, len);
                // Chunks of query rows over the keys they can see, as in forward: P is zero
                // beyond, so are dS there. dK and dV sum over chunks (zeroed first).
                for (index_t r = 0; r < len; ++r) {
                    std::fill(dk.row(r), dk.row(r) + dh, T(0));
                    std::fill(dv.row(r), dv.row(r) + dh, T(0));
                }
                for (index_t r0 = 0; r0 < len; r0 += kQueryChunk) {
                    const index_t r1 = std::min(len, r0 + kQueryChunk), m = r1 - r0;
                    const index_t kend = policies::visible_key_end(mask_, r1, len);
                    const auto p_c = matrix_view<const T>(p.data() + r0 * len, m, kend, len);
                    const auto w_c = matrix_view<const T>(w.data() + r0 * len, m, kend, len);
                    auto dp_c = matrix_view(dp.data() + r0 * len, m, kend, len);
                    const auto dctx_c = dctx.slice_rows(r0, r1);
                    ops::gemm(be, Trans::no, Trans::yes, T(1), dctx_c, v.slice_rows(0, kend), T(0), dp_c);  // dP' = dC Vᵀ
                    ops::gemm(be, Trans::yes, Trans::no, T(1), w_c, dctx_c, T(1), dv.slice_rows(0, kend));  // dV += P'ᵀ dC
                    if (train_)                                                                        // dP = Drop'(dP')
                        for (index_t r = r0; r < r1; ++r) dropped_backward(w.row(r), dp.row(r), kend);
                    ops::softmax_rows_backward(be, p_c, MatrixView<const T>(dp_c), dp_c);             // dS
                    ops::gemm(be, Trans::no, Trans::no, scale, MatrixView<const T>(dp_c), k.slice_rows(0, kend), T(0),
                              dq.slice_rows(r0, r1));                                                // dQ = dS K s
                    ops::gemm(be, Trans::yes, Trans::no, scale, MatrixView<const T>(dp_c), q.slice_rows(r0, r1), T(1),
                              dk.slice_rows(0, kend));                                               // dK += dSᵀ Q s
                }
            }
        });
        // Input projection.
        detail::add_column_sums(be, MatrixView<const T>(dqkv), grads_.in_proj_bias.view(), col_sums_);
        const auto q2 = matrix_view(q_in_.data(), rows, d), kv2 = matrix_view(kv_in_.data(), rows, d);
        if (is_self()) {
            ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(dqkv), q2, T(1), grads_.in_proj_weight.view());
            ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(dqkv), params_.in_proj_weight.view(), T(0),
                      matrix_view(dq_in.data(), rows, d));
            return;
        }
        const auto dq = matrix_view<const T>(dqkv.data(), rows, d, 3 * d);
        const auto dkv = matrix_view<const T>(dqkv.data() + d, rows, 2 * d, 3 * d);
        auto& gw = grads_.in_proj_weight;
        ops::gemm(be, Trans::yes, Trans::no, T(1), dq, q2, T(1), matrix_view(gw.data(), d, d));
        ops::gemm(be, Trans::yes, Trans::no, T(1), dkv, kv2, T(1), matrix_view(gw.data() + d * d, 2 * d, d));
        ops::gemm(be, Trans::no, Trans::no, T(1), dq, w_q(), T(0), matrix_view(dq_in.data(), rows, d));
        ops::gemm(be, Trans::no, Trans::no, T(1), dkv, w_kv(), T(0), matrix_view(dkv_in.data(), rows, d));
    }

    /// Inference for the LAST position only (what serving needs from the
    /// final block): q_last [B, D] is the queries' input at position L - 1,
    /// kv_in [B, L, D] the keys/values' input; writes y_last [B, D]. Keys and
    /// values are projected for every position, the rest for one row per
    /// sequence. No dropout; backward() is not available after this call.
    template <HostBackend Be>
    void forward_last(const Be& be, MatrixView<const T> q_last, TensorView<const T, 3> kv_in, MatrixView<T> y_last,
                      MatrixView<const std::uint8_t> key_keep = {}) {
        const index_t bsz = kv_in.extent(0), len = kv_in.extent(1), d = cfg_.d_model, h = cfg_.heads, dh = d / h;
        RECBLOCKS_CHECK_SHAPE(kv_in.extent(2) == d && kv_in.is_contiguous() && q_last.rows() == bsz &&
                                  q_last.cols() == d && y_last.rows() == bsz && y_last.cols() == d,
                              "MultiHeadSelfAttention::forward_last: q_last is ", q_last.shape(), ", keys/values ",
                              kv_in.shape(), ", y_last ", y_last.shape(), " but need [B, D], [B, L, D], [B, D] with D = ", d);
        if (key_keep.data())
            RECBLOCKS_CHECK_SHAPE(key_keep.rows() == bsz && key_keep.cols() == len,
                                  "MultiHeadSelfAttention::forward_last: key_keep is ", key_keep.shape(),
                                  " but expected [", bsz, ", ", len, "]");
        resize(bsz, len);
        q_in_ = {};  // no backward after this
        kv_in_ = {};
        if (last_q_.extent(0) != bsz) {
            last_q_.resize(Shape<2>{{bsz, d}});
            last_ctx_.resize(Shape<2>{{bsz, d}});
        }
        const index_t rows = bsz * len;
        auto kv = matrix_view(qkv_.data() + d, rows, 2 * d, 3 * d);
        detail::broadcast_rows(vector_view<const T>(params_.in_proj_bias.data() + d, 2 * d), kv);
        ops::gemm(be, Trans::no, Trans::yes, T(1), matrix_view(kv_in.data(), rows, d), w_kv(), T(1), kv);
        detail::broadcast_rows(vector_view<const T>(params_.in_proj_bias.data(), d), last_q_.view());
        ops::gemm(be, Trans::no, Trans::yes, T(1), q_last, w_q(), T(1), last_q_.view());
        const T scale = static_cast<T>(1.0 / std::sqrt(double(dh)));
        if constexpr (fused_prefix<Be>()) {
            const auto last_end = vector_view<const index_t>(key_end_.data() + len - 1, 1);
            for_each_sequence(be, bsz, [&](index_t b) {
                const auto keep = key_keep.data() ? vector_view(key_keep.row(b), len) : VectorView<const std::uint8_t>{};
                for (index_t hd = 0; hd < h; ++hd)
                    ops::prefix_attention(be, matrix_view<const T>(last_q_.data() + b * d + hd * dh, 1, dh),
                                          head(qkv_.cview(), b, 1, hd), head(qkv_.cview(), b, 2, hd), last_end, {},
                                          keep, scale, MatrixView<T>{},
                                          matrix_view(last_ctx_.data() + b * d + hd * dh, 1, dh));
            });
        } else {
            for_each_sequence(be, bsz, [&](index_t b) { unfused_last(be, b, len, key_keep, scale); });
        }
        detail::broadcast_rows(params_.out_proj_bias.cview(), y_last);
        ops::gemm(be, Trans::no, Trans::yes, T(1), last_ctx_.cview(), params_.out_proj_weight.view(), T(1), y_last);
    }

private:
    static constexpr index_t kQueryChunk = 32;  // query rows per block of scores (causal skipping)

    /// forward_last's attention of sequence b through GEMM + softmax_rows.
    template <HostBackend Be>
    void unfused_last(const Be& be, index_t b, index_t len, MatrixView<const std::uint8_t> key_keep, T scale) {
        const index_t d = cfg_.d_model, h = cfg_.heads, dh = d / h;
        {
            // One score row per head, in this sequence's slice of the probability buffer.
            auto p = matrix_view(probs_.data() + b * h * len * len, h, len);
            auto keep = matrix_view(mask_buf_.data() + b * len * len, 1, len);
            for (index_t k = 0; k < len; ++k)
                keep(0, k) = static_cast<std::uint8_t>(mask_.visible(len - 1, k) && (!key_keep.data() || key_keep(b, k)));
            for (index_t hd = 0; hd < h; ++hd) {
                const auto q = matrix_view<const T>(last_q_.data() + b * d + hd * dh, 1, dh);
                const auto keys = matrix_view<const T>(qkv_.data() + b * len * 3 * d + d + hd * dh, len, dh, 3 * d);
                const auto vals = matrix_view<const T>(qkv_.data() + b * len * 3 * d + 2 * d + hd * dh, len, dh, 3 * d);
                auto row = matrix_view(p.row(hd), 1, len);
                ops::gemm(be, Trans::no, Trans::yes, scale, q, keys, T(0), row);
                ops::softmax_rows(be, MatrixView<const T>(row), row, MatrixView<const std::uint8_t>(keep));
                ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(row), vals, T(0),
                          matrix_view(last_ctx_.data() + b * d + hd * dh, 1, dh));
            }
        }
    }

    /// Scores, masked softmax and P V of sequence b through GEMM + softmax_rows
    /// (masks that are not prefixes, backends without prefix_attention).
    template <HostBackend Be>
    void unfused_attention(const Be& be, index_t b, index_t len, MatrixView<const std::uint8_t> key_keep, T scale) {
        const index_t d = cfg_.d_model, h = cfg_.heads, dh = d / h;
        auto qkv = qkv_.view();
        const auto mask = build_mask(b, len, key_keep);
        for (index_t hd = 0; hd < h; ++hd) {
            auto p = prob_matrix(b, hd);
            const auto q = head(qkv, b, 0, hd), k = head(qkv, b, 1, hd);
            // Query rows in chunks; a chunk scores only the keys its mask can show
            // (causal: those before its end) and leaves the rest of P zero.
            for (index_t r0 = 0; r0 < len; r0 += kQueryChunk) {
                const index_t r1 = std::min(len, r0 + kQueryChunk);
                const index_t kend = policies::visible_key_end(mask_, r1, len);
                auto s = matrix_view(p.data() + r0 * len, r1 - r0, kend, len);
                ops::gemm(be, Trans::no, Trans::yes, scale, q.slice_rows(r0, r1), k.slice_rows(0, kend), T(0), s);
                ops::softmax_rows(be, MatrixView<const T>(s), s,
                                  matrix_view(mask.data() + r0 * len, r1 - r0, kend, len));
                if (kend < len)
                    for (index_t r = r0; r < r1; ++r) std::fill(p.row(r) + kend, p.row(r) + len, T(0));
            }
            weighted_values(be, b, hd, matrix_view(ctx_.data() + b * len * d + hd * dh, len, dh, d));
        }
    }

    /// ctx [L, dh] of head hd of sequence b = the weights that multiply V
    /// (P, or Drop(P) when training) times V, chunk by chunk.
    template <HostBackend Be>
    void weighted_values(const Be& be, index_t b, index_t hd, MatrixView<T> ctx) {
        const index_t len = probs_.extent(2);
        const auto w = weights_used(be, b, hd, true);
        for (index_t r0 = 0; r0 < len; r0 += kQueryChunk) {
            const index_t r1 = std::min(len, r0 + kQueryChunk);
            const index_t kend = policies::visible_key_end(mask_, r1, len);
            ops::gemm(be, Trans::no, Trans::no, T(1), matrix_view(w.data() + r0 * len, r1 - r0, kend, len),
                      head(qkv_.view(), b, 2, hd).slice_rows(0, kend), T(0), ctx.slice_rows(r0, r1));
        }
    }

    /// Whether forward runs the fused prefix kernel (see attention_mask.hpp).
    template <HostBackend Be>
    static constexpr bool fused_prefix() {
        return policies::PrefixMask<Mask> && ops::has_prefix_attention<Be, T>;
    }
    template <HostBackend Be>
    static constexpr bool fused_prefix_backward() {
        return fused_prefix<Be>() && ops::has_prefix_attention_backward<Be, T>;
    }

    [[nodiscard]] bool is_self() const { return q_in_.data() == kv_in_.data(); }
    [[nodiscard]] MatrixView<const T> w_q() const { return matrix_view<const T>(params_.in_proj_weight.data(), cfg_.d_model, cfg_.d_model); }
    [[nodiscard]] MatrixView<const T> w_kv() const {
        const index_t d = cfg_.d_model;
        return matrix_view<const T>(params_.in_proj_weight.data() + d * d, 2 * d, d);
    }
    [[nodiscard]] std::uint64_t lane(index_t b, index_t hd) const { return std::uint64_t(b * cfg_.heads + hd); }

    /// The attention weights that multiply V: P itself or, training with
    /// dropout, Drop(P) in its own buffer (P stays for the softmax backward).
    /// forward() makes them (make = true); backward() reads them.
    template <HostBackend Be>
    MatrixView<const T> weights_used(const Be& be, index_t b, index_t hd, bool make = false) {
        const MatrixView<const T> p = prob_matrix(b, hd);
        if (!train_) return p;
        const index_t len = probs_.extent(2);
        T* dst = probs_dropped_.data() + (b * cfg_.heads + hd) * len * len;
        if (make) {
            // Only where the mask lets P be non-zero (see forward's chunks); zeros elsewhere.
            for (index_t r0 = 0; r0 < len; r0 += kQueryChunk) {
                const index_t r1 = std::min(len, r0 + kQueryChunk);
                const index_t kend = policies::visible_key_end(mask_, r1, len);
                for (index_t r = r0; r < r1; ++r) {
                    dropout_.forward_range<T>(be, step_, lane(b, hd), r * len, r * len + kend, p.data(), dst);
                    std::fill(dst + r * len + kend, dst + (r + 1) * len, T(0));
                }
            }
        }
        return matrix_view<const T>(dst, len, len);
    }

    /// dP = Drop'(dP') without drawing the mask again: an element was kept
    /// exactly where Drop(P) != 0, or P itself was 0 — and there dP does not
    /// matter, since the softmax backward multiplies it by P. Same bits as
    /// Dropout::backward_range (same scale, same product), at a fraction of
    /// the cost (no Philox rounds).
    void dropped_backward(const T* w, T* dp, index_t n) const {
        const T scale = static_cast<T>(1.0 / (1.0 - dropout_.p()));
        for (index_t j = 0; j < n; ++j) dp[j] = w[j] != T(0) ? dp[j] * scale : T(0);
    }

    void resize(index_t bsz, index_t len) {
        const index_t rows = bsz * len, d = cfg_.d_model;
        if (qkv_.extent(0) != rows) {
            qkv_.resize(Shape<2>{{rows, 3 * d}});
            dqkv_.resize(Shape<2>{{rows, 3 * d}});
            ctx_.resize(Shape<2>{{rows, d}});
            dctx_.resize(Shape<2>{{rows, d}});
        }
        if (probs_.extent(0) != bsz || probs_.extent(2) != len) {
            probs_.resize(Shape<4>{{bsz, cfg_.heads, len, len}});
            if (cfg_.dropout > 0) probs_dropped_.resize(Shape<4>{{bsz, cfg_.heads, len, len}});
            mask_buf_.resize(Shape<3>{{bsz, len, len}});
            dp_.resize(Shape<3>{{bsz, len, len}});
        }
        if (key_end_.numel() != len) {
            // Row r sees keys [0, key_end_[r]) (prefix masks); P is written up to its chunk's key end.
            key_end_.resize(Shape<1>{{len}});
            write_end_.resize(Shape<1>{{len}});
            for (index_t r = 0; r < len; ++r) {
                key_end_(r) = policies::visible_key_end(mask_, r + 1, len);
                write_end_(r) = policies::visible_key_end(mask_, std::min(len, (r / kQueryChunk + 1) * kQueryChunk), len);
            }
        }
    }

    /// The [L, L] keep-mask of sequence b (its own slice: sequences run in parallel).
    MatrixView<const std::uint8_t> build_mask(index_t b, index_t len, MatrixView<const std::uint8_t> key_keep) {
        auto m = matrix_view(mask_buf_.data() + b * len * len, len, len);
        for (index_t q = 0; q < len; ++q)
            for (index_t k = 0; k < len; ++k)
                m(q, k) = static_cast<std::uint8_t>(mask_.visible(q, k) && (!key_keep.data() || key_keep(b, k)));
        return m;
    }

    /// Runs fn(b) for every sequence: over the backend's thread pool when it
    /// has one (the ops inside then run single-threaded), else in order. Each
    /// sequence writes only its own slices, so the result does not depend on
    /// the thread count.
    template <class Be, class Fn>
    static void for_each_sequence(const Be& be, index_t bsz, Fn&& fn) {
        if constexpr (requires { be.threads(); }) {
            parallel_for(be.threads(), 0, bsz, 1, [&](index_t b0, index_t b1) {
                for (index_t b = b0; b < b1; ++b) fn(b);
            });
        } else {
            for (index_t b = 0; b < bsz; ++b) fn(b);
        }
    }

    MatrixView<T> prob_matrix(index_t b, index_t hd) {
        const index_t len = probs_.extent(2);
        return matrix_view(probs_.data() + (b * cfg_.heads + hd) * len * len, len, len);
    }

    /// Head `hd` of part `part` (0 = Q, 1 = K, 2 = V) of sequence b: [L, dh] with ld 3D.
    template <class U>
    MatrixView<U> head(MatrixView<U> packed, index_t b, index_t part, index_t hd) const {
        const index_t d = cfg_.d_model, dh = d / cfg_.heads, len = probs_.extent(2);
        return matrix_view(packed.data() + b * len * 3 * d + part * d + hd * dh, len, dh, 3 * d);
    }

    Config cfg_;
    Mask mask_;
    Params params_, grads_;
    Dropout dropout_;
    std::uint64_t step_ = 0;
    bool train_ = false;
    bool for_backward_ = true;
    TensorView<const T, 3> q_in_, kv_in_;
    Matrix<T> qkv_, dqkv_, ctx_, dctx_;
    Tensor<T, 3> dp_;
    Tensor<T, 4> probs_, probs_dropped_;
    Tensor<std::uint8_t, 3> mask_buf_;
    Vector<index_t> key_end_, write_end_;  // per query row (fused prefix path)
    Matrix<T> last_q_, last_ctx_;  // forward_last
    Vector<T> col_sums_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
