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
#include <cmath>
#include <string_view>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace losses {

struct LossValue {
    double loss = 0.0;  ///< the mean loss
    index_t count = 0;  ///< rows (targets) it averages over
};

namespace detail {
/// softplus(x) = log(1 + e^x), accurate for both signs; its derivative is sigmoid(x).
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
    const double e = std::exp(x);
    return e / (1.0 + e);
}
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

/// hidden [R, D]; table [N + 1, D] (row 0 = padding); pos [R] (0 = ignore the
/// row); neg [R, K] with K >= 1, ids in [1, N] on counted rows; d_hidden
/// [R, D]; d_table [N + 1, D] (accumulated). Returns the mean loss and count
/// (count 0 -> loss 0, zero gradients).
template <class T>
LossValue bce_with_negatives(MatrixView<const T> hidden, MatrixView<const T> table, VectorView<const row_id_t> pos,
                             MatrixView<const row_id_t> neg, MatrixView<T> d_hidden, MatrixView<T> d_table) {
    constexpr std::string_view op = "losses::bce_with_negatives";
    const index_t rows = hidden.rows(), d = hidden.cols();
    RECBLOCKS_CHECK_SHAPE(table.cols() == d && table.rows() >= 2, op, ": table is ", table.shape(), " but hidden is ",
                          hidden.shape(), " (need [N + 1, D])");
    RECBLOCKS_CHECK_SHAPE(pos.size() == rows && neg.rows() == rows && neg.cols() >= 1, op, ": pos is ", pos.shape(),
                          " and neg is ", neg.shape(), " but hidden has ", rows, " rows");
    RECBLOCKS_CHECK_SHAPE(d_hidden.shape() == hidden.shape() && d_table.shape() == table.shape(), op,
                          ": d_hidden is ", d_hidden.shape(), " and d_table is ", d_table.shape(),
                          " but must match hidden ", hidden.shape(), " and table ", table.shape());
    index_t count = 0;
    for (index_t r = 0; r < rows; ++r) {
        if (pos(r) == 0) continue;
        detail::check_id(op, "pos", r, -1, pos(r), table.rows());
        for (index_t k = 0; k < neg.cols(); ++k) detail::check_id(op, "neg", r, k, neg(r, k), table.rows());
        ++count;
    }
    for (index_t r = 0; r < rows; ++r) std::fill(d_hidden.row(r), d_hidden.row(r) + d, T(0));
    if (count == 0) return {};
    const double inv = 1.0 / double(count);
    double total = 0;
    auto term = [&](index_t r, index_t id, double sign) {  // sign -1: positive, +1: negative
        const T* h = hidden.row(r);
        const T* e = table.row(id);
        const double s = detail::dot(h, e, d);
        total += detail::softplus(sign * s);
        const T g = static_cast<T>(sign * detail::sigmoid(sign * s) * inv);  // d/ds softplus(sign s) / count
        T* dh = d_hidden.row(r);
        T* de = d_table.row(id);
        for (index_t c = 0; c < d; ++c) {
            dh[c] += g * e[c];
            de[c] += g * h[c];
        }
    };
    for (index_t r = 0; r < rows; ++r) {
        if (pos(r) == 0) continue;
        term(r, pos(r), -1.0);
        for (index_t k = 0; k < neg.cols(); ++k) term(r, neg(r, k), +1.0);
    }
    return {total * inv, count};
}

}  // namespace losses
RECBLOCKS_NAMESPACE_END
