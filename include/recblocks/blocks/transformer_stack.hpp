#pragma once
// A stack of transformer blocks with an optional final layer norm, as in
// SASRec and BERT4Rec:
//
//   h_0 = x;  h_{i+1} = keep ⊙ Block_i(h_i)  (the "timeline mask": padded
//   positions reset to zero after every block, SASRec);  y = LN(h_n)
//
// keep [B, L] marks real items (1) and left padding (0). It also masks padded
// keys in the attention when Config::mask_padding_keys (the SASRec authors'
// code and BERT4Rec do; pmixer's PyTorch port does not).
#include <vector>

#include "recblocks/blocks/transformer_block.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, policies::AttentionMask Mask = policies::CausalMask, class Norm = policies::PreNorm>
class TransformerStack {
public:
    using Block = TransformerBlock<T, Mask, Norm>;
    struct Config {
        TransformerBlockConfig block;
        index_t num_blocks = 2;
        bool final_norm = true;
        bool mask_padding_keys = true;
        bool zero_padded_positions = true;
    };

    TransformerStack(Config cfg, Mask mask, const Rng& rng) : cfg_(cfg), final_norm_({cfg.block.d_model, cfg.block.ln_eps}) {
        RECBLOCKS_CHECK_VALUE(cfg.num_blocks >= 1, "TransformerStack: num_blocks must be >= 1, got ", cfg.num_blocks);
        blocks_.reserve(static_cast<std::size_t>(cfg.num_blocks));
        for (index_t i = 0; i < cfg.num_blocks; ++i) blocks_.emplace_back(cfg.block, mask, rng.substream(std::uint64_t(i)));
    }
    TransformerStack(Config cfg, const Rng& rng) requires std::default_initializable<Mask>
        : TransformerStack(cfg, Mask{}, rng) {}

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Block& block(index_t i) { return blocks_.at(static_cast<std::size_t>(i)); }
    [[nodiscard]] LayerNorm<T>& final_norm() { return final_norm_; }

    /// Appends <prefix>blocks.<i>.* and <prefix>final_norm.*.
    void append_params(std::string_view prefix, ParamList<T>& out) {
        for (std::size_t i = 0; i < blocks_.size(); ++i)
            blocks_[i].append_params(std::string(prefix) + "blocks." + std::to_string(i) + ".", out);
        if (cfg_.final_norm) final_norm_.append_params(std::string(prefix) + "final_norm.", out);
    }

    /// y [B, L, D] from x [B, L, D]; keep [B, L]. x must stay unchanged until backward.
    template <HostBackend Be>
    void forward(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, MatrixView<const std::uint8_t> keep,
                 TensorView<T, 3> y, std::uint64_t step, bool train) {
        const index_t bsz = x.extent(0), len = x.extent(1), d = cfg_.block.d_model;
        RECBLOCKS_CHECK_SHAPE(keep.rows() == bsz && keep.cols() == len, "TransformerStack::forward: keep is ",
                              keep.shape(), " but x is ", x.shape());
        RECBLOCKS_CHECK_SHAPE(y.shape() == x.shape() && y.is_contiguous() && x.is_contiguous() && x.extent(2) == d,
                              "TransformerStack::forward: x is ", x.shape(), " and y is ", y.shape(),
                              " but both must be contiguous [B, L, ", d, "]");
        const index_t n = cfg_.num_blocks;
        if (acts_.extent(1) != bsz * len || acts_.extent(2) != d) {
            acts_.resize(Shape<3>{{n, bsz * len, d}});
            grad_.resize(Shape<3>{{2, bsz * len, d}});
        }
        x_ = x;
        keep_ = keep;
        const auto key_keep = cfg_.mask_padding_keys ? keep : MatrixView<const std::uint8_t>{};
        for (index_t i = 0; i < n; ++i) {
            // The last block writes y directly when there is no final norm.
            TensorView<T, 3> out = (i == n - 1 && !cfg_.final_norm) ? y : act(i);
            TensorView<const T, 3> in = i == 0 ? x : TensorView<const T, 3>(act(i - 1));
            blocks_[static_cast<std::size_t>(i)].forward(be, pool, in, out, key_keep, step, train);
            if (cfg_.zero_padded_positions) zero_padded(out);
        }
        if (cfg_.final_norm)
            final_norm_.forward(be, matrix_view<const T>(act(n - 1).data(), bsz * len, d), matrix_view(y.data(), bsz * len, d));
    }

    /// Inference for the last position of each sequence: y_last [B, D] equals
    /// row L - 1 of forward(x) without dropout; the last block computes only
    /// what that row needs (TransformerBlock::forward_last). No backward after it.
    template <HostBackend Be>
    void forward_last(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, MatrixView<const std::uint8_t> keep,
                      MatrixView<T> y_last) {
        const index_t bsz = x.extent(0), len = x.extent(1), d = cfg_.block.d_model;
        RECBLOCKS_CHECK_SHAPE(keep.rows() == bsz && keep.cols() == len, "TransformerStack::forward_last: keep is ",
                              keep.shape(), " but x is ", x.shape());
        RECBLOCKS_CHECK_SHAPE(x.is_contiguous() && x.extent(2) == d && y_last.rows() == bsz && y_last.cols() == d,
                              "TransformerStack::forward_last: x is ", x.shape(), " and y_last is ", y_last.shape(),
                              " but need contiguous [B, L, ", d, "] and [B, ", d, "]");
        const index_t n = cfg_.num_blocks;
        if (acts_.extent(1) != bsz * len || acts_.extent(2) != d) {
            acts_.resize(Shape<3>{{n, bsz * len, d}});
            grad_.resize(Shape<3>{{2, bsz * len, d}});
        }
        if (last_.extent(0) != bsz) last_.resize(Shape<2>{{bsz, d}});
        x_ = x;
        keep_ = keep;
        const auto key_keep = cfg_.mask_padding_keys ? keep : MatrixView<const std::uint8_t>{};
        for (index_t i = 0; i + 1 < n; ++i) {
            TensorView<const T, 3> in = i == 0 ? x : TensorView<const T, 3>(act(i - 1));
            blocks_[static_cast<std::size_t>(i)].forward_inference(be, pool, in, act(i), key_keep);
            if (cfg_.zero_padded_positions) zero_padded(act(i));
        }
        TensorView<const T, 3> in = n == 1 ? x : TensorView<const T, 3>(act(n - 2));
        auto out = cfg_.final_norm ? last_.view() : y_last;
        blocks_[static_cast<std::size_t>(n - 1)].forward_last(be, pool, in, out, key_keep);
        if (cfg_.zero_padded_positions)
            for (index_t b = 0; b < bsz; ++b)
                if (!keep(b, len - 1)) std::fill(out.row(b), out.row(b) + d, T(0));
        if (cfg_.final_norm)
            ops::layer_norm_forward(be, last_.cview(), final_norm_.params().weight.cview(),
                                    final_norm_.params().bias.cview(), static_cast<T>(final_norm_.config().eps), y_last);
    }

    /// dx [B, L, D] from dy [B, L, D] of the last forward (dy is used as scratch).
    template <HostBackend Be>
    void backward(const Be& be, ThreadPool& pool, TensorView<T, 3> dy, TensorView<T, 3> dx) {
        RECBLOCKS_CHECK_SHAPE(dy.shape() == x_.shape() && dx.shape() == x_.shape() && dy.data() != dx.data(),
                              "TransformerStack::backward: dy is ", dy.shape(), " and dx is ", dx.shape(),
                              " but the last forward's x was ", x_.shape());
        const index_t rows = x_.extent(0) * x_.extent(1), d = cfg_.block.d_model, n = cfg_.num_blocks;
        TensorView<T, 3> g = dy;
        if (cfg_.final_norm) {
            final_norm_.backward(be, matrix_view<const T>(dy.data(), rows, d), matrix_view(grad(0).data(), rows, d));
            g = grad(0);
        }
        for (index_t i = n - 1; i >= 0; --i) {
            if (cfg_.zero_padded_positions) zero_padded(g);
            TensorView<T, 3> out = i == 0 ? dx : (g.data() == grad(0).data() ? grad(1) : grad(0));
            blocks_[static_cast<std::size_t>(i)].backward(be, pool, g, out);
            g = out;
        }
    }

private:
    TensorView<T, 3> act(index_t i) {
        return TensorView<T, 3>(acts_.data() + i * acts_.extent(1) * acts_.extent(2), x_.shape());
    }
    TensorView<T, 3> grad(index_t i) {
        return TensorView<T, 3>(grad_.data() + i * grad_.extent(1) * grad_.extent(2), x_.shape());
    }
    void zero_padded(TensorView<T, 3> t) const {
        const index_t len = t.extent(1), d = t.extent(2);
        for (index_t b = 0; b < t.extent(0); ++b)
            for (index_t s = 0; s < len; ++s)
                if (!keep_(b, s)) std::fill(t.data() + (b * len + s) * d, t.data() + (b * len + s + 1) * d, T(0));
    }

    Config cfg_;
    std::vector<Block> blocks_;
    LayerNorm<T> final_norm_;
    Tensor<T, 3> acts_, grad_;
    Matrix<T> last_;
    TensorView<const T, 3> x_;
    MatrixView<const std::uint8_t> keep_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
