#pragma once
// Scores of one float query against an item table in column panels
// (backend/panels.hpp: E = float, bf16 bits or int8 codes with per-row
// scales), the scans behind retrieval::ExactIndex, and against row-major rows
// picked by id (a shortlist's re-rank, retrieval::FunnelIndex).
#include <concepts>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class E = float>
concept has_panel_scores = requires(const B& be, PanelView<E> items, VectorView<const float> x, VectorView<float> y,
                                    VectorView<const row_id_t> ids, VectorView<row_id_t> out_ids,
                                    MatrixView<const float> rows) {
    Primitives<B>::template panel_scores<E>(be, items, x, y);
    { Primitives<B>::template panel_scores_above<E>(be, items, x, 0.0f, row_id_t{0}, y, out_ids) } -> std::same_as<index_t>;
    Primitives<B>::template panel_scores_of_ids<E>(be, items, ids, x, y);
    Primitives<B>::score_ids(be, rows, ids, x, y);
};

namespace detail {
template <class E>
void check_panels(std::string_view op, const PanelView<E>& items, index_t query_size) {
    RECBLOCKS_CHECK_SHAPE(items.rows >= 0 && items.dim >= 1, op, ": items have ", items.rows, " rows of ", items.dim,
                          " columns");
    RECBLOCKS_CHECK_SHAPE(items.rows == 0 || items.data != nullptr, op, ": items have ", items.rows,
                          " rows but no data");
    RECBLOCKS_CHECK_SHAPE(query_size == items.dim, op, ": x has ", query_size, " entries but items have ",
                          items.dim, " columns");
    if constexpr (std::is_same_v<E, std::int8_t>)
        RECBLOCKS_CHECK_SHAPE(items.dim <= kI8MaxDim, op, ": int8 items have ", items.dim,
                              " columns; at most ", kI8MaxDim);
}
}  // namespace detail

/// y [rows] = the scores of every row of `items` against x [dim].
template <class B, class E>
    requires has_panel_scores<B, E>
void panel_scores(const B& be, PanelView<E> items, VectorView<const float> x, VectorView<float> y) {
    constexpr std::string_view op = "ops::panel_scores";
    detail::check_panels(op, items, x.size());
    detail::check_length(op, "y", y, items.rows, "the number of rows");
    if (items.rows == 0) return;
    Primitives<B>::template panel_scores<E>(be, items, x, y);
}

/// The rows scoring above `threshold`, in row order, as (score, first + r);
/// returns how many. The outputs need rows + 16 entries (whole registers are stored).
template <class B, class E>
    requires has_panel_scores<B, E>
index_t panel_scores_above(const B& be, PanelView<E> items, VectorView<const float> x, float threshold,
                           row_id_t first, VectorView<float> out_scores, VectorView<row_id_t> out_ids) {
    constexpr std::string_view op = "ops::panel_scores_above";
    detail::check_panels(op, items, x.size());
    RECBLOCKS_CHECK_SHAPE(out_scores.size() >= items.rows + 16 && out_ids.size() >= items.rows + 16, op,
                          ": out_scores has ", out_scores.size(), " and out_ids ", out_ids.size(),
                          " entries; need rows + 16 = ", items.rows + 16);
    if (items.rows == 0) return 0;
    return Primitives<B>::template panel_scores_above<E>(be, items, x, threshold, first, out_scores, out_ids);
}

/// y [n] = the scores of rows ids [n] of `items` (the bits panel_scores gives them).
template <class B, class E>
    requires has_panel_scores<B, E>
void panel_scores_of_ids(const B& be, PanelView<E> items, VectorView<const row_id_t> ids, VectorView<const float> x,
                         VectorView<float> y) {
    constexpr std::string_view op = "ops::panel_scores_of_ids";
    detail::check_panels(op, items, x.size());
    detail::check_length(op, "y", y, ids.size(), "the number of ids");
    if constexpr (host_memory_v<B>) detail::check_ids(op, ids, items.rows);
    if (ids.size() == 0) return;
    Primitives<B>::template panel_scores_of_ids<E>(be, items, ids, x, y);
}

/// y [n] = <rows[ids[j]], x> for row-major rows [N, D] and x [D].
template <class B>
    requires has_panel_scores<B, float>
void score_ids(const B& be, MatrixView<const float> rows, VectorView<const row_id_t> ids, VectorView<const float> x,
               VectorView<float> y) {
    constexpr std::string_view op = "ops::score_ids";
    detail::check_layout(op, "rows", rows);
    detail::check_length(op, "x", x, rows.cols(), "the rows' width");
    detail::check_length(op, "y", y, ids.size(), "the number of ids");
    if constexpr (host_memory_v<B>) detail::check_ids(op, ids, rows.rows());
    if (ids.size() == 0) return;
    Primitives<B>::score_ids(be, rows, ids, x, y);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
