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
// were kept. The search runs on the backend's gathered_dot + top_k_rows
// primitives, so results are the same for a given ISA whatever the batch composition.
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "recblocks/blocks/decoupled_embedding.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/ops/gathered_dot.hpp"
#include "recblocks/ops/gemm.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace models {

enum class EmbeddingPolicy : std::uint8_t { coupled, decoupled };

/// Stage 1 alone: the top k of l_j = scale * <query, table[history[j]]> over
/// j in [0, n), best first (ties: earlier position). Writes k logits and k
/// positions into history; `scores` is scratch of at least n entries. Ids must
/// already be validated (the primitives are called directly: no second pass
/// over the history). Throws ValueError if a score is NaN.
template <class Be, class T>
    requires ops::has_gathered_dot<Be, T>
void dare_search(const Be& be, MatrixView<const T> table, std::span<const row_id_t> history, const T* query,
                 index_t k, T scale, T* scores, T* top_logits, row_id_t* top_positions) {
    const index_t n = static_cast<index_t>(history.size());
    Primitives<Be>::template gathered_dot<T>(be, table, vector_view(history.data(), n),
                                             vector_view(query, table.cols()), scale, vector_view(scores, n));
    const index_t nan_row = Primitives<Be>::template top_k_rows<T>(
        be, matrix_view<const T>(scores, 1, n), k, matrix_view(top_positions, 1, k), matrix_view(top_logits, 1, k));
    RECBLOCKS_CHECK_VALUE(nan_row < 0, "models::dare_search: a search logit is NaN (non-finite embeddings?)");
}

template <class T>
class DareModel {
public:
    using Embedding = blocks::DecoupledEmbedding<T>;
    using Table = typename Embedding::Table;

    struct Config {
        index_t num_items = 0;
        index_t attention_dim = 16;        ///< d_a (decoupled only; coupled uses representation_dim)
        index_t representation_dim = 64;   ///< d_r
        index_t top_k = 20;                ///< behaviours kept by the search (DARE's scripts: 20)
        std::vector<index_t> hidden{200, 80};
        EmbeddingPolicy policy = EmbeddingPolicy::decoupled;
        double init_std = 0.05;
        index_t max_history = 10000;
    };

    /// A batch in compressed rows: sample i's history is
    /// history[history_offsets[i] .. history_offsets[i + 1]).
    struct Batch {
        std::span<const row_id_t> targets;          ///< [B]
        std::span<const index_t> history_offsets;   ///< [B + 1], starts at 0, non-decreasing
        std::span<const row_id_t> history;          ///< concatenated behaviour ids
    };

    DareModel(Config cfg, const Rng& rng)
        : cfg_(std::move(cfg)),
          emb_(typename Embedding::Config{cfg_.num_items, attention_dim_of(cfg_), cfg_.representation_dim, cfg_.init_std},
               rng.substream(0)) {
        RECBLOCKS_CHECK_VALUE(cfg_.top_k >= 1, "DareModel: top_k must be >= 1, got ", cfg_.top_k);
        RECBLOCKS_CHECK_VALUE(cfg_.max_history >= cfg_.top_k, "DareModel: max_history (", cfg_.max_history,
                              ") must be >= top_k (", cfg_.top_k, ")");
        std::vector<index_t> widths{3 * cfg_.representation_dim};
        for (index_t h : cfg_.hidden) {
            RECBLOCKS_CHECK_VALUE(h >= 1, "DareModel: hidden widths must be >= 1, got ", h);
            widths.push_back(h);
        }
        widths.push_back(1);
        layers_.resize(widths.size() - 1);
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            Layer& L = layers_[l];
            const index_t in = widths[l], out = widths[l + 1];
            L.w.resize(Shape<2>{{out, in}});
            L.b.resize(Shape<1>{{out}});
            L.gw.resize(L.w.shape());
            L.gb.resize(L.b.shape());
            // nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
            const double bound = 1.0 / std::sqrt(double(in));
            const Rng rw = rng.substream(100 + 2 * l), rb = rng.substream(101 + 2 * l);
            for (index_t i = 0; i < L.w.numel(); ++i) L.w.data()[i] = T(bound * (2 * rw.uniform_double(std::uint64_t(i)) - 1));
            for (index_t i = 0; i < out; ++i) L.b.data()[i] = T(bound * (2 * rb.uniform_double(std::uint64_t(i)) - 1));
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

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] bool decoupled() const { return cfg_.policy == EmbeddingPolicy::decoupled; }
    [[nodiscard]] index_t attention_dim() const { return attention_dim_of(cfg_); }
    [[nodiscard]] Embedding& embedding() { return emb_; }
    /// Names (PyTorch-style), values and gradients of every learned tensor.
    [[nodiscard]] const ParamList<T>& params() const { return params_; }
    void zero_grads() { recblocks::zero_grads(params_); }

    /// The table the search reads: E_att (decoupled) or E_repr (coupled).
    [[nodiscard]] const Matrix<T>& attention_table() const {
        return emb_.table(decoupled() ? Table::attention : Table::representation);
    }

    /// Logits [B] for a batch; keeps what backward() needs.
    template <HostBackend Be>
    void forward(const Be& be, const Batch& batch, std::span<T> logits) {
        const index_t B = validate(batch);
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(logits.size()) == B, "DareModel::forward: logits has ",
                              logits.size(), " entries for a batch of ", B);
        const index_t k = cfg_.top_k, da = attention_dim(), dr = cfg_.representation_dim;
        batch_ = batch;
        resize_state(B);
        const T* att = attention_table().data();
        const T* repr = emb_.table(Table::representation).data();
        const T scale = T(1) / std::sqrt(T(da));
        // Samples are independent: the pool's threads take fixed ranges of
        // them, each with its own score scratch (a sample's results do not
        // depend on the split). The search is a gather bound by one core's
        // memory parallelism, so a second core nearly doubles it.
        const index_t parts = std::min<index_t>(be.threads().size(), B);
        if (scores_.size() < std::size_t(parts * cfg_.max_history))
            scores_.resize(std::size_t(parts * cfg_.max_history));
        auto sample = [&](index_t i, T* scores) {
            const auto hist = history_of(batch, i);
            const row_id_t t = batch.targets[std::size_t(i)];
            T* logit = sel_logit_.data() + i * k;
            row_id_t* pos = sel_pos_.data() + i * k;
            dare_search(be, attention_table().cview(), hist, att + t * da, k, scale, scores, logit, pos);
            // Stage 2: softmax over the kept logits (the first is the largest), weighted sum of E_repr rows.
            T* w = weight_.data() + i * k;
            T sum = 0;
            for (index_t j = 0; j < k; ++j) sum += (w[j] = std::exp(logit[j] - logit[0]));
            for (index_t j = 0; j < k; ++j) w[j] /= sum;
            T* x = input_.data() + i * 3 * dr;
            const T* et = repr + t * dr;
            T* u = x + dr;
            std::fill(u, u + dr, T(0));
            for (index_t j = 0; j < k; ++j) {
                const T* v = repr + hist[std::size_t(pos[j])] * dr;
                for (index_t c = 0; c < dr; ++c) u[c] += w[j] * v[c];
            }
            for (index_t c = 0; c < dr; ++c) {
                x[c] = et[c];
                x[2 * dr + c] = et[c] * u[c];
            }
        };
        be.threads().run(parts, [&](index_t p) {
            T* scores = scores_.data() + p * cfg_.max_history;
            for (index_t i = B * p / parts; i < B * (p + 1) / parts; ++i) sample(i, scores);
        });
        // MLP: z_l = a_{l-1} W_lᵀ + b_l; ReLU on every layer but the last.
        MatrixView<const T> a = input_.view();
        for (std::size_t l = 0; l < layers_.size(); ++l) {
            Layer& L = layers_[l];
            auto z = L.z.view();
            for (index_t r = 0; r < B; ++r) std::copy(L.b.data(), L.b.data() + L.b.numel(), z.row(r));
            ops::gemm(be, Trans::no, Trans::yes, T(1), a, L.w.view(), T(1), z);
            if (l + 1 < layers_.size()) {
                for (index_t e = 0; e < L.a.numel(); ++e) L.a.data()[e] = std::max(L.z.data()[e], T(0));
                a = L.a.view();
            }
        }
        const Matrix<T>& zout = layers_.back().z;
        for (index_t i = 0; i < B; ++i) logits[std::size_t(i)] = zout(i, 0);
    }

    /// Mean binary cross-entropy with logits of the last forward's logits against labels in [0, 1].
    [[nodiscard]] double loss(std::span<const T> labels) const {
        check_labels("DareModel::loss", labels);
        const Matrix<T>& z = layers_.back().z;
        double s = 0;
        for (index_t i = 0; i < z.extent(0); ++i) {
            const double zi = z(i, 0), y = labels[std::size_t(i)];
            s += std::max(zi, 0.0) - zi * y + std::log1p(std::exp(-std::fabs(zi)));
        }
        return s / double(z.extent(0));
    }

    /// Adds d(mean BCE)/d(param) for the last forward into the gradients.
    template <HostBackend Be>
    void backward(const Be& be, std::span<const T> labels) {
        check_labels("DareModel::backward", labels);
        const index_t B = layers_.back().z.extent(0), k = cfg_.top_k, da = attention_dim(), dr = cfg_.representation_dim;
        // dz = (sigmoid(z) - y) / B on the output layer.
        Matrix<T>& dz_out = layers_.back().dz;
        for (index_t i = 0; i < B; ++i) {
            const T z = layers_.back().z(i, 0);
            dz_out(i, 0) = (T(1) / (T(1) + std::exp(-z)) - labels[std::size_t(i)]) / T(B);
        }
        for (std::size_t l = layers_.size(); l-- > 0;) {
            Layer& L = layers_[l];
            MatrixView<const T> a_in = l == 0 ? MatrixView<const T>(input_.view()) : MatrixView<const T>(layers_[l - 1].a.view());
            ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(L.dz.view()), a_in, T(1), L.gw.view());
            for (index_t r = 0; r < B; ++r)
                for (index_t c = 0; c < L.gb.numel(); ++c) L.gb(c) += L.dz(r, c);
            MatrixView<T> da_in = l == 0 ? dinput_.view() : layers_[l - 1].dz.view();
            ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(L.dz.view()), L.w.view(), T(0), da_in);
            if (l > 0) {
                const Layer& P = layers_[l - 1];
                for (index_t e = 0; e < P.z.numel(); ++e)
                    if (!(P.z.data()[e] > T(0))) da_in.data()[e] = T(0);
            }
        }
        // Stage 2 and, through the kept logits, stage 1.
        const Table att_role = decoupled() ? Table::attention : Table::representation;
        const T* att = attention_table().data();
        const T* repr = emb_.table(Table::representation).data();
        T* g_att = emb_.grad(att_role).data();
        T* g_repr = emb_.grad(Table::representation).data();
        const T scale = T(1) / std::sqrt(T(da));
        for (index_t i = 0; i < B; ++i) {
            const auto hist = history_of(batch_, i);
            const row_id_t t = batch_.targets[std::size_t(i)];
            const T* x = input_.data() + i * 3 * dr;
            const T* dx = dinput_.data() + i * 3 * dr;
            const T* et = x;
            const T* u = x + dr;
            T* du = du_.data();
            T* get = g_repr + t * dr;
            for (index_t c = 0; c < dr; ++c) {
                get[c] += dx[c] + dx[2 * dr + c] * u[c];
                du[c] = dx[dr + c] + dx[2 * dr + c] * et[c];
            }
            const T* w = weight_.data() + i * k;
            const row_id_t* pos = sel_pos_.data() + i * k;
            T* dw = dw_.data();
            T wdw = 0;
            for (index_t j = 0; j < k; ++j) {
                const row_id_t b = hist[std::size_t(pos[j])];
                const T* v = repr + b * dr;
                T* gv = g_repr + b * dr;
                T s = 0;
                for (index_t c = 0; c < dr; ++c) {
                    s += du[c] * v[c];
                    gv[c] += w[j] * du[c];
                }
                dw[j] = s;
                wdw += w[j] * s;
            }
            const T* q = att + t * da;
            T* dq = dq_.data();
            std::fill(dq, dq + da, T(0));
            for (index_t j = 0; j < k; ++j) {
                const T g = w[j] * (dw[j] - wdw) * scale;  // d loss / d <q, a_j>
                const row_id_t b = hist[std::size_t(pos[j])];
                const T* aj = att + b * da;
                T* gaj = g_att + b * da;
                for (index_t c = 0; c < da; ++c) {
                    dq[c] += g * aj[c];
                    gaj[c] += g * q[c];
                }
            }
            T* gq = g_att + t * da;
            for (index_t c = 0; c < da; ++c) gq[c] += dq[c];
        }
    }

    /// The last forward's kept behaviours of sample i: positions in its history and logits, best first.
    [[nodiscard]] std::span<const row_id_t> kept_positions(index_t i) const {
        return {sel_pos_.data() + i * cfg_.top_k, std::size_t(cfg_.top_k)};
    }
    [[nodiscard]] std::span<const T> kept_logits(index_t i) const {
        return {sel_logit_.data() + i * cfg_.top_k, std::size_t(cfg_.top_k)};
    }

private:
    struct Layer {
        Matrix<T> w, gw, z, a, dz;
        Vector<T> b, gb;
    };

    static index_t attention_dim_of(const Config& c) {
        return c.policy == EmbeddingPolicy::decoupled ? c.attention_dim : c.representation_dim;
    }
    static std::span<const row_id_t> history_of(const Batch& b, index_t i) {
        const index_t s = b.history_offsets[std::size_t(i)], e = b.history_offsets[std::size_t(i + 1)];
        return b.history.subspan(std::size_t(s), std::size_t(e - s));
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

    void check_labels(std::string_view op, std::span<const T> labels) const {
        const index_t B = layers_.empty() ? 0 : layers_.back().z.extent(0);
        RECBLOCKS_CHECK_SHAPE(B >= 1, op, ": call forward first");
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(labels.size()) == B, op, ": ", labels.size(),
                              " labels for a batch of ", B);
        for (std::size_t i = 0; i < labels.size(); ++i)
            RECBLOCKS_CHECK_VALUE(labels[i] >= T(0) && labels[i] <= T(1), op, ": label ", i, " is ", labels[i],
                                  "; labels must be in [0, 1]");
    }

    void resize_state(index_t B) {
        const index_t k = cfg_.top_k, dr = cfg_.representation_dim;
        if (scores_.size() < std::size_t(cfg_.max_history)) scores_.resize(std::size_t(cfg_.max_history));
        if (input_.extent(0) != B) {
            sel_logit_.assign(std::size_t(B * k), T(0));
            weight_.assign(std::size_t(B * k), T(0));
            sel_pos_.assign(std::size_t(B * k), 0);
            input_.resize(Shape<2>{{B, 3 * dr}});
            dinput_.resize(Shape<2>{{B, 3 * dr}});
            for (Layer& L : layers_) {
                const index_t out = L.w.extent(0);
                L.z.resize(Shape<2>{{B, out}});
                L.a.resize(Shape<2>{{B, out}});
                L.dz.resize(Shape<2>{{B, out}});
            }
            du_.assign(std::size_t(dr), T(0));
            dw_.assign(std::size_t(k), T(0));
            dq_.assign(std::size_t(attention_dim()), T(0));
        }
    }

    Config cfg_;
    Embedding emb_;
    std::vector<Layer> layers_;
    ParamList<T> params_;
    Batch batch_{};
    std::vector<T> scores_, sel_logit_, weight_, du_, dw_, dq_;
    std::vector<row_id_t> sel_pos_;
    Matrix<T> input_, dinput_;
};

}  // namespace models
RECBLOCKS_NAMESPACE_END
