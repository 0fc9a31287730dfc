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
// The softmax runs on the backend's row kernel (ops::softmax_rows), so the
// reported CE of a row saturates at -log(smallest normal T) (87.3 in f32)
// where the target's probability underflows; the gradients do not.
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/softmax.hpp"

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
    explicit MatryoshkaBceWithNegatives(Memory memory = {}) : shared_(memory) {}

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

    /// MRL: tables[i] [N + 1, m_i], one per width; d_tables alike. Host memory only.
    MatryoshkaLossValue separate(const MatryoshkaWidths& widths, MatrixView<const T> hidden,
                                 std::span<const MatrixView<const T>> tables, VectorView<const row_id_t> pos,
                                 MatrixView<const row_id_t> neg, MatrixView<T> d_hidden,
                                 std::span<const MatrixView<T>> d_tables)
        requires(Memory::host_accessible)
    {
        constexpr std::string_view op = "losses::MatryoshkaBceWithNegatives::separate";
        detail::check_tables(op, widths, hidden.cols(), static_cast<index_t>(tables.size()),
                             static_cast<index_t>(d_tables.size()));
        const index_t n1 = tables[0].rows();
        for (index_t i = 0; i < widths.size(); ++i)
            detail::check_table(op, tables[static_cast<std::size_t>(i)], d_tables[static_cast<std::size_t>(i)], n1,
                                widths.width(i));
        const index_t count = prepare(op, widths, hidden, n1, pos, neg, d_hidden);
        per_width_.assign(static_cast<std::size_t>(widths.size()), 0.0);
        MatryoshkaLossValue out{0.0, count, per_width_};
        if (count == 0) return out;
        const double inv = 1.0 / double(count);
        auto term = [&](index_t r, index_t id, double sign) {
            const T* h = hidden.row(r);
            T* dh = d_hidden.row(r);
            for (index_t i = 0; i < widths.size(); ++i) {
                const index_t m = widths.width(i);
                const T* e = tables[static_cast<std::size_t>(i)].row(id);
                T* de = d_tables[static_cast<std::size_t>(i)].row(id);
                const double s = detail::dot(h, e, m);
                per_width_[static_cast<std::size_t>(i)] += detail::softplus(sign * s);
                const T g = static_cast<T>(widths.weight(i) * sign * detail::sigmoid(sign * s) * inv);
                for (index_t c = 0; c < m; ++c) {
                    dh[c] += g * e[c];
                    de[c] += g * h[c];
                }
            }
        };
        for (index_t r = 0; r < hidden.rows(); ++r) {
            if (pos(r) == 0) continue;
            term(r, pos(r), -1.0);
            for (index_t q = 0; q < neg.cols(); ++q) term(r, neg(r, q), +1.0);
        }
        return finish(widths, out, inv);
    }

private:
    index_t prepare(std::string_view op, const MatryoshkaWidths& widths, MatrixView<const T> hidden,
                    index_t table_rows, VectorView<const row_id_t> pos, MatrixView<const row_id_t> neg,
                    MatrixView<T> d_hidden) {
        const index_t rows = hidden.rows();
        RECBLOCKS_CHECK_SHAPE(pos.size() == rows && neg.rows() == rows && neg.cols() >= 1, op, ": pos is ", pos.shape(),
                              " and neg is ", neg.shape(), " but hidden has ", rows, " rows");
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape(), op, ": d_hidden is ", d_hidden.shape(),
                              " but hidden is ", hidden.shape());
        index_t count = 0;
        for (index_t r = 0; r < rows; ++r) {
            if (pos(r) == 0) continue;
            detail::check_id(op, "pos", r, -1, pos(r), table_rows);
            for (index_t q = 0; q < neg.cols(); ++q) detail::check_id(op, "neg", r, q, neg(r, q), table_rows);
            ++count;
        }
        for (index_t r = 0; r < rows; ++r) std::fill(d_hidden.row(r), d_hidden.row(r) + hidden.cols(), T(0));
        g_.resize(static_cast<std::size_t>(widths.size()));
        return count;
    }
    MatryoshkaLossValue finish(const MatryoshkaWidths& widths, MatryoshkaLossValue out, double inv) {
        for (index_t i = 0; i < widths.size(); ++i) {
            auto& l = per_width_[static_cast<std::size_t>(i)];
            l *= inv;
            out.loss += widths.weight(i) * l;
        }
        return out;
    }

    std::vector<double> g_, per_width_;
    BceWithNegatives<T, Memory> shared_;
};

/// Full-softmax cross-entropy at every width. hidden [R, D] (contiguous);
/// targets [R] in [0, N]. Rows go in chunks of `chunk_rows`; the logits of
/// every width of a chunk live in reused scratch ([K][chunk, N]).
template <class T>
class MatryoshkaSoftmaxCrossEntropy {
public:
    explicit MatryoshkaSoftmaxCrossEntropy(index_t chunk_rows = 128) : chunk_(chunk_rows) {
        RECBLOCKS_CHECK_VALUE(chunk_rows >= 1, "MatryoshkaSoftmaxCrossEntropy: chunk_rows must be >= 1, got ", chunk_rows);
    }

    /// MRL-E: table [N + 1, D]; bias [N + 1] or empty (shared by all widths).
    template <class Be>
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
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape() && hidden.is_contiguous() && d_hidden.is_contiguous(),
                              op, ": d_hidden is ", d_hidden.shape(), " but hidden is ", hidden.shape(),
                              " (both contiguous)");
        rows_.clear();
        for (index_t r = 0; r < rows; ++r) {
            RECBLOCKS_CHECK_INDEX(targets(r) >= 0 && targets(r) <= n, op, ": targets[", r, "] = ", targets(r),
                                  " is outside [0, ", n, "]");
            if (targets(r) != 0) rows_.push_back(r);
        }
        for (index_t r = 0; r < rows; ++r) std::fill(d_hidden.row(r), d_hidden.row(r) + d, T(0));
        const index_t count = static_cast<index_t>(rows_.size());
        per_width_.assign(static_cast<std::size_t>(k), 0.0);
        MatryoshkaLossValue out{0.0, count, per_width_};
        if (count == 0) return out;
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
        if (static_cast<index_t>(logits_.size()) != k) logits_.resize(static_cast<std::size_t>(k));
        for (auto& z : logits_)
            if (z.extent(0) < chunk || z.extent(1) != n) z.resize(Shape<2>{{chunk, n}});
        if (h_.extent(0) < chunk || h_.extent(1) != d) {
            h_.resize(Shape<2>{{chunk, d}});
            dh_.resize(Shape<2>{{chunk, d}});
        }
        const double inv = 1.0 / double(count);
        for (index_t c0 = 0; c0 < count; c0 += chunk) {
            const index_t rc = std::min(chunk, count - c0);
            auto h = h_.view().slice_rows(0, rc);
            for (index_t i = 0; i < rc; ++i) std::copy(hidden.row(rows_[c0 + i]), hidden.row(rows_[c0 + i]) + d, h.row(i));
            auto hcols = [&](index_t a, index_t b) { return matrix_view<const T>(h.data() + a, rc, b - a, d); };
            // Logits of every width; shared: width j = width j-1 + slice j's product.
            for (index_t j = 0; j < k; ++j) {
                auto z = logits_[static_cast<std::size_t>(j)].view().slice_rows(0, rc);
                if (!shared) {
                    ops::gemm(be, Trans::no, Trans::yes, T(1), hcols(0, widths.width(j)), items(j, 0, widths.width(j)),
                              T(0), z);
                    continue;
                }
                const index_t a = widths.slice_begin(j), b = widths.width(j);
                if (j == 0) {
                    for (index_t i = 0; i < rc; ++i) {
                        T* zr = z.row(i);
                        if (bias.data()) std::copy(bias.data() + 1, bias.data() + 1 + n, zr);
                        else std::fill(zr, zr + n, T(0));
                    }
                } else {
                    const auto prev = logits_[static_cast<std::size_t>(j - 1)].view().slice_rows(0, rc);
                    for (index_t i = 0; i < rc; ++i) std::copy(prev.row(i), prev.row(i) + n, z.row(i));
                }
                ops::gemm(be, Trans::no, Trans::yes, T(1), hcols(a, b), items(0, a, b), T(1), z);
            }
            // Softmax per width (the dispatched row kernel); logits become c_j (p - onehot) / count.
            for (index_t j = 0; j < k; ++j) {
                auto z = logits_[static_cast<std::size_t>(j)].view().slice_rows(0, rc);
                ops::softmax_rows(be, MatrixView<const T>(z), z);
                const T scale = static_cast<T>(widths.weight(j) * inv);
                for (index_t i = 0; i < rc; ++i) {
                    T* zr = z.row(i);
                    const index_t t = targets(rows_[c0 + i]) - 1;
                    const double pt = double(zr[t]);
                    RECBLOCKS_CHECK_VALUE(std::isfinite(pt), op, ": non-finite logits in row ", rows_[c0 + i],
                                          " at width ", widths.width(j));
                    // -log p_t; saturates where p_t underflows (a logit gap beyond ~87 in f32)
                    per_width_[static_cast<std::size_t>(j)] -= std::log(std::max(pt, double(std::numeric_limits<T>::min())));
                    for (index_t q = 0; q < n; ++q) zr[q] *= scale;
                    zr[t] -= scale;
                }
            }
            auto dh = dh_.view().slice_rows(0, rc);
            auto dhcols = [&](index_t a, index_t b) { return matrix_view<T>(dh.data() + a, rc, b - a, d); };
            if (shared) {
                // Suffix sums G_j = Σ_{i >= j} dlogits_i, in place from the widest down.
                for (index_t j = k - 2; j >= 0; --j) {
                    auto z = logits_[static_cast<std::size_t>(j)].view().slice_rows(0, rc);
                    const auto up = logits_[static_cast<std::size_t>(j + 1)].view().slice_rows(0, rc);
                    for (index_t i = 0; i < rc; ++i) {
                        T* zr = z.row(i);
                        const T* ur = up.row(i);
                        for (index_t q = 0; q < n; ++q) zr[q] += ur[q];
                    }
                }
                if (d_bias.data()) {  // the bias sees every width: Σ_i dlogits_i = G_0
                    const auto g0 = logits_[0].view().slice_rows(0, rc);
                    for (index_t i = 0; i < rc; ++i)
                        for (index_t q = 0; q < n; ++q) d_bias(q + 1) += g0(i, q);
                }
                for (index_t j = 0; j < k; ++j) {
                    const MatrixView<const T> g = logits_[static_cast<std::size_t>(j)].view().slice_rows(0, rc);
                    const index_t a = widths.slice_begin(j), b = widths.width(j);
                    ops::gemm(be, Trans::no, Trans::no, T(1), g, items(0, a, b), T(0), dhcols(a, b));
                    ops::gemm(be, Trans::yes, Trans::no, T(1), g, hcols(a, b), T(1), d_items(0, a, b));
                }
            } else {
                for (index_t i = 0; i < rc; ++i) std::fill(dh.row(i), dh.row(i) + d, T(0));
                for (index_t j = 0; j < k; ++j) {
                    const MatrixView<const T> g = logits_[static_cast<std::size_t>(j)].view().slice_rows(0, rc);
                    const index_t m = widths.width(j);
                    ops::gemm(be, Trans::no, Trans::no, T(1), g, items(j, 0, m), T(1), dhcols(0, m));
                    ops::gemm(be, Trans::yes, Trans::no, T(1), g, hcols(0, m), T(1), d_items(j, 0, m));
                }
            }
            for (index_t i = 0; i < rc; ++i) std::copy(dh.row(i), dh.row(i) + d, d_hidden.row(rows_[c0 + i]));
        }
        for (index_t j = 0; j < k; ++j) {
            auto& l = per_width_[static_cast<std::size_t>(j)];
            l *= inv;
            out.loss += widths.weight(j) * l;
        }
        return out;
    }

    index_t chunk_;
    std::vector<index_t> rows_;
    std::vector<double> per_width_;
    std::vector<Matrix<T>> logits_;
    Matrix<T> h_, dh_;
};

}  // namespace losses
RECBLOCKS_NAMESPACE_END
