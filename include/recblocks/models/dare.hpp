#pragma once
// Two-stage long-sequence target attention with decoupled embeddings (DARE,
// Feng et al., ICLR 2025; thuml/DARE din_pytorch.py semantics).
//
// For a target item t and a history h_1..h_n (n up to ~10,000 behaviour ids):
//
//   stage 1, search:    l_j = <E_att(t), E_att(h_j)> / sqrt(d_a)  for every j;
//                       keep the top_k positions (ties: higher logit, then earlier position)
//   stage 2, aggregate: w = softmax(l over the kept positions);  u = Σ w_j E_repr(h_j)
//   head:               z = MLP([E_repr(t), u, E_repr(t) ⊙ u])   (hidden layers ReLU, one logit)
//   loss:               mean binary cross-entropy with logits
//
// Policy decoupled: E_att [N, d_a] and E_repr [N, d_r] are two tables
// (blocks::DecoupledEmbedding). Policy coupled (the baseline): one table [N, d_r]
// serves both roles (d_a = d_r), everything else identical, so the two compare
// on equal terms.
//
// backward() reaches everything learned: the MLP, E_repr (target and kept
// behaviours) and, through the kept logits, E_att(t) and E_att(h_j). The
// selection is piecewise constant: no gradient flows through which positions
// were kept.
//
// Every step is a backend call on the whole batch (ops/target_attention.hpp:
// search_segments, attend_rows and its adjoint; gathers, scatters, gemm,
// softmax, bce_with_logits), so one code path runs on the CPU and on a GPU.
// Memory is where the tables, the MLP, gradients and activations live (host by
// default, CudaMemory for backend::Cuda: construct with memory_of(gpu)). A
// batch (targets, offsets, histories, labels) comes from the data pipeline in
// host memory: it is checked there and copied into Memory once per call. A
// sample's search result depends only on its own history, not on the batch or
// the thread count (for a given ISA).
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/decoupled_embedding.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/logistic_loss.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/target_attention.hpp"
#include "recblocks/params/parameter_list.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

enum class EmbeddingPolicy : std::uint8_t { coupled, decoupled };

/// Stage 1 alone for one target on a host backend: the top k of l_j = scale *
/// <query, table[history[j]]> over j in [0, n), best first (ties: earlier
/// position). Writes k logits and k positions into history; `scores` is
/// scratch of at least n entries. Ids must already be validated (the primitive
/// is called directly: no second pass over the history). Throws ValueError if a
/// score is NaN. DareModel runs the same primitive on a whole batch.
template <class Be, class T>
    requires(ops::has_target_attention<Be, T> && host_memory_v<Be>)
void dare_search(const Be& be, MatrixView<const T> table, std::span<const row_id_t> history, const T* query,
                 index_t k, T scale, T* scores, T* top_logits, row_id_t* top_positions) {
    const index_t n = static_cast<index_t>(history.size());
    const index_t offsets[2] = {0, n};
    const index_t nan_segment = Primitives<Be>::template search_segments<T>(
        be, table, vector_view(history.data(), n), vector_view<const index_t>(offsets, 2),
        matrix_view(query, 1, table.cols()), scale, k, vector_view(scores, n), matrix_view(top_logits, 1, k),
        matrix_view(top_positions, 1, k), MatrixView<row_id_t>{});
    RECBLOCKS_CHECK_VALUE(nan_segment < 0, "models::dare_search: a search logit is NaN (non-finite embeddings?)");
}

/// DareModel's configuration (the same for every element type and memory space).
struct DareConfig {
    index_t num_items = 0;
    index_t attention_dim = 16;        ///< d_a (decoupled only; coupled uses representation_dim)
    index_t representation_dim = 64;   ///< d_r
    index_t top_k = 20;                ///< behaviours kept by the search (DARE's scripts: 20)
    std::vector<index_t> hidden{200, 80};
    EmbeddingPolicy policy = EmbeddingPolicy::decoupled;
    double init_std = 0.05;
    index_t max_history = 10000;
};

/// A DARE batch in compressed rows, in host memory: sample i's history is
/// history[history_offsets[i] .. history_offsets[i + 1]).
struct DareBatch {
    std::span<const row_id_t> targets;          ///< [B]
    std::span<const index_t> history_offsets;   ///< [B + 1], starts at 0, non-decreasing
    std::span<const row_id_t> history;          ///< concatenated behaviour ids
};

template <class T, MemorySpace Memory = HostMemory>
class DareModel {
public:
    using Embedding = blocks::DecoupledEmbedding<T, Memory>;
    using Table = typename Embedding::Table;

    using Config = DareConfig;
    using Batch = DareBatch;

    DareModel(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(std::move(cfg)),
          emb_(typename Embedding::Config{cfg_.num_items, attention_dim_of(cfg_), cfg_.representation_dim, cfg_.init_std},
               rng.substream(0), memory),
          memory_(memory), targets_(memory), history_(memory), offsets_(memory), labels_(memory), q_(memory),
          scores_(memory), sel_logit_(memory), w_(memory), dw_(memory), dl_(memory), sel_pos_(memory), sel_ids_(memory),
          v_(memory), a_(memory), dv_(memory), da_(memory), input_(memory), dinput_(memory), et_(memory), u_(memory), gt_(memory), du_(memory),
          dq_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg_.top_k >= 1, "DareModel: top_k must be >= 1, got ", cfg_.top_k);
        RECBLOCKS_CHECK_VALUE(cfg_.max_history >= cfg_.top_k, "DareModel: max_history (", cfg_.max_history,
                              ") must be >= top_k (", cfg_.top_k, ")");
        std::vector<index_t> widths{3 * cfg_.representation_dim};
        for (index_t h : cfg_.hidden) {
            RECBLOCKS_CHECK_VALUE(h >= 1, "DareModel: hidden widths must be >= 1, got ", h);
            widths.push_back(h);
        }
        widths.push_back(1);
        layers_.reserve(widths.size() - 1);
        for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
            Layer& L = layers_.emplace_back(memory);
            const index_t in = widths[l], out = widths[l + 1];
            L.w.resize(Shape<2>{{out, in}});
            L.b.resize(Shape<1>{{out}});
            L.gw.resize(L.w.shape());
            L.gb.resize(L.b.shape());
            // nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias (drawn on the host, copied once).
            const double bound = 1.0 / std::sqrt(double(in));
            const Rng rw = rng.substream(100 + 2 * l), rb = rng.substream(101 + 2 * l);
            fill_from_host(L.w, [&](index_t i) { return T(bound * (2 * rw.uniform_double(std::uint64_t(i)) - 1)); });
            fill_from_host(L.b, [&](index_t i) { return T(bound * (2 * rb.uniform_double(std::uint64_t(i)) - 1)); });
        }
        // The learnable tensors, in a fixed order (the coupled policy has no separate attention table).
        if (decoupled()) {
            append_param(params_, "embedding.", "attention.weight", emb_.table(Table::attention),
                         emb_.grad(Table::attention), ParamKind::embedding);
        }
        append_param(params_, "embedding.", "representation.weight", emb_.table(Table::representation),
                     emb_.grad(Table::representation), ParamKind::embedding);
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            const std::string p = "mlp." + std::to_string(l) + ".";
            append_param(params_, p, "weight", layers_[l].w, layers_[l].gw, ParamKind::weight);
            append_param(params_, p, "bias", layers_[l].b, layers_[l].gb, ParamKind::bias);
        }
    }
    DareModel(const DareModel&) = delete;  // params() points into the model
    DareModel& operator=(const DareModel&) = delete;

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] bool decoupled() const { return cfg_.policy == EmbeddingPolicy::decoupled; }
    [[nodiscard]] index_t attention_dim() const { return attention_dim_of(cfg_); }
    [[nodiscard]] Embedding& embedding() { return emb_; }
    /// Names (PyTorch-style), values and gradients of every learned tensor.
    [[nodiscard]] const ParamList<T, Memory>& params() const { return params_; }
    void zero_grads() { recblocks::zero_grads(params_); }

    /// The table the search reads: E_att (decoupled) or E_repr (coupled).
    [[nodiscard]] const Matrix<T, Memory>& attention_table() const {
        return emb_.table(decoupled() ? Table::attention : Table::representation);
    }

    /// The logits [B] of a batch, left in logits() (Memory); keeps what backward() needs.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, const Batch& batch) {
        const index_t B = validate(batch);
        const index_t k = cfg_.top_k, dr = cfg_.representation_dim;
        stage(batch);
        resize_state(B, static_cast<index_t>(batch.history.size()));
        const auto att = attention_table().cview();
        const auto repr = emb_.table(Table::representation).cview();
        const T scale = T(1) / std::sqrt(T(attention_dim()));
        // Stage 1: every behaviour's logit against its target's E_att row, the top k per sample.
        ops::gather_rows(be, att, targets_.cview(), q_.view());
        // The primitive directly: validate() has checked ids and offsets (no second pass over the history).
        const index_t nan_sample = Primitives<Be>::template search_segments<T>(
            be, att, history_.cview(), offsets_.cview(), q_.cview(), scale, k, scores_.view(), sel_logit_.view(),
            sel_pos_.view(), sel_ids_.view());
        RECBLOCKS_CHECK_VALUE(nan_sample < 0, "DareModel::forward: a search logit of sample ", nan_sample,
                              " is NaN (non-finite embeddings?)");
        // Stage 2: softmax over the kept logits, u = Σ w_j E_repr(kept j); x = [E_repr(t), u, E_repr(t) ⊙ u].
        ops::softmax_rows(be, sel_logit_.cview(), w_.view());
        ops::gather_rows(be, repr, kept_ids(), v_.view());
        const auto x = input_.view();
        ops::gather_rows(be, repr, targets_.cview(), et_.view());
        ops::attend_rows(be, w_.cview(), v_.cview(), u_.view());
        ops::multiply(be, et_.cview(), u_.cview(), cols(x, 2 * dr, 3 * dr));
        ops::copy(be, et_.cview(), cols(x, 0, dr));
        ops::copy(be, u_.cview(), cols(x, dr, 2 * dr));
        // MLP: z_l = a_{l-1} W_lᵀ + b_l; ReLU on every layer but the last.
        MatrixView<const T> a = input_.cview();
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            Layer& L = layers_[l];
            ops::broadcast_rows(be, L.b.cview(), T(0), L.z.view());
            ops::gemm(be, Trans::no, Trans::yes, T(1), a, L.w.cview(), T(1), L.z.view());
            if (l + 1 < layers_.size()) {
                ops::activation_forward(be, Activation::relu, L.z.cview(), L.a.view());
                a = L.a.cview();
            }
        }
    }

    /// forward(), then the logits copied into `logits` [B] (host memory).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, const Batch& batch, std::span<T> logits) {
        RECBLOCKS_CHECK_SHAPE(logits.size() == batch.targets.size(), "DareModel::forward: logits has ", logits.size(),
                              " entries for a batch of ", batch.targets.size());
        forward(be, batch);
        memory_.download(logits.data(), layers_.back().z.data(), logits.size() * sizeof(T));
    }

    /// The last forward's logits [B], in Memory.
    [[nodiscard]] VectorView<const T> logits() const {
        const auto& z = layers_.back().z;
        return vector_view(z.data(), z.extent(0));
    }

    /// Mean binary cross-entropy with logits of the last forward's logits
    /// against labels [B] in [0, 1] (host memory), on the backend.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    [[nodiscard]] double loss(const Be& be, std::span<const T> labels) {
        const index_t B = stage_labels("DareModel::loss", labels);
        return ops::bce_with_logits(be, logits(), labels_.cview(), T(1) / T(B), loss_grad()) / double(B);
    }

    /// Adds d(mean BCE)/d(param) for the last forward into the gradients.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, std::span<const T> labels) {
        const index_t B = stage_labels("DareModel::backward", labels);
        const index_t dr = cfg_.representation_dim;
        // dz = (sigmoid(z) - y) / B on the output layer.
        (void)ops::bce_with_logits(be, logits(), labels_.cview(), T(1) / T(B), loss_grad());
        for (std::size_t l = layers_.size(); l-- > 0;) {
            Layer& L = layers_[l];
            const MatrixView<const T> a_in = l == 0 ? input_.cview() : layers_[l - 1].a.cview();
            ops::gemm(be, Trans::yes, Trans::no, T(1), L.dz.cview(), a_in, T(1), L.gw.view());
            blocks::detail::add_column_sums(be, L.dz.cview(), L.gb.view(), L.sums);
            const MatrixView<T> da_in = l == 0 ? dinput_.view() : layers_[l - 1].dz.view();
            ops::gemm(be, Trans::no, Trans::no, T(1), L.dz.cview(), L.w.cview(), T(0), da_in);
            if (l > 0)
                ops::activation_backward(be, Activation::relu, layers_[l - 1].z.cview(), MatrixView<const T>(da_in),
                                         da_in);
        }
        // Stage 2: x = [e_t, u, e_t ⊙ u].
        const Table att_role = decoupled() ? Table::attention : Table::representation;
        auto& g_att = emb_.grad(att_role);
        auto& g_repr = emb_.grad(Table::representation);
        const MatrixView<const T> dx = dinput_.cview(), et = et_.cview(), u = u_.cview();
        const auto dx0 = cols(dx, 0, dr), dx1 = cols(dx, dr, 2 * dr), dx2 = cols(dx, 2 * dr, 3 * dr);
        // d e_t = dx0 + dx2 ⊙ u
        ops::multiply(be, dx2, u, gt_.view());
        ops::add(be, gt_.cview(), dx0, gt_.view());
        ops::scatter_add_rows(be, gt_.cview(), targets_.cview(), g_repr.view());
        // du = dx1 + dx2 ⊙ e_t; d E_repr(kept j) = w_j du; d w_j = <du, E_repr(kept j)>
        ops::multiply(be, dx2, et, du_.view());
        ops::add(be, du_.cview(), dx1, du_.view());
        ops::attend_rows_backward(be, w_.cview(), v_.cview(), du_.cview(), dw_.view(), dv_.view());
        ops::scatter_add_rows(be, dv_.cview(), kept_ids(), g_repr.view());
        // Through the softmax to the kept logits, then (d logit = g) to the query and the kept E_att rows:
        // d q = Σ_j g_j E_att(kept j),  d E_att(kept j) = g_j q.
        ops::softmax_rows_backward(be, w_.cview(), dw_.cview(), dl_.view());
        const T scale = T(1) / std::sqrt(T(attention_dim()));
        ops::scale_rows(be, dl_.cview(), VectorView<const T>{}, scale, dl_.view());
        ops::gather_rows(be, attention_table().cview(), kept_ids(), a_.view());
        ops::attend_rows(be, dl_.cview(), a_.cview(), dq_.view());
        ops::attend_rows_backward(be, dl_.cview(), a_.cview(), q_.cview(), MatrixView<T>{}, da_.view());
        ops::scatter_add_rows(be, da_.cview(), kept_ids(), g_att.view());
        ops::scatter_add_rows(be, dq_.cview(), targets_.cview(), g_att.view());
    }

    /// The last forward's kept behaviours [B, k], best first, in Memory:
    /// positions in each sample's history, their ids and their search logits.
    [[nodiscard]] MatrixView<const row_id_t> kept_positions() const { return sel_pos_.cview(); }
    [[nodiscard]] MatrixView<const row_id_t> kept_behaviours() const { return sel_ids_.cview(); }
    [[nodiscard]] MatrixView<const T> kept_logits() const { return sel_logit_.cview(); }
    /// Sample i's row of the above (host memory only).
    [[nodiscard]] std::span<const row_id_t> kept_positions(index_t i) const
        requires(Memory::host_accessible)
    {
        return {sel_pos_.data() + i * cfg_.top_k, std::size_t(cfg_.top_k)};
    }
    [[nodiscard]] std::span<const T> kept_logits(index_t i) const
        requires(Memory::host_accessible)
    {
        return {sel_logit_.data() + i * cfg_.top_k, std::size_t(cfg_.top_k)};
    }

private:
    struct Layer {
        explicit Layer(Memory m) : w(m), gw(m), z(m), a(m), dz(m), b(m), gb(m), sums(m) {}
        Matrix<T, Memory> w, gw, z, a, dz;
        Vector<T, Memory> b, gb, sums;
    };

    static index_t attention_dim_of(const Config& c) {
        return c.policy == EmbeddingPolicy::decoupled ? c.attention_dim : c.representation_dim;
    }
    template <class U>
    static MatrixView<U> cols(MatrixView<U> m, index_t a, index_t b) {
        return MatrixView<U>(m.data() + a, Shape<2>{{m.rows(), b - a}}, {m.ld(), 1});
    }
    [[nodiscard]] VectorView<const row_id_t> kept_ids() const {
        return vector_view<const row_id_t>(sel_ids_.data(), sel_ids_.numel());
    }
    [[nodiscard]] VectorView<T> loss_grad() {
        auto& dz = layers_.back().dz;
        return vector_view(dz.data(), dz.extent(0));
    }

    /// Every check before any work: shapes, offsets, lengths against k, ids.
    index_t validate(const Batch& batch) const {
        constexpr std::string_view op = "DareModel::forward";
        const index_t B = static_cast<index_t>(batch.targets.size());
        RECBLOCKS_CHECK_SHAPE(B >= 1, op, ": empty batch");
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(batch.history_offsets.size()) == B + 1, op, ": history_offsets has ",
                              batch.history_offsets.size(), " entries for ", B, " targets; expected ", B + 1);
        RECBLOCKS_CHECK_SHAPE(batch.history_offsets[0] == 0 &&
                                  batch.history_offsets[std::size_t(B)] == static_cast<index_t>(batch.history.size()),
                              op, ": history_offsets must start at 0 and end at the history length ",
                              batch.history.size(), ", got ", batch.history_offsets[0], " and ",
                              batch.history_offsets[std::size_t(B)]);
        for (index_t i = 0; i < B; ++i) {
            const index_t n = batch.history_offsets[std::size_t(i + 1)] - batch.history_offsets[std::size_t(i)];
            RECBLOCKS_CHECK_SHAPE(n >= 0, op, ": history_offsets decrease at sample ", i);
            RECBLOCKS_CHECK_VALUE(n >= 1, op, ": sample ", i, " has an empty history");
            RECBLOCKS_CHECK_VALUE(n >= cfg_.top_k, op, ": sample ", i, " has ", n, " behaviours but top_k is ",
                                  cfg_.top_k, " (k must not exceed the history)");
            RECBLOCKS_CHECK_VALUE(n <= cfg_.max_history, op, ": sample ", i, " has ", n,
                                  " behaviours; max_history is ", cfg_.max_history);
        }
        emb_.check_ids("DareModel::forward (targets)", batch.targets.data(), B);
        emb_.check_ids("DareModel::forward (history)", batch.history.data(), static_cast<index_t>(batch.history.size()));
        return B;
    }

    /// Checks labels [B] in [0, 1] on the host and copies them into Memory.
    index_t stage_labels(std::string_view op, std::span<const T> labels) {
        const index_t B = layers_.back().z.extent(0);
        RECBLOCKS_CHECK_SHAPE(B >= 1, op, ": call forward first");
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(labels.size()) == B, op, ": ", labels.size(),
                              " labels for a batch of ", B);
        for (std::size_t i = 0; i < labels.size(); ++i)
            RECBLOCKS_CHECK_VALUE(labels[i] >= T(0) && labels[i] <= T(1), op, ": label ", i, " is ", labels[i],
                                  "; labels must be in [0, 1]");
        upload(labels.data(), B, labels_);
        return B;
    }

    /// Copies the batch (host memory) into Memory: one copy per array.
    void stage(const Batch& batch) {
        upload(batch.targets.data(), static_cast<index_t>(batch.targets.size()), targets_);
        upload(batch.history.data(), static_cast<index_t>(batch.history.size()), history_);
        upload(batch.history_offsets.data(), static_cast<index_t>(batch.history_offsets.size()), offsets_);
    }
    template <class U>
    static void upload(const U* host, index_t n, Vector<U, Memory>& dst) {
        if (dst.numel() != n) dst.resize(Shape<1>{{n}});
        dst.memory().upload(dst.data(), host, static_cast<std::size_t>(n) * sizeof(U));
    }

    /// Sizes the activations for B samples with n behaviours in all (reallocating only on a change).
    void resize_state(index_t B, index_t n) {
        const index_t k = cfg_.top_k, da = attention_dim(), dr = cfg_.representation_dim;
        if (scores_.numel() != n) scores_.resize(Shape<1>{{n}});
        if (input_.extent(0) == B) return;
        for (Matrix<T, Memory>* m : {&sel_logit_, &w_, &dw_, &dl_}) m->resize(Shape<2>{{B, k}});
        sel_pos_.resize(Shape<2>{{B, k}});
        sel_ids_.resize(Shape<2>{{B, k}});
        q_.resize(Shape<2>{{B, da}});
        dq_.resize(Shape<2>{{B, da}});
        v_.resize(Shape<2>{{B * k, dr}});
        dv_.resize(Shape<2>{{B * k, dr}});
        a_.resize(Shape<2>{{B * k, da}});
        da_.resize(Shape<2>{{B * k, da}});
        input_.resize(Shape<2>{{B, 3 * dr}});
        dinput_.resize(Shape<2>{{B, 3 * dr}});
        for (Matrix<T, Memory>* m : {&et_, &u_, &gt_, &du_}) m->resize(Shape<2>{{B, dr}});
        for (Layer& L : layers_) {
            const index_t out = L.w.extent(0);
            for (Matrix<T, Memory>* m : {&L.z, &L.a, &L.dz}) m->resize(Shape<2>{{B, out}});
        }
    }

    Config cfg_;
    Embedding emb_;
    Memory memory_;
    std::vector<Layer> layers_;
    ParamList<T, Memory> params_;
    Vector<row_id_t, Memory> targets_, history_;
    Vector<index_t, Memory> offsets_;
    Vector<T, Memory> labels_;
    Matrix<T, Memory> q_;                       // the targets' E_att rows [B, d_a]
    Vector<T, Memory> scores_;                  // every behaviour's search logit [n]
    Matrix<T, Memory> sel_logit_, w_, dw_, dl_;  // kept logits, softmax weights and their gradients [B, k]
    Matrix<row_id_t, Memory> sel_pos_, sel_ids_;  // kept positions and ids [B, k]
    Matrix<T, Memory> v_, a_, dv_, da_;         // kept E_repr / E_att rows and their gradients [B k, d]
    Matrix<T, Memory> input_, dinput_;          // the MLP's input [B, 3 d_r] and its gradient
    Matrix<T, Memory> et_, u_;                  // E_repr(t) and u [B, d_r] (the MLP input's first two thirds)
    Matrix<T, Memory> gt_, du_, dq_;            // d E_repr(t), d u [B, d_r]; d q [B, d_a]
};

}  // namespace models
RECBLOCKS_NAMESPACE_END
