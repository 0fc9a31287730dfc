#pragma once
// Top-k per row: the k largest scores of each row, in descending order; equal
// scores are ordered by ascending column index, so results are deterministic.
#include <limits>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// scores [R, N] -> ids [R, k] (column indices) and values [R, k].
/// Requires 1 <= k <= N. A NaN score raises ValueError (the order would be
/// meaningless); -inf and +inf are ordinary values.
template <class B, class T>
void top_k_rows(const B& be, std::type_identity_t<MatrixView<const T>> scores, index_t k, MatrixView<row_id_t> ids,
                MatrixView<T> values) {
    constexpr std::string_view op = "ops::top_k_rows";
    detail::check_layout(op, "scores", scores);
    detail::check_layout(op, "ids", ids);
    detail::check_layout(op, "values", values);
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= scores.cols(), op, ": k = ", k, " but rows have ", scores.cols(),
                          " scores; need 1 <= k <= N");
    RECBLOCKS_CHECK_VALUE(scores.cols() <= index_t{std::numeric_limits<row_id_t>::max()}, op, ": rows of ",
                          scores.cols(), " scores exceed the id range");
    RECBLOCKS_CHECK_SHAPE(ids.rows() == scores.rows() && ids.cols() == k, op, ": ids is ", ids.shape(),
                          " but expected [", scores.rows(), ", ", k, "]");
    RECBLOCKS_CHECK_SHAPE(values.rows() == scores.rows() && values.cols() == k, op, ": values is ", values.shape(),
                          " but expected [", scores.rows(), ", ", k, "]");
    if (scores.rows() == 0) return;
    // NaN detection happens inside the kernel's single pass over the scores.
    const index_t nan_row = Primitives<B>::template top_k_rows<T>(be, scores, k, ids, values);
    RECBLOCKS_CHECK_VALUE(nan_row < 0, op, ": row ", nan_row, " of scores contains NaN");
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
