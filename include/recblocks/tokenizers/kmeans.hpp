#pragma once
// k-means (Lloyd) on f32 data x [N, d] with K centroids [K, d].
//
//   init      k-means++ (D² sampling; Arthur & Vassilvitskii 2007) or K distinct random rows
//   assign    label_i = argmin_k ||x_i||² - 2 x_i·c_k + ||c_k||², the dot products by one GEMM
//             per block of `block_rows` rows (ops::gemm; memory block_rows × K floats per thread),
//             blocks spread over the backend's ThreadPool
//   update    c_k = mean of its points (double sums); an empty cluster takes half of the largest
//             one: copy its centroid, perturb the two copies by ±1/1024 in alternating
//             coordinates (FAISS's split_clusters, with the largest cluster instead of a random
//             one) — deterministic
//   objective Σ_i min_k ||x_i - c_k||² of each iteration's assignment (before its update), as
//             FAISS reports it; non-increasing up to float rounding while no cluster is split
//
// Optional subsampling: with max_points_per_centroid = P > 0 and N > K·P, training uses K·P rows
// drawn without replacement (FAISS's default P = 256). Every random draw comes from Rng(seed)
// and every reduction runs over chunks fixed by the sizes, so the result is bit-identical for
// any thread count. Caveats: float distances by expansion lose precision when ||x|| ≫ ||x - c||
// (as in FAISS); ties go to the lowest centroid index.
//
// Errors: ValueError for a bad config, NaN/Inf in x, K > N or an empty x; ShapeError for a
// dimension mismatch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "recblocks/backend/primitives.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/core/workspace.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/nearest_centroid.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

enum class KMeansInit : std::uint8_t { kmeans_plus_plus, random_rows };

struct KMeansConfig {
    index_t k = 256;                          ///< number of centroids K
    int iterations = 25;                      ///< Lloyd iterations (FAISS's niter)
    std::uint64_t seed = 1234;
    KMeansInit init = KMeansInit::kmeans_plus_plus;
    index_t max_points_per_centroid = 256;    ///< subsample to K·this rows when N is larger; 0: all rows
    index_t block_rows = 512;                 ///< rows per assignment GEMM (bounds scratch memory)

    void validate() const {
        RECBLOCKS_CHECK_VALUE(k >= 1, "KMeansConfig: k must be >= 1, got ", k);
        RECBLOCKS_CHECK_VALUE(iterations >= 0, "KMeansConfig: iterations must be >= 0, got ", iterations);
        RECBLOCKS_CHECK_VALUE(max_points_per_centroid >= 0, "KMeansConfig: max_points_per_centroid must be >= 0, got ",
                              max_points_per_centroid);
        RECBLOCKS_CHECK_VALUE(block_rows >= 1, "KMeansConfig: block_rows must be >= 1, got ", block_rows);
    }
};

namespace detail {

/// Per-thread scratch arena (one per Tag), grown to its high-water mark and then reused.
template <class Tag>
Workspace& thread_workspace() {
    thread_local Workspace ws;
    return ws;
}
struct AssignTag {};
struct InitTag {};

/// ValueError unless every element of x is finite.
inline void check_finite(const char* who, MatrixView<const float> x) {
    for (index_t r = 0; r < x.rows(); ++r) {
        const float* p = x.row(r);
        float acc = 0.0f;
        for (index_t c = 0; c < x.cols(); ++c) acc += p[c] * 0.0f;  // NaN iff some p[c] is NaN or Inf
        if (!(acc == 0.0f)) [[unlikely]] {
            for (index_t c = 0; c < x.cols(); ++c)
                RECBLOCKS_CHECK_VALUE(std::isfinite(p[c]), who, ": x[", r, ", ", c, "] = ", p[c],
                                      "; the data must be finite (no NaN or Inf)");
        }
    }
}

/// norms[j] = ||c_j||² for the rows of c [K, d].
template <class Be>
void squared_norms(const Be& be, MatrixView<const float> c, float* norms) {
    ops::squared_distances(be, c, VectorView<const float>{}, vector_view(norms, c.rows()));
}

/// labels[i] = nearest centroid of row i of x, dist[i] = its squared distance
/// (clamped at 0). c [K, d], cnorm[k] = ||c_k||². Blocks of block_rows rows run
/// in parallel over the backend's pool, each with one GEMM.
template <class Be>
void assign_nearest(const Be& be, MatrixView<const float> x, MatrixView<const float> c, const float* cnorm,
                    index_t block_rows, std::int32_t* labels, float* dist) {
    const index_t n = x.rows(), k = c.rows();
    parallel_for(be.threads(), 0, n, block_rows, [&](index_t r0, index_t r1) {
        Workspace& ws = thread_workspace<AssignTag>();
        ws.reset();
        const index_t rows = r1 - r0;
        float* g = ws.take<float>(rows * k);
        float* best = ws.take<float>(rows);
        float* xnorm = ws.take<float>(rows);
        index_t* arg = ws.take<index_t>(rows);
        ops::gemm(be, Trans::no, Trans::yes, 1.0f, x.slice_rows(r0, r1), c, 0.0f, matrix_view(g, rows, k));
        ops::shifted_argmin_rows(be, matrix_view(g, rows, k), vector_view(cnorm, k), vector_view(arg, rows),
                                 vector_view(best, rows));
        if (dist) ops::squared_distances(be, x.slice_rows(r0, r1), VectorView<const float>{}, vector_view(xnorm, rows));
        for (index_t r = 0; r < rows; ++r) {
            labels[r0 + r] = static_cast<std::int32_t>(arg[r]);
            if (dist) dist[r0 + r] = std::max(0.0f, best[r] + xnorm[r]);
        }
    });
}

}  // namespace detail

/// What train() reports.
struct KMeansReport {
    std::vector<double> objective;  ///< Σ squared distances after each iteration's assignment
    index_t training_rows = 0;      ///< rows used (after subsampling)
    index_t splits = 0;             ///< empty clusters repaired, all iterations together
};

class KMeans {
public:
    explicit KMeans(KMeansConfig cfg) : cfg_(cfg) { cfg_.validate(); }

    [[nodiscard]] const KMeansConfig& config() const { return cfg_; }
    [[nodiscard]] bool trained() const { return centroids_.numel() > 0; }
    /// Centroids [K, d] (empty before train()).
    [[nodiscard]] MatrixView<const float> centroids() const { return centroids_.view(); }
    [[nodiscard]] const KMeansReport& report() const { return report_; }

    /// Trains on x [N, d] (N >= K, finite). Returns the report (also kept in report()).
    template <class Be>
    const KMeansReport& train(const Be& be, MatrixView<const float> x) {
        const index_t n = x.rows(), d = x.cols(), k = cfg_.k;
        RECBLOCKS_CHECK_VALUE(n >= 1 && d >= 1, "KMeans::train: x is ", x.shape(), "; need at least one row and column");
        RECBLOCKS_CHECK_VALUE(k <= n, "KMeans::train: k = ", k, " centroids but only ", n, " rows in x");
        RECBLOCKS_CHECK_VALUE(n <= index_t{0xFFFFFFFF}, "KMeans::train: ", n,
                              " rows; at most 2^32 - 1 (subsample the data first)");
        detail::check_finite("KMeans::train", x);
        report_ = KMeansReport{};

        // Subsample (partial Fisher-Yates from the seed), keeping the sample in row order.
        Matrix<float> sample;
        MatrixView<const float> data = x;
        const Rng rng(cfg_.seed);
        if (cfg_.max_points_per_centroid > 0 && n > k * cfg_.max_points_per_centroid) {
            const index_t m = k * cfg_.max_points_per_centroid;
            std::vector<index_t> perm(static_cast<std::size_t>(n));
            std::iota(perm.begin(), perm.end(), index_t{0});
            const Rng pick = rng.substream(1);
            for (index_t i = 0; i < m; ++i) {
                const index_t j = i + static_cast<index_t>(pick.below(std::uint64_t(i), std::uint32_t(n - i)));
                std::swap(perm[std::size_t(i)], perm[std::size_t(j)]);
            }
            std::sort(perm.begin(), perm.begin() + m);
            sample.resize(Shape<2>{{m, d}});
            for (index_t i = 0; i < m; ++i) std::copy_n(x.row(perm[std::size_t(i)]), d, sample.data() + i * d);
            data = sample.view();
        }
        const index_t nt = data.rows();
        report_.training_rows = nt;

        centroids_.resize(Shape<2>{{k, d}});
        if (cfg_.init == KMeansInit::kmeans_plus_plus) init_plus_plus(be, data, rng.substream(2));
        else init_random(data, rng.substream(3));

        std::vector<std::int32_t> labels(static_cast<std::size_t>(nt));
        std::vector<float> dist(static_cast<std::size_t>(nt));
        std::vector<float> cnorm(static_cast<std::size_t>(k));
        std::vector<index_t> counts(static_cast<std::size_t>(k));
        std::vector<double> sums;
        for (int it = 0; it < cfg_.iterations; ++it) {
            detail::squared_norms(be, centroids_.cview(), cnorm.data());
            detail::assign_nearest(be, data, centroids_.cview(), cnorm.data(), cfg_.block_rows, labels.data(),
                                   dist.data());
            report_.objective.push_back(parallel_reduce(
                be.threads(), 0, nt, kReduceRows, 0.0,
                [&](index_t b, index_t e) {
                    double s = 0;
                    for (index_t i = b; i < e; ++i) s += dist[std::size_t(i)];
                    return s;
                },
                [](double a, double b) { return a + b; }));
            update_centroids(be, data, labels, counts, sums);
            report_.splits += split_empty(counts);
        }
        return report_;
    }

    /// labels[i] (and optionally dist[i]) of the nearest trained centroid for each row of x [N, d].
    template <class Be>
    void assign(const Be& be, MatrixView<const float> x, VectorView<std::int32_t> labels,
                VectorView<float> dist = {}) const {
        RECBLOCKS_CHECK_VALUE(trained(), "KMeans::assign: call train() first");
        RECBLOCKS_CHECK_SHAPE(x.cols() == centroids_.extent(1), "KMeans::assign: x is ", x.shape(),
                              " but the centroids have d = ", centroids_.extent(1));
        RECBLOCKS_CHECK_SHAPE(labels.size() == x.rows() && (dist.data() == nullptr || dist.size() == x.rows()),
                              "KMeans::assign: labels (and dist) must have ", x.rows(), " entries");
        detail::check_finite("KMeans::assign", x);
        const index_t k = centroids_.extent(0);
        std::vector<float> cnorm(static_cast<std::size_t>(k));
        detail::squared_norms(be, centroids_.cview(), cnorm.data());
        detail::assign_nearest(be, x, centroids_.cview(), cnorm.data(), cfg_.block_rows, labels.data(), dist.data());
    }

private:
    static constexpr index_t kReduceRows = 4096;

    void init_random(MatrixView<const float> data, const Rng& rng) {
        const index_t n = data.rows(), d = data.cols(), k = cfg_.k;
        std::vector<index_t> perm(static_cast<std::size_t>(n));
        std::iota(perm.begin(), perm.end(), index_t{0});
        for (index_t i = 0; i < k; ++i) {
            const index_t j = i + static_cast<index_t>(rng.below(std::uint64_t(i), std::uint32_t(n - i)));
            std::swap(perm[std::size_t(i)], perm[std::size_t(j)]);
            std::copy_n(data.row(perm[std::size_t(i)]), d, centroids_.data() + i * d);
        }
    }

    template <class Be>
    void init_plus_plus(const Be& be, MatrixView<const float> data, const Rng& rng) {
        const index_t n = data.rows(), d = data.cols(), k = cfg_.k;
        std::vector<float> mind(static_cast<std::size_t>(n));
        const index_t chunks = chunk_count(0, n, kReduceRows);
        std::vector<double> partial(static_cast<std::size_t>(chunks));
        index_t chosen = static_cast<index_t>(rng.below(0, std::uint32_t(n)));
        for (index_t j = 0; j < k; ++j) {
            float* c = centroids_.data() + j * d;
            std::copy_n(data.row(chosen), d, c);
            if (j + 1 == k) break;
            // Update the distances to the nearest chosen centroid and their per-chunk sums.
            be.threads().run(chunks, [&](index_t ch) {
                const index_t b = ch * kReduceRows, e = std::min(n, b + kReduceRows);
                double s = 0;
                Workspace& ws = detail::thread_workspace<detail::InitTag>();
                ws.reset();
                float* dd_all = ws.take<float>(e - b);
                ops::squared_distances(be, data.slice_rows(b, e), vector_view<const float>(c, d),
                                       vector_view(dd_all, e - b));
                for (index_t i = b; i < e; ++i) {
                    const float dd = dd_all[i - b];
                    float& m = mind[std::size_t(i)];
                    if (j == 0 || dd < m) m = dd;
                    s += m;
                }
                partial[std::size_t(ch)] = s;
            });
            double total = 0;
            for (double p : partial) total += p;
            if (!(total > 0)) {  // every row coincides with a chosen centroid: any row will do
                chosen = static_cast<index_t>(rng.below(std::uint64_t(2 * j + 1), std::uint32_t(n)));
                continue;
            }
            double u = rng.uniform_double(std::uint64_t(j)) * total;
            index_t ch = 0;
            while (ch + 1 < chunks && u >= partial[std::size_t(ch)]) u -= partial[std::size_t(ch++)];
            const index_t b = ch * kReduceRows, e = std::min(n, b + kReduceRows);
            chosen = e - 1;
            for (index_t i = b; i < e; ++i) {
                const double m = mind[std::size_t(i)];
                if (u < m) {
                    chosen = i;
                    break;
                }
                u -= m;
            }
            while (mind[std::size_t(chosen)] == 0 && chosen > b) --chosen;  // never pick a zero-weight row
        }
    }

    /// Centroid k = mean of its rows (double sums). Clusters are split into
    /// ranges, one task each scanning the labels, so the summation order per
    /// centroid is the row order whatever the thread count.
    template <class Be>
    void update_centroids(const Be& be, MatrixView<const float> data, const std::vector<std::int32_t>& labels,
                          std::vector<index_t>& counts, std::vector<double>& sums) {
        const index_t n = data.rows(), d = data.cols(), k = cfg_.k;
        sums.assign(static_cast<std::size_t>(k * d), 0.0);
        std::fill(counts.begin(), counts.end(), index_t{0});
        const index_t per = std::max<index_t>(1, (k + 7) / 8);
        parallel_for(be.threads(), 0, k, per, [&](index_t k0, index_t k1) {
            for (index_t i = 0; i < n; ++i) {
                const index_t l = labels[std::size_t(i)];
                if (l < k0 || l >= k1) continue;
                ++counts[std::size_t(l)];
                double* s = sums.data() + l * d;
                const float* p = data.row(i);
                for (index_t t = 0; t < d; ++t) s[t] += p[t];
            }
            for (index_t l = k0; l < k1; ++l) {
                const index_t cnt = counts[std::size_t(l)];
                if (cnt == 0) continue;
                const double inv = 1.0 / double(cnt);
                float* c = centroids_.data() + l * d;
                const double* s = sums.data() + l * d;
                for (index_t t = 0; t < d; ++t) c[t] = static_cast<float>(s[t] * inv);
            }
        });
    }

    /// Gives each empty cluster half of the currently largest one; returns how many were split.
    index_t split_empty(std::vector<index_t>& counts) {
        const index_t k = cfg_.k, d = centroids_.extent(1);
        constexpr float eps = 1.0f / 1024.0f;
        index_t splits = 0;
        for (index_t e = 0; e < k; ++e) {
            if (counts[std::size_t(e)] != 0) continue;
            const index_t big = std::max_element(counts.begin(), counts.end()) - counts.begin();
            if (counts[std::size_t(big)] < 2) break;  // nothing left to split
            float* ce = centroids_.data() + e * d;
            float* cb = centroids_.data() + big * d;
            for (index_t t = 0; t < d; ++t) {
                const float v = cb[t];
                ce[t] = (t % 2 == 0) ? v * (1 + eps) : v * (1 - eps);
                cb[t] = (t % 2 == 0) ? v * (1 - eps) : v * (1 + eps);
            }
            counts[std::size_t(e)] = counts[std::size_t(big)] / 2;
            counts[std::size_t(big)] -= counts[std::size_t(e)];
            ++splits;
        }
        return splits;
    }

    KMeansConfig cfg_;
    Matrix<float> centroids_;
    KMeansReport report_;
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
