#pragma once
// SASRec (Kang & McAuley, 2018): item + positional embedding, a causal
// transformer stack, final layer norm, and scores against the same item table
// (tied input/output embedding). Built from blocks/:
//
//   x = keep ⊙ Drop(E[s] · sqrt(D) + P[pos]);  F = Stack(x);  score(i at step t) = F_t · E[i]
//
// Norm is the block's norm placement (policies::QueryNorm = the authors' code
// and pmixer's port until 2025; PreNorm = the paper's text; PostNorm).
// Defaults follow the authors' code for MovieLens-1M except where noted.
// The choices on which public implementations differ are Config fields
// (timeline_mask, mask_padding_keys, positions, scale_embedding,
// embedding_norm, activation, ffn_inner, final_norm, ln_eps); a checkpoint
// layout file sets them (models/checkpoint_layout.hpp), and models::AnySASRec
// picks the norm placement at run time (models/any_sasrec.hpp). With
// embedding_norm (RecBole): x = keep ⊙ Drop(LN_emb(E[s] · scale + P[pos])).
//
// Training: train_step_bce() runs forward, the BCE loss with one sampled
// negative per position, and backward; gradients are in params()' grads
// (zeroed first), ready for an optimiser. Inference: encode_last() and
// score_all() (no dropout) reuse the model's scratch: after the first call of
// a batch shape they allocate nothing.
//
// Matryoshka (MRL-E, Kusupati et al. 2022): with Config::matryoshka_widths
// (e.g. 8,16,32,64 ending at D) the BCE loss is summed over the widths, the
// score at width m being F_t[:m] · E[i, :m] on the same tied table
// (losses::MatryoshkaBceWithNegatives::shared); score_all_at_width() ranks
// with any prefix width. An empty list is the plain single-width model.
//
// Memory is where parameters, gradients and activations live: host memory by
// default, CudaMemory for a model on backend::Cuda (construct it with
// memory_of(gpu)). Ids, targets and negatives come from the data pipeline in
// host memory; scores and encodings are written to the model's memory.
//
// Serving in two phases (what a captured CUDA graph needs; see
// backend/cuda/graph.hpp): stage_queries(ids) is the host work — id checks,
// masks written into the blocks' staging buffers — and score_all_staged() /
// encode_last_staged() are backend work only: uploads from those buffers and
// kernels, with no host synchronisation and, after the first call of a batch
// shape, no allocation. score_all(ids) is the two in a row.
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "recblocks/params/initialization.hpp"
#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/blocks/sequence_embedding.hpp"
#include "recblocks/blocks/transformer_stack.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/gemm.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

/// How SASRec's parameters start (docs/models.md, "Initialisation").
enum class SASRecInit : std::uint8_t {
    /// pmixer/SASRec.pytorch: xavier-normal for every tensor with >= 2 dimensions (item and
    /// position tables, attention and feed-forward weights), padding rows zeroed; biases and
    /// norms keep nn's defaults. On a 20k-item catalogue the item table starts at std 0.01.
    xavier_normal,
    /// recblocks 0.1.0: tables N(0, 1/D) (E · sqrt(D) at unit variance), attention in_proj
    /// xavier-uniform, other layers nn's defaults. About 15x the reference's scale on 20k items,
    /// and it trains to a lower accuracy in the reference's epochs.
    scaled_normal,
};

struct SASRecConfig {
    index_t num_items = 0;        ///< N; ids 1..N, 0 = padding
    index_t max_len = 200;        ///< L
    index_t d_model = 50;         ///< D (hidden_units)
    index_t num_blocks = 2;
    index_t heads = 1;
    double dropout = 0.2;         ///< embedding, attention weights, feed-forward
    double ln_eps = 1e-8;
    /// pmixer's layout; per_slot: the authors' TF code; from_oldest: RecBole's (and what an incremental
    /// per-user cache needs, with mask_padding_keys)
    blocks::PositionRows positions = blocks::PositionRows::from_one;
    bool mask_padding_keys = false;  ///< authors' TF code: true; pmixer's port: false
    double l2_emb = 0.0;             ///< adds l2_emb/2 · ||E||² to the loss (authors' TF regulariser)
    std::vector<index_t> matryoshka_widths{};  ///< nested widths ending at D for the MRL-E loss; empty = off
    std::vector<double> matryoshka_weights{};  ///< c_i per width; empty = all 1
    SASRecInit init = SASRecInit::xavier_normal;  ///< the reference's initialisation by default
    /// Zero the padded positions after every block (the "timeline mask": the authors' code and
    /// pmixer's port before 2024). pmixer's current code and RecBole do not: padded slots then
    /// carry values that unmasked keys (mask_padding_keys = false) let real positions attend to.
    bool timeline_mask = true;
    Activation activation = Activation::relu;  ///< feed-forward activation (RecBole: gelu)
    index_t ffn_inner = 0;                     ///< feed-forward width; 0 means D (RecBole: inner_size)
    bool scale_embedding = true;               ///< E[s] · sqrt(D) (authors, pmixer); RecBole: false
    bool embedding_norm = false;  ///< LayerNorm on E[s] + P[pos], dropout after it (RecBole); params emb_norm.*
    bool final_norm = true;       ///< the last LayerNorm after the stack (RecBole has none)
};

template <class T, class Norm = policies::QueryNorm, MemorySpace Memory = HostMemory>
class SASRec {
public:
    using Config = SASRecConfig;
    using Stack = blocks::TransformerStack<T, policies::CausalMask, Norm, Memory>;

    SASRec(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(cfg),
          embedding_({cfg.num_items, cfg.d_model, cfg.max_len, cfg.scale_embedding, cfg.positions,
                      cfg.embedding_norm ? 0.0 : cfg.dropout},
                     rng.substream(0), memory),
          emb_norm_({cfg.d_model, cfg.ln_eps}, memory), emb_dropout_(cfg.dropout, rng.substream(6)),
          stack_(stack_config(cfg), rng.substream(1), memory), x_(memory), xn_(memory), hidden_(memory),
          dhidden_(memory), dx_(memory), dxn_(memory), last_(memory), neg_inf_(Shape<1>{{1}}, memory), bce_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg.l2_emb >= 0, "SASRec: l2_emb must be >= 0, got ", cfg.l2_emb);
        if (!cfg.matryoshka_widths.empty())
            widths_.emplace(cfg.matryoshka_widths, cfg.d_model, cfg.matryoshka_weights);
        else
            RECBLOCKS_CHECK_VALUE(cfg.matryoshka_weights.empty(), "SASRec: matryoshka_weights given without matryoshka_widths");
        embedding_.append_params("", params_);
        if (cfg.embedding_norm) emb_norm_.append_params("emb_norm.", params_);
        stack_.append_params("", params_);
        fill_from_host(neg_inf_, [](index_t) { return -std::numeric_limits<T>::infinity(); });
        if (cfg.init == SASRecInit::xavier_normal) {
            xavier_normal_init(params_, rng.substream(5));
            // pmixer zeroes the padding rows after the init: item 0 and, with from_one positions, position 0.
            auto& e = embedding_.params();
            e.items.memory().zero(e.items.data(), static_cast<std::size_t>(cfg.d_model) * sizeof(T));
            if (cfg.positions == blocks::PositionRows::from_one)
                e.positions.memory().zero(e.positions.data(), static_cast<std::size_t>(cfg.d_model) * sizeof(T));
        }
    }
    SASRec(const SASRec&) = delete;  // params() points into the model
    SASRec& operator=(const SASRec&) = delete;

    [[nodiscard]] const Config& config() const { return cfg_; }
    /// Every learnable tensor: item_emb.weight, pos_emb.weight, emb_norm.* (with embedding_norm),
    /// blocks.<i>.*, final_norm.* (with final_norm).
    [[nodiscard]] const ParamList<T, Memory>& params() const { return params_; }
    [[nodiscard]] blocks::SequenceEmbedding<T, Memory>& embedding() { return embedding_; }
    [[nodiscard]] Stack& stack() { return stack_; }
    [[nodiscard]] MatrixView<const T> item_table() const { return embedding_.params().items.cview(); }
    /// The Matryoshka widths, when training with them.
    [[nodiscard]] const std::optional<MatryoshkaWidths>& matryoshka_widths() const { return widths_; }
    /// The last train_step_bce()'s mean loss at each Matryoshka width (empty without widths).
    [[nodiscard]] const std::vector<double>& last_width_losses() const { return width_losses_; }

    /// One training step's forward and backward with the BCE loss: ids, pos, neg
    /// [B, L] (pos = the next item of each slot, 0 where padded; one negative
    /// per slot). Zeroes and fills the gradients; returns the loss (including
    /// the l2_emb term) and the number of positions it averages over.
    /// For one granule of a larger batch (data-parallel training, train/next_item_trainer.hpp):
    /// normalizer = the whole batch's counted positions (the loss and gradients are this
    /// granule's share of its mean), add_regulariser = whether this granule adds the l2_emb
    /// term (exactly one granule of a batch does), and `step` keys the granule's dropout masks.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    losses::LossValue train_step_bce(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids,
                                     MatrixView<const row_id_t> pos, MatrixView<const row_id_t> neg, std::uint64_t step,
                                     index_t normalizer = 0, bool add_regulariser = true) {
        RECBLOCKS_CHECK_SHAPE(pos.shape() == ids.shape() && neg.shape() == ids.shape(), "SASRec::train_step_bce: ids is ",
                              ids.shape(), ", pos ", pos.shape(), ", neg ", neg.shape(), " (need equal shapes)");
        RECBLOCKS_CHECK_SHAPE(pos.is_contiguous() && neg.is_contiguous(), "SASRec::train_step_bce: pos and neg must be contiguous");
        recblocks::zero_grads(params_);
        forward(be, pool, ids, step, true);
        const index_t rows = ids.rows() * ids.cols(), d = cfg_.d_model;
        auto& items = embedding_.params().items;
        auto dh = matrix_view(dhidden_.data(), rows, d);
        const losses::LossValue loss_value =
            bce_(be, matrix_view<const T>(hidden_.data(), rows, d), items.cview(), vector_view(pos.data(), rows),
                 matrix_view(neg.data(), rows, 1), dh, embedding_.grads().items.view(), widths_ ? &*widths_ : nullptr,
                 normalizer);
        losses::LossValue loss = loss_value;
        if (widths_) width_losses_.assign(bce_.per_width().begin(), bce_.per_width().end());
        if (cfg_.l2_emb > 0 && add_regulariser) {  // + l2/2 ||E||², gradient l2 E
            const auto w = vector_view<const T>(items.data(), items.numel());
            loss.loss += 0.5 * cfg_.l2_emb * double(ops::dot(be, w, w));
            ops::axpy(be, static_cast<T>(cfg_.l2_emb), w,
                      vector_view(embedding_.grads().items.data(), items.numel()));
        }
        stack_.backward(be, pool, dhidden_.view(), dx_.view());
        if (cfg_.embedding_norm) {
            const index_t n = dx_.numel();
            if (emb_dropout_.p() > 0)
                emb_dropout_.backward<T>(be, step, vector_view<const T>(dx_.data(), n), vector_view(dx_.data(), n));
            emb_norm_.backward(be, matrix_view<const T>(dx_.data(), rows, d), matrix_view(dxn_.data(), rows, d));
            embedding_.backward(be, pool, ids, dxn_.view());
        } else {
            embedding_.backward(be, pool, ids, dx_.view());
        }
        return loss;
    }

    /// Forward pass: the final hidden states [B, L, D] of ids [B, L], kept in
    /// hidden() until the next call. `train` enables dropout (masks by `step`).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, std::uint64_t step, bool train) {
        prepare(ids);
        if (hidden_.shape() != x_.shape()) {
            hidden_.resize(x_.shape());
            dhidden_.resize(x_.shape());
            dx_.resize(x_.shape());
            if (cfg_.embedding_norm) dxn_.resize(x_.shape());
        }
        embedding_.forward(be, pool, ids, x_.view(), step, train);
        stack_.forward(be, pool, normed_input(be, step, train), keep_.cview(), hidden_.view(), step, train);
    }
    [[nodiscard]] TensorView<const T, 3> hidden() const { return hidden_.cview(); }

    /// out [B, D] = the final hidden state at the last slot of each row of ids
    /// (left padding puts the newest item there). No dropout; the last block
    /// computes only that slot (TransformerStack::forward_last).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void encode_last(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> out) {
        RECBLOCKS_CHECK_SHAPE(out.rows() == ids.rows() && out.cols() == cfg_.d_model, "SASRec::encode_last: out is ",
                              out.shape(), " but need [", ids.rows(), ", ", cfg_.d_model, "]");
        stage_queries(ids);
        encode_last_staged(be, pool, out);
    }

    /// Host phase of serving: checks ids [B, L] (host memory) and stages them
    /// and their masks for encode_last_staged() / score_all_staged().
    void stage_queries(MatrixView<const row_id_t> ids) {
        prepare(ids);
        embedding_.stage(ids);
        stack_.stage(keep_.cview());
    }
    /// Sequences of the last stage_queries().
    [[nodiscard]] index_t staged_queries() const { return embedding_.staged_rows(); }

    /// Device phase of encode_last() for the staged queries: out [B, D].
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void encode_last_staged(const Be& be, ThreadPool& pool, MatrixView<T> out) {
        const index_t bsz = staged_queries();
        RECBLOCKS_CHECK_SHAPE(out.rows() == bsz && out.cols() == cfg_.d_model, "SASRec::encode_last: out is ",
                              out.shape(), " but need [", bsz, ", ", cfg_.d_model, "]");
        embedding_.forward_staged(be, pool, x_.view(), 0, false);
        stack_.forward_last_staged(be, pool, normed_input(be, 0, false), out);
    }

    /// Device phase of score_all() for the staged queries: scores [B, N + 1] in Memory.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_all_staged(const Be& be, ThreadPool& pool, MatrixView<T> scores) {
        score_staged_at_width(be, pool, scores, cfg_.d_model);
    }

    /// scores [B, N + 1]: column i = F_last · E[i]; column 0 (padding) = -inf.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_all(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> scores) {
        score_all_at_width(be, pool, ids, scores, cfg_.d_model);
    }

    /// scores [B, N + 1] at width m in [1, D]: column i = F_last[:m] · E[i, :m]
    /// (prefix views, no copy); column 0 = -inf. m = D is score_all().
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_all_at_width(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> scores,
                            index_t m) {
        stage_queries(ids);
        score_staged_at_width(be, pool, scores, m);
    }

private:
    /// The stack's input: x_ itself, or Drop(LN_emb(x_)) with embedding_norm (the embedding's
    /// zero rows at padded slots become LN_emb's bias there; no real position reads them
    /// unless padded keys are visible, and RecBole masks them).
    template <class Be>
    TensorView<const T, 3> normed_input(const Be& be, std::uint64_t step, bool train) {
        if (!cfg_.embedding_norm) return x_.cview();
        if (xn_.shape() != x_.shape()) xn_.resize(x_.shape());
        const index_t rows = x_.extent(0) * x_.extent(1), d = cfg_.d_model, n = x_.numel();
        emb_norm_.forward(be, matrix_view<const T>(x_.data(), rows, d), matrix_view(xn_.data(), rows, d));
        if (train && emb_dropout_.p() > 0)
            emb_dropout_.forward<T>(be, step, vector_view<const T>(xn_.data(), n), vector_view(xn_.data(), n));
        return xn_.cview();
    }

    template <class Be>
    void score_staged_at_width(const Be& be, ThreadPool& pool, MatrixView<T> scores, index_t m) {
        const index_t bsz = staged_queries();
        RECBLOCKS_CHECK_VALUE(m >= 1 && m <= cfg_.d_model, "SASRec::score_all_at_width: width ", m,
                              " is outside [1, ", cfg_.d_model, "]");
        RECBLOCKS_CHECK_SHAPE(scores.rows() == bsz && scores.cols() == cfg_.num_items + 1,
                              "SASRec::score_all: scores is ", scores.shape(), " but need [", bsz, ", ",
                              cfg_.num_items + 1, "]");
        if (last_.extent(0) != bsz) last_.resize(Shape<2>{{bsz, cfg_.d_model}});
        encode_last_staged(be, pool, last_.view());
        const auto table = item_table();
        ops::gemm(be, Trans::no, Trans::yes, T(1), matrix_view<const T>(last_.data(), bsz, m, cfg_.d_model),
                  matrix_view<const T>(table.data(), table.rows(), m, table.ld()), T(0), scores);
        ops::broadcast_rows(be, neg_inf_.cview(), T(0), MatrixView<T>(scores.data(), Shape<2>{{scores.rows(), 1}}, {scores.ld(), 1}));
    }

    /// Sizes the input scratch for ids [B, L] and fills the keep mask.
    void prepare(MatrixView<const row_id_t> ids) {
        const index_t bsz = ids.rows(), len = ids.cols();
        RECBLOCKS_CHECK_SHAPE(len == cfg_.max_len && ids.is_contiguous(), "SASRec: ids is ", ids.shape(),
                              " but must be contiguous [B, max_len = ", cfg_.max_len, "]");
        if (x_.extent(0) != bsz) {
            x_.resize(Shape<3>{{bsz, len, cfg_.d_model}});
            keep_.resize(Shape<2>{{bsz, len}});
        }
        for (index_t i = 0; i < bsz * len; ++i) keep_.data()[i] = static_cast<std::uint8_t>(ids.data()[i] != 0);
    }

    static typename Stack::Config stack_config(const Config& c) {
        typename Stack::Config s;
        s.block = {c.d_model, c.heads, c.ffn_inner > 0 ? c.ffn_inner : c.d_model, c.activation, c.dropout, c.dropout,
                   c.ln_eps};
        s.num_blocks = c.num_blocks;
        s.final_norm = c.final_norm;
        s.mask_padding_keys = c.mask_padding_keys;
        s.zero_padded_positions = c.timeline_mask;
        return s;
    }

    Config cfg_;
    blocks::SequenceEmbedding<T, Memory> embedding_;
    blocks::LayerNorm<T, Memory> emb_norm_;  // used with embedding_norm only
    blocks::Dropout emb_dropout_;             // after emb_norm_ (the embedding's own dropout is 0 then)
    Stack stack_;
    ParamList<T, Memory> params_;
    Tensor<T, 3, Memory> x_, xn_, hidden_, dhidden_, dx_, dxn_;
    Matrix<std::uint8_t> keep_;  // host: the stack copies it where it computes
    Matrix<T, Memory> last_;
    Vector<T, Memory> neg_inf_;  // [1]: the padding column's score
    std::optional<MatryoshkaWidths> widths_;
    losses::BceWithNegatives<T, Memory> bce_;
    std::vector<double> width_losses_;
};

}  // namespace models
RECBLOCKS_NAMESPACE_END
