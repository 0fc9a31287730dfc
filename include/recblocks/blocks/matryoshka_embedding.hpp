#pragma once
// A Matryoshka embedding table: one [N, D] table whose column prefixes
// [0, m) are the width-m tables, for every m of a MatryoshkaWidths. A width-m
// view is the same memory with leading dimension D (no copy); gather and its
// adjoint (scatter-add into the gradient) run on that view through
// ops::gather_rows / ops::scatter_add_rows, so a width-m lookup reads and
// writes only m of every D values.
//
// Memory is where the table and its gradient live (host by default, CudaMemory
// on backend::Cuda). Ids come from the data pipeline in host memory: they are
// checked there and, for a table off the host, copied once per call.
#include <cmath>
#include <type_traits>

#include "recblocks/params/matryoshka_widths.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/backend/memory.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

/// The width-m prefix of a row-major [N, D] table: [N, m] with ld = D.
template <class T>
[[nodiscard]] MatrixView<T> prefix_columns(MatrixView<T> table, index_t m) {
    RECBLOCKS_CHECK_SHAPE(m >= 0 && m <= table.cols(), "blocks::prefix_columns: width ", m, " is outside [0, ",
                          table.cols(), "] for a table of shape ", table.shape());
    return matrix_view<T>(table.data(), table.rows(), m, table.ld());
}

template <class T, MemorySpace Memory = HostMemory>
class MatryoshkaEmbedding {
public:
    /// rows N, widths ending at D; entries drawn from N(0, 1/D) on the host and copied once.
    MatryoshkaEmbedding(index_t rows, MatryoshkaWidths widths, const Rng& rng, Memory memory = {})
        : widths_(std::move(widths)), table_(memory), grad_(memory), ids_(memory) {
        RECBLOCKS_CHECK_VALUE(rows >= 1, "MatryoshkaEmbedding: rows must be >= 1, got ", rows);
        table_.resize(Shape<2>{{rows, widths_.full()}});
        grad_.resize(table_.shape());
        const double sd = 1.0 / std::sqrt(double(widths_.full()));
        fill_from_host(table_, [&](index_t i) { return sd * rng.normal(std::uint64_t(i)); });
    }

    [[nodiscard]] const MatryoshkaWidths& widths() const { return widths_; }
    [[nodiscard]] Matrix<T, Memory>& table() { return table_; }
    [[nodiscard]] Matrix<T, Memory>& grad() { return grad_; }
    /// The width-m table [N, m] (ld D), no copy; m must be one of the widths.
    [[nodiscard]] MatrixView<const T> at_width(index_t m) const {
        (void)widths_.index_of(m);
        return prefix_columns(table_.cview(), m);
    }
    void append_params(std::string_view prefix, ParamList<T, Memory>& out) {
        append_param(out, prefix, "weight", table_, grad_, ParamKind::embedding);
    }
    void zero_grad() { grad_.zero(); }

    /// out [B, m] (Memory) = rows ids [B] (host memory) of the width-m table;
    /// m = out.cols() must be one of the widths.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void gather(const Be& be, VectorView<const row_id_t> ids, MatrixView<T> out) const {
        const auto table = at_width(out.cols());
        ops::gather_rows(be, table, staged(ids, "MatryoshkaEmbedding::gather"), out);
    }
    /// grad[ids[i], :m] += dout [B, m] row i (the adjoint of gather at width m = dout.cols()).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void backward(const Be& be, VectorView<const row_id_t> ids, MatrixView<const T> dout) {
        (void)widths_.index_of(dout.cols());
        ops::scatter_add_rows(be, dout, staged(ids, "MatryoshkaEmbedding::backward"),
                              prefix_columns(grad_.view(), dout.cols()));
    }

private:
    /// Host ids as the backend reads them: the ids themselves on host memory;
    /// otherwise checked here and copied into the block's memory.
    VectorView<const row_id_t> staged(VectorView<const row_id_t> ids, std::string_view op) const {
        if constexpr (Memory::host_accessible) {
            return ids;
        } else {
            ops::detail::check_ids(op, ids, table_.extent(0));
            if (ids_.numel() != ids.size()) ids_.resize(Shape<1>{{ids.size()}});
            ids_.memory().upload(ids_.data(), ids.data(), static_cast<std::size_t>(ids.size()) * sizeof(row_id_t));
            return ids_.cview();
        }
    }

    MatryoshkaWidths widths_;
    Matrix<T, Memory> table_, grad_;
    mutable Vector<row_id_t, Memory> ids_;  // staged ids (device memory only)
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
