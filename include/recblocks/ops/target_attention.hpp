#pragma once
// Long-sequence target attention over histories of ids (DARE,
// models/dare.hpp), batched: a batch of S targets, each with its own history,
// in compressed rows (segment s is ids[offsets[s] .. offsets[s + 1])).
//
//   search_segments       stage 1: every behaviour's score against its
//                         target's query, and the k best of each segment
//   attend_rows           stage 2: out[s] = Σ_j w[s, j] rows[s k + j]
//   attend_rows_backward  its adjoint: dw[s, j] = <dout[s], rows[s k + j]>,
//                         drows[s k + j] = w[s, j] dout[s]
//
// One call per batch on every backend: the CPU splits the segments over its
// threads, a GPU runs them side by side. An optional family (Reference, CPU,
// CUDA), detected by has_target_attention.
#include <limits>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class T = float>
concept has_target_attention =
    requires(const B& be, MatrixView<const T> m, VectorView<const row_id_t> ids, VectorView<const index_t> offsets,
             VectorView<T> v, MatrixView<T> out, MatrixView<row_id_t> pos) {
        Primitives<B>::template search_segments<T>(be, m, ids, offsets, m, T(1), index_t{1}, v, out, pos, pos);
        Primitives<B>::template attend_rows<T>(be, m, m, out);
        Primitives<B>::template attend_rows_backward<T>(be, m, m, m, out, out);
    };

/// Stage 1 of target attention for S segments:
///
///   scores[j] = alpha <table[ids[j]], queries[s]>       for j in segment s
///   top_values[s, :], top_positions[s, :] = the k best scores of segment s,
///       best first (ties: the earlier position); positions relative to the
///       segment's start
///   top_ids[s, i] = ids[offsets[s] + top_positions[s, i]]   (skipped if top_ids is empty)
///
/// table [N, D], ids [n] in [0, N), offsets [S + 1] (offsets[0] = 0, offsets[S]
/// = n, every segment at least k long), queries [S, D], scores [n], top_* [S, k].
/// A NaN score is a ValueError naming the segment (the order would be
/// meaningless). On host memory the ids and offsets are checked before any
/// work; a device backend checks them in its kernels and throws the same errors.
template <class B, class T>
    requires has_target_attention<B, T>
void search_segments(const B& be, std::type_identity_t<MatrixView<const T>> table, VectorView<const row_id_t> ids,
                     VectorView<const index_t> offsets, std::type_identity_t<MatrixView<const T>> queries, T alpha,
                     index_t k, VectorView<T> scores, MatrixView<T> top_values, MatrixView<row_id_t> top_positions,
                     MatrixView<row_id_t> top_ids = {}) {
    constexpr std::string_view op = "ops::search_segments";
    detail::check_layout(op, "table", table);
    detail::check_layout(op, "queries", queries);
    detail::check_layout(op, "top_values", top_values);
    detail::check_layout(op, "top_positions", top_positions);
    RECBLOCKS_CHECK_SHAPE(offsets.size() >= 1, op, ": offsets is empty (need S + 1 entries)");
    const index_t segments = offsets.size() - 1;
    RECBLOCKS_CHECK_SHAPE(queries.rows() == segments && queries.cols() == table.cols(), op, ": queries is ",
                          queries.shape(), " but expected [", segments, ", ", table.cols(),
                          "] (segments x the table's width)");
    detail::check_length(op, "scores", scores, ids.size(), "the number of ids");
    RECBLOCKS_CHECK_VALUE(k >= 1, op, ": k = ", k, " (need k >= 1)");
    RECBLOCKS_CHECK_SHAPE(top_values.rows() == segments && top_values.cols() == k, op, ": top_values is ",
                          top_values.shape(), " but expected [", segments, ", ", k, "]");
    RECBLOCKS_CHECK_SHAPE(top_positions.shape() == top_values.shape(), op, ": top_positions is ",
                          top_positions.shape(), " but expected [", segments, ", ", k, "]");
    if (top_ids.data() != nullptr) {
        detail::check_layout(op, "top_ids", top_ids);
        RECBLOCKS_CHECK_SHAPE(top_ids.shape() == top_values.shape(), op, ": top_ids is ", top_ids.shape(),
                              " but expected [", segments, ", ", k, "]");
    }
    if constexpr (host_memory_v<B>) {
        RECBLOCKS_CHECK_SHAPE(offsets(0) == 0 && offsets(segments) == ids.size(), op,
                              ": offsets must start at 0 and end at the number of ids ", ids.size(), ", got ",
                              offsets(0), " and ", offsets(segments));
        for (index_t s = 0; s < segments; ++s)
            RECBLOCKS_CHECK_VALUE(offsets(s + 1) - offsets(s) >= k, op, ": segment ", s, " has ",
                                  offsets(s + 1) - offsets(s), " ids but k is ", k,
                                  " (k must not exceed a segment)");
        detail::check_ids(op, ids, table.rows());
    }
    if (segments == 0) return;
    const index_t nan_segment = Primitives<B>::template search_segments<T>(be, table, ids, offsets, queries, alpha, k,
                                                                           scores, top_values, top_positions, top_ids);
    RECBLOCKS_CHECK_VALUE(nan_segment < 0, op, ": segment ", nan_segment, " has a NaN score (non-finite embeddings?)");
}

/// out [S, D] row s = Σ_j w[s, j] rows[s k + j] for w [S, k], rows [S k, D].
/// out must not overlap w or rows.
template <class B, class T>
    requires has_target_attention<B, T>
void attend_rows(const B& be, std::type_identity_t<MatrixView<const T>> w,
                 std::type_identity_t<MatrixView<const T>> rows, MatrixView<T> out) {
    constexpr std::string_view op = "ops::attend_rows";
    detail::check_layout(op, "w", w);
    detail::check_layout(op, "rows", rows);
    detail::check_layout(op, "out", out);
    RECBLOCKS_CHECK_SHAPE(rows.rows() == w.rows() * w.cols() && out.rows() == w.rows() && out.cols() == rows.cols(), op,
                          ": w is ", w.shape(), ", rows ", rows.shape(), " and out ", out.shape(),
                          " (need [S, k], [S k, D] and [S, D])");
    RECBLOCKS_CHECK_SHAPE(!detail::overlaps(w, MatrixView<const T>(out)) && !detail::overlaps(rows, MatrixView<const T>(out)),
                          op, ": out overlaps w or rows");
    if (out.empty()) return;
    Primitives<B>::template attend_rows<T>(be, w, rows, out);
}

/// The adjoint of attend_rows for dout [S, D]: dw [S, k] (overwritten; skipped
/// if empty) and drows [S k, D] (overwritten; skipped if empty). Outputs must
/// not overlap the inputs.
template <class B, class T>
    requires has_target_attention<B, T>
void attend_rows_backward(const B& be, std::type_identity_t<MatrixView<const T>> w,
                          std::type_identity_t<MatrixView<const T>> rows, std::type_identity_t<MatrixView<const T>> dout,
                          MatrixView<T> dw, MatrixView<T> drows) {
    constexpr std::string_view op = "ops::attend_rows_backward";
    detail::check_layout(op, "w", w);
    detail::check_layout(op, "rows", rows);
    detail::check_layout(op, "dout", dout);
    RECBLOCKS_CHECK_SHAPE(rows.rows() == w.rows() * w.cols() && dout.rows() == w.rows() && dout.cols() == rows.cols(),
                          op, ": w is ", w.shape(), ", rows ", rows.shape(), " and dout ", dout.shape(),
                          " (need [S, k], [S k, D] and [S, D])");
    for (auto in : {w, rows, dout}) {
        if (dw.data() != nullptr)
            RECBLOCKS_CHECK_SHAPE(!detail::overlaps(in, MatrixView<const T>(dw)), op, ": dw overlaps an input");
        if (drows.data() != nullptr)
            RECBLOCKS_CHECK_SHAPE(!detail::overlaps(in, MatrixView<const T>(drows)), op, ": drows overlaps an input");
    }
    if (dw.data() != nullptr) {
        detail::check_layout(op, "dw", dw);
        detail::check_same_shape(op, "w", w, "dw", dw);
    }
    if (drows.data() != nullptr) {
        detail::check_layout(op, "drows", drows);
        detail::check_same_shape(op, "rows", rows, "drows", drows);
    }
    if (w.empty() || (dw.data() == nullptr && drows.data() == nullptr)) return;
    Primitives<B>::template attend_rows_backward<T>(be, w, rows, dout, dw, drows);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
