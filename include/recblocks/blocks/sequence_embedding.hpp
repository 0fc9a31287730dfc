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
// row 0 belongs to padding; the pmixer PyTorch port) or [L, D] with
// PositionRows::from_oldest (a real item uses row t - first(b), its index
// counted from the oldest real item of its row: RecBole's right-padded 0..n-1
// seen through left padding). Padded slots output zeros and receive no
// gradient; E's row 0 stays a zero vector.
//
// Only from_oldest gives an item the same position whatever came after it, so
// with padded keys masked an item's state depends on the items before it only
// (what an incremental per-user key/value cache needs).
//
// Memory is where the tables, gradients and scratch live (host by default,
// CudaMemory on backend::Cuda). Ids come from the data pipeline and stay in
// host memory: the block checks them there and copies them, with the slots'
// keep mask, into its own memory once per call.
//
// forward() is two phases, also callable apart (serving through a captured
// CUDA graph replays the second one only): stage(ids) is host work — checks,
// and the ids and keep mask written into staging buffers (page-locked for
// CudaMemory: staging_memory_t) — and forward_staged() is backend work only:
// the uploads from those buffers and the kernels, no host synchronisation and,
// after the first call of a shape, no allocation.
#include <cmath>
#include <type_traits>

#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/bias.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

/// How positions index the positional table.
enum class PositionRows : std::uint8_t {
    per_slot,  ///< P has L rows; slot t uses row t (SASRec authors' TF code)
    from_one,  ///< P has L + 1 rows; slot t uses row t + 1, padded slots row 0 (pmixer PyTorch port)
    /// P has L rows; a real item uses row (its slot - the slot of its row's oldest real item),
    /// padded slots none (RecBole: right padding, positions 0..n-1).
    from_oldest,
};

template <class T, MemorySpace Memory = HostMemory>
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
        Matrix<T, Memory> items;      ///< [N + 1, D]
        Matrix<T, Memory> positions;  ///< [L, D] or [L + 1, D]
    };

    /// Tables drawn from N(0, 1/D) (so E * sqrt(D) starts at unit variance);
    /// row 0 of E is zero. Dropout masks come from rng's substream 2.
    SequenceEmbedding(Config cfg, const Rng& rng, Memory memory = {})
        : cfg_(cfg), dropout_(cfg.dropout, rng.substream(2)), scratch_(memory), ids_(memory), keep_(memory),
          sums_(memory), pos_ids_(memory) {
        RECBLOCKS_CHECK_VALUE(cfg.num_items >= 1 && cfg.d_model >= 1 && cfg.max_len >= 1,
                              "SequenceEmbedding: num_items, d_model and max_len must be >= 1, got ", cfg.num_items,
                              ", ", cfg.d_model, ", ", cfg.max_len);
        const index_t prows = cfg.positions == PositionRows::from_one ? cfg.max_len + 1 : cfg.max_len;
        for (Params* p : {&params_, &grads_}) {
            p->items = Matrix<T, Memory>(Shape<2>{{cfg.num_items + 1, cfg.d_model}}, memory);
            p->positions = Matrix<T, Memory>(Shape<2>{{prows, cfg.d_model}}, memory);
        }
        const double sd = 1.0 / std::sqrt(double(cfg.d_model));
        const Rng ri = rng.substream(0), rp = rng.substream(1);
        fill_from_host(params_.items,
                       [&](index_t i) { return i < cfg.d_model ? 0.0 : sd * ri.normal(std::uint64_t(i)); });
        fill_from_host(params_.positions, [&](index_t i) { return sd * rp.normal(std::uint64_t(i)); });
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] Params& params() { return params_; }
    [[nodiscard]] const Params& params() const { return params_; }
    [[nodiscard]] Params& grads() { return grads_; }
    /// Appends "<prefix>item_emb.weight" and "<prefix>pos_emb.weight".
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "item_emb.weight", params_.items, grads_.items, ParamKind::embedding);
        append_param(out, prefix, "pos_emb.weight", params_.positions, grads_.positions, ParamKind::embedding);
    }
    void zero_grads() {
        grads_.items.zero();
        grads_.positions.zero();
    }

    /// out [B, L, D] from ids [B, L] (host memory). `step` selects the dropout
    /// mask (pass the training step); `train = false` disables dropout.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, TensorView<T, 3> out,
                 std::uint64_t step, bool train) {
        check(ids, out, "forward");
        stage(ids);
        forward_staged(be, pool, out, step, train);
    }

    /// Host phase of forward(): checks ids [B, L] (host memory) and writes
    /// them and the keep mask into the staging buffers (waiting first for any
    /// upload from them still in flight).
    void stage(MatrixView<const row_id_t> ids) {
        RECBLOCKS_CHECK_SHAPE(ids.cols() == cfg_.max_len, "SequenceEmbedding::stage: ids is ", ids.shape(),
                              " but max_len is ", cfg_.max_len);
        check_ids(ids, "stage");
        wait_for_staged_uploads(ids_.memory());
        const index_t n = ids.rows() * ids.cols();
        if (host_ids_.numel() != n) {
            host_ids_.resize(Shape<1>{{n}});
            host_keep_.resize(Shape<1>{{n}});
            if (by_row()) host_pos_.resize(Shape<1>{{n}});
        }
        for (index_t b = 0; b < ids.rows(); ++b) {
            index_t first = 0;  // the oldest real item's slot (from_oldest)
            while (first < ids.cols() && ids(b, first) == 0) ++first;
            for (index_t t = 0; t < ids.cols(); ++t) {
                host_ids_(b * ids.cols() + t) = ids(b, t);
                host_keep_(b * ids.cols() + t) = ids(b, t) == 0 ? T(0) : T(1);
                // Padded slots are zeroed by the keep mask; any valid row will do for them.
                if (by_row()) host_pos_(b * ids.cols() + t) = static_cast<row_id_t>(t >= first ? t - first : 0);
            }
        }
        staged_rows_ = ids.rows();
    }
    /// Sequences of the last stage().
    [[nodiscard]] index_t staged_rows() const { return staged_rows_; }

    /// Device phase of forward() for the ids of the last stage(): out [B, L, D].
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void forward_staged(const Be& be, ThreadPool& /*pool: everything runs on be*/, TensorView<T, 3> out,
                        std::uint64_t step, bool train) {
        const index_t bsz = staged_rows_, len = cfg_.max_len, d = cfg_.d_model;
        RECBLOCKS_CHECK_VALUE(bsz >= 1, "SequenceEmbedding::forward_staged: call stage(ids) first");
        check_output(bsz, out, "forward_staged");
        upload_staged();
        auto flat = matrix_view(out.data(), bsz * len, d);
        ops::gather_rows(be, params_.items.cview(), ids_.cview(), flat);
        if (cfg_.scale_by_sqrt_d) ops::scale_rows(be, MatrixView<const T>(flat), VectorView<const T>{}, scale(), flat);
        if (by_row()) {  // + P[pos(b, t)]: each row's own positions, gathered
            if (scratch_.extent(0) != bsz * len) scratch_.resize(Shape<2>{{bsz * len, d}});
            ops::gather_rows(be, params_.positions.cview(), pos_ids_.cview(), scratch_.view());
            ops::add(be, MatrixView<const T>(flat), scratch_.cview(), flat);
        } else {  // + P[pos(t)]: the used rows of P, flattened, added to every sequence's [L * D].
            ops::broadcast_rows(be, used_positions(), T(1), matrix_view(out.data(), bsz, len * d));
        }
        ops::scale_rows(be, MatrixView<const T>(flat), keep_.cview(), T(1), flat);  // padded slots -> 0
        if (train && cfg_.dropout > 0)
            dropout_.forward<T>(be, step, vector_view<const T>(out.data(), out.numel()), vector_view(out.data(), out.numel()));
        last_step_ = step;
        last_train_ = train;
    }

    /// Adds the gradients of E and P from dout [B, L, D] (of the last forward's
    /// ids and step). dout is overwritten with its dropout-masked version.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, ThreadPool& /*pool: everything runs on be*/, MatrixView<const row_id_t> ids,
                  TensorView<T, 3> dout) {
        check(ids, dout, "backward");
        stage(ids);
        upload_staged();
        const index_t bsz = ids.rows(), len = ids.cols(), d = cfg_.d_model;
        if (last_train_ && cfg_.dropout > 0)
            dropout_.backward<T>(be, last_step_, vector_view<const T>(dout.data(), dout.numel()),
                                 vector_view(dout.data(), dout.numel()));
        // Padded slots pass no gradient: g = keep * dout in the scratch (dout is left as documented).
        if (scratch_.extent(0) != bsz * len) scratch_.resize(Shape<2>{{bsz * len, d}});
        const auto flat = matrix_view<const T>(dout.data(), bsz * len, d);
        ops::scale_rows(be, flat, keep_.cview(), T(1), scratch_.view());
        auto dp = grads_.positions.view();
        if (by_row()) {  // dP[pos(b, t)] += g[b, t]
            ops::scatter_add_rows(be, scratch_.cview(), pos_ids_.cview(), dp);
        } else {  // dP[pos(t)] += sum over sequences of g[b, t].
            detail::add_column_sums(be, matrix_view<const T>(scratch_.data(), bsz, len * d),
                                    vector_view(dp.row(position_row(0)), len * d), sums_);
        }
        // dE[id] += s * g; E's row 0 (padding) keeps a zero gradient.
        if (cfg_.scale_by_sqrt_d)
            ops::scale_rows(be, scratch_.cview(), VectorView<const T>{}, scale(), scratch_.view());
        ops::scatter_add_rows(be, scratch_.cview(), ids_.cview(), grads_.items.view());
        grads_.items.memory().zero(grads_.items.data(), static_cast<std::size_t>(d) * sizeof(T));
    }

private:
    [[nodiscard]] T scale() const { return cfg_.scale_by_sqrt_d ? static_cast<T>(std::sqrt(double(cfg_.d_model))) : T(1); }
    /// Positions that depend on the row (gathered per slot) rather than on the slot alone.
    [[nodiscard]] bool by_row() const { return cfg_.positions == PositionRows::from_oldest; }
    [[nodiscard]] index_t position_row(index_t t) const { return cfg_.positions == PositionRows::from_one ? t + 1 : t; }
    /// Rows pos(0) .. pos(L - 1) of P as one [L * D] vector.
    [[nodiscard]] VectorView<const T> used_positions() const {
        return vector_view<const T>(params_.positions.data() + position_row(0) * cfg_.d_model,
                                    cfg_.max_len * cfg_.d_model);
    }

    /// Copies the staged ids and keep mask into the block's memory (an upload
    /// from the staging buffers, ordered with the kernels that follow).
    void upload_staged() {
        copy_tensor(host_ids_, ids_);
        copy_tensor(host_keep_, keep_);
        if (by_row()) copy_tensor(host_pos_, pos_ids_);
    }

    void check(MatrixView<const row_id_t> ids, TensorView<T, 3> out, const char* fn) const {
        RECBLOCKS_CHECK_SHAPE(ids.cols() == cfg_.max_len, "SequenceEmbedding::", fn, ": ids is ", ids.shape(),
                              " but max_len is ", cfg_.max_len);
        check_output(ids.rows(), out, fn);
        check_ids(ids, fn);
    }
    void check_output(index_t bsz, TensorView<T, 3> out, const char* fn) const {
        RECBLOCKS_CHECK_SHAPE(out.extent(0) == bsz && out.extent(1) == cfg_.max_len && out.extent(2) == cfg_.d_model &&
                                  out.is_contiguous(),
                              "SequenceEmbedding::", fn, ": output is ", out.shape(), " but expected contiguous [",
                              bsz, ", ", cfg_.max_len, ", ", cfg_.d_model, "]");
    }
    void check_ids(MatrixView<const row_id_t> ids, const char* fn) const {
        for (index_t b = 0; b < ids.rows(); ++b)
            for (index_t t = 0; t < ids.cols(); ++t)
                RECBLOCKS_CHECK_INDEX(ids(b, t) >= 0 && ids(b, t) <= cfg_.num_items, "SequenceEmbedding::", fn, ": ids[",
                                      b, ", ", t, "] = ", ids(b, t), " is outside [0, ", cfg_.num_items, "]");
    }

    Config cfg_;
    Dropout dropout_;
    Params params_, grads_;
    Matrix<T, Memory> scratch_;
    Vector<row_id_t, Memory> ids_;
    Vector<T, Memory> keep_, sums_;
    Vector<row_id_t, Memory> pos_ids_;  // from_oldest: each slot's row of P
    Vector<row_id_t, staging_memory_t<Memory>> host_ids_, host_pos_;  // staging: host copies of ids_, pos_ids_, keep_
    Vector<T, staging_memory_t<Memory>> host_keep_;
    index_t staged_rows_ = 0;
    std::uint64_t last_step_ = 0;
    bool last_train_ = false;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
