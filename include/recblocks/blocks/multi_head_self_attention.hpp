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
// The attention between the projections is one backend call for the whole
// batch (ops/attention.hpp): the host backends keep P, a GPU recomputes it
// (no [L, L] tensor). The mask must be a prefix mask (policies/attention_mask.hpp:
// causal, block-causal, bidirectional, or a user's mask declaring `prefix`),
// which is what lets every backend run it without an [L, L] mask tensor.
//
// Memory is where parameters, gradients and scratch live (host memory by
// default; CudaMemory for a block running on backend::Cuda): every method
// takes a backend computing there, and the block touches its tensors only
// through ops, so the same code runs on the CPU and on a GPU.
//
// Queries and keys/values may come from different tensors of the same shape
// (forward(q_in, kv_in, ...)): SASRec's original block attends from the
// layer-normalised queries to the unnormalised sequence. Dropout on the
// attention weights (Config::dropout, as nn.MultiheadAttention's) is active
// between set_step(step, true) and set_step(.., false); its masks are a pure
// function of (seed, step, sequence, head), the same on every backend.
//
// backward() takes dy and ADDS the parameter gradients into grads() (as
// autograd does), and writes dx (or dq_in and dkv_in). It uses the
// activations of the last forward (which keeps views of the inputs: they must
// stay alive and unchanged until backward). The block owns its scratch, sized
// at the first call of a shape: later calls of the same shape do not allocate.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/attention.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/policies/attention_mask.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, policies::PrefixMask Mask = policies::CausalMask, MemorySpace Memory = HostMemory>
class MultiHeadSelfAttention {
public:
    struct Config {
        index_t d_model = 0;  ///< D
        index_t heads = 1;    ///< H; must divide D
        double dropout = 0.0; ///< on the attention weights, while training
    };
    struct Params {
        Matrix<T, Memory> in_proj_weight;   ///< [3D, D]
        Vector<T, Memory> in_proj_bias;     ///< [3D]
        Matrix<T, Memory> out_proj_weight;  ///< [D, D]
        Vector<T, Memory> out_proj_bias;    ///< [D]
        Params(index_t d, Memory m)
            : in_proj_weight(Shape<2>{{3 * d, d}}, m), in_proj_bias(Shape<1>{{3 * d}}, m),
              out_proj_weight(Shape<2>{{d, d}}, m), out_proj_bias(Shape<1>{{d}}, m) {}
    };

    /// Zero biases; in_proj Xavier-uniform, out_proj U(-1/sqrt(D), 1/sqrt(D))
    /// (nn.MultiheadAttention's defaults), drawn from `rng`.
    MultiHeadSelfAttention(Config cfg, Mask mask, const Rng& rng, Memory memory = {})
        : cfg_(cfg), mask_(mask), params_(checked(cfg).d_model, memory), grads_(cfg.d_model, memory),
          dropout_(cfg.dropout, rng.substream(2)), qkv_(memory), dqkv_(memory), ctx_(memory), dctx_(memory),
          state_(memory), key_end_(memory), last_q_(memory), last_ctx_(memory), col_sums_(memory) {
        const index_t d = cfg.d_model;
        const double xavier = std::sqrt(6.0 / double(d + 3 * d));
        const Rng a = rng.substream(0), b = rng.substream(1);
        fill_from_host(params_.in_proj_weight,
                       [&](index_t i) { return xavier * (2.0 * a.uniform_double(std::uint64_t(i)) - 1.0); });
        const double bound = 1.0 / std::sqrt(double(d));
        fill_from_host(params_.out_proj_weight,
                       [&](index_t i) { return bound * (2.0 * b.uniform_double(std::uint64_t(i)) - 1.0); });
    }
    MultiHeadSelfAttention(Config cfg, const Rng& rng, Memory memory = {}) requires std::default_initializable<Mask>
        : MultiHeadSelfAttention(cfg, Mask{}, rng, memory) {}

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    /// Appends the four tensors under nn.MultiheadAttention's names.
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "in_proj_weight", params_.in_proj_weight, grads_.in_proj_weight, ParamKind::weight);
        append_param(out, prefix, "in_proj_bias", params_.in_proj_bias, grads_.in_proj_bias, ParamKind::bias);
        append_param(out, prefix, "out_proj.weight", params_.out_proj_weight, grads_.out_proj_weight, ParamKind::weight);
        append_param(out, prefix, "out_proj.bias", params_.out_proj_bias, grads_.out_proj_bias, ParamKind::bias);
    }
    /// Sets every gradient to zero.
    void zero_grads() {
        grads_.in_proj_weight.zero();
        grads_.in_proj_bias.zero();
        grads_.out_proj_weight.zero();
        grads_.out_proj_bias.zero();
    }
    /// Attention probabilities of the last forward that kept them (before
    /// dropout), [B, H, L, L] — what the host backends keep as their state.
    [[nodiscard]] TensorView<const T, 4> attention() const requires(Memory::host_accessible) {
        RECBLOCKS_CHECK_SHAPE(state_.numel() >= shape_.batch * shape_.heads * shape_.q_len * shape_.kv_len &&
                                  shape_.q_len > 0,
                              "MultiHeadSelfAttention::attention: no training forward has run");
        return TensorView<const T, 4>(state_.data(), Shape<4>{{shape_.batch, shape_.heads, shape_.q_len, shape_.kv_len}});
    }

    /// Selects the dropout masks of the next forward/backward (`step`) and
    /// whether dropout is active (`train`); inactive by default. With
    /// `for_backward` false (serving) the next forwards keep nothing for
    /// backward (backward then throws).
    void set_step(std::uint64_t step, bool train, bool for_backward = true) {
        step_ = step;
        train_ = train && cfg_.dropout > 0;
        for_backward_ = for_backward || train_;
    }

    /// Self-attention: y [B, L, D] = attention(x [B, L, D]); key_keep [B, L]
    /// optional (0 = padded key).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, TensorView<const T, 3> x, TensorView<T, 3> y,
                 MatrixView<const std::uint8_t> key_keep = {}) {
        forward(be, x, x, y, key_keep);
    }

    /// Attention from queries q_in to keys/values kv_in (both [B, L, D]); the
    /// same tensor for both is self-attention (one fused projection).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, TensorView<const T, 3> q_in, TensorView<const T, 3> kv_in, TensorView<T, 3> y,
                 MatrixView<const std::uint8_t> key_keep = {}) {
        const index_t bsz = q_in.extent(0), len = q_in.extent(1), d = cfg_.d_model;
        RECBLOCKS_CHECK_SHAPE(q_in.extent(2) == d, "MultiHeadSelfAttention::forward: x is ", q_in.shape(),
                              " but d_model is ", d);
        RECBLOCKS_CHECK_SHAPE(kv_in.shape() == q_in.shape(), "MultiHeadSelfAttention::forward: keys/values are ",
                              kv_in.shape(), " but queries are ", q_in.shape());
        RECBLOCKS_CHECK_SHAPE(y.shape() == q_in.shape(), "MultiHeadSelfAttention::forward: y is ", y.shape(),
                              " but x is ", q_in.shape());
        RECBLOCKS_CHECK_SHAPE(q_in.is_contiguous() && kv_in.is_contiguous() && y.is_contiguous(),
                              "MultiHeadSelfAttention::forward: x and y must be contiguous");
        check_keep("forward", key_keep, bsz, len);
        resize(be, bsz, len);
        q_in_ = q_in;  // kept (views) for backward
        kv_in_ = kv_in;
        key_keep_ = key_keep;
        auto qkv = qkv_.view();
        if (is_self()) {
            ops::linear(be, flat(q_in), params_.in_proj_weight.cview(), params_.in_proj_bias.cview(), qkv);
        } else {
            ops::broadcast_rows(be, params_.in_proj_bias.cview(), T(0), qkv);
            ops::gemm(be, Trans::no, Trans::yes, T(1), flat(q_in), w_q(), T(1), part(qkv, 0, 1));
            ops::gemm(be, Trans::no, Trans::yes, T(1), flat(kv_in), w_kv(), T(1), part(qkv, 1, 2));
        }
        shape_ = {bsz, cfg_.heads, len, len, d / cfg_.heads};
        const bool keep_state = for_backward_;
        if (keep_state) {
            const index_t need = ops::attention_state_size<T>(be, shape_, train_);
            if (state_.numel() != need) state_.resize(Shape<1>{{need}});
        }
        const auto cqkv = qkv_.cview();
        ops::attention_forward(be, shape_, part(cqkv, 0, 1), part(cqkv, 1, 1), part(cqkv, 2, 1), key_end_.cview(),
                               key_keep, scale(), drop(), keep_state ? state_.view() : VectorView<T>{}, ctx_.view());
        ops::linear(be, ctx_.cview(), params_.out_proj_weight.cview(), params_.out_proj_bias.cview(), flat(y));
        if (!keep_state) {  // nothing kept: backward would read stale weights
            q_in_ = {};
            kv_in_ = {};
        }
    }

    /// From dy [B, L, D] after a self-attention forward: writes dx and adds
    /// the parameter gradients into grads().
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
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
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, TensorView<const T, 3> dy, TensorView<T, 3> dq_in, TensorView<T, 3> dkv_in) {
        const index_t d = cfg_.d_model;
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
        const auto dy2 = flat(dy);
        // Output projection.
        ops::gemm(be, Trans::yes, Trans::no, T(1), dy2, ctx_.cview(), T(1), grads_.out_proj_weight.view());
        detail::add_column_sums(be, dy2, grads_.out_proj_bias.view(), col_sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), dy2, params_.out_proj_weight.view(), T(0), dctx_.view());
        // Attention.
        const auto cqkv = qkv_.cview();
        auto dqkv = dqkv_.view();
        ops::attention_backward(be, shape_, part(cqkv, 0, 1), part(cqkv, 1, 1), part(cqkv, 2, 1), key_end_.cview(),
                                key_keep_, scale(), drop(), state_.cview(), ctx_.cview(), dctx_.cview(),
                                part(dqkv, 0, 1), part(dqkv, 1, 1), part(dqkv, 2, 1));
        // Input projection.
        const auto cdqkv = dqkv_.cview();
        detail::add_column_sums(be, cdqkv, grads_.in_proj_bias.view(), col_sums_);
        const auto q2 = flat(q_in_), kv2 = flat(kv_in_);
        if (is_self()) {
            ops::gemm(be, Trans::yes, Trans::no, T(1), cdqkv, q2, T(1), grads_.in_proj_weight.view());
            ops::gemm(be, Trans::no, Trans::no, T(1), cdqkv, params_.in_proj_weight.view(), T(0), flat(dq_in));
            return;
        }
        auto gw = grads_.in_proj_weight.view();
        ops::gemm(be, Trans::yes, Trans::no, T(1), part(cdqkv, 0, 1), q2, T(1), gw.slice_rows(0, d));
        ops::gemm(be, Trans::yes, Trans::no, T(1), part(cdqkv, 1, 2), kv2, T(1), gw.slice_rows(d, 3 * d));
        ops::gemm(be, Trans::no, Trans::no, T(1), part(cdqkv, 0, 1), w_q(), T(0), flat(dq_in));
        ops::gemm(be, Trans::no, Trans::no, T(1), part(cdqkv, 1, 2), w_kv(), T(0), flat(dkv_in));
    }

    /// Inference for the LAST position only (what serving needs from the
    /// final block): q_last [B, D] is the queries' input at position L - 1,
    /// kv_in [B, L, D] the keys/values' input; writes y_last [B, D]. Keys and
    /// values are projected for every position, the rest for one row per
    /// sequence. No dropout; backward() is not available after this call.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_last(const Be& be, MatrixView<const T> q_last, TensorView<const T, 3> kv_in, MatrixView<T> y_last,
                      MatrixView<const std::uint8_t> key_keep = {}) {
        const index_t bsz = kv_in.extent(0), len = kv_in.extent(1), d = cfg_.d_model;
        RECBLOCKS_CHECK_SHAPE(kv_in.extent(2) == d && kv_in.is_contiguous() && q_last.rows() == bsz &&
                                  q_last.cols() == d && y_last.rows() == bsz && y_last.cols() == d,
                              "MultiHeadSelfAttention::forward_last: q_last is ", q_last.shape(), ", keys/values ",
                              kv_in.shape(), ", y_last ", y_last.shape(), " but need [B, D], [B, L, D], [B, D] with D = ", d);
        check_keep("forward_last", key_keep, bsz, len);
        resize(be, bsz, len);
        q_in_ = {};  // no backward after this
        kv_in_ = {};
        if (last_q_.extent(0) != bsz) {
            last_q_.resize(Shape<2>{{bsz, d}});
            last_ctx_.resize(Shape<2>{{bsz, d}});
        }
        ops::linear(be, flat(kv_in), w_kv(), bias_part(1, 2), part(qkv_.view(), 1, 2));
        ops::linear(be, q_last, w_q(), bias_part(0, 1), last_q_.view());
        const AttentionShape s{bsz, cfg_.heads, 1, len, d / cfg_.heads};
        const auto cqkv = qkv_.cview();
        ops::attention_forward(be, s, last_q_.cview(), part(cqkv, 1, 1), part(cqkv, 2, 1),
                               key_end_.cview().slice_rows(len - 1, len), key_keep, scale(), AttentionDropout<T>{},
                               VectorView<T>{}, last_ctx_.view());
        ops::linear(be, last_ctx_.cview(), params_.out_proj_weight.cview(), params_.out_proj_bias.cview(), y_last);
    }

private:
    static const Config& checked(const Config& cfg) {
        RECBLOCKS_CHECK_VALUE(cfg.d_model >= 1 && cfg.heads >= 1 && cfg.d_model % cfg.heads == 0,
                              "MultiHeadSelfAttention: d_model ", cfg.d_model, " must be a positive multiple of heads ",
                              cfg.heads);
        return cfg;
    }
    static void check_keep(std::string_view where, MatrixView<const std::uint8_t> keep, index_t bsz, index_t len) {
        if (keep.data())
            RECBLOCKS_CHECK_SHAPE(keep.rows() == bsz && keep.cols() == len, "MultiHeadSelfAttention::", where,
                                  ": key_keep is ", keep.shape(), " but expected [", bsz, ", ", len, "]");
    }

    [[nodiscard]] T scale() const { return static_cast<T>(1.0 / std::sqrt(double(cfg_.d_model / cfg_.heads))); }
    [[nodiscard]] AttentionDropout<T> drop() const {
        return train_ ? dropout_.attention_masks<T>(step_) : AttentionDropout<T>{};
    }
    [[nodiscard]] bool is_self() const { return q_in_.data() == kv_in_.data(); }

    /// [B, L, D] as [B * L, D].
    template <class U>
    static MatrixView<U> flat(TensorView<U, 3> x) {
        return MatrixView<U>(x.data(), Shape<2>{{x.extent(0) * x.extent(1), x.extent(2)}});
    }
    /// Columns [first * D, (first + count) * D) of a packed [R, 3D] matrix (Q = 0, K = 1, V = 2).
    template <class U>
    MatrixView<U> part(MatrixView<U> packed, index_t first, index_t count) const {
        const index_t d = cfg_.d_model;
        return MatrixView<U>(packed.data() + first * d, Shape<2>{{packed.rows(), count * d}}, {packed.ld(), 1});
    }
    [[nodiscard]] VectorView<const T> bias_part(index_t first, index_t count) const {
        const index_t d = cfg_.d_model;
        return VectorView<const T>(params_.in_proj_bias.data() + first * d, Shape<1>{{count * d}});
    }
    [[nodiscard]] MatrixView<const T> w_q() const { return params_.in_proj_weight.cview().slice_rows(0, cfg_.d_model); }
    [[nodiscard]] MatrixView<const T> w_kv() const {
        return params_.in_proj_weight.cview().slice_rows(cfg_.d_model, 3 * cfg_.d_model);
    }


    template <class Be>
    void resize(const Be& be, index_t bsz, index_t len) {
        const index_t rows = bsz * len, d = cfg_.d_model;
        if (qkv_.extent(0) != rows) {
            qkv_.resize(Shape<2>{{rows, 3 * d}});
            dqkv_.resize(Shape<2>{{rows, 3 * d}});
            ctx_.resize(Shape<2>{{rows, d}});
            dctx_.resize(Shape<2>{{rows, d}});
        }
        if (key_end_.numel() != len) {
            // Row r sees keys [0, key_end_[r]): made on the host, copied once per length.
            Vector<index_t> ends(Shape<1>{{len}});
            for (index_t r = 0; r < len; ++r) ends(r) = policies::visible_key_end(mask_, r + 1, len);
            key_end_ = to(be, ends);
        }
    }

    Config cfg_;
    Mask mask_;
    Params params_, grads_;
    Dropout dropout_;
    std::uint64_t step_ = 0;
    bool train_ = false;
    bool for_backward_ = true;
    TensorView<const T, 3> q_in_, kv_in_;
    MatrixView<const std::uint8_t> key_keep_;
    AttentionShape shape_{};
    Matrix<T, Memory> qkv_, dqkv_, ctx_, dctx_;
    Vector<T, Memory> state_;
    Vector<index_t, Memory> key_end_;
    Matrix<T, Memory> last_q_, last_ctx_;  // forward_last
    Vector<T, Memory> col_sums_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
