#pragma once
// The input layer of SASRec / BERT4Rec: item embedding (row 0 = padding),
// optional sqrt(D) scaling, learned positional embedding, dropout, and the
// padded positions zeroed ("timeline mask"):
//
//   out[b, t] = keep(b, t) * Dropout( E[ids[b, t]] * s + P[pos(t)] ),  s = sqrt(D) or 1
//
// Shapes: ids [B, L] (left-padded with 0), out [B, L, D], E [N + 1, D], and
// P [L, D] with PositionRows::per_slot (slot t uses row t; the SASRec authors'
// TF code) or [L + 1, D] with PositionRows::from_one (slot t uses row t + 1,
// row 0 belongs to padding; the pmixer PyTorch port). Padded slots output
// zeros and receive no gradient; E's row 0 stays a zero vector.
#include <cmath>

#include "recblocks/blocks/dropout.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/embedding.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

/// How positions index the positional table.
enum class PositionRows : std::uint8_t {
    per_slot,  ///< P has L rows; slot t uses row t (SASRec authors' TF code)
    from_one,  ///< P has L + 1 rows; slot t uses row t + 1, padded slots row 0 (pmixer PyTorch port)
};

template <class T>
class SequenceEmbedding {
public:
    struct Config {
        index_t num_items = 0;  ///< N; item ids are 1..N, 0 is padding
        index_t d_model = 0;    ///< D
        index_t max_len = 0;    ///< L
        bool scale_by_sqrt_d = true;
        PositionRows positions = PositionRows::per_slot;
        double dropout = 0.0;
    };
    struct Params {
        Matrix<T> items;      ///< [N + 1, D]
        Matrix<T> positions;  ///< [L, D] or [L + 1, D]
    };

    /// Tables drawn from N(0, 1/D) (so E * sqrt(D) starts at unit variance);
    /// row 0 of E is zero. Dropout masks come from rng's substream 2.
    SequenceEmbedding(Config cfg, const Rng& rng) : cfg_(cfg), dropout_(cfg.dropout, rng.substream(2)) {
        RECBLOCKS_CHECK_VALUE(cfg.num_items >= 1 && cfg.d_model >= 1 && cfg.max_len >= 1,
                              "SequenceEmbedding: num_items, d_model and max_len must be >= 1, got ", cfg.num_items,
                              ", ", cfg.d_model, ", ", cfg.max_len);
        const index_t prows = cfg.positions == PositionRows::per_slot ? cfg.max_len : cfg.max_len + 1;
        for (Params* p : {&params_, &grads_}) {
            p->items.resize(Shape<2>{{cfg.num_items + 1, cfg.d_model}});
            p->positions.resize(Shape<2>{{prows, cfg.d_model}});
        }
        const double sd = 1.0 / std::sqrt(double(cfg.d_model));
        const Rng ri = rng.substream(0), rp = rng.substream(1);
        for (index_t i = cfg.d_model; i < params_.items.numel(); ++i)
            params_.items.data()[i] = static_cast<T>(sd * ri.normal(std::uint64_t(i)));
        for (index_t i = 0; i < params_.positions.numel(); ++i)
            params_.positions.data()[i] = static_cast<T>(sd * rp.normal(std::uint64_t(i)));
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    /// Appends "<prefix>item_emb.weight" and "<prefix>pos_emb.weight".
    void append_params(std::string_view prefix, ParamList<T>& out) {
        append_param(out, prefix, "item_emb.weight", params_.items, grads_.items, ParamKind::embedding);
        append_param(out, prefix, "pos_emb.weight", params_.positions, grads_.positions, ParamKind::embedding);
    }
    void zero_grads() {
        std::fill(grads_.items.begin(), grads_.items.end(), T(0));
        std::fill(grads_.positions.begin(), grads_.positions.end(), T(0));
    }

    /// out [B, L, D] from ids [B, L]. `step` selects the dropout mask (pass the
    /// training step); `train = false` disables dropout.
    template <HostBackend Be>
    void forward(const Be& be, ThreadPool& /*pool: dropout runs on be*/, MatrixView<const row_id_t> ids, TensorView<T, 3> out,
                 std::uint64_t step, bool train) {
        check(ids, out, "forward");
        const index_t bsz = ids.rows(), len = ids.cols(), d = cfg_.d_model;
        auto flat = matrix_view(out.data(), bsz * len, d);
        for (index_t b = 0; b < bsz; ++b)
            ops::gather_rows(be, params_.items.view(), vector_view(ids.row(b), len), flat.slice_rows(b * len, (b + 1) * len));
        const T s = scale();
        for (index_t b = 0; b < bsz; ++b)
            for (index_t t = 0; t < len; ++t) {
                T* o = flat.row(b * len + t);
                if (ids(b, t) == 0) {
                    std::fill(o, o + d, T(0));
                    continue;
                }
                const T* p = params_.positions.view().row(position_row(t));
                for (index_t c = 0; c < d; ++c) o[c] = o[c] * s + p[c];
            }
        if (train && cfg_.dropout > 0)
            dropout_.forward<T>(be, step, vector_view<const T>(out.data(), out.numel()), vector_view(out.data(), out.numel()));
        last_step_ = step;
        last_train_ = train;
    }

    /// Adds the gradients of E and P from dout [B, L, D] (of the last forward's
    /// ids and step). dout is overwritten with its dropout-masked version.
    template <HostBackend Be>
    void backward(const Be& be, ThreadPool& /*pool: dropout runs on be*/, MatrixView<const row_id_t> ids,
                  TensorView<T, 3> dout) {
        check(ids, dout, "backward");
        const index_t bsz = ids.rows(), len = ids.cols(), d = cfg_.d_model;
        if (last_train_ && cfg_.dropout > 0)
            dropout_.backward<T>(be, last_step_, vector_view<const T>(dout.data(), dout.numel()),
                                 vector_view(dout.data(), dout.numel()));
        auto flat = matrix_view(dout.data(), bsz * len, d);
        for (index_t b = 0; b < bsz; ++b)
            for (index_t t = 0; t < len; ++t) {
                if (ids(b, t) == 0) continue;  // padded slot: no gradient anywhere
                T* gp = grads_.positions.view().row(position_row(t));
                const T* g = flat.row(b * len + t);
                for (index_t c = 0; c < d; ++c) gp[c] += g[c];
            }
        // dE[id] += s * dout (a scaled copy, so dout is left as documented).
        scratch_.resize(Shape<2>{{bsz * len, d}});
        const T s = scale();
        for (index_t r = 0; r < bsz * len; ++r) {
            const bool pad = ids(r / len, r % len) == 0;
            for (index_t c = 0; c < d; ++c) scratch_(r, c) = pad ? T(0) : flat(r, c) * s;
        }
        for (index_t b = 0; b < bsz; ++b)
            ops::scatter_add_rows(be, MatrixView<const T>(scratch_.view().slice_rows(b * len, (b + 1) * len)),
                                  vector_view(ids.row(b), len), grads_.items.view());
        std::fill(grads_.items.view().row(0), grads_.items.view().row(0) + d, T(0));
    }

private:
    [[nodiscard]] T scale() const { return cfg_.scale_by_sqrt_d ? static_cast<T>(std::sqrt(double(cfg_.d_model))) : T(1); }
    [[nodiscard]] index_t position_row(index_t t) const { return cfg_.positions == PositionRows::per_slot ? t : t + 1; }

    void check(MatrixView<const row_id_t> ids, TensorView<T, 3> out, const char* fn) const {
        RECBLOCKS_CHECK_SHAPE(ids.cols() == cfg_.max_len, "SequenceEmbedding::", fn, ": ids is ", ids.shape(),
                              " but max_len is ", cfg_.max_len);
        RECBLOCKS_CHECK_SHAPE(out.extent(0) == ids.rows() && out.extent(1) == ids.cols() && out.extent(2) == cfg_.d_model &&
                                  out.is_contiguous(),
                              "SequenceEmbedding::", fn, ": output is ", out.shape(), " but expected contiguous [",
                              ids.rows(), ", ", ids.cols(), ", ", cfg_.d_model, "]");
        for (index_t b = 0; b < ids.rows(); ++b)
            for (index_t t = 0; t < ids.cols(); ++t)
                RECBLOCKS_CHECK_INDEX(ids(b, t) >= 0 && ids(b, t) <= cfg_.num_items, "SequenceEmbedding::", fn, ": ids[",
                                      b, ", ", t, "] = ", ids(b, t), " is outside [0, ", cfg_.num_items, "]");
    }

    Config cfg_;
    Dropout dropout_;
    Params params_, grads_;
    Matrix<T> scratch_;
    std::uint64_t last_step_ = 0;
    bool last_train_ = false;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
