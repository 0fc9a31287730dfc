#pragma once
// Late-interaction MaxSim (ColBERT, Khattab & Zaharia 2020): a query of q
// vectors against items that are sets of vectors,
//
//   score(Q, item i) = sum_r max_j <Q[r], V[j]>,  j over item i's rows
//
// Items form a ragged table: `vectors` [total, D] with item i in rows
// offsets[i] .. offsets[i+1] (every item needs at least one vector).
// The forward pass is one backend call, ops::max_sim_scores (on the CPU: GEMM
// tiles of the query against fixed groups of whole items, so results do not
// depend on the thread count); it records, per (item, query row), the winning
// vector (first one on ties). Every view and the offsets live in the backend's
// memory space. Backward (host memory) sends each score's gradient to the
// winner only:
//   dQ[r] += g_i * V[a(i, r)],   dV[a(i, r)] += g_i * Q[r].
#include <algorithm>
#include <cmath>
#include <span>

#include "recblocks/backend/memory.hpp"
#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/ops/retrieval.hpp"
#include "recblocks/ops/top_k.hpp"
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

namespace detail {
struct MaxSimScoresTag {};

inline void check_max_sim_inputs(std::string_view op, MatrixView<const float> query, MatrixView<const float> vectors,
                                 std::span<const index_t> offsets) {
    ops::detail::check_layout(op, "query", query);
    ops::detail::check_layout(op, "vectors", vectors);
    RECBLOCKS_CHECK_SHAPE(query.rows() >= 1 && query.cols() == vectors.cols(), op, ": query is ", query.shape(),
                          " and vectors ", vectors.shape(), "; need >= 1 query vector of the same width");
    RECBLOCKS_CHECK_SHAPE(offsets.size() >= 1, op, ": offsets must run from 0 to the ", vectors.rows(),
                          " vectors; got none");
    ::recblocks::detail::check_max_sim_data(op, query, vectors.rows(),
                                            vector_view(offsets.data(), index_t(offsets.size())));
}
}  // namespace detail

/// scores [n] of the n = offsets.size() - 1 items; argmax [n, q] (global
/// vector rows of the winners) is written when not empty (needed for backward).
template <class Be>
    requires ops::has_max_sim<Be>
void max_sim_scores(const Be& be, MatrixView<const float> query, MatrixView<const float> vectors,
                    std::span<const index_t> offsets, VectorView<float> scores, MatrixView<index_t> argmax = {}) {
    ops::max_sim_scores(be, query, vectors, vector_view(offsets.data(), index_t(offsets.size())), scores, argmax);
}

/// The k best items by MaxSim (score desc, id asc); ids / scores [k].
template <class Be>
    requires ops::has_max_sim<Be>
void max_sim_top_k(const Be& be, MatrixView<const float> query, MatrixView<const float> vectors,
                   std::span<const index_t> offsets, index_t k, VectorView<row_id_t> ids, VectorView<float> scores) {
    const index_t n = index_t(offsets.size()) - 1;
    RECBLOCKS_CHECK_VALUE(n >= 1 && k >= 1 && k <= n, "retrieval::max_sim_top_k: k = ", k, " but there are ", n,
                          " items; need 1 <= k <= N");
    auto top = [&](VectorView<float> all) {
        max_sim_scores(be, query, vectors, offsets, all);
        ops::top_k_rows<Be, float>(be, matrix_view(static_cast<const float*>(all.data()), 1, n), k,
                                   matrix_view(ids.data(), 1, k), matrix_view(scores.data(), 1, k));
    };
    if constexpr (host_memory_v<Be>) {
        auto& all = thread_scratch<float, detail::MaxSimScoresTag>(std::size_t(n));
        top(vector_view(all.data(), n));
    } else {
        auto all = make_tensor<float>(be, Shape<1>{{n}});
        top(all.view());
    }
}

/// Gradients of sum_i d_scores[i] * score_i: d_query [q, D] and d_vectors
/// [total, D] are overwritten. `argmax` comes from max_sim_scores.
inline void max_sim_backward(MatrixView<const float> query, MatrixView<const float> vectors,
                             std::span<const index_t> offsets, MatrixView<const index_t> argmax,
                             VectorView<const float> d_scores, MatrixView<float> d_query,
                             MatrixView<float> d_vectors) {
    constexpr std::string_view op = "retrieval::max_sim_backward";
    detail::check_max_sim_inputs(op, query, vectors, offsets);
    const index_t n = index_t(offsets.size()) - 1, q = query.rows(), d = query.cols();
    RECBLOCKS_CHECK_SHAPE(argmax.rows() == n && argmax.cols() == q, op, ": argmax is ", argmax.shape(),
                          " but expected [", n, ", ", q, "]");
    RECBLOCKS_CHECK_SHAPE(d_scores.size() == n, op, ": d_scores has ", d_scores.size(), " entries but there are ",
                          n, " items");
    RECBLOCKS_CHECK_SHAPE(d_query.shape() == query.shape(), op, ": d_query is ", d_query.shape(), " but query is ",
                          query.shape());
    RECBLOCKS_CHECK_SHAPE(d_vectors.shape() == vectors.shape(), op, ": d_vectors is ", d_vectors.shape(),
                          " but vectors is ", vectors.shape());
    for (index_t r = 0; r < q; ++r) std::fill_n(d_query.row(r), d, 0.0f);
    for (index_t j = 0; j < vectors.rows(); ++j) std::fill_n(d_vectors.row(j), d, 0.0f);
    for (index_t i = 0; i < n; ++i) {
        const float g = d_scores(i);
        for (index_t r = 0; r < q; ++r) {
            const index_t j = argmax(i, r);
            RECBLOCKS_CHECK_INDEX(j >= offsets[std::size_t(i)] && j < offsets[std::size_t(i + 1)], op, ": argmax[",
                                  i, ", ", r, "] = ", j, " is not a vector of item ", i);
            const float* v = vectors.row(j);
            const float* x = query.row(r);
            float* dq = d_query.row(r);
            float* dv = d_vectors.row(j);
            for (index_t c = 0; c < d; ++c) {
                dq[c] += g * v[c];
                dv[c] += g * x[c];
            }
        }
    }
}

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
