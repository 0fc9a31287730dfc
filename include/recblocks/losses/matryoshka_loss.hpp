#pragma once
// The Matryoshka (MRL) loss: the same loss at every nested width, weighted,
//
//   L = Σ_i c_i · loss( W_i z[:m_i] )
//
// for the two losses of this library's next-item models: BCE with sampled
// negatives (SASRec, losses/bce_with_negatives.hpp) and full-softmax
// cross-entropy (losses/softmax_cross_entropy.hpp). Two forms:
//
//  * shared (MRL-E): W_i = W[:, :m_i], one table [N + 1, D] (and one bias for
//    the softmax). Width i's score is width i-1's plus the dot product of
//    slice i, so the forward costs one full-width product, not Σ_i m_i; the
//    backward uses G_j = Σ_{i >= j} c_i dL_i/ds_i (suffix sums over widths):
//    dz[slice j] = G_j · W[:, slice j], dW[:, slice j] += G_jᵀ z[slice j].
//    Same FLOPs as one full-width loss.
//  * separate (MRL): one table W_i [N + 1, m_i] per width (no bias).
//
// Like the single-width losses: row 0 of a table is padding, target / pos 0
// ignores a row, every term is divided by the number of counted rows,
// d_hidden is overwritten (zero on ignored rows), table gradients accumulate.
//
// Memory is where the losses keep their scratch and read hidden, the tables
// and the gradients (host by default, CudaMemory on backend::Cuda); ids and
// targets are host data, checked there and copied once per call. Every step
// is a backend call: the softmax CE runs the fused log-sum-exp with its
// gradient (ops::softmax_cross_entropy) per width on each chunk of rows; the
// separate BCE runs BceWithNegatives once per width's table.
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax_cross_entropy.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

struct MatryoshkaLossValue {
    double loss = 0.0;              ///< Σ_i c_i · per_width[i]
    index_t count = 0;              ///< counted rows
    std::span<const double> per_width;  ///< the mean loss at each width (unweighted; the loss object's storage, valid until its next call)
};

namespace detail {
inline void check_tables(std::string_view op, const MatryoshkaWidths& w, index_t d, index_t n_tables,
                         index_t n_grads) {
    RECBLOCKS_CHECK_SHAPE(d == w.full(), op, ": hidden has ", d, " columns but the widths end at ", w.full());
    RECBLOCKS_CHECK_SHAPE(n_tables == w.size() && n_grads == w.size(), op, ": ", n_tables, " tables and ", n_grads,
                          " gradients for ", w.size(), " widths (need one of each per width)");
}
template <class T>
void check_table(std::string_view op, MatrixView<const T> table, MatrixView<T> d_table, index_t rows, index_t cols) {
    RECBLOCKS_CHECK_SHAPE(table.rows() == rows && table.cols() == cols && d_table.shape() == table.shape() && rows >= 2,
                          op, ": a table is ", table.shape(), " with gradient ", d_table.shape(), " but need [", rows,
                          ", ", cols, "] (N + 1 rows, width columns)");
}
}  // namespace detail

/// BCE with sampled negatives at every width. hidden [R, D]; pos [R]; neg [R, K].
/// Memory is where the shared form keeps its scratch and reads hidden and the
/// table (host by default, CudaMemory on backend::Cuda); pos and neg are host ids.
template <class T, MemorySpace Memory = HostMemory>
class MatryoshkaBceWithNegatives {
public:
    explicit MatryoshkaBceWithNegatives(Memory memory = {}) : shared_(memory), zeros_(memory), dh_(memory) {}

    /// MRL-E: table [N + 1, D] shared by all widths (prefix columns), on any
    /// backend computing in Memory (BceWithNegatives with widths: gather,
    /// row_dots, logistic_loss, scatter, one pass for all widths).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    MatryoshkaLossValue shared(const Be& be, const MatryoshkaWidths& widths, MatrixView<const T> hidden,
                               MatrixView<const T> table, VectorView<const row_id_t> pos, MatrixView<const row_id_t> neg,
                               MatrixView<T> d_hidden, MatrixView<T> d_table) {
        constexpr std::string_view op = "losses::MatryoshkaBceWithNegatives::shared";
        detail::check_tables(op, widths, hidden.cols(), widths.size(), widths.size());
        detail::check_table(op, table, d_table, table.rows(), hidden.cols());
        const LossValue v = shared_(be, hidden, table, pos, neg, d_hidden, d_table, &widths);
        per_width_.assign(shared_.per_width().begin(), shared_.per_width().end());
        return {v.loss, v.count, per_width_};
    }

    /// MRL: tables[i] [N + 1, m_i], one per width; d_tables alike (in Memory).
    /// One BceWithNegatives call per width on hidden's first m_i columns, its
    /// gradient (weighted by c_i) added into d_hidden's prefix.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    MatryoshkaLossValue separate(const Be& be, const MatryoshkaWidths& widths, MatrixView<const T> hidden,
                                 std::span<const MatrixView<const T>> tables, VectorView<const row_id_t> pos,
                                 MatrixView<const row_id_t> neg, MatrixView<T> d_hidden,
                                 std::span<const MatrixView<T>> d_tables) {
        constexpr std::string_view op = "losses::MatryoshkaBceWithNegatives::separate";
        detail::check_tables(op, widths, hidden.cols(), static_cast<index_t>(tables.size()),
                             static_cast<index_t>(d_tables.size()));
        const index_t rows = hidden.rows(), d = hidden.cols(), n1 = tables[0].rows();
        for (index_t i = 0; i < widths.size(); ++i)
            detail::check_table(op, tables[static_cast<std::size_t>(i)], d_tables[static_cast<std::size_t>(i)], n1,
                                widths.width(i));
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape(), op, ": d_hidden is ", d_hidden.shape(),
                              " but hidden is ", hidden.shape());
        if (zeros_.numel() != d) zeros_.resize(Shape<1>{{d}});
        if (dh_.extent(0) != rows || dh_.extent(1) != d) dh_.resize(Shape<2>{{rows, d}});
        ops::broadcast_rows(be, zeros_.cview(), T(0), d_hidden);
        per_width_.assign(static_cast<std::size_t>(widths.size()), 0.0);
        MatryoshkaLossValue out{0.0, 0, per_width_};
        for (index_t i = 0; i < widths.size(); ++i) {
            const index_t m = widths.width(i);
            const MatryoshkaWidths one({m}, m, {widths.weight(i)});  // width i alone, weighted c_i
            const auto dh = matrix_view(dh_.data(), rows, m, d);
            const LossValue v = shared_(be, matrix_view<const T>(hidden.data(), rows, m, hidden.ld()),
                                        tables[static_cast<std::size_t>(i)], pos, neg, dh,
                                        d_tables[static_cast<std::size_t>(i)], &one);
            const auto dprefix = matrix_view(d_hidden.data(), rows, m, d_hidden.ld());
            ops::add(be, MatrixView<const T>(dprefix), MatrixView<const T>(dh), dprefix);
            per_width_[static_cast<std::size_t>(i)] = shared_.per_width()[0];
            out.loss += v.loss;
            out.count = v.count;
        }
        return out;
    }

private:
    std::vector<double> per_width_;
    BceWithNegatives<T, Memory> shared_;
    Vector<T, Memory> zeros_;
    Matrix<T, Memory> dh_;  // one width's d_hidden (its first m_i columns)
};

/// Full-softmax cross-entropy at every width. hidden [R, D]; targets [R] in
/// [0, N] (host memory). Rows go in chunks of `chunk_rows`; the logits of
/// every width of a chunk live in reused scratch ([K][chunk, N]) in Memory.
template <class T, MemorySpace Memory = HostMemory>
class MatryoshkaSoftmaxCrossEntropy {
public:
    explicit MatryoshkaSoftmaxCrossEntropy(index_t chunk_rows = 128, Memory memory = {})
        : chunk_(chunk_rows), memory_(memory), rows_(memory), cols_(memory), zeros_(memory), h_(memory), dh_(memory),
          colsum_(memory) {
        RECBLOCKS_CHECK_VALUE(chunk_rows >= 1, "MatryoshkaSoftmaxCrossEntropy: chunk_rows must be >= 1, got ", chunk_rows);
    }

    /// MRL-E: table [N + 1, D]; bias [N + 1] or empty (shared by all widths).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    MatryoshkaLossValue shared(const Be& be, const MatryoshkaWidths& widths, MatrixView<const T> hidden,
                               MatrixView<const T> table, VectorView<const T> bias, VectorView<const row_id_t> targets,
                               MatrixView<T> d_hidden, MatrixView<T> d_table, VectorView<T> d_bias) {
        constexpr std::string_view op = "losses::MatryoshkaSoftmaxCrossEntropy::shared";
        detail::check_tables(op, widths, hidden.cols(), widths.size(), widths.size());
        detail::check_table(op, table, d_table, table.rows(), hidden.cols());
        RECBLOCKS_CHECK_SHAPE(!bias.data() || (bias.size() == table.rows() && d_bias.size() == table.rows()), op,
                              ": bias is ", bias.shape(), " and d_bias ", d_bias.shape(), " but need [", table.rows(), "]");
        const MatrixView<const T> one[1] = {table};
        const MatrixView<T> done[1] = {d_table};
        return run(be, op, widths, hidden, std::span<const MatrixView<const T>>(one), bias, targets, d_hidden,
                   std::span<const MatrixView<T>>(done), d_bias, true);
    }

    /// MRL: tables[i] [N + 1, m_i], one per width (no bias).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    MatryoshkaLossValue separate(const Be& be, const MatryoshkaWidths& widths, MatrixView<const T> hidden,
                                 std::span<const MatrixView<const T>> tables, VectorView<const row_id_t> targets,
                                 MatrixView<T> d_hidden, std::span<const MatrixView<T>> d_tables) {
        constexpr std::string_view op = "losses::MatryoshkaSoftmaxCrossEntropy::separate";
        detail::check_tables(op, widths, hidden.cols(), static_cast<index_t>(tables.size()),
                             static_cast<index_t>(d_tables.size()));
        for (index_t i = 0; i < widths.size(); ++i)
            detail::check_table(op, tables[static_cast<std::size_t>(i)], d_tables[static_cast<std::size_t>(i)],
                                tables[0].rows(), widths.width(i));
        return run(be, op, widths, hidden, tables, VectorView<const T>(), targets, d_hidden, d_tables, VectorView<T>(),
                   false);
    }

private:
    template <class Be>
    MatryoshkaLossValue run(const Be& be, std::string_view op, const MatryoshkaWidths& widths,
                            MatrixView<const T> hidden, std::span<const MatrixView<const T>> tables, VectorView<const T> bias,
                            VectorView<const row_id_t> targets, MatrixView<T> d_hidden,
                            std::span<const MatrixView<T>> d_tables, VectorView<T> d_bias, bool shared) {
        const index_t rows = hidden.rows(), d = hidden.cols(), n = tables[0].rows() - 1, k = widths.size();
        RECBLOCKS_CHECK_SHAPE(targets.size() == rows, op, ": targets is ", targets.shape(), " but hidden has ", rows,
                              " rows");
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape(), op, ": d_hidden is ", d_hidden.shape(),
                              " but hidden is ", hidden.shape());
        // The counted rows and their targets' columns (t - 1), checked on the host.
        host_rows_.clear();
        host_cols_.clear();
        for (index_t r = 0; r < rows; ++r) {
            RECBLOCKS_CHECK_INDEX(targets(r) >= 0 && targets(r) <= n, op, ": targets[", r, "] = ", targets(r),
                                  " is outside [0, ", n, "]");
            if (targets(r) == 0) continue;
            host_rows_.push_back(static_cast<row_id_t>(r));
            host_cols_.push_back(targets(r) - 1);
        }
        ops::broadcast_rows(be, zeros_of(d), T(0), d_hidden);
        const index_t count = static_cast<index_t>(host_rows_.size());
        per_width_.assign(static_cast<std::size_t>(k), 0.0);
        MatryoshkaLossValue out{0.0, count, per_width_};
        if (count == 0) return out;
        upload(host_rows_, rows_);
        upload(host_cols_, cols_);
        // Rows 1..N of a table (row 0 is padding, never a class), columns [a, b).
        auto items = [&](index_t t, index_t a, index_t b) {
            const auto& m = tables[static_cast<std::size_t>(t)];
            return matrix_view<const T>(m.data() + m.ld() + a, n, b - a, m.ld());
        };
        auto d_items = [&](index_t t, index_t a, index_t b) {
            const auto& m = d_tables[static_cast<std::size_t>(t)];
            return matrix_view<T>(m.data() + m.ld() + a, n, b - a, m.ld());
        };
        const index_t chunk = std::min(chunk_, count);
        while (static_cast<index_t>(logits_.size()) < k) logits_.emplace_back(memory_);
        for (index_t j = 0; j < k; ++j) {
            auto& z = logits_[static_cast<std::size_t>(j)];
            if (z.extent(0) < chunk || z.extent(1) != n) z.resize(Shape<2>{{chunk, n}});
        }
        if (h_.extent(0) < chunk || h_.extent(1) != d) {
            h_.resize(Shape<2>{{chunk, d}});
            dh_.resize(Shape<2>{{chunk, d}});
        }
        if (bias.data() && colsum_.numel() != n) colsum_.resize(Shape<1>{{n}});
        const auto item_bias = bias.data() ? vector_view<const T>(bias.data() + 1, n) : VectorView<const T>{};
        const double inv = 1.0 / double(count);
        for (index_t c0 = 0; c0 < count; c0 += chunk) {
            const index_t rc = std::min(chunk, count - c0);
            const auto rows_c = vector_view<const row_id_t>(rows_.data() + c0, rc);
            const auto cols_c = vector_view<const row_id_t>(cols_.data() + c0, rc);
            auto h = h_.view().slice_rows(0, rc);
            ops::gather_rows(be, hidden, rows_c, h);
            auto hcols = [&](index_t a, index_t b) { return matrix_view<const T>(h.data() + a, rc, b - a, d); };
            auto logits = [&](index_t j) { return logits_[static_cast<std::size_t>(j)].view().slice_rows(0, rc); };
            // Logits of every width; shared: width j = width j-1 + slice j's product (the bias in width 0).
            for (index_t j = 0; j < k; ++j) {
                auto z = logits(j);
                if (!shared) {
                    ops::gemm(be, Trans::no, Trans::yes, T(1), hcols(0, widths.width(j)), items(j, 0, widths.width(j)),
                              T(0), z);
                    continue;
                }
                const index_t a = widths.slice_begin(j), b = widths.width(j);
                if (j == 0) ops::broadcast_rows(be, item_bias.data() ? item_bias : zeros_of(n), T(0), z);
                else ops::copy(be, MatrixView<const T>(logits(j - 1)), z);
                ops::gemm(be, Trans::no, Trans::yes, T(1), hcols(a, b), items(0, a, b), T(1), z);
            }
            // Per width, the fused log-sum-exp: logits become c_j (p - onehot) / count.
            for (index_t j = 0; j < k; ++j) {
                const double part = ops::softmax_cross_entropy(be, logits(j), VectorView<const T>{}, cols_c,
                                                               static_cast<T>(widths.weight(j) * inv));
                RECBLOCKS_CHECK_VALUE(std::isfinite(part), op, ": non-finite logits at width ", widths.width(j),
                                      " among the ", rc, " counted rows from row ",
                                      host_rows_[static_cast<std::size_t>(c0)], " on (their loss sum is ", part, ")");
                per_width_[static_cast<std::size_t>(j)] += part;
            }
            auto dh = dh_.view().slice_rows(0, rc);
            auto dhcols = [&](index_t a, index_t b) { return matrix_view<T>(dh.data() + a, rc, b - a, d); };
            if (shared) {
                // Suffix sums G_j = Σ_{i >= j} dlogits_i, in place from the widest down.
                for (index_t j = k - 2; j >= 0; --j)
                    ops::add(be, MatrixView<const T>(logits(j)), MatrixView<const T>(logits(j + 1)), logits(j));
                if (d_bias.data()) {  // the bias sees every width: d_bias[1..N] += column sums of G_0
                    ops::sum_rows(be, MatrixView<const T>(logits(0)), colsum_.view());
                    const auto db = matrix_view(d_bias.data() + 1, 1, n);
                    ops::add(be, MatrixView<const T>(db), matrix_view<const T>(colsum_.data(), 1, n), db);
                }
                for (index_t j = 0; j < k; ++j) {
                    const MatrixView<const T> g = logits(j);
                    const index_t a = widths.slice_begin(j), b = widths.width(j);
                    ops::gemm(be, Trans::no, Trans::no, T(1), g, items(0, a, b), T(0), dhcols(a, b));
                    ops::gemm(be, Trans::yes, Trans::no, T(1), g, hcols(a, b), T(1), d_items(0, a, b));
                }
            } else {
                ops::broadcast_rows(be, zeros_of(d), T(0), dh);
                for (index_t j = 0; j < k; ++j) {
                    const MatrixView<const T> g = logits(j);
                    const index_t m = widths.width(j);
                    ops::gemm(be, Trans::no, Trans::no, T(1), g, items(j, 0, m), T(1), dhcols(0, m));
                    ops::gemm(be, Trans::yes, Trans::no, T(1), g, hcols(0, m), T(1), d_items(j, 0, m));
                }
            }
            // The rows are distinct and d_hidden is zero there: the scatter is a copy.
            ops::scatter_add_rows(be, MatrixView<const T>(dh), rows_c, d_hidden);
        }
        for (index_t j = 0; j < k; ++j) {
            auto& l = per_width_[static_cast<std::size_t>(j)];
            l *= inv;
            out.loss += widths.weight(j) * l;
        }
        return out;
    }

    /// n zeros in Memory (grows only).
    VectorView<const T> zeros_of(index_t n) {
        if (zeros_.numel() < n) zeros_.resize(Shape<1>{{n}});
        return vector_view<const T>(zeros_.data(), n);
    }
    /// Copies a host list into the front of dst, which only grows.
    static void upload(const std::vector<row_id_t>& host, Vector<row_id_t, Memory>& dst) {
        const auto n = static_cast<index_t>(host.size());
        if (dst.numel() < n) dst.resize(Shape<1>{{n}});
        dst.memory().upload(dst.data(), host.data(), host.size() * sizeof(row_id_t));
    }

    index_t chunk_;
    Memory memory_;
    std::vector<row_id_t> host_rows_, host_cols_;
    Vector<row_id_t, Memory> rows_, cols_;  // counted rows of hidden; their targets' columns (t - 1)
    Vector<T, Memory> zeros_;
    std::vector<double> per_width_;
    std::vector<Matrix<T, Memory>> logits_;
    Matrix<T, Memory> h_, dh_;
    Vector<T, Memory> colsum_;
};

}  // namespace losses
RECBLOCKS_NAMESPACE_END
