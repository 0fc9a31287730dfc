#pragma once
// What every backend's retrieval primitives share on the host (exact_top_k,
// rerank_top_k, max_sim_scores; backend/primitives.hpp states them):
//
//   * the result order as one 64-bit key per (score, id): larger key = ranks
//     first (larger score, then smaller id), so "the k best" is the k largest
//     keys and ties are broken exactly;
//   * the checks of the data the primitives read (exclusion lists, candidate
//     ids, MaxSim offsets, finite queries), with the messages every backend
//     raises: ops/ runs them for host memory before the call, the Reference
//     backend inside its primitives (so a device backend built on it, like the
//     tests' guarded device, raises them too), a GPU backend in its kernels.
#include <bit>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval_keys {

/// Order-preserving bits of a score: larger bits = larger score (-0 as +0).
inline std::uint32_t order_bits(float v) {
    const std::uint32_t u = v == 0.0f ? 0u : std::bit_cast<std::uint32_t>(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float from_order_bits(std::uint32_t u) { return std::bit_cast<float>((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u); }

/// Larger key = ranks first (larger score, then smaller id).
inline std::uint64_t rank_key(float v, row_id_t id) {
    return (std::uint64_t(order_bits(v)) << 32) | std::uint64_t(~static_cast<std::uint32_t>(id));
}
inline float key_score(std::uint64_t key) { return from_order_bits(static_cast<std::uint32_t>(key >> 32)); }
inline row_id_t key_id(std::uint64_t key) { return static_cast<row_id_t>(~static_cast<std::uint32_t>(key)); }

}  // namespace retrieval_keys

namespace detail {

/// Query b's excluded ids as [first, last) of ex_ids: its CSR slice, or the
/// whole list when there are no offsets (one list shared by every query).
inline void excluded_range(VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids, index_t b,
                           const row_id_t*& first, const row_id_t*& last) {
    if (ex_offsets.size() == 0) {
        first = ex_ids.data();
        last = ex_ids.data() + ex_ids.size();
    } else {
        first = ex_ids.data() + ex_offsets(b);
        last = ex_ids.data() + ex_offsets(b + 1);
    }
}

/// The CSR layout of exclusion offsets for nq queries (a size check happened in ops/).
inline void check_exclusion_offsets(std::string_view op, VectorView<const index_t> ex_offsets, index_t n_ids,
                                    index_t nq) {
    if (ex_offsets.size() == 0) return;
    RECBLOCKS_CHECK_VALUE(ex_offsets(0) == 0 && ex_offsets(nq) == n_ids, op, ": exclude offsets must start at 0 and end at ",
                          n_ids, " (the number of excluded ids); got ", ex_offsets(0), " .. ", ex_offsets(nq));
    for (index_t b = 0; b < nq; ++b)
        RECBLOCKS_CHECK_VALUE(ex_offsets(b) <= ex_offsets(b + 1), op, ": exclude offsets must be non-decreasing; offsets[",
                              b, "] = ", ex_offsets(b), " > offsets[", b + 1, "] = ", ex_offsets(b + 1));
}

/// One query's exclusion list: ids in [0, n), sorted ascending without
/// repeats, and at least k items left.
inline void check_exclusion_list(std::string_view op, const row_id_t* ex, index_t count, index_t n, index_t k,
                                 index_t query) {
    for (index_t i = 0; i < count; ++i) {
        RECBLOCKS_CHECK_INDEX(ex[i] >= 0 && ex[i] < n, op, ": excluded id ", ex[i], " of query ", query,
                              " is out of range for ", n, " items");
        RECBLOCKS_CHECK_VALUE(i == 0 || ex[i - 1] < ex[i], op, ": excluded ids of query ", query,
                              " must be sorted ascending without repeats; got ", ex[i - 1], " then ", ex[i]);
    }
    RECBLOCKS_CHECK_VALUE(k <= n - count, op, ": k = ", k, " but only ", n - count, " items remain after excluding ",
                          count, " of query ", query);
}

inline void check_finite_query(std::string_view op, const float* q, index_t d, index_t query) {
    for (index_t i = 0; i < d; ++i)
        RECBLOCKS_CHECK_VALUE(std::isfinite(q[i]), op, ": query ", query, " has ", q[i], " at dimension ", i,
                              "; queries must be finite");
}

/// Everything exact_top_k reads besides the table: finite queries, the
/// exclusion layout and lists (k <= N - excluded for each query).
inline void check_exact_top_k_data(std::string_view op, index_t n, index_t k, MatrixView<const float> queries,
                                   VectorView<const index_t> ex_offsets, VectorView<const row_id_t> ex_ids) {
    const index_t nq = queries.rows();
    check_exclusion_offsets(op, ex_offsets, ex_ids.size(), nq);
    for (index_t b = 0; b < nq; ++b) check_finite_query(op, queries.row(b), queries.cols(), b);
    if (ex_offsets.size() == 0) {  // one list shared by every query: named as query 0's
        check_exclusion_list(op, ex_ids.data(), ex_ids.size(), n, k, 0);
        return;
    }
    for (index_t b = 0; b < nq; ++b)
        check_exclusion_list(op, ex_ids.data() + ex_offsets(b), ex_offsets(b + 1) - ex_offsets(b), n, k, b);
}

/// rerank_top_k's candidates: every id a row of the table.
inline void check_candidates(std::string_view op, MatrixView<const row_id_t> candidates, index_t n) {
    for (index_t b = 0; b < candidates.rows(); ++b)
        for (index_t j = 0; j < candidates.cols(); ++j)
            RECBLOCKS_CHECK_INDEX(candidates(b, j) >= 0 && candidates(b, j) < n, op, ": candidate ", j, " of query ", b,
                                  " = ", candidates(b, j), " is out of range for ", n, " items");
}

/// MaxSim's ragged layout (offsets from 0 to the vectors' rows, every item at
/// least one vector) and a finite query.
inline void check_max_sim_data(std::string_view op, MatrixView<const float> query, index_t vectors,
                               VectorView<const index_t> offsets) {
    const index_t n = offsets.size() - 1;
    RECBLOCKS_CHECK_SHAPE(offsets(0) == 0 && offsets(n) == vectors, op, ": offsets must run from 0 to the ", vectors,
                          " vectors; got ", offsets(0), " .. ", offsets(n));
    for (index_t i = 0; i < n; ++i)
        RECBLOCKS_CHECK_VALUE(offsets(i) < offsets(i + 1), op, ": item ", i, " has offsets ", offsets(i), " .. ",
                              offsets(i + 1), "; every item needs at least one vector");
    for (index_t r = 0; r < query.rows(); ++r)
        for (index_t c = 0; c < query.cols(); ++c)
            RECBLOCKS_CHECK_VALUE(std::isfinite(query(r, c)), op, ": query[", r, ", ", c, "] is ", query(r, c),
                                  "; queries must be finite");
}

}  // namespace detail
RECBLOCKS_NAMESPACE_END
