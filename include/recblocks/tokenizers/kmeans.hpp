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
//   metric    inner_product instead assigns label_i = argmax_k x_i·c_k (the same GEMM, no
//             norm shift) and keeps the mean update: FAISS's training of an inner-product IVF
//             quantizer. On data whose norms vary it splits by direction where L2 splits
//             by norm too, so maximum-inner-product search finds its answers in fewer
//             clusters. Its objective is -Σ_i max_k x_i·c_k (not guaranteed monotone).
//
// Optional subsampling: with max_points_per_centroid = P > 0 and N > K·P, training uses K·P rows
// drawn without replacement (FAISS's default P = 256). Every random draw comes from Rng(seed)
// and every reduction runs over chunks fixed by the sizes, so the result is bit-identical for
// any thread count. Caveats: float distances by expansion lose precision when ||x|| ≫ ||x - c||
// (as in FAISS); ties go to the lowest centroid index.
//
// Where things live: BasicKMeans<Memory> keeps x's views, the centroids and all scratch in
// Memory (KMeans = host memory for Reference / Cpu; KMeansOn<Be> for any backend, e.g.
// backend::Cuda). Every pass over the data is a backend call: the subsample and random init
// gather rows (ops::gather_rows), k-means++ takes the distances to each new centroid
// (ops::squared_distances), assignment is ops::gemm + ops::shifted_argmin_rows per block and
// the update ops::mean_by_label. The host keeps the random draws and the few numbers per row
// it needs: the k-means++ D² sampling (the distances downloaded), the objective (N best
// scores downloaded per iteration) and the empty-cluster splits (K counts downloaded; the
// centroids make a round trip only when a split happens). assign() writes labels and
// distances to host memory. So a run on any backend makes the same draws, and one whose
// primitives give the Reference's bits (rbtest::GuardedDevice) gives the same centroids.
//
// Errors: ValueError for a bad config, NaN/Inf in x, K > N or an empty x; ShapeError for a
// dimension mismatch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <type_traits>
#include <vector>

#include "recblocks/backend/primitives.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/thread_pool.hpp"
#include "recblocks/core/workspace.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/nearest_centroid.hpp"
#include "recblocks/ops/reduce.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

enum class KMeansInit : std::uint8_t { kmeans_plus_plus, random_rows };
/// What "nearest centroid" means in the assignment step.
enum class KMeansMetric : std::uint8_t { l2, inner_product };

struct KMeansConfig {
    index_t k = 256;                          ///< number of centroids K
    int iterations = 25;                      ///< Lloyd iterations (FAISS's niter)
    std::uint64_t seed = 1234;
    KMeansInit init = KMeansInit::kmeans_plus_plus;
    index_t max_points_per_centroid = 256;    ///< subsample to K·this rows when N is larger; 0: all rows
    index_t block_rows = 512;                 ///< rows per assignment GEMM (bounds scratch memory)
    KMeansMetric metric = KMeansMetric::l2;   ///< inner_product: assign by the largest x·c (see the top)

    void validate() const {
        RECBLOCKS_CHECK_VALUE(k >= 1, "KMeansConfig: k must be >= 1, got ", k);
        RECBLOCKS_CHECK_VALUE(iterations >= 0, "KMeansConfig: iterations must be >= 0, got ", iterations);
        RECBLOCKS_CHECK_VALUE(max_points_per_centroid >= 0, "KMeansConfig: max_points_per_centroid must be >= 0, got ",
                              max_points_per_centroid);
        RECBLOCKS_CHECK_VALUE(block_rows >= 1, "KMeansConfig: block_rows must be >= 1, got ", block_rows);
    }
};

namespace detail {

/// Scratch for one block of rows, in a memory space: a bump arena sized once
/// per call (reset(bytes) grows it to its high-water mark and never shrinks),
/// so after the first call of a shape nothing is allocated.
template <MemorySpace Memory>
class ScratchArena {
public:
    ScratchArena() = default;
    explicit ScratchArena(Memory memory) : buf_(memory) {}
    /// Forgets what was taken; makes room for `bytes` (allocates only to grow).
    void reset(std::size_t bytes) {
        used_ = 0;
        if (bytes > static_cast<std::size_t>(buf_.size())) buf_.resize(static_cast<index_t>(round_up(bytes)));
    }
    template <class T>
    [[nodiscard]] T* take(index_t n) {
        const std::size_t bytes = round_up(static_cast<std::size_t>(n) * sizeof(T));
        RECBLOCKS_CHECK_VALUE(used_ + bytes <= static_cast<std::size_t>(buf_.size()), "ScratchArena: ", bytes,
                              " bytes asked with ", static_cast<std::size_t>(buf_.size()) - used_,
                              " left (the caller sized it too small)");
        T* p = reinterpret_cast<T*>(buf_.data() + used_);
        used_ += bytes;
        return p;
    }
    /// Where take() stands, and a return there: scratch of one step of a loop
    /// handed back for the next.
    [[nodiscard]] std::size_t mark() const { return used_; }
    void rewind(std::size_t mark) { used_ = mark; }
    /// Bytes that take() of n elements of T uses (add them up to size reset()).
    template <class T>
    static std::size_t bytes_for(index_t n) {
        return round_up(static_cast<std::size_t>(n) * sizeof(T));
    }

private:
    static std::size_t round_up(std::size_t b) { return (b + kAlignment - 1) / kAlignment * kAlignment; }
    AlignedBuffer<std::byte, Memory> buf_;
    std::size_t used_ = 0;
};

/// The backend's thread pool on the CPU; one without workers elsewhere (the
/// Reference backend runs on the calling thread).
template <class Be>
ThreadPool& host_threads(const Be& be) {
    if constexpr (requires { be.threads(); }) {
        return be.threads();
    } else {
        static ThreadPool one(1);
        return one;
    }
}

/// Runs body(r0, r1, arena) over [0, n) in blocks of `block` rows, with
/// `bytes` of scratch per block in the block's arena. On a host backend with a
/// thread pool (Cpu) the blocks run in parallel, each thread with its own host
/// arena (one per Tag); elsewhere (Reference, device backends) one after the
/// other in `own`, the component's arena in its memory space. Only the
/// schedule differs: each block makes the same backend calls on the same rows.
template <class Tag, class Be, MemorySpace Memory, class Body>
void for_each_block(const Be& be, ScratchArena<Memory>& own, index_t n, index_t block, std::size_t bytes,
                    Body&& body) {
    if constexpr (Memory::host_accessible && requires { be.threads(); }) {
        parallel_for(be.threads(), 0, n, block, [&](index_t r0, index_t r1) {
            thread_local ScratchArena<HostMemory> arena;
            arena.reset(bytes);
            body(r0, r1, arena);
        });
    } else {
        for (index_t r0 = 0; r0 < n; r0 += block) {
            own.reset(bytes);
            body(r0, std::min(n, r0 + block), own);
        }
    }
}

/// ValueError unless every element of x (in be's memory) is finite. One sum
/// where x lives (NaN or Inf anywhere makes it non-finite); only when it is
/// not finite (bad data, or a sum that overflows) are the rows copied to the
/// host to find the first bad entry, which the message names.
template <class Be>
void check_finite(const Be& be, const char* who, MatrixView<const float> x) {
    if (x.empty() || std::isfinite(ops::sum(be, x))) return;
    const auto memory = memory_of(be);
    std::vector<float> row(static_cast<std::size_t>(x.cols()));
    for (index_t r = 0; r < x.rows(); ++r) {
        memory.download(row.data(), x.row(r), row.size() * sizeof(float));
        for (index_t c = 0; c < x.cols(); ++c)
            RECBLOCKS_CHECK_VALUE(std::isfinite(row[std::size_t(c)]), who, ": x[", r, ", ", c, "] = ",
                                  row[std::size_t(c)], "; the data must be finite (no NaN or Inf)");
    }
}

/// norms[j] = ||c_j||² for the rows of c [K, d] (views in be's memory).
template <class Be>
void squared_norms(const Be& be, MatrixView<const float> c, float* norms) {
    ops::squared_distances(be, c, VectorView<const float>{}, vector_view(norms, c.rows()));
}

/// Sums v [n] in double over chunks of `chunk` entries, chunk sums added left
/// to right (parallel_reduce's order: the same value for any thread count).
inline double chunked_sum(const float* v, index_t n, index_t chunk) {
    double total = 0.0;
    for (index_t b = 0; b < n; b += chunk) {
        double s = 0;
        for (index_t i = b, e = std::min(n, b + chunk); i < e; ++i) s += v[i];
        total += s;
    }
    return total;
}

struct AssignTag {};

}  // namespace detail

/// What train() reports.
struct KMeansReport {
    std::vector<double> objective;  ///< Σ squared distances (inner_product: -Σ x·c) after each iteration's assignment
    index_t training_rows = 0;      ///< rows used (after subsampling)
    index_t splits = 0;             ///< empty clusters repaired, all iterations together
};

/// k-means with its data and centroids in `Memory` (KMeans: host memory;
/// KMeansOn<Be>: where backend Be computes).
template <MemorySpace Memory = HostMemory>
class BasicKMeans {
public:
    explicit BasicKMeans(KMeansConfig cfg, Memory memory = {})
        : cfg_(cfg), memory_(memory), centroids_(memory), sample_(memory), ids_(memory), cnorm_(memory),
          xnorm_(memory), arg_(memory), best_(memory), dd_(memory), counts_(memory), arena_(memory) {
        cfg_.validate();
    }

    [[nodiscard]] const KMeansConfig& config() const { return cfg_; }
    [[nodiscard]] bool trained() const { return centroids_.numel() > 0; }
    /// Centroids [K, d] in Memory (empty before train()).
    [[nodiscard]] MatrixView<const float> centroids() const { return centroids_.view(); }
    [[nodiscard]] const Matrix<float, Memory>& centroid_tensor() const { return centroids_; }
    [[nodiscard]] const KMeansReport& report() const { return report_; }

    /// Trains on x [N, d] in Memory (N >= K, finite). Returns the report (also kept in report()).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    const KMeansReport& train(const Be& be, MatrixView<const float> x) {
        const index_t n = x.rows(), d = x.cols(), k = cfg_.k;
        RECBLOCKS_CHECK_VALUE(n >= 1 && d >= 1, "KMeans::train: x is ", x.shape(), "; need at least one row and column");
        RECBLOCKS_CHECK_VALUE(k <= n, "KMeans::train: k = ", k, " centroids but only ", n, " rows in x");
        RECBLOCKS_CHECK_VALUE(n <= index_t{0xFFFFFFFF}, "KMeans::train: ", n,
                              " rows; at most 2^32 - 1 (subsample the data first)");
        detail::check_finite(be, "KMeans::train", x);
        report_ = KMeansReport{};

        // Subsample (partial Fisher-Yates from the seed, on the host), keeping
        // the sample in row order; its rows are gathered where x lives.
        MatrixView<const float> data = x;
        const Rng rng(cfg_.seed);
        if (cfg_.max_points_per_centroid > 0 && n > k * cfg_.max_points_per_centroid) {
            RECBLOCKS_CHECK_VALUE(n <= index_t{0x7FFFFFFF}, "KMeans::train: ", n,
                                  " rows; subsampling gathers rows by 32-bit id, so at most 2^31 - 1");
            const index_t m = k * cfg_.max_points_per_centroid;
            std::vector<index_t> perm(static_cast<std::size_t>(n));
            std::iota(perm.begin(), perm.end(), index_t{0});
            const Rng pick = rng.substream(1);
            for (index_t i = 0; i < m; ++i) {
                const index_t j = i + static_cast<index_t>(pick.below(std::uint64_t(i), std::uint32_t(n - i)));
                std::swap(perm[std::size_t(i)], perm[std::size_t(j)]);
            }
            std::sort(perm.begin(), perm.begin() + m);
            if (sample_.extent(0) != m || sample_.extent(1) != d) sample_.resize(Shape<2>{{m, d}});
            gather(be, x, std::span<const index_t>(perm.data(), std::size_t(m)), sample_.view());
            data = sample_.cview();
        }
        const index_t nt = data.rows();
        report_.training_rows = nt;

        if (centroids_.extent(0) != k || centroids_.extent(1) != d) centroids_.resize(Shape<2>{{k, d}});
        if (cfg_.init == KMeansInit::kmeans_plus_plus) init_plus_plus(be, data, rng.substream(2));
        else init_random(be, data, rng.substream(3));

        resize_rows(nt, k);
        // ||x_i||² once (the same per-block calls every iteration would make).
        if (cfg_.iterations > 0 && !by_inner_product()) row_norms(be, data);
        for (int it = 0; it < cfg_.iterations; ++it) {
            centroid_shifts(be);
            assign_blocks(be, data);
            // Distances and the objective on the host (one download of N floats).
            memory_.download(host_best_.data(), best_.data(), host_best_.size() * sizeof(float));
            for (std::size_t i = 0; i < host_dist_.size(); ++i) host_dist_[i] = distance(i);
            report_.objective.push_back(detail::chunked_sum(host_dist_.data(), nt, kReduceRows));
            ops::mean_by_label(be, data, arg_.cview(), centroids_.view(), counts_.view());
            memory_.download(host_counts_.data(), counts_.data(), host_counts_.size() * sizeof(index_t));
            report_.splits += split_empty();
        }
        return report_;
    }

    /// labels[i] (and optionally dist[i]) of the nearest trained centroid for
    /// each row of x [N, d] (x in Memory; labels and dist in host memory: the
    /// caller reads them). dist is the squared distance, or -x·c for
    /// KMeansMetric::inner_product. Reuses this object's scratch: one call at a time.
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void assign(const Be& be, MatrixView<const float> x, VectorView<std::int32_t> labels,
                VectorView<float> dist = {}) const {
        RECBLOCKS_CHECK_VALUE(trained(), "KMeans::assign: call train() first");
        RECBLOCKS_CHECK_SHAPE(x.cols() == centroids_.extent(1), "KMeans::assign: x is ", x.shape(),
                              " but the centroids have d = ", centroids_.extent(1));
        RECBLOCKS_CHECK_SHAPE(labels.size() == x.rows() && (dist.data() == nullptr || dist.size() == x.rows()),
                              "KMeans::assign: labels (and dist) must have ", x.rows(), " entries");
        detail::check_finite(be, "KMeans::assign", x);
        const index_t n = x.rows();
        resize_rows(n, centroids_.extent(0));
        centroid_shifts(be);
        if (dist.data() && !by_inner_product()) row_norms(be, x);
        assign_blocks(be, x);
        memory_.download(host_arg_.data(), arg_.data(), host_arg_.size() * sizeof(index_t));
        for (index_t i = 0; i < n; ++i) labels(i) = static_cast<std::int32_t>(host_arg_[std::size_t(i)]);
        if (dist.data()) {
            memory_.download(host_best_.data(), best_.data(), host_best_.size() * sizeof(float));
            for (index_t i = 0; i < n; ++i) dist(i) = distance(std::size_t(i));
        }
    }

private:
    static constexpr index_t kReduceRows = 4096;

    [[nodiscard]] bool by_inner_product() const { return cfg_.metric == KMeansMetric::inner_product; }

    /// The per-centroid shift of the assignment's argmin: ||c||² (L2), or zeros
    /// (inner product: argmin -2 x·c = argmax x·c).
    template <class Be>
    void centroid_shifts(const Be& be) const {
        if (!by_inner_product()) {
            detail::squared_norms(be, centroids_.cview(), cnorm_.data());
        } else if (!zero_shifts_) {
            const std::vector<float> zeros(static_cast<std::size_t>(cnorm_.numel()), 0.0f);
            memory_.upload(cnorm_.data(), zeros.data(), zeros.size() * sizeof(float));
            zero_shifts_ = true;
        }
    }

    /// Row i's distance from the assignment's best shifted score (best_ = shift - 2 x·c).
    [[nodiscard]] float distance(std::size_t i) const {
        return by_inner_product() ? 0.5f * host_best_[i] : std::max(0.0f, host_best_[i] + host_xnorm_[i]);
    }

    /// Per-row buffers for N rows and per-centroid ones for K (in Memory and
    /// their host copies); reallocated only when N or K changes.
    void resize_rows(index_t n, index_t k) const {
        if (cnorm_.numel() != k) {
            cnorm_.resize(Shape<1>{{k}});
            zero_shifts_ = false;
            counts_.resize(Shape<1>{{k}});
            host_counts_.resize(std::size_t(k));
        }
        if (arg_.numel() == n) return;
        arg_.resize(Shape<1>{{n}});
        best_.resize(Shape<1>{{n}});
        xnorm_.resize(Shape<1>{{n}});
        host_arg_.resize(std::size_t(n));
        host_best_.resize(std::size_t(n));
        host_xnorm_.resize(std::size_t(n));
        host_dist_.resize(std::size_t(n));
    }

    /// ||x_i||² of every row, by the assignment's blocks, and its host copy.
    template <class Be>
    void row_norms(const Be& be, MatrixView<const float> x) const {
        const index_t n = x.rows(), block = cfg_.block_rows;
        for (index_t r0 = 0; r0 < n; r0 += block) {
            const index_t r1 = std::min(n, r0 + block);
            ops::squared_distances(be, x.slice_rows(r0, r1), VectorView<const float>{},
                                   vector_view(xnorm_.data() + r0, r1 - r0));
        }
        memory_.download(host_xnorm_.data(), xnorm_.data(), std::size_t(n) * sizeof(float));
    }

    /// arg_[i] = the nearest centroid of row i of x, best_[i] = ||c||² - 2 x·c
    /// for it: one GEMM per block of block_rows rows (ops::gemm +
    /// ops::shifted_argmin_rows), blocks spread over the backend's pool on the CPU.
    template <class Be>
    void assign_blocks(const Be& be, MatrixView<const float> x) const {
        const index_t n = x.rows(), k = centroids_.extent(0);
        const auto c = centroids_.cview();
        const auto bytes = detail::ScratchArena<Memory>::template bytes_for<float>(cfg_.block_rows * k);
        detail::for_each_block<detail::AssignTag>(be, arena_, n, cfg_.block_rows, bytes,
                                                  [&](index_t r0, index_t r1, auto& ws) {
            const index_t rows = r1 - r0;
            float* g = ws.template take<float>(rows * k);
            ops::gemm(be, Trans::no, Trans::yes, 1.0f, x.slice_rows(r0, r1), c, 0.0f, matrix_view(g, rows, k));
            ops::shifted_argmin_rows(be, matrix_view(g, rows, k), cnorm_.cview(), vector_view(arg_.data() + r0, rows),
                                     vector_view(best_.data() + r0, rows));
        });
    }

    /// out = the rows `rows` of x, gathered on the backend (ids uploaded once).
    template <class Be>
    void gather(const Be& be, MatrixView<const float> x, std::span<const index_t> rows, MatrixView<float> out) const {
        host_ids_.resize(rows.size());
        for (std::size_t i = 0; i < rows.size(); ++i) host_ids_[i] = static_cast<row_id_t>(rows[i]);
        if (ids_.numel() != index_t(rows.size())) ids_.resize(Shape<1>{{index_t(rows.size())}});
        memory_.upload(ids_.data(), host_ids_.data(), host_ids_.size() * sizeof(row_id_t));
        ops::gather_rows(be, x, ids_.cview(), out);
    }

    template <class Be>
    void init_random(const Be& be, MatrixView<const float> data, const Rng& rng) {
        const index_t n = data.rows(), k = cfg_.k;
        std::vector<index_t> perm(static_cast<std::size_t>(n));
        std::iota(perm.begin(), perm.end(), index_t{0});
        for (index_t i = 0; i < k; ++i) {
            const index_t j = i + static_cast<index_t>(rng.below(std::uint64_t(i), std::uint32_t(n - i)));
            std::swap(perm[std::size_t(i)], perm[std::size_t(j)]);
        }
        gather(be, data, std::span<const index_t>(perm.data(), std::size_t(k)), centroids_.view());
    }

    /// k-means++: the distances to each new centroid on the backend (one
    /// squared_distances over all rows), downloaded; the D² draw on the host.
    template <class Be>
    void init_plus_plus(const Be& be, MatrixView<const float> data, const Rng& rng) {
        const index_t n = data.rows(), d = data.cols(), k = cfg_.k;
        std::vector<float> mind(static_cast<std::size_t>(n)), dd(static_cast<std::size_t>(n));
        if (dd_.numel() != n) dd_.resize(Shape<1>{{n}});
        const index_t chunks = chunk_count(0, n, kReduceRows);
        std::vector<double> partial(static_cast<std::size_t>(chunks));
        index_t chosen = static_cast<index_t>(rng.below(0, std::uint32_t(n)));
        for (index_t j = 0; j < k; ++j) {
            const auto cj = centroids_.view().slice_rows(j, j + 1);
            ops::copy(be, data.slice_rows(chosen, chosen + 1), cj);
            if (j + 1 == k) break;
            // The distances to the nearest chosen centroid and their per-chunk sums.
            ops::squared_distances(be, data, vector_view<const float>(cj.data(), d), dd_.view());
            memory_.download(dd.data(), dd_.data(), dd.size() * sizeof(float));
            for (index_t ch = 0; ch < chunks; ++ch) {
                const index_t b = ch * kReduceRows, e = std::min(n, b + kReduceRows);
                double s = 0;
                for (index_t i = b; i < e; ++i) {
                    const float v = dd[std::size_t(i)];
                    float& m = mind[std::size_t(i)];
                    if (j == 0 || v < m) m = v;
                    s += m;
                }
                partial[std::size_t(ch)] = s;
            }
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

    /// Gives each empty cluster half of the currently largest one (host
    /// counts); returns how many were split. The centroids make a round trip
    /// to the host only when a split happens.
    index_t split_empty() {
        const index_t k = cfg_.k, d = centroids_.extent(1);
        constexpr float eps = 1.0f / 1024.0f;
        std::vector<index_t>& counts = host_counts_;
        index_t splits = 0;
        for (index_t e = 0; e < k; ++e) {
            if (counts[std::size_t(e)] != 0) continue;
            const index_t big = std::max_element(counts.begin(), counts.end()) - counts.begin();
            if (counts[std::size_t(big)] < 2) break;  // nothing left to split
            if (splits == 0) {
                host_centroids_.resize(std::size_t(k * d));
                memory_.download(host_centroids_.data(), centroids_.data(), host_centroids_.size() * sizeof(float));
            }
            float* ce = host_centroids_.data() + e * d;
            float* cb = host_centroids_.data() + big * d;
            for (index_t t = 0; t < d; ++t) {
                const float v = cb[t];
                ce[t] = (t % 2 == 0) ? v * (1 + eps) : v * (1 - eps);
                cb[t] = (t % 2 == 0) ? v * (1 - eps) : v * (1 + eps);
            }
            counts[std::size_t(e)] = counts[std::size_t(big)] / 2;
            counts[std::size_t(big)] -= counts[std::size_t(e)];
            ++splits;
        }
        if (splits > 0) memory_.upload(centroids_.data(), host_centroids_.data(), host_centroids_.size() * sizeof(float));
        return splits;
    }

    KMeansConfig cfg_;
    Memory memory_;
    Matrix<float, Memory> centroids_;
    KMeansReport report_;
    // Scratch, kept between calls (sized by N, K and block_rows); assign() is
    // const for the model but reuses it, hence mutable: one call at a time.
    mutable Matrix<float, Memory> sample_;
    mutable Vector<row_id_t, Memory> ids_;
    mutable Vector<float, Memory> cnorm_, xnorm_;  // cnorm_: the argmin's shifts (zeros for inner_product)
    mutable bool zero_shifts_ = false;              // cnorm_ holds inner_product's zeros
    mutable Vector<index_t, Memory> arg_;
    mutable Vector<float, Memory> best_, dd_;
    mutable Vector<index_t, Memory> counts_;
    mutable detail::ScratchArena<Memory> arena_;
    mutable std::vector<row_id_t> host_ids_;
    mutable std::vector<index_t> host_arg_, host_counts_;
    mutable std::vector<float> host_best_, host_xnorm_, host_dist_, host_centroids_;
};

/// k-means on host memory (Reference and Cpu backends).
using KMeans = BasicKMeans<HostMemory>;
/// k-means whose data and centroids live where backend Be computes.
template <class Be>
using KMeansOn = BasicKMeans<memory_space_t<Be>>;

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
