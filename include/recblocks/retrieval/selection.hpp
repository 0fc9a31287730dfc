#pragma once
// Top-k selection for retrieval, in result order (score desc, then id asc):
//
//   TopKCollector     scores offered block by block (a streamed scan)
//   sampled_threshold + best_k_of   a threshold from a sample lets one pass
//                     keep ~2k candidates, then bisection picks the best k
//                     (the funnel's shortlist; cost flat in k, no sort)
//
// TopKCollector keeps an unordered buffer behind a threshold.
// Scores above the threshold are appended (one SIMD compare per 16 scores on
// the CPU: the backend's collect_above); when the buffer would overflow, one nth_element keeps
// the best k and the threshold rises to the k-th score. A later score equal to
// the threshold has a larger id than every kept one, so it ranks below them
// and the strict test is exact. Its cost grows with N, barely with k.
//
// Ranking works on order-preserving score bits (larger bits = larger score;
// -0.0 ranks as +0.0, as ranks_before treats them), with ~id below them in a
// 64-bit key where ties must be broken: larger key = better.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string_view>

#include "recblocks/core/check.hpp"
#include "recblocks/ops/top_k_selection.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval::detail {

/// Order-preserving bits of a score: larger bits = larger score (-0 as +0).
inline std::uint32_t order_bits(float v) {
    const std::uint32_t u = v == 0.0f ? 0u : std::bit_cast<std::uint32_t>(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float from_order_bits(std::uint32_t u) {
    return std::bit_cast<float>((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

/// Larger key = ranks first (larger score, then smaller id).
inline std::uint64_t rank_key(float v, row_id_t id) {
    return (std::uint64_t(order_bits(v)) << 32) | std::uint64_t(~static_cast<std::uint32_t>(id));
}
inline float key_score(std::uint64_t key) { return from_order_bits(static_cast<std::uint32_t>(key >> 32)); }
inline row_id_t key_id(std::uint64_t key) { return static_cast<row_id_t>(~static_cast<std::uint32_t>(key)); }

/// Moves the best k of keys[0..n) to the front (sorted best first if `sorted`).
inline void select_best_keys(std::uint64_t* keys, index_t n, index_t k, bool sorted) {
    if (k < n) std::nth_element(keys, keys + k - 1, keys + n, std::greater<>());
    if (sorted) std::sort(keys, keys + std::min(k, n), std::greater<>());
}

/// ids / scores [k] = the best k of keys[0..n), best first (reorders keys).
/// A NaN score among them (the query times the table overflowed) is an error
/// naming `op`.
inline void write_best_k(std::string_view op, std::uint64_t* keys, index_t n, index_t k, row_id_t* ids,
                         float* scores) {
    select_best_keys(keys, n, k, true);
    for (index_t i = 0; i < k; ++i) {
        ids[i] = key_id(keys[i]);
        scores[i] = key_score(keys[i]);
        RECBLOCKS_CHECK_VALUE(!std::isnan(scores[i]), op, ": the score of item ", ids[i],
                              " is NaN (the query times the table overflows)");
    }
}

class TopKCollector {
public:
    /// Entries of buffer space one collector needs for k and blocks of `block` scores.
    static index_t capacity(index_t k, index_t block) { return k + max_slack(k, block) + 16; }

    /// v / id / keys: capacity(k, block) entries each, owned by the caller.
    TopKCollector(index_t k, index_t block, float* v, row_id_t* id, std::uint64_t* keys)
        : k_(k), block_(block), slack_(std::max(k, block)), cap_(capacity(k, block)), v_(v), id_(id), keys_(keys) {}

    /// Offers scores s[0..n) of ids first, first + 1, ... (n <= block); ids
    /// in the sorted list `ex` are dropped.
    template <class Be>
    void offer(const Be& be, const float* s, index_t n, row_id_t first, std::span<const row_id_t> ex) {
        if (size_ + n > k_ + slack_) compact();
        const float thr = full_ ? threshold_ : -std::numeric_limits<float>::infinity();
        index_t added;
        if (full_) {
            added = ops::collect_above(be, vector_view(s, n), thr, first, vector_view(v_ + size_, cap_ - size_),
                                       vector_view(id_ + size_, cap_ - size_));
        } else {  // nothing to beat yet: keep every score (even -inf)
            std::copy_n(s, n, v_ + size_);
            for (index_t j = 0; j < n; ++j) id_[size_ + j] = first + static_cast<row_id_t>(j);
            added = n;
        }
        if (!ex.empty()) {
            index_t kept = 0;
            for (index_t j = size_; j < size_ + added; ++j)
                if (!std::binary_search(ex.begin(), ex.end(), id_[j])) {
                    v_[size_ + kept] = v_[j];
                    id_[size_ + kept++] = id_[j];
                }
            added = kept;
        }
        size_ += added;
    }

    /// Appends this collector's candidates (at most the best k of it) as keys.
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
        RECBLOCKS_CHECK_VALUE(!std::isnan(threshold_),
                              "retrieval: a score is NaN (the query times the table overflows)");
        full_ = true;
    }

    index_t k_, block_, slack_, cap_;
    float* v_;
    row_id_t* id_;
    std::uint64_t* keys_;
    index_t size_ = 0;
    float threshold_ = 0.0f;
    bool full_ = false;
};

/// A threshold above which about 2k of n scores should lie, read off a
/// sample of m of them (taken evenly across the ids) at rank 2k m / n + 4,
/// times `widen` (the caller widens 4x per retry when too few survived).
/// Returns false where the rank runs past the sample: keep everything.
template <class Be>
bool sampled_threshold(const Be& be, const float* sample, index_t m, index_t n, index_t k, index_t widen,
                       std::uint32_t* keys, float& threshold) {
    const index_t rank = (2 * k * m / n + 4) * widen;
    if (rank > m) return false;
    for (index_t i = 0; i < m; ++i) keys[i] = order_bits(sample[i]);
    // Roughly that rank is enough.
    threshold = from_order_bits(ops::kth_largest_key(be, vector_view<const std::uint32_t>(keys, m), rank, rank / 4));
    return true;
}

/// Drops the candidates whose ids are in the sorted list `ex`; returns how many are left.
inline index_t drop_excluded(float* cand_v, row_id_t* cand_id, index_t count, std::span<const row_id_t> ex) {
    if (ex.empty()) return count;
    index_t kept = 0;
    for (index_t j = 0; j < count; ++j)
        if (!std::binary_search(ex.begin(), ex.end(), cand_id[j])) {
            cand_v[kept] = cand_v[j];
            cand_id[kept++] = cand_id[j];
        }
    return kept;
}

/// ids[0..k) = the k best of the candidates (cand_id ascending), in no
/// particular order: the k-th best score is found by bisection (no data
/// moves, no branch on the data), ties at it go to the smaller ids. keys:
/// scratch of `count` entries.
template <class Be>
void best_k_of(const Be& be, const float* cand_v, const row_id_t* cand_id, index_t count, index_t k, row_id_t* ids,
               std::uint32_t* keys) {
    RECBLOCKS_CHECK_VALUE(count >= k, "retrieval: internal error, ", count, " candidates for k = ", k);
    for (index_t j = 0; j < count; ++j) keys[j] = order_bits(cand_v[j]);
    const std::uint32_t t = ops::kth_largest_key(be, vector_view<const std::uint32_t>(keys, count), k);
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

}  // namespace retrieval::detail
RECBLOCKS_NAMESPACE_END
