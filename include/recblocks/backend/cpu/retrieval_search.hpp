#pragma once
// The CPU backend's whole-search retrieval primitives (backend/primitives.hpp:
// exact_top_k, rerank_top_k, max_sim_scores): the threaded scans and the
// selection around the panel kernels of the retrieval section
// (kernels/retrieval.hpp). Primitives<backend::Cpu<Isa>> calls these with its
// kernel table, its thread pool and its single-threaded GEMM.
//
//   one query      streams the table once: 4,096 rows at a time are scored
//                  into an L1 buffer and offered, 256 at a time, to a
//                  TopKCollector (a threshold buffer: scores above it are
//                  appended with a SIMD compare-and-compress, and one
//                  nth_element keeps the best k when it fills). Tables of
//                  >= 65,536 rows are split over the threads; one selection
//                  merges the parts.
//   a shortlist    (no scores wanted) a threshold read off a sample of panels
//                  lets one fused pass keep ~2k rows, bisection on their score
//                  bits picks the k best: cost flat in k.
//   >= 4 queries   GEMM tiles of 256 queries x 256 items (a panel is a [D, 64]
//                  row-major matrix; bf16 / int8 tiles widened to f32), a
//                  bounded heap per query and part, threads over item tiles.
//
// Work is cut at fixed row boundaries and the top-k of a strict total order
// does not depend on the split: the same results on any thread count.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string_view>
#include <type_traits>

#include "recblocks/backend/cpu/kernels/retrieval.hpp"
#include "recblocks/backend/primitives.hpp"
#include "recblocks/backend/retrieval.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/core/thread_scratch.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu::retrieval_search {

using retrieval_keys::from_order_bits;
using retrieval_keys::key_id;
using retrieval_keys::key_score;
using retrieval_keys::order_bits;
using retrieval_keys::rank_key;

inline constexpr std::string_view kExactOp = "ops::exact_top_k";

struct CollectTag {};
struct HeapTag {};
struct TileTag {};
struct RerankTag {};
struct MaxSimTag {};

/// Moves the best k of keys[0..n) to the front (sorted best first if `sorted`).
inline void select_best_keys(std::uint64_t* keys, index_t n, index_t k, bool sorted) {
    if (k < n) std::nth_element(keys, keys + k - 1, keys + n, std::greater<>());
    if (sorted) std::sort(keys, keys + std::min(k, n), std::greater<>());
}

/// ids / scores [k] = the best k of keys[0..n), best first (reorders keys);
/// a NaN score among them is an error naming `op`.
inline void write_best_k(std::string_view op, std::uint64_t* keys, index_t n, index_t k, row_id_t* ids,
                         float* scores) {
    select_best_keys(keys, n, k, true);
    for (index_t i = 0; i < k; ++i) {
        ids[i] = key_id(keys[i]);
        const float s = key_score(keys[i]);
        RECBLOCKS_CHECK_VALUE(!std::isnan(s), op, ": the score of item ", ids[i],
                              " is NaN (the query times the table overflows)");
        if (scores) scores[i] = s;
    }
}

/// Scores offered block by block behind a rising threshold (see the top).
class TopKCollector {
public:
    /// Entries of buffer space one collector needs for k and blocks of `block` scores.
    static index_t capacity(index_t k, index_t block) { return k + max_slack(k, block) + 16; }

    TopKCollector(const RetrievalKernelTable& kt, index_t k, index_t block, float* v, row_id_t* id,
                  std::uint64_t* keys)
        : kt_(kt), k_(k), block_(block), slack_(std::max(k, block)), cap_(capacity(k, block)), v_(v), id_(id),
          keys_(keys) {}

    /// Offers s[0..n) of ids first, first + 1, ... (n <= block); ids in the
    /// sorted range [ex, ex_end) are dropped.
    void offer(const float* s, index_t n, row_id_t first, const row_id_t* ex, const row_id_t* ex_end) {
        if (size_ + n > k_ + slack_) compact();
        index_t added;
        if (full_) {
            added = kt_.collect_above(s, n, threshold_, first, v_ + size_, id_ + size_);
        } else {  // nothing to beat yet: keep every score (even -inf)
            std::copy_n(s, n, v_ + size_);
            for (index_t j = 0; j < n; ++j) id_[size_ + j] = first + static_cast<row_id_t>(j);
            added = n;
        }
        if (ex != ex_end) {
            index_t kept = 0;
            for (index_t j = size_; j < size_ + added; ++j)
                if (!std::binary_search(ex, ex_end, id_[j])) {
                    v_[size_ + kept] = v_[j];
                    id_[size_ + kept++] = id_[j];
                }
            added = kept;
        }
        size_ += added;
    }

    /// Appends this collector's candidates as keys; returns how many.
    index_t append_keys(std::uint64_t* out) const {
        for (index_t j = 0; j < size_; ++j) out[j] = rank_key(v_[j], id_[j]);
        return size_;
    }

private:
    static index_t max_slack(index_t k, index_t block) { return std::max(k, 8 * block); }

    void compact() {
        for (index_t j = 0; j < size_; ++j) keys_[j] = rank_key(v_[j], id_[j]);
        select_best_keys(keys_, size_, k_, false);
        std::uint64_t worst = keys_[0];
        for (index_t j = 0; j < k_; ++j) {
            worst = std::min(worst, keys_[j]);
            v_[j] = key_score(keys_[j]);
            id_[j] = key_id(keys_[j]);
        }
        size_ = k_;
        // A weak early threshold lets many scores through: room doubles with
        // each compaction, so their number stays logarithmic in N.
        slack_ = std::min(2 * slack_, max_slack(k_, block_));
        threshold_ = key_score(worst);
        RECBLOCKS_CHECK_VALUE(!std::isnan(threshold_), kExactOp,
                              ": a score is NaN (the query times the table overflows)");
        full_ = true;
    }

    const RetrievalKernelTable& kt_;
    index_t k_, block_, slack_, cap_;
    float* v_;
    row_id_t* id_;
    std::uint64_t* keys_;
    index_t size_ = 0;
    float threshold_ = 0.0f;
    bool full_ = false;
};

/// A threshold above which about 2k of n scores should lie, read off a
/// sample of m of them at rank (2k m / n + 4) * widen; false where the rank
/// runs past the sample (keep everything).
inline bool sampled_threshold(const RetrievalKernelTable& kt, const float* sample, index_t m, index_t n, index_t k,
                              index_t widen, std::uint32_t* keys, float& threshold) {
    const index_t rank = (2 * k * m / n + 4) * widen;
    if (rank > m) return false;
    for (index_t i = 0; i < m; ++i) keys[i] = order_bits(sample[i]);
    threshold = from_order_bits(kt.kth_largest(keys, m, rank, rank / 4));  // roughly that rank is enough
    return true;
}

/// Drops the candidates whose ids are in [ex, ex_end); returns how many are left.
inline index_t drop_excluded(float* cand_v, row_id_t* cand_id, index_t count, const row_id_t* ex,
                             const row_id_t* ex_end) {
    if (ex == ex_end) return count;
    index_t kept = 0;
    for (index_t j = 0; j < count; ++j)
        if (!std::binary_search(ex, ex_end, cand_id[j])) {
            cand_v[kept] = cand_v[j];
            cand_id[kept++] = cand_id[j];
        }
    return kept;
}

/// ids[0..k) = the k best candidates (cand_id ascending), in no particular
/// order: the k-th best score by bisection, ties at it to the smaller ids.
inline void best_k_of(const RetrievalKernelTable& kt, const float* cand_v, const row_id_t* cand_id, index_t count,
                      index_t k, row_id_t* ids, std::uint32_t* keys) {
    RECBLOCKS_CHECK_VALUE(count >= k, kExactOp, ": internal error, ", count, " candidates for k = ", k);
    for (index_t j = 0; j < count; ++j) keys[j] = order_bits(cand_v[j]);
    const std::uint32_t t = kt.kth_largest(keys, count, k, 0);
    index_t above = 0;
    for (index_t j = 0; j < count; ++j) above += keys[j] > t;
    index_t out = 0, ties = k - above;
    for (index_t j = 0; j < count; ++j) {
        if (keys[j] > t) {
            ids[out++] = cand_id[j];
        } else if (keys[j] == t && ties > 0) {
            ids[out++] = cand_id[j];
            --ties;
        }
    }
}

/// Merges `parts` heaps of up to k entries (part p at v + p * stride) into
/// the k best, written sorted.
inline void merge_heaps(const float* v, const row_id_t* id, const index_t* sizes, index_t parts, index_t stride,
                        index_t k, row_id_t* out_ids, float* out_scores) {
    auto& keys = thread_scratch<std::uint64_t, HeapTag>(std::size_t(parts * k));
    index_t n = 0;
    for (index_t p = 0; p < parts; ++p)
        for (index_t i = 0; i < sizes[p]; ++i) keys[std::size_t(n++)] = rank_key(v[p * stride + i], id[p * stride + i]);
    RECBLOCKS_CHECK_VALUE(n >= k, kExactOp, ": internal error, ", n, " candidates for k = ", k);
    write_best_k(kExactOp, keys.data(), n, k, out_ids, out_scores);
}

/// One search of a panel table: the kernels, the pool, a single-threaded
/// float GEMM c = op(a) op(b) (gemm(ta, tb, a, b, c): the batch tiles) and the table.
template <class E, class Gemm>
struct PanelSearch {
    static constexpr index_t kPanelRows = ::recblocks::kPanelRows;
    static constexpr index_t kScoreRows = 4096;  // one query: rows per scoring call (16 KiB of scores: L1)
    static constexpr index_t kBlockRows = 256;   // one query: rows per collector offer
    static constexpr index_t kItemTile = 256;    // batch: items per GEMM tile (4 panels)
    static constexpr index_t kQueryTile = 256;   // batch: queries per GEMM tile
    static constexpr index_t kMinRowsPerThread = 32768;
    static constexpr index_t kSamplePanels = 8;

    const RetrievalKernelTable& kt;
    ThreadPool& pool;
    const Gemm& gemm;
    PanelView<E> items;

    [[nodiscard]] index_t n() const { return items.rows; }
    [[nodiscard]] index_t d() const { return items.dim; }

    template <class Fn>
    void run_parts(index_t parts, Fn&& fn) const {
        if (parts > 1) pool.run(parts, fn);
        else fn(0);
    }

    /// Scores of rows r0 .. r0 + nr (r0 on a panel boundary).
    void score_block(index_t r0, index_t nr, const float* q, float* out) const {
        const auto p = items.rows_from(r0, nr);
        kt.template score_panels<E>()(p.data, p.rows, p.dim, q, p.scales, out);
    }

    /// The whole primitive: queries [Q, D], k, exclusions, ids [Q, k], scores [Q, k] or empty.
    void run(MatrixView<const float> queries, index_t k, VectorView<const index_t> ex_offsets,
             VectorView<const row_id_t> ex_ids, MatrixView<row_id_t> ids, MatrixView<float> scores) const {
        const index_t nq = queries.rows();
        const bool ordered = !scores.empty();
        auto excluded = [&](index_t b, const row_id_t*& first, const row_id_t*& last) {
            detail::excluded_range(ex_offsets, ex_ids, b, first, last);
        };
        if (!ordered || nq < 4) {  // a GEMM tile of 1-3 queries does no better than streaming
            for (index_t b = 0; b < nq; ++b) {
                const row_id_t *ex, *ex_end;
                excluded(b, ex, ex_end);
                if (ordered) search_one(queries.row(b), k, ids.row(b), scores.row(b), ex, ex_end);
                else search_shortlist(queries.row(b), k, ex, ex_end, ids.row(b));
            }
            return;
        }
        search_batch(queries, k, ids, scores, excluded);
    }

    /// The k best for one query into ids / scores, best first.
    void search_one(const float* q, index_t k, row_id_t* ids, float* scores, const row_id_t* ex,
                    const row_id_t* ex_end) const {
        const index_t blocks = (n() + kScoreRows - 1) / kScoreRows;
        // Split only tables big enough to pay for waking a thread.
        const index_t parts = std::clamp<index_t>(n() / kMinRowsPerThread, 1, pool.size());
        const index_t cap = TopKCollector::capacity(k, kBlockRows);
        auto& v = thread_scratch<float, CollectTag>(std::size_t(parts * cap));
        auto& id = thread_scratch<row_id_t, CollectTag>(std::size_t(parts * cap));
        auto& keys = thread_scratch<std::uint64_t, CollectTag>(std::size_t(parts * cap));
        auto& sizes = thread_scratch<index_t, CollectTag>(std::size_t(parts));
        run_parts(parts, [&](index_t p) {
            alignas(64) float buf[kScoreRows];
            TopKCollector top(kt, k, kBlockRows, v.data() + p * cap, id.data() + p * cap, keys.data() + p * cap);
            for (index_t blk = blocks * p / parts; blk < blocks * (p + 1) / parts; ++blk) {
                const index_t r0 = blk * kScoreRows, nr = std::min(n(), r0 + kScoreRows) - r0;
                score_block(r0, nr, q, buf);  // one call per 4,096 rows: the int8 query is rounded once
                for (index_t o = 0; o < nr; o += kBlockRows)
                    top.offer(buf + o, std::min(kBlockRows, nr - o), static_cast<row_id_t>(r0 + o), ex, ex_end);
            }
            sizes[std::size_t(p)] = top.append_keys(keys.data() + p * cap);
        });
        // Gather the parts' keys, then one selection over all of them.
        index_t total = 0;
        for (index_t p = 0; p < parts; ++p) {
            std::copy_n(keys.data() + p * cap, sizes[std::size_t(p)], keys.data() + total);
            total += sizes[std::size_t(p)];
        }
        RECBLOCKS_CHECK_VALUE(total >= k, kExactOp, ": internal error, ", total, " candidates for k = ", k);
        write_best_k(kExactOp, keys.data(), total, k, ids, scores);
    }

    /// ids[0..k) = the k best for one query, unordered.
    void search_shortlist(const float* q, index_t k, const row_id_t* ex, const row_id_t* ex_end, row_id_t* out) const {
        const index_t panels = (n() + kPanelRows - 1) / kPanelRows;
        const index_t parts = std::clamp<index_t>(n() / kMinRowsPerThread, 1, pool.size());
        const auto room = std::size_t(n() + 16 * parts);
        auto& cand_v = thread_scratch<float, CollectTag>(room);
        auto& cand_id = thread_scratch<row_id_t, CollectTag>(room);
        auto& keys = thread_scratch<std::uint32_t, CollectTag>(room);
        auto& part_count = thread_scratch<index_t, CollectTag>(std::size_t(parts));
        // The sample: kSamplePanels whole panels, evenly spaced.
        alignas(64) float sample[kSamplePanels * kPanelRows];
        index_t m = 0;
        const index_t sampled = std::min(panels, kSamplePanels);
        for (index_t i = 0; i < sampled; ++i) {
            const index_t r0 = (panels * i / sampled) * kPanelRows, rows = std::min(kPanelRows, n() - r0);
            score_block(r0, rows, q, sample + m);
            m += rows;
        }
        for (index_t i = 0; i < m; ++i)  // NaN would make the threshold meaningless
            RECBLOCKS_CHECK_VALUE(!std::isnan(sample[i]), kExactOp,
                                  ": a score is NaN (the query times the table overflows)");
        index_t count = 0;
        for (index_t widen = 1;; widen *= 4) {
            float thr = 0.0f;
            const bool keep_all = !sampled_threshold(kt, sample, m, n(), k, widen, keys.data(), thr);
            // Part p writes from its first row + 16 p: its survivors fit, and
            // the 16 spare entries it may scribble on belong to nobody else.
            run_parts(parts, [&](index_t p) {
                const index_t r0 = panels * p / parts * kPanelRows;
                const index_t r1 = std::min(n(), panels * (p + 1) / parts * kPanelRows);
                float* v = cand_v.data() + r0 + 16 * p;
                row_id_t* id = cand_id.data() + r0 + 16 * p;
                index_t c = 0;
                if (r1 > r0 && keep_all) {
                    score_block(r0, r1 - r0, q, v);
                    for (index_t j = 0; j < r1 - r0; ++j) id[j] = static_cast<row_id_t>(r0 + j);
                    c = r1 - r0;
                } else if (r1 > r0) {
                    const auto pv = items.rows_from(r0, r1 - r0);
                    c = kt.template score_panels_above<E>()(pv.data, pv.rows, pv.dim, q, pv.scales, thr,
                                                            static_cast<row_id_t>(r0), v, id);
                }
                part_count[std::size_t(p)] = c;
            });
            count = 0;  // close the gaps between the parts, in id order
            for (index_t p = 0; p < parts; ++p) {
                const index_t from = panels * p / parts * kPanelRows + 16 * p, c = part_count[std::size_t(p)];
                if (from != count) {  // from > count: a move to the left
                    std::copy(cand_v.data() + from, cand_v.data() + from + c, cand_v.data() + count);
                    std::copy(cand_id.data() + from, cand_id.data() + from + c, cand_id.data() + count);
                }
                count += c;
            }
            count = drop_excluded(cand_v.data(), cand_id.data(), count, ex, ex_end);
            if (count >= k || keep_all) break;
        }
        best_k_of(kt, cand_v.data(), cand_id.data(), count, k, out, keys.data());
    }

    /// Element (r, c) widened to f32, as the kernels score it.
    [[nodiscard]] float value(index_t r, index_t c) const {
        const E e = items.data[panel_offset<E>(r, c, d())];
        if constexpr (std::is_same_v<E, float>) return e;
        else if constexpr (std::is_same_v<E, std::uint16_t>) return std::bit_cast<float>(std::uint32_t(e) << 16);
        else return float(e) * (items.scales ? items.scales[r] : 1.0f);
    }

    /// >= 4 queries with scores: GEMM tiles, a heap per query and part, one merge.
    template <class Excluded>
    void search_batch(MatrixView<const float> queries, index_t k, MatrixView<row_id_t> ids, MatrixView<float> scores,
                      const Excluded& excluded) const {
        const index_t nq = queries.rows(), dd = d();
        const index_t tiles = (n() + kItemTile - 1) / kItemTile;
        const index_t parts = std::min<index_t>(pool.size(), tiles);
        const index_t per_part = nq * k;  // heap slots of one part
        auto& hv = thread_scratch<float, HeapTag>(std::size_t(parts * per_part));
        auto& hid = thread_scratch<row_id_t, HeapTag>(std::size_t(parts * per_part));
        auto& hsize = thread_scratch<index_t, HeapTag>(std::size_t(parts * nq));
        run_parts(parts, [&](index_t p) {
            auto& buf = thread_scratch<float, TileTag>(
                std::size_t(kQueryTile * kItemTile + (std::is_same_v<E, float> ? 0 : kItemTile * dd)));
            float* tile_scores = buf.data();
            float* wide = buf.data() + kQueryTile * kItemTile;
            index_t* sizes = hsize.data() + p * nq;
            std::fill_n(sizes, nq, index_t(0));
            for (index_t t = tiles * p / parts; t < tiles * (p + 1) / parts; ++t) {
                const index_t r0 = t * kItemTile, nt = std::min(n(), r0 + kItemTile) - r0;
                // The tile's panels as f32: a panel is a [D, 64] row-major matrix.
                const float* panels;
                if constexpr (std::is_same_v<E, float>) {
                    panels = items.data + r0 * dd;
                } else {
                    for (index_t r = 0; r < nt; ++r)
                        for (index_t c = 0; c < dd; ++c)  // f32 panels: rows in order
                            wide[(r / kPanelRows) * kPanelRows * dd + c * kPanelRows + r % kPanelRows] =
                                value(r0 + r, c);
                    panels = wide;
                }
                for (index_t q0 = 0; q0 < nq; q0 += kQueryTile) {
                    const index_t nqt = std::min(nq, q0 + kQueryTile) - q0;
                    for (index_t j = 0; j < nt; j += kPanelRows) {
                        const index_t cols = std::min(kPanelRows, nt - j);
                        gemm(Trans::no, Trans::no, queries.slice_rows(q0, q0 + nqt),
                             matrix_view(panels + j * dd, dd, cols, kPanelRows),
                             matrix_view(tile_scores + j, nqt, cols, nt));
                    }
                    for (index_t q = 0; q < nqt; ++q) {
                        const index_t b = q0 + q;
                        const row_id_t *ex, *ex_end;
                        excluded(b, ex, ex_end);
                        float* v = hv.data() + p * per_part + b * k;
                        row_id_t* id = hid.data() + p * per_part + b * k;
                        sizes[b] = kt.offer(tile_scores + q * nt, nt, static_cast<row_id_t>(r0), k, v, id, sizes[b],
                                            ex, index_t(ex_end - ex));
                    }
                }
            }
        });
        auto& part_sizes = thread_scratch<index_t, TileTag>(std::size_t(parts));
        for (index_t b = 0; b < nq; ++b) {
            for (index_t p = 0; p < parts; ++p) part_sizes[std::size_t(p)] = hsize[std::size_t(p * nq + b)];
            merge_heaps(hv.data() + b * k, hid.data() + b * k, part_sizes.data(), parts, per_part, k, ids.row(b),
                        scores.row(b));
        }
    }
};

/// rerank_top_k: per query, the shortlisted rows scored whole (16 at a time,
/// a shuffle-tree fold) and the best k kept; queries split over the pool.
inline void rerank_top_k(const RetrievalKernelTable& kt, ThreadPool& pool, MatrixView<const float> rows,
                         MatrixView<const float> queries, MatrixView<const row_id_t> candidates, index_t k,
                         MatrixView<row_id_t> ids, MatrixView<float> scores) {
    constexpr std::string_view op = "ops::rerank_top_k";
    const index_t nq = queries.rows(), s = candidates.cols();
    auto one = [&](index_t b) {
        auto& sc = thread_scratch<float, RerankTag>(std::size_t(s));
        auto& keys = thread_scratch<std::uint64_t, RerankTag>(std::size_t(s));
        const row_id_t* cand = candidates.row(b);
        kt.score_ids_f32(rows.data(), rows.ld(), cand, s, rows.cols(), queries.row(b), nullptr, sc.data());
        for (index_t j = 0; j < s; ++j) keys[std::size_t(j)] = rank_key(sc[std::size_t(j)], cand[j]);
        write_best_k(op, keys.data(), s, k, ids.row(b), scores.row(b));
    };
    if (nq == 1) {
        one(0);  // one query (the common serving call) stays on the calling thread
        return;
    }
    parallel_for(pool, 0, nq, 1, [&](index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) one(b);
    });
}

/// max_sim_scores: fixed chunks of 64 items over the pool; each chunk's
/// vectors go through GEMMs with the query in groups of ~256 vectors, then
/// per item and query row the max and its first argmax.
template <class Gemm>
void max_sim_scores(ThreadPool& pool, const Gemm& gemm, MatrixView<const float> query, MatrixView<const float> vectors,
                    VectorView<const index_t> offsets, VectorView<float> scores, MatrixView<index_t> argmax) {
    constexpr std::string_view op = "ops::max_sim_scores";
    const index_t n = offsets.size() - 1, q = query.rows();
    const bool want_arg = !argmax.empty();
    constexpr index_t kItemsPerChunk = 64;    // fixed: same groups for any thread count
    constexpr index_t kVectorsPerGemm = 256;  // tile [q, 256] stays in L1/L2
    parallel_for(pool, 0, n, kItemsPerChunk, [&](index_t i0, index_t i1) {
        for (index_t g0 = i0; g0 < i1;) {
            index_t g1 = g0 + 1;  // items g0..g1 together hold about kVectorsPerGemm vectors
            while (g1 < i1 && offsets(g1 + 1) - offsets(g0) <= kVectorsPerGemm) ++g1;
            const index_t v0 = offsets(g0), nv = offsets(g1) - v0;
            auto& tile = thread_scratch<float, MaxSimTag>(std::size_t(q * nv));
            gemm(Trans::no, Trans::yes, query, vectors.slice_rows(v0, v0 + nv), matrix_view(tile.data(), q, nv, nv));
            for (index_t i = g0; i < g1; ++i) {
                const index_t a = offsets(i) - v0, b = offsets(i + 1) - v0;
                float total = 0.0f;
                for (index_t r = 0; r < q; ++r) {
                    const float* row = tile.data() + r * nv;
                    index_t best = a;
                    for (index_t j = a + 1; j < b; ++j)
                        if (row[j] > row[best]) best = j;
                    total += row[best];
                    if (want_arg) argmax(i, r) = v0 + best;
                }
                RECBLOCKS_CHECK_VALUE(!std::isnan(total), op, ": the score of item ", i,
                                      " is NaN (its vectors hold NaN or the products overflow)");
                scores(i) = total;
            }
            g0 = g1;
        }
    });
}

}  // namespace cpu::retrieval_search
RECBLOCKS_NAMESPACE_END
