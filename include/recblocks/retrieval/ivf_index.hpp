#pragma once
// IvfIndex: approximate maximum-inner-product top-k over an item table [N, D]
// (host memory): an inverted file with quantized residual codes, scanned per
// query over the `nprobe` best lists, and an exact re-rank of the best
// candidates from the f32 rows. docs/retrieval.md has the guide.
//
//   retrieval::IvfIndex index(be, items, {.codes = retrieval::IvfCodes::pq4});
//   index.set_search_params({.nprobe = 16, .rerank = 40});
//   index.search(be, query, 10, ids, scores);                 // retrieval::Index
//   index.search_filtered(be, query, 10, ids, scores, allowed.view());
//   row_id_t first = index.add(be, new_items);                 // no retraining
//   index.remove(id);
//   retrieval::save_ivf_index(index, "items.ivf.safetensors");
//
// Build: a coarse quantizer of nlist centroids by the library's k-means
// (tokenizers::KMeans, random distinct rows as the start, then
// `kmeans_iterations` Lloyd steps on at most 256 points per centroid) whose
// assignment step is by inner product by default (coarse_metric; FAISS's
// training of an inner-product IVF): with L2, items of one direction but
// different norms fall into different clusters and the true top k of a query
// spread over many lists (on 1e6 x 128 data with norms 0.6x .. 2x, 97.6 % of
// the top 10 within the 64 best lists by q.c against 99.9 % within 4, counted
// on FAISS's k-means with the same settings).
// nlist = 0 picks the power of two nearest to sqrt(N),
// at most N / 39 (FAISS's lower bound on training points per centroid) — 1,024
// lists for N = 1e6. Each item goes to the list of its nearest (L2) centroid,
// the smallest residual for the codes, and stores its residual r = x - c:
//   int8   r quantized per row (core/quantize_i8.hpp), the list in column
//          panels of 64 rows (backend/panels.hpp), scanned by ops::panel_scores;
//   pq4    4-bit product quantization: M sub-quantizers (default D / 2, two
//          dimensions each) of 16 centroids trained by k-means on residuals,
//          the list in fast-scan blocks of 32 (backend/pq4_codes.hpp), scanned
//          by ops::pq4_scan with u8 look-up tables held in registers.
//
// Search of query q: the coarse scores q.c_l (an f32 panel scan of the
// centroids); lists in order of q.c_l (ties: smaller list), at least nprobe of
// them and on until R = max(k, rerank) + |excluded| candidates were seen; the
// approximate score q.c_l + q.r~ of every item of a probed list (for pq4 the
// inner products of q with the 16 centroids of each sub-quantizer are
// quantized to u8 with one step for all of them, FAISS's fast-scan LUT
// quantization; the step and the per-table minima go back into the float
// score) offered to a bounded heap of R; the R candidates' exact f32 scores
// (ops::rerank_top_k) give the k results, ordered by score, then id. With
// nprobe = nlist and rerank >= N every item is re-ranked: the exact top k.
//
// Filters (item_filter.hpp): a query with a bitset of allowed items;
// disallowed items never enter the heap. The scan must see enough allowed
// items: at least 20 per re-ranked candidate (20 R), so nprobe grows to
// 20 R nlist / (f N) lists when that is more (f the allowed fraction). When
// that widened scan would visit more rows than scoring the allowed rows
// exactly costs (allowed * 4 <= visited rows: a gathered f32 row costs about
// four scanned codes), the strategy switches and every allowed item is scored
// from its f32 row: exact results. On the 1e6 benchmark data (R = 40, 1,024
// lists) 1 % goes exact, 10 % scans ~9 lists, 50 % the plain nprobe.
// Results depend only on the index and the query: one query runs on the
// calling thread; a batch spreads whole queries over the backend's threads.
// Searches are const and may run concurrently from many threads (scratch is
// thread-local and only grows: no allocation after the first search of a
// shape); add, remove and set_search_params must not overlap a search.
// Ids: the items of the constructor are 0 .. N-1, each add() continues the
// numbering; a removed id is never reused or returned.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "recblocks/backend/panels.hpp"
#include "recblocks/backend/pq4_codes.hpp"
#include "recblocks/backend/retrieval.hpp"
#include "recblocks/core/quantize_i8.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/core/thread_scratch.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/nearest_centroid.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/pq4_scan.hpp"
#include "recblocks/ops/retrieval.hpp"
#include "recblocks/ops/top_k_selection.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/index.hpp"
#include "recblocks/retrieval/item_filter.hpp"
#include "recblocks/tokenizers/kmeans.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

/// How an IVF list stores its residuals.
enum class IvfCodes : std::uint8_t { int8 = 0, pq4 = 1 };

struct IvfConfig {
    index_t nlist = 0;                ///< lists (coarse centroids); 0: chosen from N (see the top)
    IvfCodes codes = IvfCodes::pq4;
    index_t pq_m = 0;                 ///< pq4: sub-quantizers, even, <= D; 0: D / 2 rounded down to even (>= 2)
    int kmeans_iterations = 10;       ///< Lloyd iterations of the coarse and the PQ k-means
    /// How the coarse k-means assigns while it trains (items are then stored in their L2-nearest list).
    tokenizers::KMeansMetric coarse_metric = tokenizers::KMeansMetric::inner_product;
    std::uint64_t seed = 1234;
};

struct IvfSearchParams {
    index_t nprobe = 16;  ///< lists scanned per query (at least; clamped to nlist)
    index_t rerank = 40;  ///< candidates re-ranked exactly from f32 rows (at least k)
};

/// A backend an IvfIndex searches with: panel scans, selection, the fast scan, the re-rank.
template <class Be>
concept IvfBackend = ops::has_panel_scores<Be, float> && ops::has_panel_scores<Be, std::int8_t> &&
                     ops::has_top_k_selection<Be> && ops::has_pq4_scan<Be> && ops::has_rerank_top_k<Be> &&
                     host_memory_v<Be>;

/// A backend an IvfIndex is built (and added to) with: also a thread pool, for k-means.
template <class Be>
concept IvfBuildBackend = IvfBackend<Be> && requires(const Be& be) { be.threads(); };

/// nlist for N items when the config says 0: the power of two nearest to sqrt(N), in [1, max(1, N / 39)].
inline index_t ivf_default_nlist(index_t n) {
    const double root = std::sqrt(double(std::max<index_t>(n, 1)));
    index_t p = 1;
    while (double(p) * 2.0 <= root) p *= 2;
    if (double(p) * 2.0 - root < root - double(p)) p *= 2;
    return std::clamp<index_t>(p, 1, std::max<index_t>(1, n / 39));
}

class IvfIndex;
void save_ivf_index(const IvfIndex& index, const std::filesystem::path& path);
IvfIndex load_ivf_index(const std::filesystem::path& path);

class IvfIndex {
public:
    IvfIndex() = default;

    /// Trains the coarse quantizer (and the PQ codebooks) on `items` [N, D]
    /// (finite, host memory) and adds them with ids 0 .. N-1.
    template <class Be>
        requires IvfBuildBackend<Be>
    IvfIndex(const Be& be, MatrixView<const float> items, IvfConfig cfg = {}) : cfg_(cfg) {
        constexpr std::string_view op = "retrieval::IvfIndex";
        detail::check_items(op, items);
        d_ = items.cols();
        const index_t n = items.rows();
        if (cfg_.nlist == 0) cfg_.nlist = ivf_default_nlist(n);
        RECBLOCKS_CHECK_VALUE(cfg_.nlist >= 1 && cfg_.nlist <= n, op, ": nlist = ", cfg_.nlist, " but there are ", n,
                              " items; need 1 <= nlist <= N");
        RECBLOCKS_CHECK_VALUE(cfg_.kmeans_iterations >= 0, op, ": kmeans_iterations = ", cfg_.kmeans_iterations);
        if (cfg_.codes == IvfCodes::pq4) {
            RECBLOCKS_CHECK_SHAPE(d_ >= 2, op, ": pq4 codes need D >= 2; items have D = ", d_, " (use int8)");
            if (cfg_.pq_m == 0) cfg_.pq_m = std::max<index_t>(2, d_ / 2 / 2 * 2);
            RECBLOCKS_CHECK_VALUE(cfg_.pq_m >= 2 && cfg_.pq_m % 2 == 0 && cfg_.pq_m <= d_ &&
                                      cfg_.pq_m <= kPq4MaxSubquantizers,
                                  op, ": pq_m = ", cfg_.pq_m, "; need an even number in [2, min(D = ", d_, ", ",
                                  kPq4MaxSubquantizers, ")]");
        } else {
            RECBLOCKS_CHECK_SHAPE(d_ <= kI8MaxDim, op, ": items have D = ", d_, "; int8 codes support at most ",
                                  kI8MaxDim);
            cfg_.pq_m = 0;
        }
        // Random distinct rows as the initial centroids (FAISS's choice for IVF): k-means++ would
        // make nlist passes over the training sample, most of the build at nlist = 1,024.
        tokenizers::KMeans coarse({.k = cfg_.nlist, .iterations = cfg_.kmeans_iterations, .seed = cfg_.seed,
                                   .init = tokenizers::KMeansInit::random_rows, .metric = cfg_.coarse_metric});
        coarse.train(be, items);
        set_centroids(coarse.centroids());
        if (cfg_.codes == IvfCodes::pq4) train_pq(be, items);
        lists_.assign(std::size_t(cfg_.nlist), List{});
        add(be, items);
    }

    [[nodiscard]] index_t size() const { return live_; }
    [[nodiscard]] index_t dim() const { return d_; }
    [[nodiscard]] index_t nlist() const { return cfg_.nlist; }
    /// One past the largest id handed out (removed ids included).
    [[nodiscard]] index_t id_limit() const { return id_limit_; }
    [[nodiscard]] const IvfConfig& config() const { return cfg_; }
    [[nodiscard]] const IvfSearchParams& search_params() const { return params_; }
    /// Sets nprobe and rerank for later searches (not while a search runs).
    void set_search_params(IvfSearchParams p) {
        RECBLOCKS_CHECK_VALUE(p.nprobe >= 1 && p.rerank >= 0, "retrieval::IvfIndex::set_search_params: nprobe = ",
                              p.nprobe, ", rerank = ", p.rerank, "; need nprobe >= 1 and rerank >= 0");
        params_ = p;
    }
    /// Items in list l.
    [[nodiscard]] index_t list_size(index_t l) const { return index_t(lists_.at(std::size_t(l)).ids.size()); }
    /// Whether `id` is in the index (handed out and not removed).
    [[nodiscard]] bool contains(row_id_t id) const {
        return id >= 0 && id < id_limit_ && where_[std::size_t(id)] >= 0;
    }

    /// Adds `items` [n, D] (finite) without retraining; returns the first new id (then first + 1, ...).
    template <class Be>
        requires IvfBuildBackend<Be>
    row_id_t add(const Be& be, MatrixView<const float> items) {
        constexpr std::string_view op = "retrieval::IvfIndex::add";
        RECBLOCKS_CHECK_VALUE(!lists_.empty(), op, ": the index is empty (default-constructed)");
        detail::check_items(op, items);
        RECBLOCKS_CHECK_SHAPE(items.cols() == d_, op, ": items have ", items.cols(), " columns but the index has D = ",
                              d_);
        RECBLOCKS_CHECK_VALUE(id_limit_ + items.rows() <= index_t{std::numeric_limits<row_id_t>::max()}, op, ": ",
                              id_limit_ + items.rows(), " ids exceed the id range");
        const auto first = static_cast<row_id_t>(id_limit_);
        rows_.resize(std::size_t((id_limit_ + items.rows()) * d_));
        where_.resize(std::size_t(id_limit_ + items.rows()), -1);
        for (index_t r = 0; r < items.rows(); ++r) std::copy_n(items.row(r), d_, rows_.data() + (id_limit_ + r) * d_);
        id_limit_ += items.rows();
        constexpr index_t kChunk = 16384;  // residuals of one chunk at a time
        std::vector<std::int32_t> labels(static_cast<std::size_t>(std::min(kChunk, items.rows())));
        std::vector<float> res(static_cast<std::size_t>(std::min(kChunk, items.rows()) * d_));
        std::vector<std::int8_t> i8(res.size());
        std::vector<float> scale(labels.size());
        std::vector<std::uint8_t> codes(labels.size() * std::size_t(std::max<index_t>(cfg_.pq_m, 1)));
        for (index_t r0 = 0; r0 < items.rows(); r0 += kChunk) {
            const index_t nr = std::min(kChunk, items.rows() - r0);
            const auto x = items.slice_rows(r0, r0 + nr);
            nearest(be, x, centroids_.cview(), centroid_norms_.data(), labels.data());
            for (index_t r = 0; r < nr; ++r)
                for (index_t c = 0; c < d_; ++c)
                    res[std::size_t(r * d_ + c)] = x(r, c) - centroids_(labels[std::size_t(r)], c);
            const auto rv = matrix_view<const float>(res.data(), nr, d_);
            if (cfg_.codes == IvfCodes::int8) quantize_rows_i8(rv, matrix_view(i8.data(), nr, d_), vector_view(scale.data(), nr));
            else encode_pq(be, rv, codes.data());
            for (index_t r = 0; r < nr; ++r) {
                const auto id = static_cast<row_id_t>(first + r0 + r);
                append(labels[std::size_t(r)], id, i8.data() + r * d_, scale[std::size_t(r)],
                       codes.data() + r * cfg_.pq_m);
            }
        }
        return first;
    }

    /// Removes item `id` (IndexError if it is not in the index); no retraining.
    void remove(row_id_t id) {
        RECBLOCKS_CHECK_INDEX(contains(id), "retrieval::IvfIndex::remove: id ", id,
                              id < 0 || id >= id_limit_ ? " is out of range" : " was removed before", " (ids 0 .. ",
                              id_limit_ - 1, ")");
        const std::int64_t w = where_[std::size_t(id)];
        List& list = lists_[std::size_t(w >> 32)];
        const index_t slot = index_t(w & 0xffffffff), last = index_t(list.ids.size()) - 1;
        if (slot != last) {  // the last item moves into the hole
            move_codes(list, last, slot);
            list.ids[std::size_t(slot)] = list.ids[std::size_t(last)];
            where_[std::size_t(list.ids[std::size_t(slot)])] = (w >> 32) << 32 | std::int64_t(slot);
        }
        clear_codes(list, last);
        list.ids.pop_back();
        fit_codes(list);
        where_[std::size_t(id)] = -1;
        set_live(id, false);
        --live_;
    }

    // ---- searches (retrieval::Index) ---------------------------------------------------------

    /// The k best items for one query [D]: ids / scores [k], best first, never an id of `exclude` (sorted).
    template <class Be>
        requires IvfBackend<Be>
    void search(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                VectorView<float> scores, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::IvfIndex::search";
        check_query(op, query.data(), query.size(), k, ids.size(), scores.size(), exclude, nullptr, 0);
        search_one(be, query.data(), k, ids.data(), scores.data(), exclude, nullptr);
    }

    /// search() restricted to the items `allowed` allows (see the top for the strategy).
    template <class Be>
        requires IvfBackend<Be>
    void search_filtered(const Be& be, VectorView<const float> query, index_t k, VectorView<row_id_t> ids,
                         VectorView<float> scores, AllowedItems allowed, std::span<const row_id_t> exclude = {}) const {
        constexpr std::string_view op = "retrieval::IvfIndex::search_filtered";
        check_query(op, query.data(), query.size(), k, ids.size(), scores.size(), exclude, &allowed, 0);
        search_one(be, query.data(), k, ids.data(), scores.data(), exclude, &allowed);
    }

    /// The k best items for each query of `queries` [B, D]: ids / scores [B, k].
    template <class Be>
        requires IvfBackend<Be>
    void search_batch(const Be& be, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                      MatrixView<float> scores, const ExcludedIds& exclude = {}) const {
        run_batch("retrieval::IvfIndex::search_batch", be, queries, k, ids, scores, exclude, {});
    }

    /// search_batch() with allowed items: one filter per query, or one for all.
    template <class Be>
        requires IvfBackend<Be>
    void search_batch_filtered(const Be& be, MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids,
                               MatrixView<float> scores, std::span<const AllowedItems> allowed,
                               const ExcludedIds& exclude = {}) const {
        constexpr std::string_view op = "retrieval::IvfIndex::search_batch_filtered";
        RECBLOCKS_CHECK_SHAPE(allowed.size() == 1 || index_t(allowed.size()) == queries.rows(), op, ": ",
                              allowed.size(), " filters for ", queries.rows(), " queries; need one or one per query");
        run_batch(op, be, queries, k, ids, scores, exclude, allowed);
    }

private:
    friend void save_ivf_index(const IvfIndex& index, const std::filesystem::path& path);
    friend IvfIndex load_ivf_index(const std::filesystem::path& path);

    struct List {
        std::vector<row_id_t> ids;
        std::vector<std::uint8_t> codes;  // int8: column panels of 64 rows; pq4: blocks of 32
        std::vector<float> scales;        // int8: one per row, padded to whole panels
    };

    /// Per-thread search scratch: grows to the largest shape seen, then no allocation.
    struct Scratch {
        std::vector<float> coarse, s, lut_f;
        std::vector<std::uint64_t> keys, keys_heap;
        std::vector<std::uint8_t> lut;
        std::vector<std::uint16_t> acc;
        std::vector<std::uint32_t> masks;
        std::vector<row_id_t> at, cand, allowed_ids;
    };
    static Scratch& scratch() {
        thread_local Scratch s;
        return s;
    }
    template <class T>
    static T* grow(std::vector<T>& v, index_t n) {
        if (index_t(v.size()) < n) v.resize(std::size_t(n));
        return v.data();
    }

    // ---- build helpers ----

    void set_centroids(MatrixView<const float> c) {
        centroids_ = Matrix<float>(Shape<2>{{c.rows(), c.cols()}});
        for (index_t r = 0; r < c.rows(); ++r) std::copy_n(c.row(r), c.cols(), centroids_.data() + r * c.cols());
        centroid_norms_.assign(std::size_t(c.rows()), 0.0f);
        for (index_t r = 0; r < c.rows(); ++r) {
            double acc = 0;
            for (index_t j = 0; j < c.cols(); ++j) acc += double(c(r, j)) * double(c(r, j));
            centroid_norms_[std::size_t(r)] = float(acc);
        }
        coarse_ = ExactIndex<float>(centroids_.cview());
    }

    /// labels[i] = the nearest (L2) of the rows of c [K, w] for each row of x [n, w].
    /// Blocks of 512 rows over the backend's threads, each one GEMM x·cᵀ and
    /// a shifted argmin (ties: the lowest index), in per-thread scratch.
    template <class Be>
    static void nearest(const Be& be, MatrixView<const float> x, MatrixView<const float> c, const float* cnorm,
                        std::int32_t* labels) {
        struct NearestTag {};
        const index_t k = c.rows();
        parallel_for(be.threads(), 0, x.rows(), 512, [&](index_t r0, index_t r1) {
            const index_t rows = r1 - r0;
            auto& f = thread_scratch<float, NearestTag>(static_cast<std::size_t>(rows * (k + 1)));
            auto& arg = thread_scratch<index_t, NearestTag>(static_cast<std::size_t>(rows));
            const auto g = matrix_view(f.data(), rows, k);
            ops::gemm(be, Trans::no, Trans::yes, 1.0f, x.slice_rows(r0, r1), c, 0.0f, g);
            ops::shifted_argmin_rows(be, g, vector_view(cnorm, k), vector_view(arg.data(), rows),
                                     vector_view(f.data() + rows * k, rows));
            for (index_t r = 0; r < rows; ++r) labels[r0 + r] = static_cast<std::int32_t>(arg[std::size_t(r)]);
        });
    }

    /// Columns [sub_begin(s), sub_begin(s + 1)) belong to sub-quantizer s.
    [[nodiscard]] index_t sub_begin(index_t s) const { return s * d_ / cfg_.pq_m; }

    /// k-means per sub-quantizer on the residuals of an evenly spaced sample.
    template <class Be>
    void train_pq(const Be& be, MatrixView<const float> items) {
        const index_t n = items.rows(), m = cfg_.pq_m;
        const index_t ns = std::min<index_t>(n, 16 * 256 * 4), kpq = std::min<index_t>(16, ns);
        std::vector<float> res(static_cast<std::size_t>(ns * d_));
        std::vector<std::int32_t> labels(static_cast<std::size_t>(ns));
        std::vector<float> sample(static_cast<std::size_t>(ns * d_));
        for (index_t i = 0; i < ns; ++i) std::copy_n(items.row(i * n / ns), d_, sample.data() + i * d_);
        nearest(be, matrix_view<const float>(sample.data(), ns, d_), centroids_.cview(), centroid_norms_.data(),
                labels.data());
        for (index_t i = 0; i < ns; ++i)
            for (index_t c = 0; c < d_; ++c)
                res[std::size_t(i * d_ + c)] = sample[std::size_t(i * d_ + c)] - centroids_(labels[std::size_t(i)], c);
        pq_centroids_ = Matrix<float>(Shape<2>{{16, d_}});
        std::fill_n(pq_centroids_.data(), 16 * d_, 0.0f);
        for (index_t s = 0; s < m; ++s) {
            const index_t c0 = sub_begin(s), w = sub_begin(s + 1) - c0;
            tokenizers::KMeans km({.k = kpq, .iterations = std::max(cfg_.kmeans_iterations, 10),
                                   .seed = cfg_.seed + 1 + std::uint64_t(s)});
            km.train(be, matrix_view<const float>(res.data() + c0, ns, w, d_));
            for (index_t j = 0; j < kpq; ++j) std::copy_n(km.centroids().row(j), w, pq_centroids_.data() + j * d_ + c0);
        }
        pq_norms_.assign(std::size_t(16 * m), 0.0f);
        for (index_t s = 0; s < m; ++s)
            for (index_t j = 0; j < 16; ++j) {
                double acc = 0;
                for (index_t c = sub_begin(s); c < sub_begin(s + 1); ++c) acc += double(pq_centroids_(j, c)) * pq_centroids_(j, c);
                pq_norms_[std::size_t(s * 16 + j)] = float(acc);
            }
        pq_k_ = kpq;
    }

    /// codes [n, M] = the nearest sub-centroid of each sub-vector of res [n, D].
    template <class Be>
    void encode_pq(const Be& be, MatrixView<const float> res, std::uint8_t* codes) const {
        const index_t n = res.rows(), m = cfg_.pq_m;
        std::vector<std::int32_t> lab(static_cast<std::size_t>(n));
        for (index_t s = 0; s < m; ++s) {
            const index_t c0 = sub_begin(s), w = sub_begin(s + 1) - c0;
            nearest(be, matrix_view(res.data() + c0, n, w, res.ld()),
                    matrix_view<const float>(pq_centroids_.data() + c0, pq_k_, w, d_), pq_norms_.data() + s * 16,
                    lab.data());
            for (index_t r = 0; r < n; ++r) codes[r * m + s] = static_cast<std::uint8_t>(lab[std::size_t(r)]);
        }
    }

    [[nodiscard]] index_t code_bytes(index_t n) const {
        if (cfg_.codes == IvfCodes::pq4) return (n + kPq4BlockRows - 1) / kPq4BlockRows * pq4_block_bytes(cfg_.pq_m);
        return (n + kPanelRows - 1) / kPanelRows * kPanelRows * panel_cols<std::int8_t>(d_);
    }
    /// Code and scale storage for exactly the list's items (whole panels / blocks, zero padding).
    void fit_codes(List& list) const {
        const index_t n = index_t(list.ids.size());
        list.codes.resize(std::size_t(code_bytes(n)), 0);
        if (cfg_.codes == IvfCodes::int8) list.scales.resize(std::size_t((n + kPanelRows - 1) / kPanelRows * kPanelRows), 0.0f);
    }

    void append(std::int32_t l, row_id_t id, const std::int8_t* i8, float scale, const std::uint8_t* pq) {
        List& list = lists_[std::size_t(l)];
        const index_t slot = index_t(list.ids.size());
        list.ids.push_back(id);
        fit_codes(list);
        if (cfg_.codes == IvfCodes::int8) {
            auto* p = reinterpret_cast<std::int8_t*>(list.codes.data());
            for (index_t c = 0; c < d_; ++c) p[panel_offset<std::int8_t>(slot, c, d_)] = i8[c];
            list.scales[std::size_t(slot)] = scale;
        } else {
            for (index_t s = 0; s < cfg_.pq_m; ++s) pq4_set(list.codes.data(), slot, s, cfg_.pq_m, pq[s]);
        }
        where_[std::size_t(id)] = std::int64_t(l) << 32 | std::int64_t(slot);
        set_live(id, true);
        ++live_;
    }

    void set_live(row_id_t id, bool on) {
        const auto w = static_cast<std::size_t>(id) >> 6;
        if (live_bits_.size() <= w) live_bits_.resize(w + 1, 0);
        const std::uint64_t bit = std::uint64_t{1} << (static_cast<unsigned>(id) & 63u);
        live_bits_[w] = on ? (live_bits_[w] | bit) : (live_bits_[w] & ~bit);
    }

    void move_codes(List& list, index_t from, index_t to) const {
        if (cfg_.codes == IvfCodes::int8) {
            auto* p = reinterpret_cast<std::int8_t*>(list.codes.data());
            for (index_t c = 0; c < d_; ++c) p[panel_offset<std::int8_t>(to, c, d_)] = p[panel_offset<std::int8_t>(from, c, d_)];
            list.scales[std::size_t(to)] = list.scales[std::size_t(from)];
        } else {
            for (index_t s = 0; s < cfg_.pq_m; ++s)
                pq4_set(list.codes.data(), to, s, cfg_.pq_m, pq4_get(list.codes.data(), from, s, cfg_.pq_m));
        }
    }
    void clear_codes(List& list, index_t slot) const {
        if (cfg_.codes == IvfCodes::int8) {
            auto* p = reinterpret_cast<std::int8_t*>(list.codes.data());
            for (index_t c = 0; c < d_; ++c) p[panel_offset<std::int8_t>(slot, c, d_)] = 0;
            list.scales[std::size_t(slot)] = 0.0f;
        } else {
            for (index_t s = 0; s < cfg_.pq_m; ++s) pq4_set(list.codes.data(), slot, s, cfg_.pq_m, 0);
        }
    }

    // ---- search helpers ----

    void check_query(std::string_view op, const float* q, index_t qd, index_t k, index_t n_ids, index_t n_scores,
                     std::span<const row_id_t> exclude, const AllowedItems* allowed, index_t b) const {
        RECBLOCKS_CHECK_VALUE(!lists_.empty(), op, ": the index is empty (default-constructed)");
        RECBLOCKS_CHECK_SHAPE(qd == d_, op, ": query has ", qd, " entries but items have ", d_);
        RECBLOCKS_CHECK_VALUE(k >= 1 && k <= live_, op, ": k = ", k, " but the index has ", live_,
                              " items; need 1 <= k <= N");
        RECBLOCKS_CHECK_SHAPE(n_ids == k && n_scores == k, op, ": ids has ", n_ids, " and scores ", n_scores,
                              " entries but k = ", k);
        ::recblocks::detail::check_finite_query(op, q, d_, b);
        for (std::size_t i = 0; i < exclude.size(); ++i) {
            RECBLOCKS_CHECK_INDEX(exclude[i] >= 0 && exclude[i] < id_limit_, op, ": excluded id ", exclude[i],
                                  " of query ", b, " is out of range for ids 0 .. ", id_limit_ - 1);
            RECBLOCKS_CHECK_VALUE(i == 0 || exclude[i - 1] < exclude[i], op, ": excluded ids of query ", b,
                                  " must be sorted ascending without repeats; got ", exclude[i - 1], " then ",
                                  exclude[i]);
        }
        if (allowed) allowed->check_covers(op, id_limit_);
    }

    template <class Be>
    void run_batch(std::string_view op, const Be& be, MatrixView<const float> queries, index_t k,
                   MatrixView<row_id_t> ids, MatrixView<float> scores, const ExcludedIds& exclude,
                   std::span<const AllowedItems> allowed) const {
        ops::detail::check_layout(op, "queries", queries);
        const index_t nq = queries.rows();
        RECBLOCKS_CHECK_SHAPE(ids.rows() == nq && scores.rows() == nq, op, ": ids is ", ids.shape(), " and scores ",
                              scores.shape(), " but there are ", nq, " queries");
        RECBLOCKS_CHECK_SHAPE(exclude.offsets.empty() || index_t(exclude.offsets.size()) == nq + 1, op,
                              ": exclude offsets have ", exclude.offsets.size(), " entries but expected ", nq + 1,
                              " (queries + 1) or none");
        auto excluded = [&](index_t b) -> std::span<const row_id_t> {
            if (exclude.offsets.empty()) return exclude.ids;
            return exclude.ids.subspan(std::size_t(exclude.offsets[std::size_t(b)]),
                                       std::size_t(exclude.offsets[std::size_t(b + 1)] - exclude.offsets[std::size_t(b)]));
        };
        auto filter = [&](index_t b) -> const AllowedItems* {
            if (allowed.empty()) return nullptr;
            return &allowed[allowed.size() == 1 ? 0 : std::size_t(b)];
        };
        if (!exclude.offsets.empty())
            ::recblocks::detail::check_exclusion_offsets(op, detail::as_view(exclude.offsets),
                                                         index_t(exclude.ids.size()), nq);
        for (index_t b = 0; b < nq; ++b)  // every check before any work
            check_query(op, queries.row(b), queries.cols(), k, ids.cols(), scores.cols(), excluded(b), filter(b), b);
        auto one = [&](index_t b) { search_one(be, queries.row(b), k, ids.row(b), scores.row(b), excluded(b), filter(b)); };
        if constexpr (requires { be.threads(); }) {
            parallel_for(be.threads(), 0, nq, 1, [&](index_t b0, index_t b1) {
                for (index_t b = b0; b < b1; ++b) one(b);
            });
        } else {
            for (index_t b = 0; b < nq; ++b) one(b);
        }
    }

    /// u8 look-up tables of q [D] against the sub-quantizers; returns (step, sum of the minima).
    std::pair<float, float> build_lut(const float* q, Scratch& ws) const {
        const index_t m = cfg_.pq_m;
        float* lf = grow(ws.lut_f, 16 * m);
        std::uint8_t* lut = grow(ws.lut, 16 * m);
        float widest = 0.0f, base = 0.0f;
        for (index_t s = 0; s < m; ++s) {
            const index_t c0 = sub_begin(s), c1 = sub_begin(s + 1);
            float lo = std::numeric_limits<float>::infinity(), hi = -lo;
            for (index_t j = 0; j < 16; ++j) {
                float v = 0.0f;
                if (j < pq_k_)
                    for (index_t c = c0; c < c1; ++c) v += q[c] * pq_centroids_(j, c);
                lf[s * 16 + j] = v;
                if (j < pq_k_) lo = std::min(lo, v), hi = std::max(hi, v);
            }
            for (index_t j = pq_k_; j < 16; ++j) lf[s * 16 + j] = lo;  // never used
            widest = std::max(widest, hi - lo);
            base += lo;
            for (index_t j = 0; j < 16; ++j) lf[s * 16 + j] -= lo;
        }
        const float step = widest > 0.0f ? widest / 255.0f : 1.0f;
        for (index_t i = 0; i < 16 * m; ++i)  // round to nearest (entries are >= 0)
            lut[i] = static_cast<std::uint8_t>(std::min(255.0f, lf[i] / step + 0.5f));
        return {step, base};
    }

    /// A bounded min-heap of rank keys (score, id): the `want` best approximate scores so far.
    struct Heap {
        std::uint64_t* keys;
        index_t size, cap;
        /// Scores that can still enter: above the worst kept (-inf while not full).
        [[nodiscard]] float floor() const {
            return size < cap ? -std::numeric_limits<float>::infinity() : retrieval_keys::key_score(keys[0]);
        }
        void offer(float score, row_id_t id) {
            const std::uint64_t key = retrieval_keys::rank_key(score, id);
            if (size < cap) {
                keys[size++] = key;
                std::push_heap(keys, keys + size, std::greater<>());
            } else if (key > keys[0]) {
                std::pop_heap(keys, keys + size, std::greater<>());
                keys[size - 1] = key;
                std::push_heap(keys, keys + size, std::greater<>());
            }
        }
    };

    /// Offers list l's items (approximate score bias + q.r~) to the heap: only
    /// those the kernels report above the heap's floor are converted.
    template <class Be>
    void scan_list(const Be& be, const List& list, const float* q, float bias, float step, float base, Scratch& ws,
                   Heap& heap, const AllowedItems* allowed) const {
        const index_t n = index_t(list.ids.size());
        const float floor = heap.floor();
        auto offer = [&](index_t j, float score) {
            const row_id_t id = list.ids[std::size_t(j)];
            if (!allowed || allowed->allows(id)) heap.offer(score, id);
        };
        if (cfg_.codes == IvfCodes::int8) {
            const PanelView<std::int8_t> p{reinterpret_cast<const std::int8_t*>(list.codes.data()), n, d_,
                                           list.scales.data()};
            float* s = grow(ws.s, n + 16);
            row_id_t* at = grow(ws.at, n + 16);
            const index_t c = ops::panel_scores_above(be, p, vector_view(q, d_), floor - bias, 0, vector_view(s, n + 16),
                                                      vector_view(at, n + 16));
            for (index_t i = 0; i < c; ++i) offer(at[i], bias + s[i]);
            return;
        }
        // pq4: score = b + step * acc; acc >= t can beat the floor.
        const float b = bias + base;
        const float x = (floor - b) / step;
        const index_t m = cfg_.pq_m, max_acc = 255 * m;
        if (x >= float(max_acc)) return;  // nothing in this list can enter
        const auto t = static_cast<std::uint16_t>(x <= 0.0f ? 0.0f : std::floor(x));
        const index_t blocks = (n + kPq4BlockRows - 1) / kPq4BlockRows;
        std::uint16_t* acc = grow(ws.acc, blocks * kPq4BlockRows);
        std::uint32_t* masks = grow(ws.masks, blocks);
        ops::pq4_scan(be, vector_view(list.codes.data(), blocks * pq4_block_bytes(m)), m,
                      vector_view<const std::uint8_t>(ws.lut.data(), 16 * m), vector_view(acc, blocks * kPq4BlockRows),
                      t, vector_view(masks, blocks));
        for (index_t blk = 0; blk < blocks; ++blk)
            for (std::uint32_t bits = masks[blk]; bits; bits &= bits - 1) {
                const index_t j = blk * kPq4BlockRows + std::countr_zero(bits);
                if (j < n) offer(j, b + step * float(acc[j]));
            }
    }

    /// The approximate-then-exact search of one query (checked).
    template <class Be>
    void search_one(const Be& be, const float* q, index_t k, row_id_t* out_ids, float* out_scores,
                    std::span<const row_id_t> exclude, const AllowedItems* allowed) const {
        Scratch& ws = scratch();
        const index_t nl = cfg_.nlist;
        index_t nprobe = std::min(params_.nprobe, nl);
        if (allowed) {
            const index_t count = allowed->count(id_limit_);
            RECBLOCKS_CHECK_VALUE(count >= k, "retrieval::IvfIndex::search_filtered: the filter allows ", count,
                                  " ids but k = ", k);
            // Widen the scan until it sees kFilterSeenPerCandidate allowed items per re-ranked
            // candidate; if that scan visits more rows than scoring the allowed rows exactly costs
            // (a gathered f32 row ~ kFilterGatherCost scanned codes), score them exactly instead.
            const double f = std::min(1.0, double(count) / double(std::max<index_t>(live_, 1)));
            const double per_list = double(std::max<index_t>(live_, 1)) / double(nl);
            const double want_seen = kFilterSeenPerCandidate * double(std::max(k, params_.rerank));
            const double widened =
                std::clamp(std::ceil(want_seen / (f * per_list)), double(nprobe), double(nl));
            if (double(count) * kFilterGatherCost <= widened * per_list)
                return search_allowed_exactly(be, q, k, out_ids, out_scores, exclude, *allowed, count, ws);
            nprobe = index_t(widened);
        }
        // No more candidates than items (rerank >= N means all of them; a huge value allocates nothing).
        const index_t want = std::min(std::max(k, params_.rerank), live_) + index_t(exclude.size());
        // 1. Coarse scores, lists in order (keys: score, then smaller list).
        float* coarse = grow(ws.coarse, nl);
        ops::panel_scores(be, coarse_.panels(), vector_view(q, d_), vector_view(coarse, nl));
        std::uint64_t* keys = grow(ws.keys, nl);
        for (index_t l = 0; l < nl; ++l) keys[l] = retrieval_keys::rank_key(coarse[l], static_cast<row_id_t>(l));
        index_t sorted = nprobe;
        std::partial_sort(keys, keys + sorted, keys + nl, std::greater<>());
        auto [step, base] = cfg_.codes == IvfCodes::pq4 ? build_lut(q, ws) : std::pair<float, float>{0.0f, 0.0f};
        // 2. Scan lists into a heap of the `want` best approximate scores.
        Heap heap{grow(ws.keys_heap, want), 0, want};
        index_t seen = 0, probes = 0;
        while (probes < nl && (probes < nprobe || seen < want)) {
            if (probes == sorted) {  // more lists than nprobe: widen the sorted prefix
                const index_t more = std::min(nl, 2 * sorted);
                std::partial_sort(keys + sorted, keys + more, keys + nl, std::greater<>());
                sorted = more;
            }
            const auto l = retrieval_keys::key_id(keys[probes++]);
            const List& list = lists_[std::size_t(l)];
            if (list.ids.empty()) continue;
            scan_list(be, list, q, coarse[l], step, base, ws, heap, allowed);
            if (allowed) {
                for (row_id_t id : list.ids) seen += allowed->allows(id);
            } else {
                seen += index_t(list.ids.size());
            }
        }
        // 3. Candidates: excluded ones dropped (disallowed ones never entered).
        row_id_t* cand = grow(ws.cand, heap.size);
        index_t nc = 0;
        for (index_t i = 0; i < heap.size; ++i) {
            const row_id_t id = retrieval_keys::key_id(heap.keys[i]);
            if (!std::binary_search(exclude.begin(), exclude.end(), id)) cand[nc++] = id;
        }
        RECBLOCKS_CHECK_VALUE(nc >= k, "retrieval::IvfIndex::search: only ", nc,
                              " items remain after exclusions and filters but k = ", k);
        // 4. Exact re-rank from the f32 rows.
        ops::rerank_top_k(be, matrix_view<const float>(rows_.data(), id_limit_, d_), matrix_view(q, 1, d_),
                          matrix_view<const row_id_t>(cand, 1, nc), k, matrix_view(out_ids, 1, k),
                          matrix_view(out_scores, 1, k));
    }

    /// Few allowed items: score every allowed (live, not excluded) item from its f32 row.
    template <class Be>
    void search_allowed_exactly(const Be& be, const float* q, index_t k, row_id_t* out_ids, float* out_scores,
                                std::span<const row_id_t> exclude, const AllowedItems& allowed, index_t count,
                                Scratch& ws) const {
        row_id_t* cand = grow(ws.allowed_ids, count);
        index_t nc = 0;
        const std::size_t words = std::min(allowed.words.size(), live_bits_.size());
        for (std::size_t w = 0; w < words; ++w)
            for (std::uint64_t bits = allowed.words[w] & live_bits_[w]; bits; bits &= bits - 1) {
                const auto id = static_cast<row_id_t>(w * 64 + std::size_t(std::countr_zero(bits)));
                if (!std::binary_search(exclude.begin(), exclude.end(), id)) cand[nc++] = id;
            }
        RECBLOCKS_CHECK_VALUE(nc >= k, "retrieval::IvfIndex::search_filtered: only ", nc,
                              " allowed items remain after exclusions but k = ", k);
        ops::rerank_top_k(be, matrix_view<const float>(rows_.data(), id_limit_, d_), matrix_view(q, 1, d_),
                          matrix_view<const row_id_t>(cand, 1, nc), k, matrix_view(out_ids, 1, k),
                          matrix_view(out_scores, 1, k));
    }

    static constexpr double kFilterGatherCost = 4.0;
    static constexpr double kFilterSeenPerCandidate = 20.0;

    IvfConfig cfg_{};
    IvfSearchParams params_{};
    index_t d_ = 0, live_ = 0, id_limit_ = 0, pq_k_ = 16;
    Matrix<float> centroids_;                 // [nlist, D]
    std::vector<float> centroid_norms_;       // ||c_l||² (assignment)
    ExactIndex<float> coarse_;                // the centroids as panels (probe order)
    Matrix<float> pq_centroids_;              // pq4: [16, D]; columns of sub-quantizer s: sub_begin(s) ..
    std::vector<float> pq_norms_;             // pq4: [M][16] squared norms of the sub-centroids
    std::vector<List> lists_;
    std::vector<float> rows_;                 // [id_limit, D] f32 rows (re-rank), removed ones kept
    std::vector<std::int64_t> where_;         // id -> list << 32 | slot, or -1
    std::vector<std::uint64_t> live_bits_;    // bit id: in the index (the exact filtered path)
};

/// The "format" metadata of an IVF index file.
inline constexpr std::string_view kIvfIndexFormat = "recblocks.ivf_index.v1";

/// Writes the whole index (config, centroids, codebooks, lists, f32 rows) to a
/// safetensors file, atomically (io::SafetensorsWriter::write).
inline void save_ivf_index(const IvfIndex& index, const std::filesystem::path& path) {
    RECBLOCKS_CHECK_VALUE(!index.lists_.empty(), "retrieval::save_ivf_index: the index is empty (default-constructed)");
    const index_t nl = index.cfg_.nlist, d = index.d_;
    io::SafetensorsWriter w;
    std::vector<std::int64_t> header{1,
                                     d,
                                     nl,
                                     std::int64_t(index.cfg_.codes),
                                     index.cfg_.pq_m,
                                     index.id_limit_,
                                     index.live_,
                                     index.pq_k_,
                                     index.cfg_.kmeans_iterations,
                                     std::int64_t(index.cfg_.seed),
                                     index.params_.nprobe,
                                     index.params_.rerank};
    w.add("header", vector_view<const std::int64_t>(header.data(), index_t(header.size())));
    w.add("centroids", index.centroids_.cview());
    w.add("rows", matrix_view<const float>(index.rows_.data(), index.id_limit_, d));
    if (index.cfg_.codes == IvfCodes::pq4) w.add("pq_centroids", index.pq_centroids_.cview());
    std::vector<std::int64_t> sizes(static_cast<std::size_t>(nl));
    std::vector<row_id_t> ids;
    std::vector<std::uint8_t> codes;
    std::vector<float> scales;
    for (index_t l = 0; l < nl; ++l) {
        const auto& list = index.lists_[std::size_t(l)];
        sizes[std::size_t(l)] = std::int64_t(list.ids.size());
        ids.insert(ids.end(), list.ids.begin(), list.ids.end());
        codes.insert(codes.end(), list.codes.begin(), list.codes.end());
        scales.insert(scales.end(), list.scales.begin(), list.scales.end());
    }
    w.add("list_sizes", vector_view<const std::int64_t>(sizes.data(), nl));
    w.add("list_ids", vector_view<const row_id_t>(ids.data(), index_t(ids.size())));
    w.add("codes", vector_view<const std::uint8_t>(codes.data(), index_t(codes.size())));
    if (index.cfg_.codes == IvfCodes::int8) w.add("scales", vector_view<const float>(scales.data(), index_t(scales.size())));
    w.set_metadata("format", std::string(kIvfIndexFormat));
    w.set_metadata("coarse_metric",
                   index.cfg_.coarse_metric == tokenizers::KMeansMetric::l2 ? "l2" : "inner_product");
    w.write(path);
}

/// Reads an index written by save_ivf_index. FormatError naming the file and
/// what is wrong for a truncated or malformed file, a file of another kind,
/// or tensors that disagree with the header; IoError if it cannot be read.
inline IvfIndex load_ivf_index(const std::filesystem::path& path) {
    const auto r = io::SafetensorsReader::open(path);
    const std::string& src = r.source();
    const auto& meta = r.metadata();
    const auto fmt = meta.find("format");
    RECBLOCKS_CHECK_FORMAT(fmt != meta.end() && fmt->second == kIvfIndexFormat, src,
                           ": not a recblocks IVF index file (metadata \"format\" is ",
                           fmt == meta.end() ? std::string("missing") : "\"" + fmt->second + "\"", ", expected \"",
                           kIvfIndexFormat, "\")");
    auto tensor = [&](std::string_view name, std::vector<std::int64_t> shape) {
        const auto names = r.names();
        RECBLOCKS_CHECK_FORMAT(std::find(names.begin(), names.end(), std::string(name)) != names.end(), src,
                               ": tensor \"", name, "\" is missing");
        const auto& rec = r.record(name);
        RECBLOCKS_CHECK_FORMAT(rec.shape == shape, src, ": tensor \"", name, "\" is ", io::detail::format_list(rec.shape),
                               " but the header says ", io::detail::format_list(shape));
    };
    tensor("header", {12});
    const auto h = r.load<std::int64_t, 1>("header");
    const std::int64_t* hv = h.data();
    RECBLOCKS_CHECK_FORMAT(hv[0] == 1, src, ": IVF index version ", hv[0], "; this build reads version 1");
    const std::int64_t d = hv[1], nl = hv[2], codes_kind = hv[3], m = hv[4], id_limit = hv[5], live = hv[6],
                       pq_k = hv[7];
    RECBLOCKS_CHECK_FORMAT(d >= 1 && nl >= 1 && (codes_kind == 0 || codes_kind == 1) && id_limit >= 0 && live >= 0 &&
                               live <= id_limit && id_limit <= std::numeric_limits<row_id_t>::max() &&
                               (codes_kind == 0 || (m >= 2 && m % 2 == 0 && m <= d && m <= kPq4MaxSubquantizers &&
                                                    pq_k >= 1 && pq_k <= 16)) &&
                               hv[10] >= 1 && hv[11] >= 0,
                           src, ": the header holds inconsistent values (D ", d, ", nlist ", nl, ", codes ", codes_kind,
                           ", M ", m, ", ids ", id_limit, ", live ", live, ")");
    IvfIndex index;
    index.cfg_ = {.nlist = nl, .codes = IvfCodes(codes_kind), .pq_m = codes_kind == 1 ? m : 0,
                  .kmeans_iterations = int(hv[8]), .seed = std::uint64_t(hv[9])};
    // How the centroids were trained (a record; searches and add() do not depend on it). Files
    // from before the field: L2.
    const auto cm = meta.find("coarse_metric");
    RECBLOCKS_CHECK_FORMAT(cm == meta.end() || cm->second == "l2" || cm->second == "inner_product", src,
                           ": metadata \"coarse_metric\" is \"", cm->second, "\"; expected \"l2\" or \"inner_product\"");
    index.cfg_.coarse_metric = cm != meta.end() && cm->second == "inner_product" ? tokenizers::KMeansMetric::inner_product
                                                                                 : tokenizers::KMeansMetric::l2;
    index.params_ = {.nprobe = hv[10], .rerank = hv[11]};
    index.d_ = d;
    index.id_limit_ = id_limit;
    index.pq_k_ = pq_k;
    tensor("centroids", {nl, d});
    index.set_centroids(r.load<float, 2>("centroids").cview());
    tensor("rows", {id_limit, d});
    const auto rows = r.load<float, 2>("rows");
    index.rows_.assign(rows.data(), rows.data() + id_limit * d);
    if (codes_kind == 1) {
        tensor("pq_centroids", {16, d});
        index.pq_centroids_ = r.load<float, 2>("pq_centroids");
        index.pq_norms_.assign(std::size_t(16 * m), 0.0f);
        for (index_t s = 0; s < m; ++s)
            for (index_t j = 0; j < 16; ++j) {
                double acc = 0;
                for (index_t c = index.sub_begin(s); c < index.sub_begin(s + 1); ++c)
                    acc += double(index.pq_centroids_(j, c)) * index.pq_centroids_(j, c);
                index.pq_norms_[std::size_t(s * 16 + j)] = float(acc);
            }
    }
    tensor("list_sizes", {nl});
    const auto sizes = r.load<std::int64_t, 1>("list_sizes");
    std::int64_t total = 0, code_total = 0, scale_total = 0;
    for (index_t l = 0; l < nl; ++l) {
        RECBLOCKS_CHECK_FORMAT(sizes(l) >= 0 && sizes(l) <= live, src, ": list ", l, " has size ", sizes(l));
        total += sizes(l);
        code_total += index.code_bytes(sizes(l));
        scale_total += (sizes(l) + kPanelRows - 1) / kPanelRows * kPanelRows;
    }
    RECBLOCKS_CHECK_FORMAT(total == live, src, ": the lists hold ", total, " items but the header says ", live);
    tensor("list_ids", {live});
    tensor("codes", {code_total});
    const auto ids = r.load<row_id_t, 1>("list_ids");
    const auto codes = r.load<std::uint8_t, 1>("codes");
    Vector<float> scales;
    if (codes_kind == 0) {
        tensor("scales", {scale_total});
        scales = r.load<float, 1>("scales");
    }
    index.where_.assign(std::size_t(id_limit), -1);
    index.lists_.assign(std::size_t(nl), IvfIndex::List{});
    std::int64_t at = 0, code_at = 0, scale_at = 0;
    for (index_t l = 0; l < nl; ++l) {
        auto& list = index.lists_[std::size_t(l)];
        list.ids.assign(ids.data() + at, ids.data() + at + sizes(l));
        for (index_t slot = 0; slot < sizes(l); ++slot) {
            const row_id_t id = list.ids[std::size_t(slot)];
            RECBLOCKS_CHECK_FORMAT(id >= 0 && id < id_limit && index.where_[std::size_t(id)] < 0, src, ": list ", l,
                                   " holds id ", id, id >= 0 && id < id_limit ? " twice" : " out of range");
            index.where_[std::size_t(id)] = std::int64_t(l) << 32 | slot;
            index.set_live(id, true);
        }
        const std::int64_t nb = index.code_bytes(sizes(l));
        list.codes.assign(codes.data() + code_at, codes.data() + code_at + nb);
        if (codes_kind == 0) {
            const std::int64_t ns = (sizes(l) + kPanelRows - 1) / kPanelRows * kPanelRows;
            list.scales.assign(scales.data() + scale_at, scales.data() + scale_at + ns);
            scale_at += ns;
        }
        at += sizes(l);
        code_at += nb;
    }
    index.live_ = live;
    return index;
}

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
