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
// The table is stored in column panels of 64 rows ([D][64] each; see
// backend/panels.hpp and the CPU kernels): a scan needs no horizontal sums, which
// is what lets one query read the table at the machine's read bandwidth.
// One query streams the table once: 4,096 rows at a time are scored into an
// L1 buffer and offered, 256 at a time, to a TopKCollector behind a SIMD
// threshold test (no [N] score array). int8 tables score with the query
// rounded to int16 at a power-of-two scale (exact integer sums; see the
// kernels): their scores follow the dequantized table to ~1e-5 relative. The threads split the rows; one selection merges them. A batch
// (>= 4 queries) runs GEMM tiles of 256 queries x 256 items, a panel being a
// [D, 64] row-major matrix (widened to f32 for bf16 / int8), each item tile
// staying in L2 while all queries pass. score_ids (a re-rank) gathers a row's
// elements from its panel, 64 apart: fine for tens of rows; FunnelIndex keeps
// row-major rows for its shortlist.
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

#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/quantize_i8.hpp"
#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/validate.hpp"
#include "recblocks/retrieval/index.hpp"
#include "recblocks/retrieval/selection.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

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

/// Items [N, D] an index can copy: dense rows, N >= 1, D >= 1, ids in range, finite.
inline void check_items(std::string_view op, MatrixView<const float> items) {
    ops::detail::check_layout(op, "items", items);
    RECBLOCKS_CHECK_SHAPE(items.rows() >= 1 && items.cols() >= 1, op, ": items is ", items.shape(),
                          "; need at least one row and one column");
    RECBLOCKS_CHECK_VALUE(items.rows() <= index_t{std::numeric_limits<row_id_t>::max()}, op, ": ", items.rows(),
                          " items exceed the id range");
    for (index_t r = 0; r < items.rows(); ++r)
        for (index_t c = 0; c < items.cols(); ++c)
            RECBLOCKS_CHECK_VALUE(std::isfinite(items(r, c)), op, ": items[", r, ", ", c, "] is ", items(r, c),
                                  "; items must be finite");
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
struct CollectTag {};

}  // namespace detail

/// Exact MIPS index over rows stored as T: float, bf16 or std::int8_t.
template <class T>
class ExactIndex {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, std::int8_t>,
                  "ExactIndex<T>: T must be float, bf16 or std::int8_t");

public:
    /// Stored element: f32, bf16 bits, or int8 codes.
    using Element = std::conditional_t<std::is_same_v<T, bf16>, std::uint16_t, T>;
    static constexpr index_t kPanelRows = ::recblocks::kPanelRows;  // rows per column panel
    static constexpr index_t kScoreRows = 4096;  // one-query scoring call (16 KiB of scores: L1)
    static constexpr index_t kBlockRows = 256;   // one-query: rows per collector offer
    static constexpr index_t kItemTile = 256;    // batch: items per GEMM tile (4 panels)
    static constexpr index_t kQueryTile = 256;   // batch: queries per GEMM tile
    static constexpr index_t kMinRowsPerThread = 32768;

    ExactIndex() = default;

    /// Copies `items` [N, D] (bf16: rounded to nearest even; int8: quantized per row).
    explicit ExactIndex(MatrixView<const float> items) {
        detail::check_items("retrieval::ExactIndex", items);
        if constexpr (std::is_same_v<T, std::int8_t>)
            RECBLOCKS_CHECK_SHAPE(items.cols() <= kI8MaxDim, "retrieval::ExactIndex<int8>: items have ",
                                  items.cols(), " columns; int8 tables support at most ", kI8MaxDim);
        n_ = items.rows();
        d_ = items.cols();
        const index_t padded = (n_ + kPanelRows - 1) / kPanelRows * kPanelRows;
        data_.resize(padded * panel_cols<Element>(d_));  // zeroed: the padding rows of the last panel score 0
        if constexpr (std::is_same_v<T, std::int8_t>) {
            std::vector<std::int8_t> codes(std::size_t(n_ * d_));
            scales_.resize(padded);
            quantize_rows_i8(items, matrix_view(codes.data(), n_, d_), vector_view(scales_.data(), n_));
            for (index_t r = 0; r < n_; ++r)
                for (index_t c = 0; c < d_; ++c) data_[at(r, c)] = codes[std::size_t(r * d_ + c)];
        } else {
            for (index_t r = 0; r < n_; ++r)
                for (index_t c = 0; c < d_; ++c) {
                    if constexpr (std::is_same_v<T, float>) data_[at(r, c)] = items(r, c);
                    else data_[at(r, c)] = bf16(items(r, c)).bits;
                }
        }
    }

    [[nodiscard]] index_t size() const { return n_; }
    [[nodiscard]] index_t dim() const { return d_; }
    /// int8 only: the per-row scales.
    [[nodiscard]] const float* scales() const { return scales_.size() == 0 ? nullptr : scales_.data(); }

    /// Item `r` widened back to f32 (what the kernels score against).
    [[nodiscard]] float value(index_t r, index_t c) const {
        const Element e = data_[at(r, c)];
        if constexpr (std::is_same_v<T, float>) return e;
        else if constexpr (std::is_same_v<T, bf16>) return static_cast<float>(bf16::from_bits(e));
        else return float(e) * scales_[r];
    }

    /// The k best items for one query [D]; ids / scores [k], best first.
    template <IndexBackend Be>
    void search(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search";
        check_ready(op);
        RECBLOCKS_CHECK_SHAPE(query.size() == d_, op, ": query has ", query.size(), " entries but items have ", d_);
        check_k(op, k, ids.size(), scores.size());
        detail::check_finite_query(op, query.data(), d_, 0);
        detail::check_exclusion(op, exclude, n_, k, 0);
        search_one(be, query.data(), k, ids.data(), scores.data(), exclude);
    }

    /// The same k items as search, in no particular order and without scores:
    /// a shortlist to re-rank. Cost flat in k (no heap, no sort): a threshold
    /// from a sample of panels lets one fused pass keep ~2k candidates, and
    /// bisection picks the k best of them (selection.hpp).
    template <IndexBackend Be>
    void search_unordered(const Be& be, VectorView<const float> query, index_t k,
                          VectorView<row_id_t> ids, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search_unordered";
        check_ready(op);
        RECBLOCKS_CHECK_SHAPE(query.size() == d_, op, ": query has ", query.size(), " entries but items have ", d_);
        check_k(op, k, ids.size(), k);
        detail::check_finite_query(op, query.data(), d_, 0);
        detail::check_exclusion(op, exclude, n_, k, 0);
        search_shortlist(be, query.data(), k, exclude, ids.data());
    }

    /// The k best items for each query of `queries` [B, D]; ids / scores [B, k].
    template <IndexBackend Be>
    void search_batch(const Be& be, MatrixView<const float> queries, index_t k,
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
        detail::check_batch_exclusion(op, exclude, nq);
        auto excluded = [&](index_t b) { return detail::excluded_of(exclude, b); };
        for (index_t b = 0; b < nq; ++b) {
            detail::check_finite_query(op, queries.row(b), d_, b);
            detail::check_exclusion(op, excluded(b), n_, k, b);
        }
        if (nq < 4) {  // a GEMM tile of 1-3 queries does no better than streaming
            for (index_t b = 0; b < nq; ++b) search_one(be, queries.row(b), k, ids.row(b), scores.row(b), excluded(b));
            return;
        }
        const index_t tiles = (n_ + kItemTile - 1) / kItemTile;
        const index_t parts = std::min<index_t>(detail::thread_count(be), tiles);
        const index_t per_part = nq * k;  // heap slots of one part
        auto& hv = thread_scratch<float, detail::HeapTag>(std::size_t(parts * per_part));
        auto& hid = thread_scratch<row_id_t, detail::HeapTag>(std::size_t(parts * per_part));
        auto& hsize = thread_scratch<index_t, detail::HeapTag>(std::size_t(parts * nq));
        const Be one = detail::serial(be);  // each part's GEMMs run whole on its thread
        detail::run_parts(be, parts, [&](index_t p) {
            auto& buf = thread_scratch<float, detail::TileTag>(
                std::size_t(kQueryTile * kItemTile + (std::is_same_v<T, float> ? 0 : kItemTile * d_)));
            float* tile_scores = buf.data();
            float* wide = buf.data() + kQueryTile * kItemTile;
            index_t* sizes = hsize.data() + p * nq;
            std::fill_n(sizes, nq, index_t(0));
            for (index_t t = tiles * p / parts; t < tiles * (p + 1) / parts; ++t) {
                const index_t r0 = t * kItemTile, nt = std::min(n_, r0 + kItemTile) - r0;
                // The tile's panels as f32: a panel is a [D, 64] row-major matrix.
                const float* panels;
                if constexpr (std::is_same_v<T, float>) {
                    panels = data_.data() + r0 * d_;
                } else {
                    for (index_t r = 0; r < nt; ++r)
                        for (index_t c = 0; c < d_; ++c)  // f32 panels: rows in order
                            wide[(r / kPanelRows) * kPanelRows * d_ + c * kPanelRows + r % kPanelRows] =
                                value(r0 + r, c);
                    panels = wide;
                }
                for (index_t q0 = 0; q0 < nq; q0 += kQueryTile) {
                    const index_t nqt = std::min(nq, q0 + kQueryTile) - q0;
                    for (index_t j = 0; j < nt; j += kPanelRows) {
                        const index_t cols = std::min(kPanelRows, nt - j);
                        ops::gemm(one, Trans::no, Trans::no, 1.0f, queries.slice_rows(q0, q0 + nqt),
                                  matrix_view(panels + j * d_, d_, cols, kPanelRows), 0.0f,
                                  matrix_view(tile_scores + j, nqt, cols, nt));
                    }
                    for (index_t q = 0; q < nqt; ++q) {
                        const index_t b = q0 + q;
                        const auto ex = excluded(b);
                        float* v = hv.data() + p * per_part + b * k;
                        row_id_t* id = hid.data() + p * per_part + b * k;
                        sizes[b] = ops::offer_top_k(one, vector_view<const float>(tile_scores + q * nt, nt),
                                                    static_cast<row_id_t>(r0), k, vector_view(v, k),
                                                    vector_view(id, k), sizes[b],
                                                    vector_view(ex.data(), index_t(ex.size())));
                    }
                }
            }
        });
        auto& part_sizes = thread_scratch<index_t, detail::TileTag>(std::size_t(parts));
        for (index_t b = 0; b < nq; ++b) {
            for (index_t p = 0; p < parts; ++p) part_sizes[std::size_t(p)] = hsize[std::size_t(p * nq + b)];
            detail::merge_heaps(hv.data() + b * k, hid.data() + b * k, part_sizes.data(), parts, per_part, k,
                                ids.row(b), scores.row(b), op);
        }
    }

    /// Full-width scores of the items `ids` for one query (a shortlist re-rank).
    template <IndexBackend Be>
    void score_ids(const Be& be, const float* query, const row_id_t* ids, index_t n, float* out) const {
        ops::panel_scores_of_ids(be, panels(), vector_view(ids, n), vector_view(query, d_), vector_view(out, n));
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

    /// Where element (r, c) lives: panel r / 64, column c, lane of r % 64.
    [[nodiscard]] index_t at(index_t r, index_t c) const {
        return panel_offset<Element>(r, c, d_);
    }
    /// The whole table as the primitives see it.
    [[nodiscard]] PanelView<Element> panels() const { return {data_.data(), n_, d_, scales()}; }
    /// Rows [r0, r0 + n) (r0 on a panel boundary).
    [[nodiscard]] PanelView<Element> panels_of(index_t r0, index_t n) const { return panels().rows_from(r0, n); }

    static constexpr index_t kSamplePanels = 8;

    /// ids[0..k) = the k best for one query, unordered (search_unordered).
    template <class Be>
    void search_shortlist(const Be& be, const float* q, index_t k, std::span<const row_id_t> ex,
                          row_id_t* out) const {
        const index_t panels = (n_ + kPanelRows - 1) / kPanelRows;
        const index_t parts = std::clamp<index_t>(n_ / kMinRowsPerThread, 1, detail::thread_count(be));
        const auto room = std::size_t(n_ + 16 * parts);
        auto& cand_v = thread_scratch<float, detail::CollectTag>(room);
        auto& cand_id = thread_scratch<row_id_t, detail::CollectTag>(room);
        auto& keys = thread_scratch<std::uint32_t, detail::CollectTag>(room);
        auto& part_count = thread_scratch<index_t, detail::CollectTag>(std::size_t(parts));
        // The sample: kSamplePanels whole panels, evenly spaced.
        alignas(64) float sample[kSamplePanels * kPanelRows];
        index_t m = 0;
        const index_t sampled = std::min(panels, kSamplePanels);
        for (index_t i = 0; i < sampled; ++i) {
            const index_t r0 = (panels * i / sampled) * kPanelRows, rows = std::min(kPanelRows, n_ - r0);
            score_block(be, r0, rows, q, sample + m);
            m += rows;
        }
        for (index_t i = 0; i < m; ++i)  // NaN would make the threshold meaningless
            RECBLOCKS_CHECK_VALUE(!std::isnan(sample[i]), "retrieval::ExactIndex::search_unordered: a score is NaN ",
                                  "(the query times the table overflows)");
        index_t count = 0;
        for (index_t widen = 1;; widen *= 4) {
            float thr = 0.0f;
            const bool keep_all = !detail::sampled_threshold(be, sample, m, n_, k, widen, keys.data(), thr);
            // Part p writes from its first row + 16 p: its survivors fit, and
            // the 16 spare entries it may scribble on belong to nobody else.
            auto body = [&](index_t p) {
                const index_t r0 = panels * p / parts * kPanelRows;
                const index_t r1 = std::min(n_, panels * (p + 1) / parts * kPanelRows);
                float* v = cand_v.data() + r0 + 16 * p;
                row_id_t* id = cand_id.data() + r0 + 16 * p;
                index_t c = 0;
                if (r1 > r0 && keep_all) {
                    score_block(be, r0, r1 - r0, q, v);
                    for (index_t j = 0; j < r1 - r0; ++j) id[j] = static_cast<row_id_t>(r0 + j);
                    c = r1 - r0;
                } else if (r1 > r0) {
                    const index_t left = index_t(room) - (r0 + 16 * p);  // this part's room and beyond
                    c = ops::panel_scores_above(be, panels_of(r0, r1 - r0), vector_view(q, d_), thr,
                                                static_cast<row_id_t>(r0), vector_view(v, left), vector_view(id, left));
                }
                part_count[std::size_t(p)] = c;
            };
            detail::run_parts(be, parts, body);
            count = 0;  // close the gaps between the parts, in id order
            for (index_t p = 0; p < parts; ++p) {
                const index_t from = panels * p / parts * kPanelRows + 16 * p, c = part_count[std::size_t(p)];
                if (from != count) {  // from > count: a move to the left
                    std::copy(cand_v.data() + from, cand_v.data() + from + c, cand_v.data() + count);
                    std::copy(cand_id.data() + from, cand_id.data() + from + c, cand_id.data() + count);
                }
                count += c;
            }
            count = detail::drop_excluded(cand_v.data(), cand_id.data(), count, ex);
            if (count >= k || keep_all) break;
        }
        detail::best_k_of(be, cand_v.data(), cand_id.data(), count, k, out, keys.data());
    }

    /// Scores of rows r0 .. r0 + nr (r0 on a panel boundary).
    template <class Be>
    void score_block(const Be& be, index_t r0, index_t nr, const float* q, float* out) const {
        ops::panel_scores(be, panels_of(r0, nr), vector_view(q, d_), vector_view(out, nr));
    }

    /// The k best for one query into ids / scores, best first.
    template <class Be>
    void search_one(const Be& be, const float* q, index_t k, row_id_t* ids, float* scores,
                    std::span<const row_id_t> ex) const {
        const index_t blocks = (n_ + kScoreRows - 1) / kScoreRows;
        // Split only tables big enough to pay for waking a thread.
        const index_t parts = std::clamp<index_t>(n_ / kMinRowsPerThread, 1, detail::thread_count(be));
        const index_t cap = detail::TopKCollector::capacity(k, kBlockRows);
        auto& v = thread_scratch<float, detail::CollectTag>(std::size_t(parts * cap));
        auto& id = thread_scratch<row_id_t, detail::CollectTag>(std::size_t(parts * cap));
        auto& keys = thread_scratch<std::uint64_t, detail::CollectTag>(std::size_t(parts * cap));
        auto& sizes = thread_scratch<index_t, detail::CollectTag>(std::size_t(parts));
        auto body = [&](index_t p) {
            alignas(64) float buf[kScoreRows];
            detail::TopKCollector top(k, kBlockRows, v.data() + p * cap, id.data() + p * cap,
                                      keys.data() + p * cap);
            for (index_t blk = blocks * p / parts; blk < blocks * (p + 1) / parts; ++blk) {
                const index_t r0 = blk * kScoreRows, nr = std::min(n_, r0 + kScoreRows) - r0;
                score_block(be, r0, nr, q, buf);  // one call per 4,096 rows: the int8 query is rounded once
                for (index_t o = 0; o < nr; o += kBlockRows)
                    top.offer(be, buf + o, std::min(kBlockRows, nr - o), static_cast<row_id_t>(r0 + o), ex);
            }
            sizes[std::size_t(p)] = top.append_keys(keys.data() + p * cap);
        };
        detail::run_parts(be, parts, body);
        // Gather the parts' keys, then one selection over all of them.
        index_t total = 0;
        for (index_t p = 0; p < parts; ++p) {
            std::copy_n(keys.data() + p * cap, sizes[std::size_t(p)], keys.data() + total);
            total += sizes[std::size_t(p)];
        }
        RECBLOCKS_CHECK_VALUE(total >= k, "retrieval::ExactIndex::search: internal error, ", total,
                              " candidates for k = ", k);
        detail::write_best_k("retrieval::ExactIndex::search", keys.data(), total, k, ids, scores);
    }

    index_t n_ = 0, d_ = 0;
    AlignedBuffer<Element> data_;  // [panels][D][64] (at()); huge pages for big tables

    AlignedBuffer<float> scales_;
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
