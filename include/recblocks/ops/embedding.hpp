#pragma once
// Row gather (embedding lookup) and its adjoint, scatter-add (the embedding
// gradient). Every id is validated before any row is touched, so a bad id
// leaves the output unchanged.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// out [B, D] = table [N, D] rows ids [B]; every id in [0, N).
template <class B, class T>
void gather_rows(const B& be, std::type_identity_t<MatrixView<const T>> table, VectorView<const row_id_t> ids,
                 MatrixView<T> out) {
    constexpr std::string_view op = "ops::gather_rows";
    detail::check_layout(op, "table", table);
    detail::check_layout(op, "out", out);
    RECBLOCKS_CHECK_SHAPE(out.rows() == ids.size() && out.cols() == table.cols(), op, ": out is ", out.shape(),
                          " but expected [", ids.size(), ", ", table.cols(), "] (ids x table width)");
    if constexpr (host_memory_v<B>) detail::check_ids(op, ids, table.rows());
    if (out.empty()) return;
    Primitives<B>::template gather_rows<T>(be, table, ids, out);
}

/// table [N, D] row ids[i] += src [B, D] row i, for every i; repeated ids
/// accumulate, in increasing i, whatever the thread count.
template <class B, class T>
void scatter_add_rows(const B& be, std::type_identity_t<MatrixView<const T>> src, VectorView<const row_id_t> ids,
                      MatrixView<T> table) {
    constexpr std::string_view op = "ops::scatter_add_rows";
    detail::check_layout(op, "src", src);
    detail::check_layout(op, "table", table);
    RECBLOCKS_CHECK_SHAPE(src.rows() == ids.size() && src.cols() == table.cols(), op, ": src is ", src.shape(),
                          " but expected [", ids.size(), ", ", table.cols(), "] (ids x table width)");
    if constexpr (host_memory_v<B>) detail::check_ids(op, ids, table.rows());
    if (src.empty()) return;
    Primitives<B>::template scatter_add_rows<T>(be, src, ids, table);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
