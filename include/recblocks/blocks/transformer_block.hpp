#pragma once
// One transformer block: multi-head self-attention and a position-wise
// feed-forward, each with its residual and layer norm, placed by the Norm
// policy (policies/norm_placement.hpp: QueryNorm for the SASRec authors'
// block, PreNorm, PostNorm for BERT4Rec) and masked by the Mask policy
// (policies/attention_mask.hpp). Forward and backward; x, y are [B, L, D].
//
// Dropout (Config::dropout) is applied where the policy says, with masks that
// are a pure function of (seed, step): set `train` and pass the training step.
// backward() uses the last forward's activations and ADDS parameter gradients.
// Scratch is owned and reused: calls of an unchanged shape do not allocate.
// Memory is where parameters and scratch live (host by default, CudaMemory on
// backend::Cuda); every method takes a backend computing there.
#include <type_traits>

#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/blocks/feed_forward.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/blocks/multi_head_self_attention.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/policies/norm_placement.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

struct TransformerBlockConfig {
    index_t d_model = 0;                       ///< D
    index_t heads = 1;                         ///< H, divides D
    index_t ffn_inner = 0;                     ///< feed-forward width; 0 means D (SASRec); BERT4Rec uses 4D
    Activation activation = Activation::relu;  ///< ReLU (SASRec) or erf-GELU (BERT4Rec)
    double dropout = 0.0;                      ///< feed-forward and residual dropout
    double attention_dropout = -1.0;           ///< on the attention weights; < 0 means `dropout`
    double ln_eps = 1e-5;                      ///< SASRec code 1e-8, BERT 1e-12
    double ffn_hidden_dropout = -1.0;          ///< on the feed-forward activation; < 0 means `dropout` (BERT: 0)
};

/// The sublayers and scratch of a block; what a norm placement policy works on.
template <class T, policies::PrefixMask Mask, MemorySpace Memory = HostMemory>
struct TransformerBlockParts {
    using value_type = T;

    MultiHeadSelfAttention<T, Mask, Memory> attention;
    FeedForward<T, Memory> ffn;
    LayerNorm<T, Memory> norm_attention, norm_ffn;
    Dropout residual_dropout;

    TransformerBlockParts(const TransformerBlockConfig& c, bool ffn_residual, Mask mask, const Rng& rng,
                          Memory memory = {})
        : attention({c.d_model, c.heads, c.attention_dropout < 0 ? c.dropout : c.attention_dropout}, mask,
                    rng.substream(0), memory),
          ffn({c.d_model, c.ffn_inner, c.activation, c.dropout, ffn_residual, c.ffn_hidden_dropout}, rng.substream(1),
              memory),
          norm_attention({c.d_model, c.ln_eps}, memory), norm_ffn({c.d_model, c.ln_eps}, memory),
          residual_dropout(c.dropout, rng.substream(2)), scratch_(memory) {}

    /// Sizes `buffers` scratch matrices of [B * L, D] (no allocation when unchanged).
    void resize(index_t bsz, index_t len, index_t d, index_t buffers) {
        bsz_ = bsz;
        len_ = len;
        const Shape<3> shape{{buffers, bsz * len, d}};
        if (scratch_.shape() != shape) scratch_.resize(shape);
    }

    /// Scratch matrix `role` [B * L, D]; the norm placement policy names the roles
    /// (policies/norm_placement.hpp: e.g. QueryNorm::h, PostNorm::attention_sum).
    MatrixView<T> buffer(int role) {
        RECBLOCKS_DEBUG_ASSERT(role >= 0 && role < scratch_.extent(0));
        return matrix_view(scratch_.data() + role * scratch_.extent(1) * scratch_.extent(2), scratch_.extent(1),
                           scratch_.extent(2));
    }
    MatrixView<const T> cbuffer(int role) { return buffer(role); }

    template <class U>
    static MatrixView<U> flat(TensorView<U, 3> t) {
        return matrix_view(t.data(), t.extent(0) * t.extent(1), t.extent(2));
    }
    TensorView<T, 3> cube(MatrixView<T> m) const { return TensorView<T, 3>(m.data(), Shape<3>{{bsz_, len_, m.cols()}}); }
    TensorView<const T, 3> ccube(MatrixView<T> m) const {
        return TensorView<const T, 3>(m.data(), Shape<3>{{bsz_, len_, m.cols()}});
    }

    /// The last position of every sequence of t [B, L, D], as a strided [B, D] view.
    template <class U>
    MatrixView<U> last_rows(TensorView<U, 3> t) const {
        return matrix_view(t.data() + (t.extent(1) - 1) * t.extent(2), t.extent(0), t.extent(2), t.extent(1) * t.extent(2));
    }
    /// The first B rows of scratch matrix `role`, as [B, D] (inference on the last positions).
    MatrixView<T> head_rows(int role) { return buffer(role).slice_rows(0, bsz_); }
    /// Layer norm for inference (statistics not kept, block state untouched).
    template <class Be>
    static void norm_inference(const Be& be, const LayerNorm<T, Memory>& ln, MatrixView<const T> x, MatrixView<T> y) {
        ops::layer_norm_forward(be, x, ln.params().weight.cview(), ln.params().bias.cview(),
                                static_cast<T>(ln.config().eps), y);
    }

    /// Dropout on a sublayer's output (in place), step-keyed.
    template <class Be>
    void dropout_residual(const Be& be, std::uint64_t step, bool train, MatrixView<T> m) {
        drop_active_ = train && residual_dropout.p() > 0;
        drop_step_ = step;
        if (drop_active_)
            residual_dropout.forward<T>(be, step, vector_view<const T>(m.data(), m.numel()), vector_view(m.data(), m.numel()));
    }
    template <class Be>
    void dropout_residual_backward(const Be& be, MatrixView<T> g) {
        if (drop_active_)
            residual_dropout.backward<T>(be, drop_step_, vector_view<const T>(g.data(), g.numel()),
                                         vector_view(g.data(), g.numel()));
    }

private:
    Tensor<T, 3, Memory> scratch_;
    index_t bsz_ = 0, len_ = 0;
    std::uint64_t drop_step_ = 0;
    bool drop_active_ = false;
};

/// A transformer block; Norm meets policies::NormPlacement (checked at forward/backward, where the backend is known).
template <class T, policies::PrefixMask Mask = policies::CausalMask, class Norm = policies::PreNorm,
          MemorySpace Memory = HostMemory>
class TransformerBlock {
public:
    using Config = TransformerBlockConfig;
    using Parts = TransformerBlockParts<T, Mask, Memory>;

    TransformerBlock(Config cfg, Mask mask, const Rng& rng, Memory memory = {})
        : cfg_(cfg), parts_(cfg, Norm::ffn_residual, mask, rng, memory), full_(memory) {}
    TransformerBlock(Config cfg, const Rng& rng, Memory memory = {}) requires std::default_initializable<Mask>
        : TransformerBlock(cfg, Mask{}, rng, memory) {}

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Parts& parts() { return parts_; }

    /// Appends the block's tensors: <prefix>attention.*, ffn.*, norm_attention.*, norm_ffn.*.
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        const std::string p(prefix);
        parts_.attention.append_params(p + "attention.", out);
        parts_.norm_attention.append_params(p + "norm_attention.", out);
        parts_.ffn.append_params(p + "ffn.", out);
        parts_.norm_ffn.append_params(p + "norm_ffn.", out);
    }

    /// y [B, L, D] from x [B, L, D] (distinct tensors; x must stay unchanged
    /// until backward). key_keep [B, L] optional: 0 marks a padded key.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory> && policies::NormPlacement<Norm, Parts, Be>
    void forward(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                 MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train) {
        run_forward(be, pool, x, y, key_keep, step, train, true);
    }

    /// forward() for serving: no dropout, and nothing kept for backward (the
    /// attention weights are never stored; backward() then throws).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_inference(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                           MatrixView<const std::uint8_t> key_keep) {
        run_forward(be, pool, x, y, key_keep, 0, false, false);
    }

    /// Inference for the last position only: y_last [B, D] equals row L - 1 of
    /// forward(x) without dropout, computing the full-width work (keys and
    /// values) only where it is needed. Policies without forward_last fall
    /// back to a full forward.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_last(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, MatrixView<T> y_last,
                      MatrixView<const std::uint8_t> key_keep) {
        RECBLOCKS_CHECK_SHAPE(x.extent(2) == cfg_.d_model && x.is_contiguous() && y_last.rows() == x.extent(0) &&
                                  y_last.cols() == cfg_.d_model,
                              "TransformerBlock::forward_last: x is ", x.shape(), " and y_last is ", y_last.shape(),
                              " but need contiguous [B, L, D] and [B, D] with D = ", cfg_.d_model);
        parts_.resize(x.extent(0), x.extent(1), cfg_.d_model, Norm::buffer_count);
        parts_.attention.set_step(0, false, false);
        if constexpr (requires { Norm::forward_last(parts_, be, pool, x, y_last, key_keep); }) {
            Norm::forward_last(parts_, be, pool, x, y_last, key_keep);
        } else {
            if (full_.shape() != x.shape()) full_.resize(x.shape());
            Norm::forward(parts_, be, pool, x, full_.view(), key_keep, 0, false);
            ops::copy(be, parts_.last_rows(full_.cview()), y_last);
        }
    }

    /// dx [B, L, D] from dy [B, L, D] (dy is used as scratch and overwritten).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory> && policies::NormPlacement<Norm, Parts, Be>
    void backward(const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        RECBLOCKS_CHECK_SHAPE(dy.shape() == shape_ && dx.shape() == shape_ && dy.data() != dx.data(),
                              "TransformerBlock::backward: dy is ", dy.shape(), " and dx is ", dx.shape(),
                              " but the last forward's x was ", shape_, " (distinct tensors)");
        Norm::backward(parts_, be, pool, dy, dx);
    }

private:
    template <class Be>
    void run_forward(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, TensorView<T, 3> y,
                     MatrixView<const std::uint8_t> key_keep, std::uint64_t step, bool train, bool for_backward) {
        RECBLOCKS_CHECK_SHAPE(x.extent(2) == cfg_.d_model && y.shape() == x.shape() && x.is_contiguous() &&
                                  y.is_contiguous() && x.data() != y.data(),
                              "TransformerBlock::forward: x is ", x.shape(), " and y is ", y.shape(),
                              " but both must be distinct, contiguous [B, L, ", cfg_.d_model, "]");
        parts_.resize(x.extent(0), x.extent(1), cfg_.d_model, Norm::buffer_count);
        parts_.attention.set_step(step, train, for_backward);
        shape_ = for_backward ? x.shape() : Shape<3>{};
        Norm::forward(parts_, be, pool, x, y, key_keep, step, train);
    }

    Config cfg_;
    Parts parts_;
    Shape<3> shape_{};
    Tensor<T, 3, Memory> full_;  // forward_last fallback only
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
