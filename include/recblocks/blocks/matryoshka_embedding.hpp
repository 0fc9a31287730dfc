#pragma once
// A Matryoshka embedding table: one [N, D] table whose column prefixes
// [0, m) are the width-m tables, for every m of a MatryoshkaWidths. A width-m
// view is the same memory with leading dimension D (no copy); gather and its
// adjoint (scatter-add into the gradient) run on that view through
// ops::gather_rows / ops::scatter_add_rows, so a width-m lookup reads and
// writes only m of every D values.
#include <cmath>

#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/embedding.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

/// The width-m prefix of a row-major [N, D] table: [N, m] with ld = D.
template <class T>
[[nodiscard]] MatrixView<T> prefix_columns(MatrixView<T> table, index_t m) {
    RECBLOCKS_CHECK_SHAPE(m >= 0 && m <= table.cols(), "blocks::prefix_columns: width ", m, " is outside [0, ",
                          table.cols(), "] for a table of shape ", table.shape());
    return matrix_view<T>(table.data(), table.rows(), m, table.ld());
}

template <class T>
class MatryoshkaEmbedding {
public:
    /// rows N, widths ending at D; entries drawn from N(0, 1/D).
    MatryoshkaEmbedding(index_t rows, MatryoshkaWidths widths, const Rng& rng) : widths_(std::move(widths)) {
        RECBLOCKS_CHECK_VALUE(rows >= 1, "MatryoshkaEmbedding: rows must be >= 1, got ", rows);
        table_.resize(Shape<2>{{rows, widths_.full()}});
        grad_.resize(table_.shape());
        const double sd = 1.0 / std::sqrt(double(widths_.full()));
        for (index_t i = 0; i < table_.numel(); ++i) table_.data()[i] = static_cast<T>(sd * rng.normal(std::uint64_t(i)));
    }

    [[nodiscard]] const MatryoshkaWidths& widths() const { return widths_; }
    [[nodiscard]] Matrix<T>& table() { return table_; }
    [[nodiscard]] Matrix<T>& grad() { return grad_; }
    /// The width-m table [N, m] (ld D), no copy; m must be one of the widths.
    [[nodiscard]] MatrixView<const T> at_width(index_t m) const {
        (void)widths_.index_of(m);
        return prefix_columns(table_.cview(), m);
    }
    void append_params(std::string_view prefix, ParamList<T>& out) {
        append_param(out, prefix, "weight", table_, grad_, ParamKind::embedding);
    }
    void zero_grad() { std::fill(grad_.begin(), grad_.end(), T(0)); }

    /// out [B, m] = rows ids of the width-m table; m = out.cols() must be one of the widths.
    template <HostBackend Be>
    void gather(const Be& be, VectorView<const row_id_t> ids, MatrixView<T> out) const {
        ops::gather_rows(be, at_width(out.cols()), ids, out);
    }
    /// grad[ids[i], :m] += dout [B, m] row i (the adjoint of gather at width m = dout.cols()).
    template <HostBackend Be>
    void backward(const Be& be, VectorView<const row_id_t> ids, MatrixView<const T> dout) {
        (void)widths_.index_of(dout.cols());
        ops::scatter_add_rows(be, dout, ids, prefix_columns(grad_.view(), dout.cols()));
    }

private:
    MatryoshkaWidths widths_;
    Matrix<T> table_, grad_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
