#pragma once
// AUC and GAUC for click-through prediction, exact and streaming.
//
// AUC: the probability that a random positive scores above a random negative,
// ties counting half: (#pairs pos > neg + 0.5 #pairs pos == neg) / (P N).
// Exact: sort once and use mid-ranks (O(n log n)), equal to the pair count.
//
// GAUC (per-user AUC weighted by impressions): Σ_u n_u AUC_u / Σ_u n_u over the
// users with at least one positive and one negative; users with one class only
// are skipped (their AUC is undefined), as usual.
//
// Streaming: a fixed-bin histogram of scores over [lo, hi] (values outside are
// clamped to the end bins) per class. Pairs in different bins are ordered
// exactly; pairs sharing a bin get half credit, so the error is at most
// 0.5 · Σ_b pos_b neg_b / (P N), which error_bound() reports. With 4,096 bins
// over sigmoid outputs it is typically < 1e-3; memory is O(bins), not O(n).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace eval {

namespace detail {
template <class S, class L>
void check_scores_labels(std::string_view op, std::span<const S> scores, std::span<const L> labels) {
    RECBLOCKS_CHECK_SHAPE(scores.size() == labels.size(), op, ": ", scores.size(), " scores but ", labels.size(),
                          " labels");
    for (std::size_t i = 0; i < labels.size(); ++i) {
        RECBLOCKS_CHECK_VALUE(labels[i] == L(0) || labels[i] == L(1), op, ": label ", i, " is ", labels[i],
                              "; labels must be 0 or 1");
        RECBLOCKS_CHECK_VALUE(!std::isnan(double(scores[i])), op, ": score ", i, " is NaN");
    }
}

/// AUC of the entries idx (indices into scores/labels); NaN when one class is absent.
template <class S, class L>
double auc_of(std::span<const S> scores, std::span<const L> labels, std::vector<std::size_t>& idx) {
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    double rank_sum = 0, pos = 0;
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) ++j;
        const double mid_rank = 0.5 * double(i + 1 + j);  // mean of ranks i+1 .. j
        for (std::size_t m = i; m < j; ++m)
            if (labels[idx[m]] == L(1)) {
                rank_sum += mid_rank;
                pos += 1;
            }
        i = j;
    }
    const double neg = double(idx.size()) - pos;
    if (pos == 0 || neg == 0) return std::nan("");
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}
}  // namespace detail

/// Exact AUC (ties half). Throws ValueError unless both classes are present.
template <class S, class L>
[[nodiscard]] double auc(std::span<const S> scores, std::span<const L> labels) {
    detail::check_scores_labels("eval::auc", scores, labels);
    std::vector<std::size_t> idx(scores.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    const double a = detail::auc_of(scores, labels, idx);
    RECBLOCKS_CHECK_VALUE(!std::isnan(a), "eval::auc: need at least one positive and one negative label among ",
                          labels.size());
    return a;
}

struct GaucResult {
    double gauc = 0;            ///< Σ n_u AUC_u / Σ n_u over counted users
    index_t users = 0;          ///< users counted
    index_t skipped_users = 0;  ///< users with one class only
    index_t impressions = 0;    ///< Σ n_u over counted users
};

/// Exact GAUC; user[i] names the user of impression i. Throws ValueError if no user has both classes.
template <class S, class L>
[[nodiscard]] GaucResult gauc(std::span<const S> scores, std::span<const L> labels, std::span<const std::int64_t> user) {
    detail::check_scores_labels("eval::gauc", scores, labels);
    RECBLOCKS_CHECK_SHAPE(user.size() == scores.size(), "eval::gauc: ", user.size(), " user ids for ", scores.size(),
                          " scores");
    // Group impressions by user in first-seen order, so the sum's order is fixed.
    std::unordered_map<std::int64_t, std::size_t> slot;
    std::vector<std::vector<std::size_t>> groups;
    for (std::size_t i = 0; i < user.size(); ++i) {
        const auto [it, fresh] = slot.try_emplace(user[i], groups.size());
        if (fresh) groups.emplace_back();
        groups[it->second].push_back(i);
    }
    GaucResult r;
    double num = 0;
    for (auto& g : groups) {
        const double a = detail::auc_of(scores, labels, g);
        if (std::isnan(a)) {
            ++r.skipped_users;
            continue;
        }
        num += double(g.size()) * a;
        r.impressions += static_cast<index_t>(g.size());
        ++r.users;
    }
    RECBLOCKS_CHECK_VALUE(r.users > 0, "eval::gauc: no user has both a positive and a negative impression (",
                          groups.size(), " users)");
    r.gauc = num / double(r.impressions);
    return r;
}

/// AUC from two fixed-bin histograms; add() in any order, memory O(bins).
class StreamingAuc {
public:
    explicit StreamingAuc(index_t bins = 4096, double lo = 0.0, double hi = 1.0) : lo_(lo), hi_(hi) {
        RECBLOCKS_CHECK_VALUE(bins >= 1 && hi > lo, "eval::StreamingAuc: need bins >= 1 and hi > lo, got bins ", bins,
                              ", range [", lo, ", ", hi, "]");
        pos_.assign(std::size_t(bins), 0);
        neg_.assign(std::size_t(bins), 0);
    }
    void add(double score, int label) {
        RECBLOCKS_CHECK_VALUE(label == 0 || label == 1, "eval::StreamingAuc::add: label is ", label, "; must be 0 or 1");
        RECBLOCKS_CHECK_VALUE(!std::isnan(score), "eval::StreamingAuc::add: score is NaN");
        (label ? pos_ : neg_)[bin(score)] += 1;
    }
    template <class S, class L>
    void add(std::span<const S> scores, std::span<const L> labels) {
        detail::check_scores_labels("eval::StreamingAuc::add", scores, labels);
        for (std::size_t i = 0; i < scores.size(); ++i) (labels[i] == L(1) ? pos_ : neg_)[bin(double(scores[i]))] += 1;
    }
    void merge(const StreamingAuc& o) {
        RECBLOCKS_CHECK_VALUE(o.pos_.size() == pos_.size() && o.lo_ == lo_ && o.hi_ == hi_,
                              "eval::StreamingAuc::merge: histograms differ in bins or range");
        for (std::size_t b = 0; b < pos_.size(); ++b) {
            pos_[b] += o.pos_[b];
            neg_[b] += o.neg_[b];
        }
    }
    [[nodiscard]] std::int64_t positives() const { return std::accumulate(pos_.begin(), pos_.end(), std::int64_t{0}); }
    [[nodiscard]] std::int64_t negatives() const { return std::accumulate(neg_.begin(), neg_.end(), std::int64_t{0}); }
    /// NaN while one class is absent.
    [[nodiscard]] double value() const {
        double neg_below = 0, credit = 0;
        for (std::size_t b = 0; b < pos_.size(); ++b) {
            credit += double(pos_[b]) * (neg_below + 0.5 * double(neg_[b]));
            neg_below += double(neg_[b]);
        }
        const double p = double(positives()), n = double(negatives());
        return p > 0 && n > 0 ? credit / (p * n) : std::nan("");
    }
    /// |value() - exact AUC| <= error_bound().
    [[nodiscard]] double error_bound() const {
        double same = 0;
        for (std::size_t b = 0; b < pos_.size(); ++b) same += double(pos_[b]) * double(neg_[b]);
        const double p = double(positives()), n = double(negatives());
        return p > 0 && n > 0 ? 0.5 * same / (p * n) : std::nan("");
    }

private:
    std::size_t bin(double s) const {
        const double f = (s - lo_) / (hi_ - lo_) * double(pos_.size());
        if (!(f > 0)) return 0;
        return std::min(pos_.size() - 1, static_cast<std::size_t>(f));
    }
    double lo_, hi_;
    std::vector<std::int64_t> pos_, neg_;
};

/// GAUC from one StreamingAuc per user (bins each; keep bins small for many users).
class StreamingGauc {
public:
    explicit StreamingGauc(index_t bins = 256, double lo = 0.0, double hi = 1.0) : bins_(bins), lo_(lo), hi_(hi) {
        RECBLOCKS_CHECK_VALUE(bins >= 1 && hi > lo, "eval::StreamingGauc: need bins >= 1 and hi > lo, got bins ", bins,
                              ", range [", lo, ", ", hi, "]");
    }
    void add(std::int64_t user, double score, int label) {
        auto it = users_.find(user);
        if (it == users_.end()) {
            order_.push_back(user);
            it = users_.emplace(user, StreamingAuc(bins_, lo_, hi_)).first;
        }
        it->second.add(score, label);
    }
    /// GAUC and, in error_bound, Σ n_u bound_u / Σ n_u.
    [[nodiscard]] GaucResult value(double* error_bound = nullptr) const {
        GaucResult r;
        double num = 0, err = 0;
        for (std::int64_t u : order_) {
            const StreamingAuc& s = users_.at(u);
            const double a = s.value();
            if (std::isnan(a)) {
                ++r.skipped_users;
                continue;
            }
            const double n = double(s.positives() + s.negatives());
            num += n * a;
            err += n * s.error_bound();
            r.impressions += static_cast<index_t>(n);
            ++r.users;
        }
        r.gauc = r.users ? num / double(r.impressions) : std::nan("");
        if (error_bound) *error_bound = r.users ? err / double(r.impressions) : std::nan("");
        return r;
    }

private:
    index_t bins_;
    double lo_, hi_;
    std::unordered_map<std::int64_t, StreamingAuc> users_;
    std::vector<std::int64_t> order_;
};

}  // namespace eval
RECBLOCKS_NAMESPACE_END
