#pragma once
// A generative retriever (TIGER / RecGPT style): a decoder-only transformer
// over the semantic-ID tokens of a user's history that generates the next
// item's code tuple. Built from blocks/ (SequenceEmbedding, TransformerStack
// with policies::BlockCausalMask) and losses::SoftmaxCrossEntropy; its training
// loop is train::GenerativeTrainer (train/generative_trainer.hpp).
//
// Input: item ids [B, L] (dataset ids 1..N, 0 = left padding). Item i has the
// M codes c_0(i) .. c_{M-1}(i) of SemanticIds row i - 1 (code j in [0, K_j)).
// The history is flattened to S = L·M tokens, item k's codes at positions
// k·M .. k·M + M - 1 (left padding is whole items, so item boundaries stay at
// multiples of M). Token of (level j, code c) = row 1 + off_j + c of ONE
// embedding table [1 + ΣK_j, D] (off_j = K_0 + .. + K_{j-1}): the per-level
// code tables are disjoint row blocks of it (level j's K_j rows), row 0 is
// padding; plus a learned positional embedding per token slot [S, D].
//
//   x = keep ⊙ Drop(E[tok] · sqrt(D) + P[slot]);  h = Stack_{BlockCausal(M)}(x)  (final LN)
//
// BlockCausalMask(M): a token sees every code of its own item and of all
// earlier items (bidirectional within an item, causal across items).
//
// Target convention (RecGPT's, chosen here): the output at the token of
// (item k, level j) predicts code j of item k + 1, over level j's codebook
// with the tied table: logits_j = h · E_jᵀ (E_j = level j's rows, unscaled).
// The training loss is Σ_j (mean over the tokens of level j with a next item
// of the cross-entropy) — a sum over levels of per-level means. Because every
// token of item k already sees all of item k, the M next-code distributions
// of the last item come from ONE forward pass and do not depend on each
// other: log p(tuple) = Σ_j log p_j(c_j). Decoding is consistent with it:
// next_code_log_probs (the decoding::NextCodeModel concept) returns the level's
// distribution of the query's last item whatever the prefix, and
// decoding::constrained_beam_search maximises the same sum over the catalogue
// trie. score_all() gives that exact score for every item (full ranking), so
// eval::evaluate_next_item works unchanged; the beam search's top-k is its
// top-k when the beam is wide enough.
//
// Shapes: ids / pos [B, L]; scores [B, N + 1] (column 0 = -inf); the decode
// context prepared by prepare_queries(ids [Q, L]) holds [Q, ΣK_j] log-probs.
//
// Memory is where parameters, gradients, activations and the loss's scratch
// live: host memory by default, CudaMemory for a model on backend::Cuda
// (construct it with memory_of(gpu)). Item ids, targets and the token map stay
// on the host (checked there, copied in once per call). Training and the
// forward pass are backend calls. The decode context is small ([Q, ΣK_j]): its
// logits are computed in Memory and copied to the host once per
// prepare_queries, where the log-softmax and the beam search's selection run;
// score_all sums those host log-probs per item and writes the scores to Memory.
// Memory: all scratch is kept and reused; after the first call of a batch
// shape nothing allocates (train_step, prepare_queries, next_code_log_probs).
// Errors: ValueError for bad configs, ShapeError for bad shapes, IndexError for
// an item id outside [0, N] and a query outside the prepared batch.
// Caveat: a user's history is its last L items (like SASRec); semantic IDs
// with collisions are fine for training and score_all (colliding items score
// the same), but a trie over them needs DuplicateIds::map_to_all.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include "recblocks/blocks/sequence_embedding.hpp"
#include "recblocks/blocks/transformer_stack.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/losses/softmax_cross_entropy.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/policies/attention_mask.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

struct GenerativeRetrieverConfig {
    index_t max_len = 50;     ///< L: history items (the token sequence is L·M long)
    index_t d_model = 64;     ///< D
    index_t num_blocks = 2;
    index_t heads = 2;
    index_t ffn_inner = 0;    ///< 0 = D
    double dropout = 0.1;
    double ln_eps = 1e-6;
};

template <class T, class Norm = policies::PreNorm, MemorySpace Memory = HostMemory>
class GenerativeRetriever {
public:
    using Config = GenerativeRetrieverConfig;
    using Stack = blocks::TransformerStack<T, policies::BlockCausalMask, Norm, Memory>;

    /// ids: the semantic IDs of the catalogue; row i - 1 belongs to dataset item i.
    GenerativeRetriever(Config cfg, const tokenizers::SemanticIds& ids, const Rng& rng, Memory memory = {})
        : cfg_(validated(cfg, ids)), levels_(ids.levels()), num_items_(ids.num_items()),
          sizes_(ids.codebook_sizes().begin(), ids.codebook_sizes().end()),
          embedding_({total_codes(ids), cfg.d_model, cfg.max_len * ids.levels(), true, blocks::PositionRows::per_slot,
                      cfg.dropout},
                     rng.substream(0), memory),
          stack_(stack_config(cfg), policies::BlockCausalMask(ids.levels()), rng.substream(1), memory),
          memory_(memory), x_(memory), hidden_(memory), dhidden_(memory), dx_(memory), dlevel_(memory),
          last_h_(memory), logits_(memory), last_rows_(memory) {
        for (index_t j = 0; j < ids.levels(); ++j) ce_.emplace_back(memory);
        offsets_.assign(static_cast<std::size_t>(levels_) + 1, 0);
        for (index_t j = 0; j < levels_; ++j)
            offsets_[static_cast<std::size_t>(j) + 1] = offsets_[static_cast<std::size_t>(j)] + sizes_[static_cast<std::size_t>(j)];
        // tokens_of_item_ [N + 1, M]: row 0 (padding) all 0.
        item_tokens_.resize(Shape<2>{{num_items_ + 1, levels_}});
        std::fill(item_tokens_.begin(), item_tokens_.end(), row_id_t{0});
        for (index_t i = 0; i < num_items_; ++i) {
            const auto c = ids.codes(i);
            for (index_t j = 0; j < levels_; ++j)
                item_tokens_(i + 1, j) = static_cast<row_id_t>(1 + offsets_[static_cast<std::size_t>(j)] + c[static_cast<std::size_t>(j)]);
        }
        embedding_.append_params("", params_);
        stack_.append_params("", params_);
    }
    GenerativeRetriever(const GenerativeRetriever&) = delete;  // params() points into the model
    GenerativeRetriever& operator=(const GenerativeRetriever&) = delete;

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] index_t levels() const { return levels_; }
    [[nodiscard]] index_t num_items() const { return num_items_; }
    [[nodiscard]] std::span<const std::int32_t> codebook_sizes() const { return sizes_; }
    /// code_emb.weight (named item_emb.weight: the SequenceEmbedding's table), pos_emb.weight, blocks.<i>.*, final_norm.*.
    [[nodiscard]] const ParamList<T, Memory>& params() const { return params_; }
    [[nodiscard]] blocks::SequenceEmbedding<T, Memory>& embedding() { return embedding_; }
    [[nodiscard]] Stack& stack() { return stack_; }

    /// Token ids [B, L·M] of item ids [B, L] (what the transformer reads).
    void tokens_of(MatrixView<const row_id_t> ids, MatrixView<row_id_t> tokens) const {
        RECBLOCKS_CHECK_SHAPE(tokens.rows() == ids.rows() && tokens.cols() == ids.cols() * levels_,
                              "GenerativeRetriever::tokens_of: tokens is ", tokens.shape(), " but ids is ", ids.shape(),
                              " (need [B, L * ", levels_, "])");
        for (index_t b = 0; b < ids.rows(); ++b)
            for (index_t k = 0; k < ids.cols(); ++k) {
                const row_id_t it = ids(b, k);
                RECBLOCKS_CHECK_INDEX(it >= 0 && it <= num_items_, "GenerativeRetriever: item id ", it, " at [", b,
                                      ", ", k, "] is outside [0, ", num_items_, "]");
                for (index_t j = 0; j < levels_; ++j) tokens(b, k * levels_ + j) = item_tokens_(it, j);
            }
    }

    /// One training step's forward and backward: ids, pos [B, L] (pos = the next
    /// item of each slot, 0 where none), both in host memory. Zeroes and fills
    /// the gradients; returns Σ_j mean CE_j and the number of (token, target) pairs.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    losses::LossValue train_step(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids,
                                 MatrixView<const row_id_t> pos, std::uint64_t step) {
        RECBLOCKS_CHECK_SHAPE(pos.shape() == ids.shape(), "GenerativeRetriever::train_step: ids is ", ids.shape(),
                              " but pos is ", pos.shape());
        const index_t bsz = ids.rows(), len = ids.cols(), rows = bsz * len * levels_, d = cfg_.d_model;
        if (targets_.extent(1) != rows) targets_.resize(Shape<2>{{levels_, rows}});
        std::fill(targets_.begin(), targets_.end(), row_id_t{0});
        for (index_t b = 0; b < bsz; ++b)
            for (index_t k = 0; k < len; ++k) {
                const row_id_t p = pos(b, k);
                RECBLOCKS_CHECK_INDEX(p >= 0 && p <= num_items_, "GenerativeRetriever::train_step: pos[", b, ", ", k,
                                      "] = ", p, " is outside [0, ", num_items_, "]");
                if (p == 0 || ids(b, k) == 0) continue;
                const index_t r = (b * len + k) * levels_;
                for (index_t j = 0; j < levels_; ++j)
                    targets_(j, r + j) = item_tokens_(p, j) - static_cast<row_id_t>(offsets_[static_cast<std::size_t>(j)]);
            }
        recblocks::zero_grads(params_);
        forward(be, pool, ids, step, true);
        if (dlevel_.extent(0) != rows) dlevel_.resize(Shape<2>{{rows, d}});
        const auto h = matrix_view<const T>(hidden_.data(), rows, d);
        const auto dh = matrix_view(dhidden_.data(), rows, d);
        dhidden_.zero();
        auto& table = embedding_.params().items;
        auto& dtable = embedding_.grads().items;
        losses::LossValue total;
        for (index_t j = 0; j < levels_; ++j) {
            const index_t off = offsets_[static_cast<std::size_t>(j)], kj = sizes_[static_cast<std::size_t>(j)];
            // Level j's view: its row 0 (the row before the level) is never a class and gets no gradient.
            const auto tj = matrix_view<const T>(table.data() + off * d, kj + 1, d);
            const auto dtj = matrix_view<T>(dtable.data() + off * d, kj + 1, d);
            const auto lv = ce_[static_cast<std::size_t>(j)](be, h, tj, VectorView<const T>{},
                                                             vector_view<const row_id_t>(targets_.view().row(j), rows),
                                                             dlevel_.view(), dtj, VectorView<T>{});
            total.loss += lv.loss;
            total.count += lv.count;
            ops::add(be, MatrixView<const T>(dh), dlevel_.cview(), dh);
        }
        stack_.backward(be, pool, dhidden_.view(), dx_.view());
        embedding_.backward(be, pool, tokens_.cview(), dx_.view());
        return total;
    }

    /// Forward pass: final hidden states [B, L·M, D] (in Memory) of ids [B, L]
    /// (host memory) in hidden().
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, std::uint64_t step, bool train) {
        prepare(ids);
        embedding_.forward(be, pool, tokens_.cview(), x_.view(), step, train);
        stack_.forward(be, pool, x_.cview(), keep_.cview(), hidden_.view(), step, train);
    }
    [[nodiscard]] TensorView<const T, 3> hidden() const { return hidden_.cview(); }

    /// Sets up the decode context of Q queries: the per-level next-code
    /// log-probabilities of each row of ids [Q, L] (no dropout), kept on the host.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void prepare_queries(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids) {
        forward(be, pool, ids, 0, false);
        const index_t q = ids.rows(), len = ids.cols() * levels_, d = cfg_.d_model, total = offsets_.back();
        const index_t widest = *std::max_element(sizes_.begin(), sizes_.end());
        if (logp_.extent(0) != q) {
            logp_.resize(Shape<2>{{q, total}});
            last_h_.resize(Shape<2>{{q, d}});
            logits_.resize(Shape<2>{{q, widest}});
            host_logits_.resize(Shape<2>{{q, widest}});
            host_rows_.resize(static_cast<std::size_t>(q));
            last_rows_.resize(Shape<1>{{q}});
        }
        const auto& table = embedding_.params().items;
        for (index_t j = 0; j < levels_; ++j) {
            const index_t off = offsets_[static_cast<std::size_t>(j)], kj = sizes_[static_cast<std::size_t>(j)];
            // Query b's level-j token of its last item: row b·len + len - M + j of the hidden states.
            for (index_t b = 0; b < q; ++b) host_rows_[static_cast<std::size_t>(b)] = static_cast<row_id_t>(b * len + len - levels_ + j);
            memory_.upload(last_rows_.data(), host_rows_.data(), host_rows_.size() * sizeof(row_id_t));
            ops::gather_rows(be, matrix_view<const T>(hidden_.data(), q * len, d), last_rows_.cview(), last_h_.view());
            auto lg = matrix_view<T>(logits_.data(), q, kj);
            ops::gemm(be, Trans::no, Trans::yes, T(1), last_h_.cview(),
                      matrix_view<const T>(table.data() + (1 + off) * d, kj, d), T(0), lg);
            memory_.download(host_logits_.data(), logits_.data(), static_cast<std::size_t>(q * kj) * sizeof(T));
            for (index_t b = 0; b < q; ++b) {
                const T* z = host_logits_.data() + b * kj;
                double mx = -std::numeric_limits<double>::infinity();
                for (index_t c = 0; c < kj; ++c) mx = std::max(mx, double(z[c]));
                double s = 0;
                for (index_t c = 0; c < kj; ++c) s += std::exp(double(z[c]) - mx);
                const double lse = mx + std::log(s);
                float* o = logp_.view().row(b) + off;
                for (index_t c = 0; c < kj; ++c) o[c] = static_cast<float>(double(z[c]) - lse);
            }
        }
        prepared_ = q;
    }
    /// Queries of the last prepare_queries().
    [[nodiscard]] index_t prepared_queries() const { return prepared_; }

    /// decoding::NextCodeModel: out [P, K_t] = level t's log-probs of each row's
    /// query (the prefix does not change them; see the header comment).
    void next_code_log_probs(const decoding::DecodeStep& step, MatrixView<float> out) const {
        const index_t t = step.level;
        RECBLOCKS_CHECK_INDEX(t >= 0 && t < levels_, "GenerativeRetriever::next_code_log_probs: level ", t,
                              " is outside [0, ", levels_, ")");
        const index_t kt = sizes_[static_cast<std::size_t>(t)], off = offsets_[static_cast<std::size_t>(t)];
        RECBLOCKS_CHECK_SHAPE(out.rows() == step.rows() && out.cols() == kt,
                              "GenerativeRetriever::next_code_log_probs: out is ", out.shape(), " but need [",
                              step.rows(), ", ", kt, "]");
        for (index_t r = 0; r < step.rows(); ++r) {
            const index_t q = step.query[static_cast<std::size_t>(r)];
            RECBLOCKS_CHECK_INDEX(q >= 0 && q < prepared_, "GenerativeRetriever::next_code_log_probs: query ", q,
                                  " is outside the prepared batch [0, ", prepared_, ")");
            const float* src = logp_.view().row(q) + off;
            std::copy(src, src + kt, out.row(r));
        }
    }

    /// scores [B, N + 1] (in Memory): column i = Σ_j log p_j(c_j(i)) of the
    /// next item; column 0 (padding) = -inf. Exact full ranking under the model.
    /// The sums are formed on the host from the decode context (B·N·M adds)
    /// and copied into Memory once when it is not the host's.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void score_all(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<T> scores) {
        RECBLOCKS_CHECK_SHAPE(scores.rows() == ids.rows() && scores.cols() == num_items_ + 1,
                              "GenerativeRetriever::score_all: scores is ", scores.shape(), " but need [", ids.rows(),
                              ", ", num_items_ + 1, "]");
        prepare_queries(be, pool, ids);
        const index_t n1 = num_items_ + 1;
        if constexpr (!Memory::host_accessible) {
            if (host_scores_.numel() < n1) host_scores_.resize(Shape<1>{{n1}});
        }
        for (index_t b = 0; b < ids.rows(); ++b) {
            T* s = Memory::host_accessible ? scores.row(b) : host_scores_.data();
            sum_item_log_probs(b, s);
            if constexpr (!Memory::host_accessible)
                memory_.upload(scores.row(b), host_scores_.data(), static_cast<std::size_t>(n1) * sizeof(T));
        }
    }

private:
    static Config validated(const Config& c, const tokenizers::SemanticIds& ids) {
        RECBLOCKS_CHECK_VALUE(c.max_len >= 1 && c.d_model >= 1 && c.num_blocks >= 1 && c.heads >= 1 &&
                                  c.d_model % c.heads == 0 && c.dropout >= 0 && c.dropout < 1,
                              "GenerativeRetriever: need max_len, d_model, num_blocks, heads >= 1, heads dividing ",
                              "d_model and dropout in [0, 1); got ", c.max_len, ", ", c.d_model, ", ", c.num_blocks,
                              ", ", c.heads, ", ", c.dropout);
        RECBLOCKS_CHECK_VALUE(ids.levels() >= 1 && ids.num_items() >= 1,
                              "GenerativeRetriever: the semantic IDs are empty (", ids.num_items(), " items, ",
                              ids.levels(), " levels)");
        return c;
    }
    static index_t total_codes(const tokenizers::SemanticIds& ids) {
        index_t s = 0;
        for (const auto k : ids.codebook_sizes()) s += k;
        RECBLOCKS_CHECK_VALUE(s < index_t{std::numeric_limits<row_id_t>::max()},
                              "GenerativeRetriever: too many codes in total (", s, ")");
        return s;
    }
    static typename Stack::Config stack_config(const Config& c) {
        typename Stack::Config s;
        s.block = {c.d_model, c.heads, c.ffn_inner == 0 ? c.d_model : c.ffn_inner, Activation::gelu, c.dropout,
                   c.dropout, c.ln_eps};
        s.num_blocks = c.num_blocks;
        s.final_norm = true;
        s.mask_padding_keys = true;
        s.zero_padded_positions = true;
        return s;
    }

    /// s [N + 1] = the item scores of prepared query b (s[0] = -inf).
    void sum_item_log_probs(index_t b, T* s) const {
        const float* lp = logp_.view().row(b) - 1;  // token t of level j is column t - 1
        s[0] = -std::numeric_limits<T>::infinity();
        for (index_t i = 1; i <= num_items_; ++i) {
            const row_id_t* tk = item_tokens_.view().row(i);
            float acc = 0;
            for (index_t j = 0; j < levels_; ++j) acc += lp[tk[j]];
            s[i] = static_cast<T>(acc);
        }
    }

    void prepare(MatrixView<const row_id_t> ids) {
        const index_t bsz = ids.rows(), len = ids.cols() * levels_;
        RECBLOCKS_CHECK_SHAPE(ids.cols() == cfg_.max_len, "GenerativeRetriever: ids is ", ids.shape(),
                              " but need [B, max_len = ", cfg_.max_len, "]");
        RECBLOCKS_CHECK_VALUE(bsz >= 1, "GenerativeRetriever: empty batch");
        if (tokens_.extent(0) != bsz) {
            tokens_.resize(Shape<2>{{bsz, len}});
            keep_.resize(Shape<2>{{bsz, len}});
            x_.resize(Shape<3>{{bsz, len, cfg_.d_model}});
            for (auto* t : {&hidden_, &dhidden_, &dx_}) t->resize(x_.shape());
        }
        tokens_of(ids, tokens_.view());
        for (index_t i = 0; i < bsz * len; ++i) keep_.data()[i] = static_cast<std::uint8_t>(tokens_.data()[i] != 0);
    }

    Config cfg_;
    index_t levels_, num_items_;
    std::vector<std::int32_t> sizes_;
    std::vector<index_t> offsets_;  // [M + 1]
    Matrix<row_id_t> item_tokens_;  // [N + 1, M], host
    blocks::SequenceEmbedding<T, Memory> embedding_;
    Stack stack_;
    Memory memory_;
    std::vector<losses::SoftmaxCrossEntropy<T, Memory>> ce_;
    ParamList<T, Memory> params_;
    Matrix<row_id_t> tokens_, targets_;  // host
    Matrix<std::uint8_t> keep_;          // host
    Tensor<T, 3, Memory> x_, hidden_, dhidden_, dx_;
    Matrix<T, Memory> dlevel_, last_h_, logits_;
    Vector<row_id_t, Memory> last_rows_;
    Matrix<T> host_logits_;
    Vector<T> host_scores_;
    std::vector<row_id_t> host_rows_;
    Matrix<float> logp_;  // host: the decode context
    index_t prepared_ = 0;
};

static_assert(decoding::NextCodeModel<GenerativeRetriever<float>>);

}  // namespace models
RECBLOCKS_NAMESPACE_END
