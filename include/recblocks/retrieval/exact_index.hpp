#pragma once
// ExactIndex<T, Memory>: exact maximum-inner-product top-k over an item table
// [N, D] stored as f32, bf16 or int8 (one scale per row, core/quantize_i8.hpp),
// in the memory space of the backend it serves (host memory by default; a
// device's for backend::Cuda).
//
//   retrieval::ExactIndex<float> index(items);             // copies [N, D]
//   index.search(be, query, 10, ids, scores);               // one query
//   index.search_batch(be, queries, 10, ids, scores);       // [B, D] queries
//
//   retrieval::ExactIndex<float, CudaMemory> on_gpu(items, memory_of(gpu));
//   on_gpu.search_batch(gpu, device_queries, 10, device_ids, device_scores);
//
// Results are the k best (score desc, then id asc: ops::top_k_rows' order) of
// the scores as computed, so ties are deterministic, and they do not depend on
// the thread count.
//
// The table is built on the host in column panels of 64 rows ([D][64] each;
// backend/panels.hpp) and copied once into the index's memory space. Every
// search is one backend call, ops::exact_top_k (ops/retrieval.hpp): the CPU
// backend streams the table through a threshold buffer on its threads (a
// batch of >= 4 queries runs GEMM tiles), a GPU scans and selects in one
// fused pass; docs/retrieval.md says how. int8 tables score with the query
// rounded to int16 on the CPU (exact integer sums): their scores follow the
// dequantized table to ~1e-5 relative. The batch path's scores can differ from
// the one-query path's in the last bits (different summation order); each
// path is deterministic.
//
// Exclusion: per query a sorted list of already-seen item ids that are never
// returned (ExcludedIds for a batch: CSR offsets + ids). Like every view passed
// to a search, they live in the backend's memory space.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/core/quantize_i8.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/retrieval.hpp"
#include "recblocks/ops/top_k_selection.hpp"
#include "recblocks/ops/validate.hpp"
#include "recblocks/retrieval/index.hpp"
#include "recblocks/retrieval/item_filter.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

namespace detail {

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

}  // namespace detail

/// Exact MIPS index over rows stored as T (float, bf16 or std::int8_t), in
/// memory space Memory.
template <class T, MemorySpace Memory = HostMemory>
class ExactIndex {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, std::int8_t>,
                  "ExactIndex<T>: T must be float, bf16 or std::int8_t");

public:
    /// Stored element: f32, bf16 bits, or int8 codes.
    using Element = std::conditional_t<std::is_same_v<T, bf16>, std::uint16_t, T>;
    using memory_type = Memory;
    static constexpr index_t kPanelRows = ::recblocks::kPanelRows;  // rows per column panel

    ExactIndex() = default;

    /// Copies `items` [N, D] (host memory; bf16: rounded to nearest even;
    /// int8: quantized per row) into panels in `memory`.
    explicit ExactIndex(MatrixView<const float> items, Memory memory = {}) : data_(memory), scales_(memory) {
        detail::check_items("retrieval::ExactIndex", items);
        if constexpr (std::is_same_v<T, std::int8_t>)
            RECBLOCKS_CHECK_SHAPE(items.cols() <= kI8MaxDim, "retrieval::ExactIndex<int8>: items have ",
                                  items.cols(), " columns; int8 tables support at most ", kI8MaxDim);
        n_ = items.rows();
        d_ = items.cols();
        const index_t padded = (n_ + kPanelRows - 1) / kPanelRows * kPanelRows;
        // Built on the host, then one copy. Zeroed: the padding rows of the last panel score 0.
        Vector<Element> data(Shape<1>{{padded * panel_cols<Element>(d_)}});
        if constexpr (std::is_same_v<T, std::int8_t>) {
            std::vector<std::int8_t> codes(std::size_t(n_ * d_));
            Vector<float> scales(Shape<1>{{padded}});  // padded to whole panels (the kernels read them so)
            quantize_rows_i8(items, matrix_view(codes.data(), n_, d_), vector_view(scales.data(), n_));
            for (index_t r = 0; r < n_; ++r)
                for (index_t c = 0; c < d_; ++c) data.data()[at(r, c)] = codes[std::size_t(r * d_ + c)];
            adopt(scales, scales_);
        } else {
            for (index_t r = 0; r < n_; ++r)
                for (index_t c = 0; c < d_; ++c) {
                    if constexpr (std::is_same_v<T, float>) data.data()[at(r, c)] = items(r, c);
                    else data.data()[at(r, c)] = bf16(items(r, c)).bits;
                }
        }
        adopt(data, data_);
    }

    [[nodiscard]] index_t size() const { return n_; }
    [[nodiscard]] index_t dim() const { return d_; }
    /// int8 only: the per-row scales (in the index's memory space; null otherwise).
    [[nodiscard]] const float* scales() const { return scales_.numel() == 0 ? nullptr : scales_.data(); }

    /// The whole table as the primitives see it (pointers into the index's memory space).
    [[nodiscard]] PanelView<Element> panels() const { return {data_.data(), n_, d_, scales()}; }

    /// Item `r` widened back to f32 (what the kernels score against); host memory only.
    [[nodiscard]] float value(index_t r, index_t c) const
        requires(Memory::host_accessible)
    {
        const Element e = data_.data()[at(r, c)];
        if constexpr (std::is_same_v<T, float>) return e;
        else if constexpr (std::is_same_v<T, bf16>) return static_cast<float>(bf16::from_bits(e));
        else return float(e) * scales_.data()[r];
    }

    /// The k best items for one query [D]; ids / scores [k], best first.
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search";
        check_ready(op);
        RECBLOCKS_CHECK_SHAPE(query.size() == d_, op, ": query has ", query.size(), " entries but items have ", d_);
        check_k(op, k, ids.size(), scores.size());
        ops::exact_top_k(be, panels(), matrix_view(query.data(), 1, d_), k, {}, detail::as_view(exclude),
                         matrix_view(ids.data(), 1, k), matrix_view(scores.data(), 1, k));
    }

    /// The same k items as search, in no particular order and without scores:
    /// a shortlist to re-rank. On the CPU its cost is flat in k (no heap, no
    /// sort): a threshold from a sample of panels lets one fused pass keep ~2k
    /// candidates, and bisection picks the k best of them.
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search_unordered(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                          std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search_unordered";
        check_ready(op);
        RECBLOCKS_CHECK_SHAPE(query.size() == d_, op, ": query has ", query.size(), " entries but items have ", d_);
        check_k(op, k, ids.size(), k);
        ops::exact_top_k(be, panels(), matrix_view(query.data(), 1, d_), k, {}, detail::as_view(exclude),
                         matrix_view(ids.data(), 1, k), MatrixView<float>{});
    }

    /// The k best items for each query of `queries` [B, D]; ids / scores [B, k].
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search_batch(const Be& be, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                      MatrixView<float> scores, const ExcludedIds& exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search_batch";
        check_ready(op);
        check_batch_shapes(op, queries, k, ids, scores, true);
        ops::exact_top_k(be, panels(), queries, k, detail::as_view(exclude.offsets), detail::as_view(exclude.ids), ids, scores);
    }

    /// Unordered shortlists for a batch (search_unordered per query): ids [B, k].
    template <IndexBackend Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void search_batch_unordered(const Be& be, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                                const ExcludedIds& exclude = {}) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search_batch_unordered";
        check_ready(op);
        check_batch_shapes(op, queries, k, ids, MatrixView<float>{}, false);
        ops::exact_top_k(be, panels(), queries, k, detail::as_view(exclude.offsets), detail::as_view(exclude.ids), ids,
                         MatrixView<float>{});
    }

    /// Full-width scores of the items `ids` for one query (a shortlist
    /// re-rank): the bits the scan gives them. On backends with the panel
    /// primitives (Reference, CPU).
    template <class Be>
        requires ops::has_panel_scores<Be, Element> && std::is_same_v<memory_space_t<Be>, Memory>
    void score_ids(const Be& be, const float* query, const row_id_t* ids, index_t n, float* out) const {
        ops::panel_scores_of_ids(be, panels(), vector_view(ids, n), vector_view(query, d_), vector_view(out, n));
    }

    /// The k best of the items `allowed` allows (item_filter.hpp), best first:
    /// exact at any selectivity. Per panel of 64 rows (one filter word): none
    /// allowed, skipped; fewer than kGatherBelow allowed, those rows alone are
    /// scored (ops::panel_scores_of_ids, the scan's bits); else the panel is
    /// scanned and its disallowed scores dropped before selection. A gathered
    /// row reads one cache line per column, a scanned panel sizeof(Element)
    /// lines per column (64 rows of the column side by side), so gathering
    /// wins below that many rows: at 1 % allowed almost every panel is
    /// gathered, at 10 % and more almost every panel scanned. Host backends
    /// with the panel and selection primitives (Reference, CPU); one query, on
    /// the calling thread.
    template <class Be>
        requires ops::has_panel_scores<Be, Element> && ops::has_top_k_selection<Be> &&
                 std::is_same_v<memory_space_t<Be>, Memory> && Memory::host_accessible
    void search_filtered(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                         VectorView<float> scores, AllowedItems allowed) const {
        constexpr std::string_view op = "retrieval::ExactIndex::search_filtered";
        check_ready(op);
        RECBLOCKS_CHECK_SHAPE(query.size() == d_, op, ": query has ", query.size(), " entries but items have ", d_);
        check_k(op, k, ids.size(), scores.size());
        ::recblocks::detail::check_finite_query(op, query.data(), d_, 0);
        allowed.check_covers(op, n_);
        const index_t count = allowed.count(n_);
        RECBLOCKS_CHECK_VALUE(count >= k, op, ": the filter allows ", count, " items but k = ", k);
        constexpr index_t kBlock = 4096;
        float* heap_v = thread_scratch<float, FilterHeapTag>(std::size_t(k)).data();
        row_id_t* heap_id = thread_scratch<row_id_t, FilterHeapTag>(std::size_t(k)).data();
        float* s = thread_scratch<float, FilterBufTag>(std::size_t(kBlock)).data();
        row_id_t* gathered = thread_scratch<row_id_t, FilterBufTag>(std::size_t(kBlock)).data();
        index_t size = 0, ng = 0;
        // Gathered rows are offered before any later panel is scanned: ids reach the heap in
        // ascending order, as offer_top_k's tie rule (equal score: smaller id) needs.
        auto flush_gathered = [&] {
            if (ng == 0) return;
            ops::panel_scores_of_ids(be, panels(), vector_view<const row_id_t>(gathered, ng), query,
                                     vector_view(s, ng));
            for (index_t i = 0; i < ng; ++i)
                if (size < k || s[i] > heap_v[0])
                    size = ops::offer_top_k(be, vector_view<const float>(s + i, 1), gathered[i], k,
                                            vector_view(heap_v, k), vector_view(heap_id, k), size);
            ng = 0;
        };
        const index_t panels_n = (n_ + kPanelRows - 1) / kPanelRows;
        auto word = [&](index_t p) { return allowed.words[std::size_t(p)]; };
        auto sparse = [&](index_t p) { return std::popcount(word(p)) < kGatherBelow; };
        for (index_t p0 = 0; p0 < panels_n;) {
            if (word(p0) == 0) {
                ++p0;
                continue;
            }
            if (sparse(p0)) {
                if (ng + kPanelRows > kBlock) flush_gathered();
                for (std::uint64_t bits = word(p0); bits; bits &= bits - 1) {
                    const index_t id = p0 * kPanelRows + std::countr_zero(bits);
                    if (id < n_) gathered[ng++] = static_cast<row_id_t>(id);
                }
                ++p0;
                continue;
            }
            flush_gathered();
            // A run of panels to scan.
            index_t p1 = p0 + 1;
            while (p1 < panels_n && p1 - p0 < kBlock / kPanelRows && word(p1) != 0 && !sparse(p1)) ++p1;
            const index_t r0 = p0 * kPanelRows, nb = std::min(n_, p1 * kPanelRows) - r0;
            ops::panel_scores(be, panels().rows_from(r0, nb), query, vector_view(s, nb));
            for (index_t p = p0; p < p1; ++p) {
                const std::uint64_t w = word(p);
                if (w == ~std::uint64_t{0}) continue;
                float* sp = s + (p - p0) * kPanelRows;
                for (index_t j = 0; j < kPanelRows && (p - p0) * kPanelRows + j < nb; ++j)
                    if (!((w >> j) & 1u)) sp[j] = -std::numeric_limits<float>::infinity();
            }
            size = ops::offer_top_k(be, vector_view<const float>(s, nb), static_cast<row_id_t>(r0), k,
                                    vector_view(heap_v, k), vector_view(heap_id, k), size);
            p0 = p1;
        }
        flush_gathered();
        // Best first: score desc, then id asc.
        auto& keys = thread_scratch<std::uint64_t, FilterHeapTag>(std::size_t(size));
        for (index_t i = 0; i < size; ++i) keys[std::size_t(i)] = retrieval_keys::rank_key(heap_v[i], heap_id[i]);
        std::sort(keys.begin(), keys.begin() + size, std::greater<>());
        for (index_t i = 0; i < k; ++i) {
            ids(i) = retrieval_keys::key_id(keys[std::size_t(i)]);
            scores(i) = retrieval_keys::key_score(keys[std::size_t(i)]);
        }
    }

private:
    /// search_filtered gathers a panel's allowed rows when fewer than this many (see there).
    static constexpr int kGatherBelow = int(sizeof(Element));
    struct FilterHeapTag {};
    struct FilterBufTag {};

    void check_ready(std::string_view op) const {
        RECBLOCKS_CHECK_VALUE(n_ > 0, op, ": the index is empty (default-constructed)");
    }
    void check_k(std::string_view op, index_t k, index_t n_ids, index_t n_scores) const {
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= n_, op, ": k = ", k, " but the index has ", n_,
                              " items; need 1 <= k <= N");
        RECBLOCKS_CHECK_SHAPE(n_ids == k && n_scores == k, op, ": ids has ", n_ids, " and scores ", n_scores,
                              " entries but k = ", k);
    }
    void check_batch_shapes(std::string_view op, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                            MatrixView<float> scores, bool want_scores) const {
        ops::detail::check_layout(op, "queries", queries);
        const index_t nq = queries.rows();
        RECBLOCKS_CHECK_SHAPE(queries.cols() == d_, op, ": queries is ", queries.shape(), " but items have ", d_,
                              " columns");
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= n_, op, ": k = ", k, " but the index has ", n_,
                              " items; need 1 <= k <= N");
        RECBLOCKS_CHECK_SHAPE(ids.rows() == nq && ids.cols() == k, op, ": ids is ", ids.shape(), " but expected [",
                              nq, ", ", k, "]");
        if (want_scores)
            RECBLOCKS_CHECK_SHAPE(scores.rows() == nq && scores.cols() == k, op, ": scores is ", scores.shape(),
                                  " but expected [", nq, ", ", k, "]");
    }

    /// dst = a host-built tensor: moved in for host memory, one copy otherwise.
    template <class U>
    static void adopt(Vector<U>& host, Vector<U, Memory>& dst) {
        if constexpr (std::is_same_v<Memory, HostMemory>) dst = std::move(host);
        else copy_tensor(host, dst);
    }

    /// Where element (r, c) lives: panel r / 64, column c, lane of r % 64.
    [[nodiscard]] index_t at(index_t r, index_t c) const { return panel_offset<Element>(r, c, d_); }

    index_t n_ = 0, d_ = 0;
    Vector<Element, Memory> data_;  // [panels][D][64] (at()); host memory: huge pages for big tables
    Vector<float, Memory> scales_;  // int8: one per row, padded to whole panels
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
