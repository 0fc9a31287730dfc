#pragma once
// Full-softmax cross-entropy over the whole catalogue (BERT4Rec's cloze loss,
// SASRec-CE). For every row r with target t_r != 0:
//
//   logits_r = hidden[r] · E[1..N]ᵀ (+ bias[1..N]);  loss = mean_r -log softmax(logits_r)[t_r]
//
// Rows are processed in chunks (Config::chunk_rows) so the [chunk, N] logits
// live in a reused scratch matrix, never [R, N]. The two big products per
// chunk are gemms on the given backend. d_hidden is overwritten (zero on
// ignored rows); d_table (rows 1..N) and d_bias accumulate (+=).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "recblocks/core/tensor.hpp"
#include "recblocks/losses/bce_with_negatives.hpp"
#include "recblocks/ops/gemm.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

template <class T>
class SoftmaxCrossEntropy {
public:
    explicit SoftmaxCrossEntropy(index_t chunk_rows = 256) : chunk_(chunk_rows) {
        RECBLOCKS_CHECK_VALUE(chunk_rows >= 1, "SoftmaxCrossEntropy: chunk_rows must be >= 1, got ", chunk_rows);
    }

    /// hidden [R, D]; table [N + 1, D] (row 0 = padding, never a class); bias
    /// [N + 1] or empty; targets [R] in [0, N] (0 = ignore). d_bias may be
    /// empty when bias is. Returns the mean loss over the targets.
    template <class Be>
    LossValue operator()(const Be& be, MatrixView<const T> hidden, MatrixView<const T> table, VectorView<const T> bias,
                         VectorView<const row_id_t> targets, MatrixView<T> d_hidden, MatrixView<T> d_table,
                         VectorView<T> d_bias) {
        constexpr std::string_view op = "losses::SoftmaxCrossEntropy";
        const index_t rows = hidden.rows(), d = hidden.cols(), n = table.rows() - 1;
        RECBLOCKS_CHECK_SHAPE(table.cols() == d && n >= 1, op, ": table is ", table.shape(), " but hidden is ",
                              hidden.shape(), " (need [N + 1, D])");
        RECBLOCKS_CHECK_SHAPE(targets.size() == rows, op, ": targets is ", targets.shape(), " but hidden has ", rows,
                              " rows");
        RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape() && d_table.shape() == table.shape() &&
                                  d_hidden.is_contiguous() && hidden.is_contiguous(),
                              op, ": d_hidden/d_table are ", d_hidden.shape(), "/", d_table.shape(), " but hidden/table are ",
                              hidden.shape(), "/", table.shape());
        RECBLOCKS_CHECK_SHAPE(!bias.data() || (bias.size() == n + 1 && d_bias.size() == n + 1), op, ": bias is ",
                              bias.shape(), " and d_bias ", d_bias.shape(), " but need [", n + 1, "]");
        rows_.clear();
        for (index_t r = 0; r < rows; ++r) {
            RECBLOCKS_CHECK_INDEX(targets(r) >= 0 && targets(r) <= n, op, ": targets[", r, "] = ", targets(r),
                                  " is outside [0, ", n, "]");
            if (targets(r) != 0) rows_.push_back(r);
        }
        for (index_t r = 0; r < rows; ++r) std::fill(d_hidden.row(r), d_hidden.row(r) + d, T(0));
        const index_t count = static_cast<index_t>(rows_.size());
        if (count == 0) return {};
        const auto items = matrix_view<const T>(table.data() + table.ld(), n, d, table.ld());
        const auto d_items = matrix_view<T>(d_table.data() + d_table.ld(), n, d, d_table.ld());
        const index_t chunk = std::min(chunk_, count);
        if (logits_.extent(0) < chunk || logits_.extent(1) != n) logits_.resize(Shape<2>{{chunk, n}});
        if (h_.extent(0) < chunk || h_.extent(1) != d) {
            h_.resize(Shape<2>{{chunk, d}});
            dh_.resize(Shape<2>{{chunk, d}});
        }
        const double inv = 1.0 / double(count);
        double total = 0;
        for (index_t c0 = 0; c0 < count; c0 += chunk) {
            const index_t m = std::min(chunk, count - c0);
            auto h = h_.view().slice_rows(0, m);
            for (index_t i = 0; i < m; ++i) std::copy(hidden.row(rows_[c0 + i]), hidden.row(rows_[c0 + i]) + d, h.row(i));
            auto logits = logits_.view().slice_rows(0, m);
            ops::gemm(be, Trans::no, Trans::yes, T(1), MatrixView<const T>(h), items, T(0), logits);
            for (index_t i = 0; i < m; ++i) {
                T* z = logits.row(i);
                if (bias.data())
                    for (index_t j = 0; j < n; ++j) z[j] += bias(j + 1);
                const index_t t = targets(rows_[c0 + i]) - 1;
                // Stable softmax in double; z becomes dlogits = (p - onehot) / count.
                double mx = -std::numeric_limits<double>::infinity();
                for (index_t j = 0; j < n; ++j) mx = std::max(mx, double(z[j]));
                double sum = 0;
                for (index_t j = 0; j < n; ++j) sum += std::exp(double(z[j]) - mx);
                RECBLOCKS_CHECK_VALUE(std::isfinite(sum) && std::isfinite(mx), op, ": non-finite logits in row ",
                                      rows_[c0 + i]);
                total += std::log(sum) + mx - double(z[t]);
                for (index_t j = 0; j < n; ++j) z[j] = static_cast<T>(std::exp(double(z[j]) - mx) / sum * inv);
                z[t] -= static_cast<T>(inv);
                if (d_bias.data())
                    for (index_t j = 0; j < n; ++j) d_bias(j + 1) += z[j];
            }
            auto dh = dh_.view().slice_rows(0, m);
            ops::gemm(be, Trans::no, Trans::no, T(1), MatrixView<const T>(logits), items, T(0), dh);
            ops::gemm(be, Trans::yes, Trans::no, T(1), MatrixView<const T>(logits), MatrixView<const T>(h), T(1), d_items);
            for (index_t i = 0; i < m; ++i) std::copy(dh.row(i), dh.row(i) + d, d_hidden.row(rows_[c0 + i]));
        }
        return {total * inv, count};
    }

private:
    index_t chunk_;
    std::vector<index_t> rows_;
    Matrix<T> logits_, h_, dh_;
};

}  // namespace losses
RECBLOCKS_NAMESPACE_END
