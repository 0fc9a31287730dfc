#pragma once
// ExactIndex<T>: exact maximum-inner-product top-k over an item table [N, D]
// stored as f32, bf16 or int8 (one scale per row, core/quantize_i8.hpp).
//
//   retrieval::ExactIndex<float> index(items);             // copies [N, D]
//   index.search(be, query, 10, ids, scores);               // one query
//   index.search_batch(be, queries, 10, ids, scores);       // [B, D] queries
//
// Results are the k best (score desc, then id asc: ops::top_k_rows' order) of
// the scores as computed, so ties are deterministic, and they do not depend on
// the thread count: work is cut at fixed row boundaries and the top-k of a
// strict total order is unique, whatever the split.
//
// One query streams the table once: blocks of 256 rows are scored into an L1
// buffer and offered to a running heap behind a SIMD threshold test (no [N]
// score array). The threads split the rows and merge their heaps. A batch
// (>= 4 queries) runs GEMM tiles, 64 queries x 512 items, each item tile
// (widened to f32 for bf16 / int8) staying in L2 while all queries pass.
// The batch path's scores can differ from the one-query path's in the last
// bits (different summation order); each path is deterministic.
//
// Exclusion: per query a sorted list of already-seen item ids that are never
// returned (ExcludedIds for a batch: CSR offsets + ids).
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/quantize_i8.hpp"
#include "recblocks/ops/validate.hpp"
#include "recblocks/retrieval/kernels.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

/// Per-query excluded ids of a batch: query b excludes ids[offsets[b] .. offsets[b+1]),
/// sorted ascending without repeats. Empty offsets: nothing excluded.
struct ExcludedIds {
    std::span<const index_t> offsets;
    std::span<const row_id_t> ids;
};

namespace detail {

/// (score, id) in result order: larger score first, then smaller id.
inline bool ranks_before(float va, row_id_t ia, float vb, row_id_t ib) { return va > vb || (va == vb && ia < ib); }

inline void check_exclusion(std::string_view op, std::span<const row_id_t> ex, index_t n, index_t k,
                            index_t query) {
    for (std::size_t i = 0; i < ex.size(); ++i) {
        RECBLOCKS_CHECK_INDEX(ex[i] >= 0 && ex[i] < n, op, ": excluded id ", ex[i], " of query ", query,
                              " is out of range for ", n, " items");
        RECBLOCKS_CHECK_VALUE(i == 0 || ex[i - 1] < ex[i], op, ": excluded ids of query ", query,
                              " must be sorted ascending without repeats; got ", ex[i - 1], " then ", ex[i]);
    }
    RECBLOCKS_CHECK_VALUE(k <= n - index_t(ex.size()), op, ": k = ", k, " but only ", n - index_t(ex.size()),
                          " items remain after excluding ", ex.size(), " of query ", query);
}

inline void check_finite_query(std::string_view op, const float* q, index_t d, index_t query) {
    for (index_t i = 0; i < d; ++i)
        RECBLOCKS_CHECK_VALUE(std::isfinite(q[i]), op, ": query ", query, " has ", q[i], " at dimension ", i,
                              "; queries must be finite");
}

/// Merges `parts` heaps of up to k entries (part p at v + p * stride) into
/// the k best, written sorted to ids / scores.
inline void merge_heaps(const float* v, const row_id_t* id, const index_t* sizes, index_t parts, index_t stride,
                        index_t k, row_id_t* out_ids, float* out_scores, std::string_view op) {
    struct Entry {
        float v;
        row_id_t id;
    };
    thread_local std::vector<Entry> all;
    all.clear();
    for (index_t p = 0; p < parts; ++p)
        for (index_t i = 0; i < sizes[p]; ++i) all.push_back({v[p * stride + i], id[p * stride + i]});
    RECBLOCKS_CHECK_VALUE(index_t(all.size()) >= k, op, ": internal error, ", all.size(), " candidates for k = ", k);
    std::partial_sort(all.begin(), all.begin() + k, all.end(),
                      [](const Entry& a, const Entry& b) { return ranks_before(a.v, a.id, b.v, b.id); });
    for (index_t i = 0; i < k; ++i) {
        RECBLOCKS_CHECK_VALUE(!std::isnan(all[i].v), op, ": the score of item ", all[i].id,
                              " is NaN (the query times the table overflows)");
        out_ids[i] = all[i].id;
        out_scores[i] = all[i].v;
    }
}

struct HeapTag {};
struct TileTag {};

}  // namespace detail

/// Exact MIPS index over rows stored as T: float, bf16 or std::int8_t.
template <class T>
class ExactIndex {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, std::int8_t>,
                  "ExactIndex<T>: T must be float, bf16 or std::int8_t");

public:
    /// Stored element: f32, bf16 bits, or int8 codes.
    using Element = std::conditional_t<std::is_same_v<T, bf16>, std::uint16_t, T>;
    static constexpr index_t kBlockRows = 256;   // one-query scoring block (1 KiB of scores)
    static constexpr index_t kItemTile = 256;    // batch: items per GEMM tile
    static constexpr index_t kQueryTile = 256;   // batch: queries per GEMM tile
    static constexpr index_t kMinRowsPerThread = 32768;

    ExactIndex() = default;

    /// Copies `items` [N, D] (bf16: rounded to nearest even; int8: quantized per row).
    explicit ExactIndex(MatrixView<const float> items) {
        constexpr std::string_view op = "retrieval::ExactIndex";
        ops::detail::check_layout(op, "items", items);
        RECBLOCKS_CHECK_SHAPE(items.rows() >= 1 && items.cols() >= 1, op, ": items is ", items.shape(),
                              "; need at least one row and one column");
        RECBLOCKS_CHECK_VALUE(items.rows() <= index_t{std::numeric_limits<row_id_t>::max()}, op, ": ",
                              items.rows(), " items exceed the id range");
        n_ = items.rows();
        d_ = items.cols();
        data_.resize(n_ * d_);
        for (index_t r = 0; r < n_; ++r)
            for (index_t c = 0; c < d_; ++c)
                RECBLOCKS_CHECK_VALUE(std::isfinite(items(r, c)), op, ": items[", r, ", ", c, "] is ", items(r, c),
                                      "; items must be finite");
        if constexpr (std::is_same_v<T, std::int8_t>) {
            scales_.resize(n_);
            quantize_rows_i8(items, matrix_view(data_.data(), n_, d_), vector_view(scales_.data(), n_));
        } else {
            for (index_t r = 0; r < n_; ++r)
                for (index_t c = 0; c < d_; ++c) {
                    if constexpr (std::is_same_v<T, float>) data_[r * d_ + c] = items(r, c);
                    else data_[r * d_ + c] = bf16(items(r, c)).bits;
                }
        }
    }

    [[nodiscard]] index_t size() const { return n_; }
    [[nodiscard]] index_t dim() const { return d_; }
    [[nodiscard]] const Element* data() const { return data_.data(); }
    /// int8 only: the per-row scales.
    [[nodiscard]] const float* scales() const { return scales_.size() == 0 ? nullptr : scales_.data(); }

    /// Item `r` widened back to f32 (what the kernels score against).
    [[nodiscard]] float value(index_t r, index_t c) const {
        const Element e = data_[r * d_ + c];
        if constexpr (std::is_same_v<T, float>) return e;
        else if constexpr (std::is_same_v<T, bf16>) return static_cast<float>(bf16::from_bits(e));
        else return float(e) * scales_[r];
    }

    /// The k best items for one query [D]; ids / scores [k], best first.
    template <class Isa>
    void search(const backend::Cpu<Isa>& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search";
        check_ready(op);
        RECBLOCKS_CHECK_SHAPE(query.size() == d_, op, ": query has ", query.size(), " entries but items have ", d_);
        check_k(op, k, ids.size(), scores.size());
        detail::check_finite_query(op, query.data(), d_, 0);
        detail::check_exclusion(op, exclude, n_, k, 0);
        search_one(be, query.data(), k, ids.data(), scores.data(), exclude);
    }

    /// The k best items for each query of `queries` [B, D]; ids / scores [B, k].
    template <class Isa>
    void search_batch(const backend::Cpu<Isa>& be, MatrixView<const float> queries, index_t k,
                      MatrixView<row_id_t> ids, MatrixView<float> scores, const ExcludedIds& exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search_batch";
        check_ready(op);
        ops::detail::check_layout(op, "queries", queries);
        ops::detail::check_layout(op, "ids", ids);
        ops::detail::check_layout(op, "scores", scores);
        const index_t nq = queries.rows();
        RECBLOCKS_CHECK_SHAPE(queries.cols() == d_, op, ": queries is ", queries.shape(), " but items have ", d_,
                              " columns");
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= n_, op, ": k = ", k, " but the index has ", n_,
                              " items; need 1 <= k <= N");
        RECBLOCKS_CHECK_SHAPE(ids.rows() == nq && ids.cols() == k, op, ": ids is ", ids.shape(), " but expected [",
                              nq, ", ", k, "]");
        RECBLOCKS_CHECK_SHAPE(scores.rows() == nq && scores.cols() == k, op, ": scores is ", scores.shape(),
                              " but expected [", nq, ", ", k, "]");
        const bool has_ex = !exclude.offsets.empty();
        if (has_ex) {
            RECBLOCKS_CHECK_SHAPE(index_t(exclude.offsets.size()) == nq + 1, op, ": exclude.offsets has ",
                                  exclude.offsets.size(), " entries but expected ", nq + 1, " (queries + 1)");
            RECBLOCKS_CHECK_VALUE(exclude.offsets[0] == 0 && exclude.offsets[std::size_t(nq)] ==
                                                                 index_t(exclude.ids.size()),
                                  op, ": exclude.offsets must start at 0 and end at ", exclude.ids.size());
        }
        auto excluded = [&](index_t b) -> std::span<const row_id_t> {
            if (!has_ex) return {};
            return exclude.ids.subspan(std::size_t(exclude.offsets[std::size_t(b)]),
                                       std::size_t(exclude.offsets[std::size_t(b + 1)] - exclude.offsets[std::size_t(b)]));
        };
        for (index_t b = 0; b < nq; ++b) {
            if (has_ex)
                RECBLOCKS_CHECK_VALUE(exclude.offsets[std::size_t(b)] <= exclude.offsets[std::size_t(b + 1)], op,
                                      ": exclude.offsets must be non-decreasing; offsets[", b, "] = ",
                                      exclude.offsets[std::size_t(b)], " > offsets[", b + 1, "] = ",
                                      exclude.offsets[std::size_t(b + 1)]);
            detail::check_finite_query(op, queries.row(b), d_, b);
            detail::check_exclusion(op, excluded(b), n_, k, b);
        }
        if (nq < 4) {  // a GEMM tile of 1-3 queries does no better than streaming
            for (index_t b = 0; b < nq; ++b) search_one(be, queries.row(b), k, ids.row(b), scores.row(b), excluded(b));
            return;
        }
        const auto& kt = detail::retrieval_kernels(be);
        const index_t tiles = (n_ + kItemTile - 1) / kItemTile;
        const index_t parts = std::min<index_t>(be.threads().size(), tiles);
        const index_t per_part = nq * k;  // heap slots of one part
        auto& hv = cpu::thread_scratch<float, detail::HeapTag>(std::size_t(parts * per_part));
        auto& hid = cpu::thread_scratch<row_id_t, detail::HeapTag>(std::size_t(parts * per_part));
        auto& hsize = cpu::thread_scratch<index_t, detail::HeapTag>(std::size_t(parts * nq));
        be.threads().run(parts, [&](index_t p) {
            auto& buf = cpu::thread_scratch<float, detail::TileTag>(
                std::size_t(kQueryTile * kItemTile + (std::is_same_v<T, float> ? 0 : kItemTile * d_)));
            float* tile_scores = buf.data();
            float* wide = buf.data() + kQueryTile * kItemTile;
            index_t* sizes = hsize.data() + p * nq;
            std::fill_n(sizes, nq, index_t(0));
            for (index_t t = tiles * p / parts; t < tiles * (p + 1) / parts; ++t) {
                const index_t r0 = t * kItemTile, nt = std::min(n_, r0 + kItemTile) - r0;
                MatrixView<const float> items;
                if constexpr (std::is_same_v<T, float>) {
                    items = matrix_view(data_.data() + r0 * d_, nt, d_, d_);
                } else {
                    for (index_t r = 0; r < nt; ++r)
                        for (index_t c = 0; c < d_; ++c) wide[r * d_ + c] = value(r0 + r, c);
                    items = matrix_view(static_cast<const float*>(wide), nt, d_, d_);
                }
                for (index_t q0 = 0; q0 < nq; q0 += kQueryTile) {
                    const index_t nqt = std::min(nq, q0 + kQueryTile) - q0;
                    Primitives<backend::Cpu<Isa>>::template gemm_single<float>(
                        Trans::no, Trans::yes, 1.0f, queries.slice_rows(q0, q0 + nqt), items, 0.0f,
                        matrix_view(tile_scores, nqt, nt, nt));
                    for (index_t q = 0; q < nqt; ++q) {
                        const index_t b = q0 + q;
                        const auto ex = excluded(b);
                        float* v = hv.data() + p * per_part + b * k;
                        row_id_t* id = hid.data() + p * per_part + b * k;
                        sizes[b] = kt.offer(tile_scores + q * nt, nt, static_cast<row_id_t>(r0), k, v, id, sizes[b],
                                            ex.data(), index_t(ex.size()));
                    }
                }
            }
        });
        auto& part_sizes = cpu::thread_scratch<index_t, detail::TileTag>(std::size_t(parts));
        for (index_t b = 0; b < nq; ++b) {
            for (index_t p = 0; p < parts; ++p) part_sizes[std::size_t(p)] = hsize[std::size_t(p * nq + b)];
            detail::merge_heaps(hv.data() + b * k, hid.data() + b * k, part_sizes.data(), parts, per_part, k,
                                ids.row(b), scores.row(b), op);
        }
    }

    /// Full-width scores of the items `ids` for one query (a shortlist re-rank).
    template <class Isa>
    void score_ids(const backend::Cpu<Isa>& be, const float* query, const row_id_t* ids, index_t n,
                   float* out) const {
        const auto& kt = detail::retrieval_kernels(be);
        if constexpr (std::is_same_v<T, float>) kt.score_ids_f32(data_.data(), d_, ids, n, d_, query, nullptr, out);
        else if constexpr (std::is_same_v<T, bf16>)
            kt.score_ids_bf16(data_.data(), d_, ids, n, d_, query, nullptr, out);
        else kt.score_ids_i8(data_.data(), d_, ids, n, d_, query, scales_.data(), out);
    }

private:
    void check_ready(std::string_view op) const {
        RECBLOCKS_CHECK_VALUE(n_ > 0, op, ": the index is empty (default-constructed)");
    }
    void check_k(std::string_view op, index_t k, index_t n_ids, index_t n_scores) const {
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= n_, op, ": k = ", k, " but the index has ", n_,
                              " items; need 1 <= k <= N");
        RECBLOCKS_CHECK_SHAPE(n_ids == k && n_scores == k, op, ": ids has ", n_ids, " and scores ", n_scores,
                              " entries but k = ", k);
    }

    template <class Isa>
    void score_block(const cpu::RetrievalKernelTable& kt, index_t r0, index_t nr, const float* q, float* out) const {
        const Element* rows = data_.data() + r0 * d_;
        if constexpr (std::is_same_v<T, float>) kt.score_f32(rows, d_, nr, d_, q, nullptr, out);
        else if constexpr (std::is_same_v<T, bf16>) kt.score_bf16(rows, d_, nr, d_, q, nullptr, out);
        else kt.score_i8(rows, d_, nr, d_, q, scales_.data() + r0, out);
    }

    template <class Isa>
    void search_one(const backend::Cpu<Isa>& be, const float* q, index_t k, row_id_t* ids, float* scores,
                    std::span<const row_id_t> ex) const {
        const auto& kt = detail::retrieval_kernels(be);
        const index_t blocks = (n_ + kBlockRows - 1) / kBlockRows;
        // Split only tables big enough to pay for waking a thread.
        const index_t parts = std::clamp<index_t>(n_ / kMinRowsPerThread, 1, be.threads().size());
        auto& hv = cpu::thread_scratch<float, detail::HeapTag>(std::size_t(parts * k));
        auto& hid = cpu::thread_scratch<row_id_t, detail::HeapTag>(std::size_t(parts * k));
        auto& hsize = cpu::thread_scratch<index_t, detail::HeapTag>(std::size_t(parts));
        auto body = [&](index_t p) {
            alignas(64) float buf[kBlockRows];
            float* v = hv.data() + p * k;
            row_id_t* id = hid.data() + p * k;
            index_t size = 0;
            for (index_t blk = blocks * p / parts; blk < blocks * (p + 1) / parts; ++blk) {
                const index_t r0 = blk * kBlockRows, nr = std::min(n_, r0 + kBlockRows) - r0;
                score_block<Isa>(kt, r0, nr, q, buf);
                size = kt.offer(buf, nr, static_cast<row_id_t>(r0), k, v, id, size, ex.data(), index_t(ex.size()));
            }
            hsize[std::size_t(p)] = size;
        };
        if (parts == 1) body(0);
        else be.threads().run(parts, body);
        detail::merge_heaps(hv.data(), hid.data(), hsize.data(), parts, k, k, ids, scores,
                            "retrieval::ExactIndex::search");
    }

    index_t n_ = 0, d_ = 0;
    AlignedBuffer<Element> data_;  // 64-byte rows start on cache lines; huge pages for big tables
    AlignedBuffer<float> scales_;
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
