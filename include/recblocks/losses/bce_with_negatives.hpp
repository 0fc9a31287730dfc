#pragma once
// Binary cross-entropy with sampled negatives (SASRec's loss). For every row r
// of the final hidden states whose positive id is not 0 (padding), with
// s(i) = hidden[r] · table[i]:
//
//   loss = ( Σ_r softplus(-s(pos_r)) + Σ_r Σ_k softplus(s(neg_rk)) ) / count
//
// where count is the number of non-padded rows: with one negative per row
// this is exactly the pmixer/authors' "mean BCE of the positives plus mean BCE
// of the negatives". Gradients: d_hidden is overwritten (zero on padded
// rows), d_table accumulates (+=) into the rows of the ids used.
//
// With Matryoshka widths m_1 < ... < m_k = D on the same table (MRL-E), the
// loss is Σ_i c_i · loss_i where loss_i uses the scores of the first m_i
// columns, s_i = hidden[r, :m_i] · table[id, :m_i].
//
// The work runs on a backend, in its memory: the (row, id) targets are listed
// on the host (ids are checked there), copied once, then gathered, scored
// (row_dots), passed through the logistic loss and scattered back as
// gradients (scatter_add_rows adds in target order: deterministic).
#include <cmath>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/logistic_loss.hpp"
#include "recblocks/params/matryoshka_widths.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

struct LossValue {
    double loss = 0.0;  ///< the mean loss
    index_t count = 0;  ///< rows (targets) it averages over
};

namespace detail {
using recblocks::detail::sigmoid;
using recblocks::detail::softplus;
template <class T>
double dot(const T* a, const T* b, index_t n) {
    double s = 0;
    for (index_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
    return s;
}
inline void check_id(std::string_view op, std::string_view what, index_t r, index_t k, index_t id, index_t rows) {
    RECBLOCKS_CHECK_INDEX(id >= 1 && id < rows, op, ": ", what, "[", r, (k >= 0 ? ", " : ""),
                          (k >= 0 ? std::to_string(k) : std::string()), "] = ", id, " is outside [1, ", rows - 1, "]");
}
}  // namespace detail

/// The loss and its scratch, kept in Memory (host by default, CudaMemory on
/// backend::Cuda): after the first call of a shape nothing is allocated.
template <class T, MemorySpace Memory = HostMemory>
class BceWithNegatives {
public:
    explicit BceWithNegatives(Memory memory = {})
        : rows_(memory), ids_(memory), sign_(memory), zeros_(memory), h_(memory), e_(memory), dh_(memory),
          de_(memory), s_(memory), part_(memory), g_(memory) {}

    /// hidden [R, D] and table [N + 1, D] (row 0 = padding) in Memory; pos [R]
    /// (0 = ignore the row) and neg [R, K], K >= 1, ids in [1, N] on counted
    /// rows, in host memory; d_hidden [R, D] (overwritten) and d_table
    /// [N + 1, D] (accumulated) in Memory. widths: nested prefixes of D on the
    /// shared table (MRL-E), or nullptr for the plain loss. Returns Σ_i c_i ·
    /// loss_i and the count (count 0 -> loss 0, zero d_hidden); per_width()
    /// holds each loss_i (unweighted). normalizer > 0 divides by it instead of
    /// the count: this call is then one part of a larger batch of `normalizer`
    /// counted rows (data-parallel granules), and its loss and gradients are
    /// that part's share of the batch's mean.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    LossValue operator()(const Be& be, MatrixView<const T> hidden, MatrixView<const T> table,
                         VectorView<const row_id_t> pos, MatrixView<const row_id_t> neg, MatrixView<T> d_hidden,
                         MatrixView<T> d_table, const MatryoshkaWidths* widths = nullptr, index_t normalizer = 0) {
        constexpr std::string_view op = "losses::bce_with_negatives";
        const index_t rows = hidden.rows(), d = hidden.cols();
        RECBLOCKS_CHECK_SHAPE(table.cols() == d && table.rows() >= 2, op, ": table is ", table.shape(),
                              " but hidden is ", hidden.shape(), " (need [N + 1, D])");
        RECBLOCKS_CHECK_SHAPE(pos.size() == rows && neg.rows() == rows && neg.cols() >= 1, op, ": pos is ", pos.shape(),
                              " and neg is ", neg.shape(), " but hidden has ", rows, " rows");
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape() && d_table.shape() == table.shape(), op,
                              ": d_hidden is ", d_hidden.shape(), " and d_table is ", d_table.shape(),
                              " but must match hidden ", hidden.shape(), " and table ", table.shape());
        if (widths)
            RECBLOCKS_CHECK_SHAPE(widths->full() == d, op, ": hidden has ", d, " columns but the widths end at ",
                                  widths->full());
        const index_t levels = widths ? widths->size() : 1;
        per_width_.assign(static_cast<std::size_t>(levels), 0.0);
        const index_t count = list_targets(op, table.rows(), pos, neg);
        if (zeros_.numel() != d) zeros_.resize(Shape<1>{{d}});
        ops::broadcast_rows(be, zeros_.cview(), T(0), d_hidden);
        if (count == 0) return {};
        RECBLOCKS_CHECK_VALUE(normalizer == 0 || normalizer >= count, op, ": normalizer ", normalizer,
                              " is smaller than this part's ", count, " counted rows");
        const index_t m = static_cast<index_t>(host_rows_.size());
        stage(m, d, levels);
        ops::gather_rows(be, hidden, rows_.cview(), h_.view());
        ops::gather_rows(be, table, ids_.cview(), e_.view());
        // Scores at each width (nested: s_i = s_{i-1} + the slice's dot), losses and d loss / d s_i.
        const double inv = 1.0 / double(normalizer > 0 ? normalizer : count);
        for (index_t i = 0; i < levels; ++i) {
            const index_t a = widths ? widths->slice_begin(i) : 0, b = widths ? widths->width(i) : d;
            const double weight = widths ? widths->weight(i) : 1.0;
            ops::row_dots(be, columns(h_.cview(), a, b), columns(e_.cview(), a, b), i == 0 ? s_.view() : part_.view());
            if (i > 0) ops::add(be, as_row(s_.cview()), as_row(part_.cview()), as_row(s_.view()));
            per_width_[static_cast<std::size_t>(i)] =
                ops::logistic_loss(be, s_.cview(), sign_.cview(), static_cast<T>(weight * inv), level(i)) * inv;
        }
        // Slice i of the gradients takes the sum of the levels that include it (i .. k-1).
        for (index_t i = levels - 1; i >= 0; --i) {
            const index_t a = widths ? widths->slice_begin(i) : 0, b = widths ? widths->width(i) : d;
            if (i + 1 < levels) ops::add(be, as_row(clevel(i)), as_row(clevel(i + 1)), as_row(level(i)));
            ops::scale_rows(be, columns(e_.cview(), a, b), clevel(i), T(1), columns(dh_.view(), a, b));
            ops::scale_rows(be, columns(h_.cview(), a, b), clevel(i), T(1), columns(de_.view(), a, b));
        }
        ops::scatter_add_rows(be, dh_.cview(), rows_.cview(), d_hidden);
        ops::scatter_add_rows(be, de_.cview(), ids_.cview(), d_table);
        double total = 0;
        for (index_t i = 0; i < levels; ++i) total += (widths ? widths->weight(i) : 1.0) * per_width_[std::size_t(i)];
        return {total, count};
    }

    /// The mean loss at each width of the last call (one entry without widths).
    [[nodiscard]] std::span<const double> per_width() const { return per_width_; }

private:
    /// (row, id, sign) of every term, in the order the loss adds them: each
    /// counted row's positive, then its negatives. Returns the counted rows.
    index_t list_targets(std::string_view op, index_t table_rows, VectorView<const row_id_t> pos,
                         MatrixView<const row_id_t> neg) {
        host_rows_.clear();
        host_ids_.clear();
        host_sign_.clear();
        index_t count = 0;
        for (index_t r = 0; r < pos.size(); ++r) {
            if (pos(r) == 0) continue;
            detail::check_id(op, "pos", r, -1, pos(r), table_rows);
            for (index_t k = 0; k < neg.cols(); ++k) detail::check_id(op, "neg", r, k, neg(r, k), table_rows);
            ++count;
            for (index_t k = -1; k < neg.cols(); ++k) {
                host_rows_.push_back(static_cast<row_id_t>(r));
                host_ids_.push_back(k < 0 ? pos(r) : neg(r, k));
                host_sign_.push_back(k < 0 ? T(-1) : T(1));
            }
        }
        return count;
    }

    /// Copies the targets into Memory and sizes the scratch (reallocating only on a shape change).
    void stage(index_t m, index_t d, index_t levels) {
        upload(host_rows_, rows_);
        upload(host_ids_, ids_);
        upload(host_sign_, sign_);
        for (Matrix<T, Memory>* t : {&h_, &e_, &dh_, &de_})
            if (t->shape() != Shape<2>{{m, d}}) t->resize(Shape<2>{{m, d}});
        for (Vector<T, Memory>* t : {&s_, &part_})
            if (t->numel() != m) t->resize(Shape<1>{{m}});
        if (g_.shape() != Shape<2>{{levels, m}}) g_.resize(Shape<2>{{levels, m}});
    }
    template <class U>
    static void upload(const std::vector<U>& host, Vector<U, Memory>& dst) {
        const auto n = static_cast<index_t>(host.size());
        if (dst.numel() != n) dst.resize(Shape<1>{{n}});
        dst.memory().upload(dst.data(), host.data(), host.size() * sizeof(U));
    }

    template <class U>
    static MatrixView<U> columns(MatrixView<U> m, index_t a, index_t b) {
        return MatrixView<U>(m.data() + a, Shape<2>{{m.rows(), b - a}}, {m.ld(), 1});
    }
    template <class U>
    static MatrixView<U> as_row(VectorView<U> v) {
        return matrix_view(v.data(), 1, v.size());
    }
    VectorView<T> level(index_t i) { return vector_view(g_.data() + i * g_.extent(1), g_.extent(1)); }
    VectorView<const T> clevel(index_t i) const { return vector_view<const T>(g_.data() + i * g_.extent(1), g_.extent(1)); }

    std::vector<row_id_t> host_rows_, host_ids_;
    std::vector<T> host_sign_;
    Vector<row_id_t, Memory> rows_, ids_;
    Vector<T, Memory> sign_, zeros_;
    Matrix<T, Memory> h_, e_, dh_, de_;  // gathered rows and their gradients [M, D]
    Vector<T, Memory> s_, part_;         // scores [M]
    Matrix<T, Memory> g_;                // d loss / d score per level [levels, M]
    std::vector<double> per_width_;
};

/// The plain loss in one call (allocates its scratch; a training loop keeps a
/// BceWithNegatives instead). Arguments as BceWithNegatives::operator().
template <class T, class Be>
LossValue bce_with_negatives(const Be& be, std::type_identity_t<MatrixView<const T>> hidden,
                             std::type_identity_t<MatrixView<const T>> table, VectorView<const row_id_t> pos,
                             MatrixView<const row_id_t> neg, MatrixView<T> d_hidden, MatrixView<T> d_table) {
    BceWithNegatives<T, memory_space_t<Be>> loss(memory_of(be));
    return loss(be, hidden, table, pos, neg, d_hidden, d_table);
}

}  // namespace losses
RECBLOCKS_NAMESPACE_END
