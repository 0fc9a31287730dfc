#pragma once
// Dot products of one query with rows picked by id from a table,
//   y[i] = alpha * <table[ids[i]], x>,
// without gathering the rows first: the search stage of long-sequence target
// attention (models/dare.hpp), whose history items are ids into a table.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class T = float>
concept has_gathered_dot = requires(const B& be, MatrixView<const T> table, VectorView<const row_id_t> ids,
                                    VectorView<const T> x, VectorView<T> y) {
    Primitives<B>::template gathered_dot<T>(be, table, ids, x, T(1), y);
};

/// table [N, D], ids [n] in [0, N), x [D] -> y [n].
template <class B, class T>
    requires has_gathered_dot<B, T>
void gathered_dot(const B& be, std::type_identity_t<MatrixView<const T>> table, VectorView<const row_id_t> ids,
                  std::type_identity_t<VectorView<const T>> x, T alpha, VectorView<T> y) {
    constexpr std::string_view op = "ops::gathered_dot";
    detail::check_layout(op, "table", table);
    detail::check_length(op, "x", x, table.cols(), "the table's width");
    detail::check_length(op, "y", y, ids.size(), "the number of ids");
    if constexpr (host_memory_v<B>) detail::check_ids(op, ids, table.rows());
    if (ids.size() == 0) return;
    Primitives<B>::template gathered_dot<T>(be, table, ids, x, alpha, y);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
