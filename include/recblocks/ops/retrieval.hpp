#pragma once
// Whole retrieval searches as one backend call each, so every backend runs
// them its own way (the CPU: threaded panel scans behind a threshold buffer;
// a GPU: one fused scan-and-select pass) and a retrieval index is the same
// class on all of them:
//
//   exact_top_k     the k best rows of a column-panel table (f32, bf16 bits,
//                   int8 codes + row scales) for each of Q queries, with
//                   per-query (CSR) or shared exclusion lists; ordered with
//                   scores, or an unordered shortlist without them
//   rerank_top_k    the k best of each query's candidate ids by full-width
//                   score against row-major f32 rows (a funnel's second stage)
//   max_sim_scores  late-interaction MaxSim of one multi-vector query against
//                   ragged multi-vector items (+ the winning vectors)
//
// Order everywhere: larger score first, then smaller id. Views (and the
// exclusion lists) point into the backend's memory space. For host memory
// these wrappers check the data too (finite queries, sorted exclusions in
// range, k <= N - excluded, candidate ids, MaxSim offsets); a device backend
// checks them in its kernels and raises the same errors.
#include <concepts>
#include <limits>

#include "recblocks/backend/retrieval.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B, class E = float>
concept has_exact_top_k = requires(const B& be, PanelView<E> items, MatrixView<const float> queries,
                                   VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids,
                                   MatrixView<row_id_t> ids, MatrixView<float> scores) {
    Primitives<B>::template exact_top_k<E>(be, items, queries, index_t{1}, ex_offsets, ex_ids, ids, scores);
};

template <class B>
concept has_rerank_top_k = requires(const B& be, MatrixView<const float> rows, MatrixView<const float> queries,
                                    MatrixView<const row_id_t> candidates, MatrixView<row_id_t> ids,
                                    MatrixView<float> scores) {
    Primitives<B>::template rerank_top_k<float>(be, rows, queries, candidates, index_t{1}, ids, scores);
};

template <class B>
concept has_max_sim = requires(const B& be, MatrixView<const float> query, MatrixView<const float> vectors,
                               VectorView<const index_t> offsets, VectorView<float> scores, MatrixView<index_t> argmax) {
    Primitives<B>::template max_sim_scores<float>(be, query, vectors, offsets, scores, argmax);
};

/// For each query b of `queries` [Q, D] (rows may be strided: ld >= D), the k
/// best rows of `items` (N rows of D columns) that are not excluded, by score
/// (backend/panels.hpp: scale[r] * <items[r], query>), larger first, then
/// smaller id: ids [Q, k] and scores [Q, k]. `scores` empty: a shortlist —
/// ids hold the same k rows per query in any order, and no scores are written.
/// Exclusions: ex_offsets [Q + 1] (CSR: query b excludes
/// ex_ids[ex_offsets[b] .. ex_offsets[b + 1])) or empty (every query excludes
/// all of ex_ids; both empty: nothing excluded); each list sorted ascending
/// without repeats, and 1 <= k <= N - (its length).
template <class B, class E>
    requires has_exact_top_k<B, E>
void exact_top_k(const B& be, PanelView<E> items, MatrixView<const float> queries, index_t k,
                 VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids, MatrixView<row_id_t> ids,
                 MatrixView<float> scores) {
    constexpr std::string_view op = "ops::exact_top_k";
    detail::check_panels(op, items, queries.cols());
    detail::check_layout(op, "queries", queries);
    detail::check_layout(op, "ids", ids);
    detail::check_layout(op, "scores", scores);
    const index_t nq = queries.rows();
    RECBLOCKS_CHECK_VALUE(items.rows <= index_t{std::numeric_limits<row_id_t>::max()}, op, ": ", items.rows,
                          " items exceed the id range");
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= items.rows, op, ": k = ", k, " but items have ", items.rows,
                          " rows; need 1 <= k <= N");
    RECBLOCKS_CHECK_SHAPE(ids.rows() == nq && ids.cols() == k, op, ": ids is ", ids.shape(), " but expected [", nq,
                          ", ", k, "]");
    RECBLOCKS_CHECK_SHAPE(scores.empty() || (scores.rows() == nq && scores.cols() == k), op, ": scores is ",
                          scores.shape(), " but expected [", nq, ", ", k, "] (or empty: a shortlist)");
    RECBLOCKS_CHECK_SHAPE(ex_offsets.size() == 0 || ex_offsets.size() == nq + 1, op, ": exclude offsets have ",
                          ex_offsets.size(), " entries but expected ", nq + 1, " (queries + 1) or none");
    if constexpr (host_memory_v<B>) ::recblocks::detail::check_exact_top_k_data(op, items.rows, k, queries, ex_offsets, ex_ids);
    if (nq == 0) return;
    Primitives<B>::template exact_top_k<E>(be, items, queries, k, ex_offsets, ex_ids, ids, scores);
}

/// For each query b of `queries` [Q, D], the k best of its candidates
/// (candidates [Q, S], row ids of `rows` [N, D]) by <rows[id], query>, larger
/// first, then smaller id: ids [Q, k] and scores [Q, k]; 1 <= k <= S.
template <class B>
    requires has_rerank_top_k<B>
void rerank_top_k(const B& be, MatrixView<const float> rows, MatrixView<const float> queries,
                  MatrixView<const row_id_t> candidates, index_t k, MatrixView<row_id_t> ids,
                  MatrixView<float> scores) {
    constexpr std::string_view op = "ops::rerank_top_k";
    detail::check_layout(op, "rows", rows);
    detail::check_layout(op, "queries", queries);
    detail::check_layout(op, "candidates", candidates);
    detail::check_layout(op, "ids", ids);
    detail::check_layout(op, "scores", scores);
    const index_t nq = queries.rows();
    RECBLOCKS_CHECK_SHAPE(queries.cols() == rows.cols(), op, ": queries is ", queries.shape(), " but rows have ",
                          rows.cols(), " columns");
    RECBLOCKS_CHECK_SHAPE(candidates.rows() == nq, op, ": candidates is ", candidates.shape(), " but there are ", nq,
                          " queries");
    RECBLOCKS_CHECK_VALUE(k >= 1 && k <= candidates.cols(), op, ": k = ", k, " but there are ", candidates.cols(),
                          " candidates per query; need 1 <= k <= S");
    RECBLOCKS_CHECK_SHAPE(ids.rows() == nq && ids.cols() == k, op, ": ids is ", ids.shape(), " but expected [", nq,
                          ", ", k, "]");
    RECBLOCKS_CHECK_SHAPE(scores.rows() == nq && scores.cols() == k, op, ": scores is ", scores.shape(),
                          " but expected [", nq, ", ", k, "]");
    if constexpr (host_memory_v<B>) ::recblocks::detail::check_candidates(op, candidates, rows.rows());
    if (nq == 0) return;
    Primitives<B>::template rerank_top_k<float>(be, rows, queries, candidates, k, ids, scores);
}

/// MaxSim of `query` [q, D] against items stored ragged (`vectors` [total, D],
/// item i = rows offsets[i] .. offsets[i + 1], offsets [n + 1] from 0 to
/// total, every item at least one vector): scores [n], score_i = sum over
/// query rows r of max_j <query[r], vectors[j]>; argmax [n, q] (the winning
/// vector rows, the first on ties) when not empty.
template <class B>
    requires has_max_sim<B>
void max_sim_scores(const B& be, MatrixView<const float> query, MatrixView<const float> vectors,
                    VectorView<const index_t> offsets, VectorView<float> scores, MatrixView<index_t> argmax = {}) {
    constexpr std::string_view op = "ops::max_sim_scores";
    detail::check_layout(op, "query", query);
    detail::check_layout(op, "vectors", vectors);
    detail::check_layout(op, "argmax", argmax);
    RECBLOCKS_CHECK_SHAPE(query.rows() >= 1 && query.cols() == vectors.cols(), op, ": query is ", query.shape(),
                          " and vectors ", vectors.shape(), "; need >= 1 query vector of the same width");
    RECBLOCKS_CHECK_SHAPE(offsets.size() >= 1, op, ": offsets must run from 0 to the ", vectors.rows(),
                          " vectors; got none");
    const index_t n = offsets.size() - 1;
    RECBLOCKS_CHECK_SHAPE(scores.size() == n, op, ": scores has ", scores.size(), " entries but there are ", n,
                          " items");
    RECBLOCKS_CHECK_SHAPE(argmax.empty() || (argmax.rows() == n && argmax.cols() == query.rows()), op, ": argmax is ",
                          argmax.shape(), " but expected [", n, ", ", query.rows(), "]");
    if constexpr (host_memory_v<B>) ::recblocks::detail::check_max_sim_data(op, query, vectors.rows(), offsets);
    if (n == 0) return;
    Primitives<B>::template max_sim_scores<float>(be, query, vectors, offsets, scores, argmax);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
