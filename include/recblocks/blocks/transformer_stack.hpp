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
//
// Memory is where the blocks keep their tensors (host by default, CudaMemory
// on backend::Cuda). keep comes from the data pipeline in host memory; the
// stack copies it (and the positions' 0/1 mask) into its memory once per call.
// As in SequenceEmbedding, forward_last() is stage(keep) (host work into
// staging buffers) then forward_last_staged() (backend work only), callable
// apart for serving through a captured CUDA graph.
#include <type_traits>
#include <vector>

#include "recblocks/blocks/transformer_block.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

template <class T, policies::PrefixMask Mask = policies::CausalMask, class Norm = policies::PreNorm,
          MemorySpace Memory = HostMemory>
class TransformerStack {
public:
    using Block = TransformerBlock<T, Mask, Norm, Memory>;
    struct Config {
        TransformerBlockConfig block{};
        index_t num_blocks = 2;
        bool final_norm = true;
        bool mask_padding_keys = true;
        bool zero_padded_positions = true;
    };

    TransformerStack(Config cfg, Mask mask, const Rng& rng, Memory memory = {})
        : cfg_(cfg), final_norm_({cfg.block.d_model, cfg.block.ln_eps}, memory), acts_(memory), grad_(memory),
          last_(memory), keep_bytes_(memory), keep_rows_(memory), keep_last_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg.num_blocks >= 1, "TransformerStack: num_blocks must be >= 1, got ", cfg.num_blocks);
        blocks_.reserve(static_cast<std::size_t>(cfg.num_blocks));
        for (index_t i = 0; i < cfg.num_blocks; ++i)
            blocks_.emplace_back(cfg.block, mask, rng.substream(std::uint64_t(i)), memory);
    }
    TransformerStack(Config cfg, const Rng& rng, Memory memory = {}) requires std::default_initializable<Mask>
        : TransformerStack(cfg, Mask{}, rng, memory) {}

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Block& block(index_t i) { return blocks_.at(static_cast<std::size_t>(i)); }
    [[nodiscard]] LayerNorm<T, Memory>& final_norm() { return final_norm_; }

    /// Appends <prefix>blocks.<i>.* and <prefix>final_norm.*.
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        for (std::size_t i = 0; i < blocks_.size(); ++i)
            blocks_[i].append_params(std::string(prefix) + "blocks." + std::to_string(i) + ".", out);
        if (cfg_.final_norm) final_norm_.append_params(std::string(prefix) + "final_norm.", out);
    }

    /// y [B, L, D] from x [B, L, D]; keep [B, L] (host memory). x must stay unchanged until backward.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
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
        stage(keep);
        const auto key_keep = upload_staged();
        for (index_t i = 0; i < n; ++i) {
            // The last block writes y directly when there is no final norm.
            TensorView<T, 3> out = (i == n - 1 && !cfg_.final_norm) ? y : act(i);
            TensorView<const T, 3> in = i == 0 ? x : TensorView<const T, 3>(act(i - 1));
            blocks_[static_cast<std::size_t>(i)].forward(be, pool, in, out, key_keep, step, train);
            if (cfg_.zero_padded_positions) zero_padded(be, out);
        }
        if (cfg_.final_norm)
            final_norm_.forward(be, matrix_view<const T>(act(n - 1).data(), bsz * len, d), matrix_view(y.data(), bsz * len, d));
    }

    /// Inference for the last position of each sequence: y_last [B, D] equals
    /// row L - 1 of forward(x) without dropout; the last block computes only
    /// what that row needs (TransformerBlock::forward_last). No backward after it.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_last(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, MatrixView<const std::uint8_t> keep,
                      MatrixView<T> y_last) {
        RECBLOCKS_CHECK_SHAPE(keep.rows() == x.extent(0) && keep.cols() == x.extent(1),
                              "TransformerStack::forward_last: keep is ", keep.shape(), " but x is ", x.shape());
        stage(keep);
        forward_last_staged(be, pool, x, y_last);
    }

    /// Host phase: writes keep [B, L] (host memory) into the staging buffers
    /// (waiting first for any upload from them still in flight).
    void stage(MatrixView<const std::uint8_t> keep) {
        const index_t bsz = keep.rows(), len = keep.cols();
        wait_for_staged_uploads(keep_rows_.memory());
        if (host_bytes_.extent(0) != bsz || host_bytes_.extent(1) != len) {
            host_bytes_.resize(Shape<2>{{bsz, len}});
            host_rows_.resize(Shape<1>{{bsz * len}});
            host_last_.resize(Shape<1>{{bsz}});
        }
        for (index_t b = 0; b < bsz; ++b) {
            for (index_t t = 0; t < len; ++t) {
                host_bytes_(b, t) = keep(b, t);
                host_rows_(b * len + t) = keep(b, t) ? T(1) : T(0);
            }
            host_last_(b) = len > 0 && keep(b, len - 1) ? T(1) : T(0);
        }
    }

    /// Device phase of forward_last() for the keep mask of the last stage().
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_last_staged(const Be& be, ThreadPool& pool, TensorView<const T, 3> x, MatrixView<T> y_last) {
        const index_t bsz = x.extent(0), len = x.extent(1), d = cfg_.block.d_model;
        RECBLOCKS_CHECK_SHAPE(host_bytes_.extent(0) == bsz && host_bytes_.extent(1) == len,
                              "TransformerStack::forward_last_staged: the staged keep mask is ", host_bytes_.shape(),
                              " but x is ", x.shape(), " (call stage(keep) first)");
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
        const auto key_keep = upload_staged();
        for (index_t i = 0; i + 1 < n; ++i) {
            TensorView<const T, 3> in = i == 0 ? x : TensorView<const T, 3>(act(i - 1));
            blocks_[static_cast<std::size_t>(i)].forward_inference(be, pool, in, act(i), key_keep);
            if (cfg_.zero_padded_positions) zero_padded(be, act(i));
        }
        TensorView<const T, 3> in = n == 1 ? x : TensorView<const T, 3>(act(n - 2));
        auto out = cfg_.final_norm ? last_.view() : y_last;
        blocks_[static_cast<std::size_t>(n - 1)].forward_last(be, pool, in, out, key_keep);
        if (cfg_.zero_padded_positions)  // the last slot of each sequence: rows L - 1, 2L - 1, ... of the mask
            ops::scale_rows(be, MatrixView<const T>(out), keep_last_.cview(), T(1), out);
        if (cfg_.final_norm)
            ops::layer_norm_forward(be, last_.cview(), final_norm_.params().weight.cview(),
                                    final_norm_.params().bias.cview(), static_cast<T>(final_norm_.config().eps), y_last);
    }

    /// dx [B, L, D] from dy [B, L, D] of the last forward (dy is used as scratch).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
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
            if (cfg_.zero_padded_positions) zero_padded(be, g);
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
    /// The timeline mask: rows of padded positions set to zero.
    template <class Be>
    void zero_padded(const Be& be, TensorView<T, 3> t) const {
        const auto m = matrix_view(t.data(), t.extent(0) * t.extent(1), t.extent(2));
        ops::scale_rows(be, MatrixView<const T>(m), keep_rows_.cview(), T(1), m);
    }

    /// Copies the staged masks into the stack's memory: as bytes for the
    /// attention and as a 0/1 row mask; returns the attention's key mask.
    MatrixView<const std::uint8_t> upload_staged() {
        copy_tensor(host_bytes_, keep_bytes_);
        copy_tensor(host_rows_, keep_rows_);
        copy_tensor(host_last_, keep_last_);
        return cfg_.mask_padding_keys ? keep_bytes_.cview() : MatrixView<const std::uint8_t>{};
    }

    Config cfg_;
    std::vector<Block> blocks_;
    LayerNorm<T, Memory> final_norm_;
    Tensor<T, 3, Memory> acts_, grad_;
    Matrix<T, Memory> last_;
    TensorView<const T, 3> x_;
    Matrix<std::uint8_t, Memory> keep_bytes_;
    Vector<T, Memory> keep_rows_, keep_last_;  // per row of [B * L, D]; per sequence's last slot
    Matrix<std::uint8_t, staging_memory_t<Memory>> host_bytes_;  // staging: host copies of the three masks
    Vector<T, staging_memory_t<Memory>> host_rows_, host_last_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
