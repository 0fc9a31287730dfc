#pragma once
// BERT4Rec (Sun et al., CIKM 2019): a bidirectional transformer trained with
// a cloze objective. Built from blocks/ like SASRec; the reference is
// FeiSun/BERT4Rec and class BERT4Rec of benchmarks/peers/torch_models.py
// (whose state_dict loads through bert4rec_reference_names()).
//
// Vocabulary: 0 = padding, 1..N = items, N + 1 = [mask] (mask_token()).
//
//   x = Drop(LN_emb(E[s] + P[t]))            no sqrt(D) scale; P has L rows, slot t uses row t
//   F = Stack(x)                               post-norm blocks LN(x + Drop(sublayer(x))),
//                                              bidirectional attention, padded keys masked,
//                                              erf-GELU FFN of width 4D without hidden dropout,
//                                              no final norm, no timeline zeroing
//   h = LN_head(GELU(F W_headᵀ + b_head))      (Config::output_head; else h = F)
//   logit(item i) = h · E[i] + out_bias[i]     over items 1..N (tied with the input table;
//                                              out_bias with Config::output_bias, else 0)
//
// Padded slots: the embedding writes zeros there (the reference writes
// LN(E[0] + P[t])); the values of padded slots are never attended to and
// never read, so every output at a real slot, the loss and every gradient
// are the same as the reference's.
//
// Training: train_step_ce(masked_ids, labels) runs forward, the full-softmax
// cross-entropy over items 1..N at the target slots (labels != 0) and
// backward; gradients are in params()' grads (zeroed first). The head runs
// on the target slots only.
//
// Inference: score_all(ids) takes the caller's left-padded history (what
// eval::evaluate_next_item passes), shifts it left by one slot and puts
// [mask] in the last slot (BERT4Rec's "append [mask]"; with a full history
// of L items the oldest one drops out), and scores every item from the
// hidden state of that [mask]. score_positions() scores given slots of ids
// as they are (no shift). Scratch is owned and reused: after the first call
// of a batch shape, calls allocate nothing.
//
// Memory is where parameters, gradients, activations and the loss's scratch
// live: host memory by default, CudaMemory for a model on backend::Cuda
// (construct it with memory_of(gpu)). Ids and labels come from the data
// pipeline in host memory and are checked there; scores are written to the
// model's memory. Every step is a sequence of backend calls, so the same
// class runs on every backend. Serving also comes in two phases, as SASRec's:
// stage_queries(ids) (host work) then score_all_staged() (backend work only,
// what a captured CUDA graph replays; backend/cuda/graph.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/blocks/sequence_embedding.hpp"
#include "recblocks/blocks/transformer_stack.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/losses/softmax_cross_entropy.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/params/initialization.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

struct BERT4RecConfig {
    index_t num_items = 0;           ///< N; ids 1..N, 0 = padding, N + 1 = [mask]
    index_t max_len = 200;           ///< L (the paper: 200 for MovieLens, 50 for Beauty and Steam)
    index_t d_model = 64;            ///< D
    index_t num_blocks = 2;
    index_t heads = 2;
    index_t inner = 0;               ///< feed-forward width; 0 means 4D
    double dropout = 0.2;            ///< embedding output, attention output, feed-forward output
    double attention_dropout = -1;   ///< on the attention weights; < 0 means `dropout`
    double ln_eps = 1e-12;           ///< BERT's (TF layer_norm's hard-coded epsilon)
    /// Initialisation: weights and embeddings ~ N(0, init_std²) truncated at
    /// 2 sigma, linear biases 0 (BERT's initializer_range 0.02). 0 keeps the
    /// blocks' PyTorch-style defaults (nn.Linear / nn.MultiheadAttention, N(0, 1/D) tables).
    double init_std = 0.02;
    /// h = LN_head(GELU(F W_headᵀ + b_head)) before the item table (BERT, FeiSun/BERT4Rec,
    /// recblocks' reference); false: the [mask] state F itself is scored (RecBole's BERT4Rec
    /// before its head was added). Without it there are no head_dense.* / head_norm.* params.
    bool output_head = true;
    /// A learned per-item bias added to the logits (out_bias); false: none, and no such param.
    bool output_bias = true;
    /// score_all() on a history shorter than L also drops its oldest item, as RecBole's
    /// BERT4Rec inference does (it appends [mask] after the last item and then cuts the
    /// sequence's first slot, an item, not padding). A full history drops it in every case.
    bool history_drops_oldest = false;
    /// per_slot: slot t uses row t of pos_emb (FeiSun/BERT4Rec, left-padded); from_oldest: an
    /// item's row counts from its row's oldest real item (RecBole's right-padded 0..n-1).
    blocks::PositionRows positions = blocks::PositionRows::per_slot;
    /// Adds l2_emb/2 · ||E||² over the item table to the training loss (SASRec's l2_emb, the
    /// authors' tf.nn.l2_loss); 0 = off. On top of AdamW's weight decay, which is the BERT4Rec
    /// authors' only regulariser. A training option: checkpoints' model descriptions omit it.
    double l2_emb = 0.0;
};

/// recblocks names -> the PyTorch reference's state_dict names (class BERT4Rec
/// in benchmarks/peers/torch_models.py; tests/golden/bert4rec.safetensors).
/// item_emb.weight, pos_emb.weight, head_dense.* and out_bias are the same.
inline io::NameMap bert4rec_reference_names() {
    return {{"emb_norm.", "emb_layernorm."},
            {"blocks.{i}.attention.", "attention_layers.{i}."},
            {"blocks.{i}.norm_attention.", "attention_layernorms.{i}."},
            {"blocks.{i}.ffn.", "forward_layers.{i}."},
            {"blocks.{i}.norm_ffn.", "forward_layernorms.{i}."},
            {"head_norm.", "head_layernorm."}};
}

template <class T, MemorySpace Memory = HostMemory>
class BERT4Rec {
public:
    using Config = BERT4RecConfig;
    using Stack = blocks::TransformerStack<T, policies::BidirectionalMask, policies::PostNorm, Memory>;

    BERT4Rec(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(validated(cfg)),
          embedding_({cfg.num_items + 1, cfg.d_model, cfg.max_len, false, cfg.positions, 0.0},
                     rng.substream(0), memory),
          emb_norm_({cfg.d_model, cfg.ln_eps}, memory), emb_dropout_(cfg.dropout, rng.substream(2)),
          stack_(stack_config(cfg_), rng.substream(1), memory), head_(memory), head_grads_(memory), loss_(memory),
          emb_(memory), x_(memory), hidden_(memory), dhidden_(memory), dx_(memory), demb_(memory), head_in_(memory),
          head_pre_(memory), head_act_(memory), head_out_(memory), d_head_out_(memory), d_head_act_(memory),
          d_head_in_(memory), head_mean_(memory), head_rstd_(memory), sums_(memory), slots_(memory),
          neg_inf_(Shape<1>{{1}}, memory) {
        const index_t d = cfg_.d_model, n = cfg_.num_items;
        for (Head* h : {&head_, &head_grads_}) {
            h->dense_w.resize(Shape<2>{{d, d}});
            h->dense_b.resize(Shape<1>{{d}});
            h->norm_w.resize(Shape<1>{{d}});
            h->norm_b.resize(Shape<1>{{d}});
            h->out_bias.resize(Shape<1>{{n + 1}});  // entry 0 (padding) is never a class
        }
        fill_from_host(head_.norm_w, [](index_t) { return 1.0; });
        fill_from_host(head_.out_bias, [](index_t) { return 0.0; });  // stays 0 without output_bias
        const Rng hr = rng.substream(3);
        const double bound = 1.0 / std::sqrt(double(d));  // nn.Linear's default
        fill_from_host(head_.dense_w,
                       [&](index_t i) { return bound * (2.0 * hr.substream(0).uniform_double(std::uint64_t(i)) - 1.0); });
        fill_from_host(head_.dense_b,
                       [&](index_t i) { return bound * (2.0 * hr.substream(1).uniform_double(std::uint64_t(i)) - 1.0); });
        fill_from_host(neg_inf_, [](index_t) { return -std::numeric_limits<T>::infinity(); });

        embedding_.append_params("", params_);
        emb_norm_.append_params("emb_norm.", params_);
        stack_.append_params("", params_);
        if (cfg_.output_head) {
            append_param(params_, "", "head_dense.weight", head_.dense_w, head_grads_.dense_w, ParamKind::weight);
            append_param(params_, "", "head_dense.bias", head_.dense_b, head_grads_.dense_b, ParamKind::bias);
            append_param(params_, "", "head_norm.weight", head_.norm_w, head_grads_.norm_w, ParamKind::norm);
            append_param(params_, "", "head_norm.bias", head_.norm_b, head_grads_.norm_b, ParamKind::norm);
        }
        // out_bias is [N] (item i at index i - 1, as the reference stores it): a
        // view of entries 1..N of the [N + 1] vector the loss takes. Without
        // output_bias the vector stays zero (its gradient is computed and unused).
        if (cfg_.output_bias)
            params_.push_back(ParamRef<T, Memory>{"out_bias", head_.out_bias.data() + 1,
                                                  head_grads_.out_bias.data() + 1, {n}, ParamKind::bias, memory});
        if (cfg_.init_std > 0) bert_init(rng.substream(4));
    }
    BERT4Rec(const BERT4Rec&) = delete;  // params() points into the model
    BERT4Rec& operator=(const BERT4Rec&) = delete;

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] row_id_t mask_token() const { return static_cast<row_id_t>(cfg_.num_items + 1); }
    /// Every learnable tensor: item_emb.weight [N + 2, D], pos_emb.weight [L, D],
    /// emb_norm.*, blocks.<i>.{attention, norm_attention, ffn, norm_ffn}.*,
    /// head_dense.{weight [D, D], bias}, head_norm.*, out_bias [N].
    [[nodiscard]] const ParamList<T, Memory>& params() const { return params_; }
    [[nodiscard]] blocks::SequenceEmbedding<T, Memory>& embedding() { return embedding_; }
    [[nodiscard]] Stack& stack() { return stack_; }
    /// The item table [N + 2, D] (row 0 padding, row N + 1 [mask]), in Memory.
    [[nodiscard]] MatrixView<const T> item_table() const { return embedding_.params().items.cview(); }
    /// The per-item output bias, [N + 1] with entry 0 unused (always 0), in Memory.
    [[nodiscard]] VectorView<const T> out_bias() const { return head_.out_bias.cview(); }

    /// One training step's forward and backward with the cloze loss:
    /// masked_ids [B, L] (ids in [0, N + 1], [mask] = N + 1), labels [B, L]
    /// (0 = not a target, else the true item in [1, N]; only at non-padded
    /// slots), both in host memory. Zeroes and fills the gradients; returns
    /// the mean cross-entropy over the targets and their count (0 and no
    /// gradient when there is none). `step` keys the dropout masks. For one
    /// granule of a larger batch (data-parallel training): normalizer = the
    /// whole batch's targets, and the loss and gradients are this granule's share.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    losses::LossValue train_step_ce(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> masked_ids,
                                    MatrixView<const row_id_t> labels, std::uint64_t step, index_t normalizer = 0) {
        constexpr std::string_view op = "BERT4Rec::train_step_ce";
        RECBLOCKS_CHECK_SHAPE(labels.shape() == masked_ids.shape() && labels.is_contiguous(), op, ": masked_ids is ",
                              masked_ids.shape(), " and labels ", labels.shape(), " (need equal contiguous shapes)");
        check_ids(masked_ids, cfg_.num_items + 1, op);
        const index_t len = masked_ids.cols(), n = cfg_.num_items, d = cfg_.d_model;
        const index_t rows = masked_ids.rows() * len;
        host_slots_.clear();
        host_targets_.clear();
        for (index_t r = 0; r < rows; ++r) {
            const row_id_t y = labels.data()[r];
            RECBLOCKS_CHECK_INDEX(y >= 0 && y <= n, op, ": labels[", r / len, ", ", r % len, "] = ", y,
                                  " is outside [0, ", n, "] (0 = not a target)");
            if (y == 0) continue;
            RECBLOCKS_CHECK_VALUE(masked_ids.data()[r] != 0, op, ": labels[", r / len, ", ", r % len, "] = ", y,
                                  " is at a padded slot (masked_ids is 0 there)");
            host_slots_.push_back(static_cast<row_id_t>(r));
            host_targets_.push_back(y);
        }
        recblocks::zero_grads(params_);
        forward(be, pool, masked_ids, step, true);
        const index_t count = static_cast<index_t>(host_slots_.size());
        if (count == 0) return {};  // no target: no loss and no gradient, l2_emb's included
        reserve_head(count);
        const auto slots = stage_slots();
        ops::gather_rows(be, matrix_view<const T>(hidden_.data(), rows, d), slots, head_slice(head_in_, count));
        head_forward(be, count);
        auto& g = embedding_.grads();
        const auto loss = loss_(be, head_slice(head_out_, count), classes(embedding_.params().items),
                                head_.out_bias.cview(),
                                vector_view<const row_id_t>(host_targets_.data(), count),
                                head_slice(d_head_out_, count), classes(g.items), head_grads_.out_bias.view(),
                                normalizer);
        head_backward(be, count);  // d_head_in_
        dhidden_.zero();
        // The slots are distinct and dhidden_ is zero: the scatter is a copy.
        ops::scatter_add_rows(be, MatrixView<const T>(head_slice(d_head_in_, count)), slots,
                              matrix_view(dhidden_.data(), rows, d));
        stack_.backward(be, pool, dhidden_.view(), dx_.view());
        if (last_train_ && emb_dropout_.p() > 0)
            emb_dropout_.backward<T>(be, last_step_, vector_view<const T>(dx_.data(), dx_.numel()),
                                     vector_view(dx_.data(), dx_.numel()));
        emb_norm_.backward(be, matrix_view<const T>(dx_.data(), rows, d), matrix_view(demb_.data(), rows, d));
        embedding_.backward(be, pool, masked_ids, demb_.view());
        if (cfg_.l2_emb > 0) {  // + l2/2 ||E||², gradient l2 E (as SASRec)
            auto& items = embedding_.params().items;
            const auto w = vector_view<const T>(items.data(), items.numel());
            losses::LossValue total = loss;
            total.loss += 0.5 * cfg_.l2_emb * double(ops::dot(be, w, w));
            ops::axpy(be, static_cast<T>(cfg_.l2_emb), w, vector_view(g.items.data(), items.numel()));
            return total;
        }
        return loss;
    }

    /// Encoder forward: the stack's output [B, L, D] for ids [B, L] (ids in
    /// [0, N + 1], host memory), kept in hidden() until the next call. `train`
    /// enables dropout.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, std::uint64_t step, bool train) {
        embed(be, pool, ids, step, train, "BERT4Rec::forward");
        if (hidden_.shape() != x_.shape()) {
            for (auto* t : {&hidden_, &dhidden_, &dx_, &demb_}) t->resize(x_.shape());
        }
        stack_.forward(be, pool, x_.cview(), keep_.cview(), hidden_.view(), step, train);
    }
    /// The last forward's output [B, L, D], in Memory.
    [[nodiscard]] TensorView<const T, 3> hidden() const { return hidden_.cview(); }

    /// scores [R, N + 1] (in Memory) at slots `flat_slots` (b * L + t) of ids
    /// [B, L], taken as they are (no [mask] appended); column i = logit of
    /// item i, column 0 (padding) = -inf. No dropout.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_positions(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids,
                         std::span<const index_t> flat_slots, MatrixView<T> scores) {
        constexpr std::string_view op = "BERT4Rec::score_positions";
        const index_t count = static_cast<index_t>(flat_slots.size()), d = cfg_.d_model;
        RECBLOCKS_CHECK_SHAPE(scores.rows() == count && scores.cols() == cfg_.num_items + 1, op, ": scores is ",
                              scores.shape(), " but need [", count, ", ", cfg_.num_items + 1, "]");
        forward(be, pool, ids, 0, false);
        const index_t rows = ids.rows() * ids.cols();
        host_slots_.clear();
        for (index_t i = 0; i < count; ++i) {
            const index_t r = flat_slots[static_cast<std::size_t>(i)];
            RECBLOCKS_CHECK_INDEX(r >= 0 && r < rows, op, ": slot ", r, " is outside [0, ", rows, ")");
            host_slots_.push_back(static_cast<row_id_t>(r));
        }
        if (count == 0) return;
        reserve_head(count);
        ops::gather_rows(be, matrix_view<const T>(hidden_.data(), rows, d), stage_slots(), head_slice(head_in_, count));
        head_forward(be, count);
        logits(be, count, scores);
    }

    /// scores [B, N + 1] (in Memory) for the next item after each left-padded
    /// history in ids [B, L] (ids in [0, N], host memory): the history is
    /// shifted left by one slot, [mask] goes into the last slot, and column i
    /// = logit of item i at that [mask]; column 0 (padding) = -inf.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_all(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> scores) {
        stage_queries(ids);
        score_all_staged(be, pool, scores);
    }

    /// Host phase of score_all(): checks ids [B, L] (items, host memory),
    /// shifts them and appends [mask], and stages them and their masks.
    void stage_queries(MatrixView<const row_id_t> ids) {
        constexpr std::string_view op = "BERT4Rec::stage_queries";
        const index_t bsz = ids.rows(), len = cfg_.max_len;
        check_ids(ids, cfg_.num_items, op);
        if (shifted_.extent(0) != bsz) shifted_.resize(Shape<2>{{bsz, len}});
        for (index_t b = 0; b < bsz; ++b) {
            std::copy(ids.row(b) + 1, ids.row(b) + len, shifted_.view().row(b));
            shifted_(b, len - 1) = mask_token();
            if (cfg_.history_drops_oldest && ids(b, 0) == 0) {  // the shift dropped padding: drop the oldest item
                row_id_t* row = shifted_.view().row(b);
                for (index_t t = 0; t + 1 < len; ++t)
                    if (row[t] != 0) {
                        row[t] = 0;
                        break;
                    }
            }
        }
        stage_embedding(shifted_.cview(), op);
        stack_.stage(keep_.cview());
        reserve_head(bsz);
    }

    /// Device phase of score_all() for the staged queries: scores [B, N + 1] in Memory.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_all_staged(const Be& be, ThreadPool& pool, MatrixView<T> scores) {
        const index_t bsz = embedding_.staged_rows();
        RECBLOCKS_CHECK_SHAPE(scores.rows() == bsz && scores.cols() == cfg_.num_items + 1, "BERT4Rec::score_all: scores is ",
                              scores.shape(), " but need [", bsz, ", ", cfg_.num_items + 1, "]");
        // Only the [mask] slot is read: the last block computes that row alone.
        embed_staged(be, pool, 0, false);
        stack_.forward_last_staged(be, pool, x_.cview(), head_slice(head_in_, bsz));
        head_forward(be, bsz);
        logits(be, bsz, scores);
    }

private:
    struct Head {
        explicit Head(Memory memory)
            : dense_w(memory), dense_b(memory), norm_w(memory), norm_b(memory), out_bias(memory) {}
        Matrix<T, Memory> dense_w;  ///< [D, D] (nn.Linear: [out, in])
        Vector<T, Memory> dense_b, norm_w, norm_b;
        Vector<T, Memory> out_bias;  ///< [N + 1]; entry 0 unused
    };

    /// x_ = Drop(LN_emb(E[ids] + P)) and keep_ for ids [B, L] (ids in [0, N + 1]).
    template <class Be>
    void embed(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, std::uint64_t step, bool train,
               std::string_view op) {
        stage_embedding(ids, op);
        embed_staged(be, pool, step, train);
    }
    /// Host part of embed(): checks ids, sizes the scratch, fills keep_ and stages the embedding's input.
    void stage_embedding(MatrixView<const row_id_t> ids, std::string_view op) {
        check_ids(ids, cfg_.num_items + 1, op);
        const index_t bsz = ids.rows(), len = ids.cols(), d = cfg_.d_model;
        if (x_.extent(0) != bsz) {
            emb_.resize(Shape<3>{{bsz, len, d}});
            x_.resize(emb_.shape());
            keep_.resize(Shape<2>{{bsz, len}});
        }
        for (index_t i = 0; i < bsz * len; ++i) keep_.data()[i] = static_cast<std::uint8_t>(ids.data()[i] != 0);
        embedding_.stage(ids);
    }
    /// Backend part of embed() for the staged ids.
    template <class Be>
    void embed_staged(const Be& be, ThreadPool& pool, std::uint64_t step, bool train) {
        const index_t rows = emb_.extent(0) * emb_.extent(1), d = cfg_.d_model;
        embedding_.forward_staged(be, pool, emb_.view(), step, false);
        emb_norm_.forward(be, matrix_view<const T>(emb_.data(), rows, d), matrix_view(x_.data(), rows, d));
        last_train_ = train;
        last_step_ = step;
        if (train && emb_dropout_.p() > 0)
            emb_dropout_.forward<T>(be, step, vector_view<const T>(x_.data(), x_.numel()), vector_view(x_.data(), x_.numel()));
    }

    static Config validated(Config c) {
        RECBLOCKS_CHECK_VALUE(c.num_items >= 1 && c.max_len >= 1 && c.d_model >= 1 && c.num_blocks >= 1 && c.heads >= 1,
                              "BERT4Rec: num_items, max_len, d_model, num_blocks and heads must be >= 1, got ",
                              c.num_items, ", ", c.max_len, ", ", c.d_model, ", ", c.num_blocks, ", ", c.heads);
        RECBLOCKS_CHECK_VALUE(c.inner >= 0 && c.init_std >= 0 && c.dropout >= 0 && c.dropout < 1,
                              "BERT4Rec: need inner >= 0, init_std >= 0, dropout in [0, 1); got ", c.inner, ", ",
                              c.init_std, ", ", c.dropout);
        RECBLOCKS_CHECK_VALUE(std::isfinite(c.l2_emb) && c.l2_emb >= 0, "BERT4Rec: l2_emb must be finite and >= 0, got ",
                              c.l2_emb);
        if (c.inner == 0) c.inner = 4 * c.d_model;
        return c;
    }

    static typename Stack::Config stack_config(const Config& c) {
        typename Stack::Config s;
        s.block = {c.d_model, c.heads, c.inner, Activation::gelu, c.dropout, c.attention_dropout, c.ln_eps};
        s.block.ffn_hidden_dropout = 0.0;  // BERT: no dropout inside the feed-forward
        s.num_blocks = c.num_blocks;
        s.final_norm = false;
        s.mask_padding_keys = true;
        s.zero_padded_positions = false;
        return s;
    }

    /// BERT's initialisation: truncated N(0, init_std²) for weights and tables,
    /// zero linear biases. Drawn on the host, copied once into each tensor's memory.
    void bert_init(const Rng& rng) {
        truncated_normal_init(params_, rng, cfg_.init_std);
        auto& items = embedding_.params().items;  // padding row
        items.memory().zero(items.data(), static_cast<std::size_t>(cfg_.d_model) * sizeof(T));
    }

    void check_ids(MatrixView<const row_id_t> ids, index_t max_id, std::string_view op) const {
        RECBLOCKS_CHECK_SHAPE(ids.cols() == cfg_.max_len && ids.rows() >= 1 && ids.is_contiguous(), op, ": ids is ",
                              ids.shape(), " but must be contiguous [B >= 1, max_len = ", cfg_.max_len, "]");
        for (index_t i = 0, n = ids.numel(); i < n; ++i)
            RECBLOCKS_CHECK_INDEX(ids.data()[i] >= 0 && ids.data()[i] <= max_id, op, ": ids[", i / ids.cols(), ", ",
                                  i % ids.cols(), "] = ", ids.data()[i], " is outside [0, ", max_id, "]",
                                  max_id == cfg_.num_items ? " (items; [mask] is added by the model)"
                                                           : " (items and [mask] = N + 1)");
    }

    /// Rows 0..N of a table [N + 2, D]: the loss's classes (padding row 0 is never a target; [mask] is excluded).
    MatrixView<T> classes(Matrix<T, Memory>& items) { return matrix_view(items.data(), cfg_.num_items + 1, cfg_.d_model); }
    MatrixView<const T> classes(const Matrix<T, Memory>& items) const {
        return matrix_view<const T>(items.data(), cfg_.num_items + 1, cfg_.d_model);
    }
    static MatrixView<T> head_slice(Matrix<T, Memory>& m, index_t rows) {
        return matrix_view(m.data(), rows, m.extent(1));
    }

    /// Copies host_slots_ (rows of the flattened [B * L, D] hidden states) into
    /// the front of slots_, which only grows; returns that prefix.
    VectorView<const row_id_t> stage_slots() {
        const auto n = static_cast<index_t>(host_slots_.size());
        if (slots_.numel() < n) slots_.resize(Shape<1>{{n}});
        slots_.memory().upload(slots_.data(), host_slots_.data(), host_slots_.size() * sizeof(row_id_t));
        return vector_view<const row_id_t>(slots_.data(), n);
    }

    /// Head scratch for `rows` rows; grows only.
    void reserve_head(index_t rows) {
        if (head_in_.extent(0) >= rows) return;
        const index_t d = cfg_.d_model;
        for (auto* m : {&head_in_, &head_pre_, &head_act_, &head_out_, &d_head_out_, &d_head_act_, &d_head_in_})
            m->resize(Shape<2>{{rows, d}});
        head_mean_.resize(Shape<1>{{rows}});
        head_rstd_.resize(Shape<1>{{rows}});
    }

    /// head_out_[:rows] = LN(GELU(head_in_[:rows] Wᵀ + b)).
    template <class Be>
    void head_forward(const Be& be, index_t rows) {
        if (!cfg_.output_head) {
            ops::copy(be, MatrixView<const T>(head_slice(head_in_, rows)), head_slice(head_out_, rows));
            return;
        }
        auto pre = head_slice(head_pre_, rows), act = head_slice(head_act_, rows);
        ops::broadcast_rows(be, head_.dense_b.cview(), T(0), pre);
        ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(head_slice(head_in_, rows)), head_.dense_w.cview(),
                  T(1), pre);
        ops::activation_forward(be, Activation::gelu, MatrixView<const T>(pre), act);
        ops::layer_norm_forward(be, MatrixView<const T>(act), head_.norm_w.cview(), head_.norm_b.cview(),
                                static_cast<T>(cfg_.ln_eps), head_slice(head_out_, rows),
                                vector_view(head_mean_.data(), rows), vector_view(head_rstd_.data(), rows));
    }

    /// From d_head_out_[:rows]: parameter gradients added, d_head_in_[:rows] written.
    template <class Be>
    void head_backward(const Be& be, index_t rows) {
        if (!cfg_.output_head) {
            ops::copy(be, MatrixView<const T>(head_slice(d_head_out_, rows)), head_slice(d_head_in_, rows));
            return;
        }
        auto dact = head_slice(d_head_act_, rows);
        ops::layer_norm_backward(be, MatrixView<const T>(head_slice(head_act_, rows)), head_.norm_w.cview(),
                                 vector_view<const T>(head_mean_.data(), rows), vector_view<const T>(head_rstd_.data(), rows),
                                 MatrixView<const T>(head_slice(d_head_out_, rows)), dact, head_grads_.norm_w.view(),
                                 head_grads_.norm_b.view());
        ops::activation_backward(be, Activation::gelu, MatrixView<const T>(head_slice(head_pre_, rows)),
                                 MatrixView<const T>(dact), dact);
        ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(dact),
                  MatrixView<const T>(head_slice(head_in_, rows)), T(1), head_grads_.dense_w.view());
        blocks::detail::add_column_sums(be, MatrixView<const T>(dact), head_grads_.dense_b.view(), sums_);
        ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(dact), head_.dense_w.cview(), T(0),
                  head_slice(d_head_in_, rows));
    }

    /// scores [rows, N + 1] from head_out_[:rows]: h · E[1..N]ᵀ + out_bias, column 0 = -inf.
    template <class Be>
    void logits(const Be& be, index_t rows, MatrixView<T> scores) {
        const index_t n = cfg_.num_items, d = cfg_.d_model;
        const auto items = matrix_view<const T>(embedding_.params().items.data() + d, n, d);
        const auto item_scores = matrix_view(scores.data() + 1, rows, n, scores.ld());
        ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(head_slice(head_out_, rows)), items, T(0),
                  item_scores);
        ops::broadcast_rows(be, vector_view<const T>(head_.out_bias.data() + 1, n), T(1), item_scores);
        ops::broadcast_rows(be, neg_inf_.cview(), T(0), MatrixView<T>(scores.data(), Shape<2>{{rows, 1}}, {scores.ld(), 1}));
    }

    Config cfg_;
    blocks::SequenceEmbedding<T, Memory> embedding_;
    blocks::LayerNorm<T, Memory> emb_norm_;
    blocks::Dropout emb_dropout_;
    Stack stack_;
    Head head_, head_grads_;
    ParamList<T, Memory> params_;
    losses::SoftmaxCrossEntropy<T, Memory> loss_;
    Tensor<T, 3, Memory> emb_, x_, hidden_, dhidden_, dx_, demb_;
    Matrix<std::uint8_t> keep_;  // host: the stack copies it where it computes
    Matrix<T, Memory> head_in_, head_pre_, head_act_, head_out_, d_head_out_, d_head_act_, d_head_in_;
    Vector<T, Memory> head_mean_, head_rstd_, sums_;
    Vector<row_id_t, Memory> slots_;  // rows of the flattened hidden states the head reads
    Vector<T, Memory> neg_inf_;       // [1]: the padding column's score
    std::vector<row_id_t> host_slots_, host_targets_;
    Matrix<row_id_t> shifted_;
    std::uint64_t last_step_ = 0;
    bool last_train_ = false;
};

}  // namespace models
RECBLOCKS_NAMESPACE_END
