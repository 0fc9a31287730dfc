#pragma once
// Collaborative indexing (P5, Hua et al. 2023): items that users interact with close together
// share code prefixes. The item co-occurrence graph is split by spectral clustering into K
// clusters, each cluster again into K, M levels deep; an item's codes are its cluster at each level.
//
//   auto g = indexing::cooccurrence_graph(split.train, n, /*window*/ 5);
//   auto c = indexing::collaborative_indexing(be, g, {});   // ItemCodes, [N, M]
//
// Graph: items i != j co-occur when they stand at most `window` positions apart in one training
// history; the edge weight counts such pairs (symmetric, no self loops, sparse CSR).
//
// One split of a group G of n items (Ng, Jordan & Weiss 2001 on the subgraph G induces):
//   S = D^-1/2 A_G D^-1/2 (a zero degree gives a zero row); the e = min(spectral_dims, K) leading
//   eigenvectors of T = (I + S) / 2 (eigenvalues in [0, 1], the same eigenvectors as S) by
//   subspace iteration: V0 Gaussian from the group's seed, V <- orthonormalise(T V) for
//   `power_iterations` steps (modified Gram-Schmidt in double); rows of V scaled to unit norm
//   (a zero row stays zero); k-means (kmeans.hpp, L2, k-means++) into K clusters -> the codes.
//   Only the subspace matters: k-means on row-normalised V is unchanged by rotating V's columns,
//   so no Rayleigh-Ritz step is needed.
// A group of n <= K items is not clustered: its items take codes 0..n-1 in ascending item id,
// and below that every group is a single item, coded 0. So only the last level's k-means can make
// two items share a tuple; Sinkhorn re-coding uses the distances of a colliding item's embedding
// row to its last-level group's K centroids.
//
// Deterministic at a seed for any thread count (each group's draws come from
// Rng(seed).substream(level).substream(first item of the group)). Errors: ValueError for bad
// options or a graph that is not N x N CSR; IndexError for an item id outside 1..N in a history.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <span>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/indexing/item_codes.hpp"
#include "recblocks/tokenizers/kmeans.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace indexing {

/// Symmetric sparse item graph in CSR: row r (item r + 1) has neighbours cols[offsets[r] ..
/// offsets[r + 1]) (ascending) with weights.
struct CooccurrenceGraph {
    index_t num_items = 0;
    std::vector<index_t> offsets{0};
    std::vector<row_id_t> cols;
    std::vector<float> weights;

    [[nodiscard]] index_t num_edges() const { return static_cast<index_t>(cols.size()); }  ///< both directions
};

/// The co-occurrence graph of `histories` (item ids 1..num_items) within `window` positions.
inline CooccurrenceGraph cooccurrence_graph(const std::vector<std::vector<row_id_t>>& histories, index_t num_items,
                                            index_t window) {
    constexpr std::string_view op = "indexing::cooccurrence_graph";
    RECBLOCKS_CHECK_VALUE(num_items >= 1 && num_items < index_t{std::numeric_limits<row_id_t>::max()}, op,
                          ": num_items must be in [1, 2^31 - 1), got ", num_items);
    RECBLOCKS_CHECK_VALUE(window >= 1, op, ": window must be >= 1, got ", window);
    std::vector<std::uint64_t> pairs;  // (row a << 32) | row b, both directions
    for (std::size_t u = 0; u < histories.size(); ++u) {
        const auto& h = histories[u];
        for (std::size_t p = 0; p < h.size(); ++p)
            RECBLOCKS_CHECK_INDEX(h[p] >= 1 && h[p] <= num_items, op, ": history ", u, " position ", p, " has item ",
                                  h[p], ", outside 1..", num_items);
        for (std::size_t p = 0; p < h.size(); ++p)
            for (std::size_t q = p + 1; q < h.size() && static_cast<index_t>(q - p) <= window; ++q) {
                const auto a = static_cast<std::uint64_t>(h[p] - 1), b = static_cast<std::uint64_t>(h[q] - 1);
                if (a == b) continue;
                pairs.push_back((a << 32) | b);
                pairs.push_back((b << 32) | a);
            }
    }
    std::sort(pairs.begin(), pairs.end());
    CooccurrenceGraph g;
    g.num_items = num_items;
    g.offsets.assign(static_cast<std::size_t>(num_items) + 1, 0);
    for (std::size_t k = 0; k < pairs.size();) {
        std::size_t j = k + 1;
        while (j < pairs.size() && pairs[j] == pairs[k]) ++j;
        const auto a = static_cast<index_t>(pairs[k] >> 32);
        g.cols.push_back(static_cast<row_id_t>(pairs[k] & 0xffffffffu));
        g.weights.push_back(static_cast<float>(j - k));
        ++g.offsets[static_cast<std::size_t>(a) + 1];
        k = j;
    }
    for (std::size_t r = 1; r < g.offsets.size(); ++r) g.offsets[r] += g.offsets[r - 1];
    return g;
}

struct CollaborativeOptions {
    CodeShape shape{};            ///< K clusters per level, M levels (K >= 2)
    index_t spectral_dims = 32;   ///< eigenvectors per split: min(this, K)
    int power_iterations = 50;    ///< subspace-iteration steps per split, >= 1
    int kmeans_iterations = 25;   ///< Lloyd iterations per split, >= 1
    std::uint64_t seed = 1;
};

namespace detail {

/// Orthonormalises the e columns of v [n, e] (row-major) in place; a column that vanishes
/// against the earlier ones becomes zero.
inline void orthonormalise_columns(std::vector<double>& v, index_t n, index_t e) {
    for (index_t c = 0; c < e; ++c) {
        for (index_t p = 0; p < c; ++p) {
            double dot = 0;
            for (index_t r = 0; r < n; ++r) dot += v[static_cast<std::size_t>(r * e + c)] * v[static_cast<std::size_t>(r * e + p)];
            for (index_t r = 0; r < n; ++r) v[static_cast<std::size_t>(r * e + c)] -= dot * v[static_cast<std::size_t>(r * e + p)];
        }
        double norm = 0;
        for (index_t r = 0; r < n; ++r) norm += v[static_cast<std::size_t>(r * e + c)] * v[static_cast<std::size_t>(r * e + c)];
        norm = std::sqrt(norm);
        const double s = norm > 1e-12 ? 1.0 / norm : 0.0;
        for (index_t r = 0; r < n; ++r) v[static_cast<std::size_t>(r * e + c)] *= s;
    }
}

/// Row-normalised leading-eigenvector embedding [n, e] of the subgraph on `group` (rows of g).
/// `local` maps an item row to its index in the group or -1 (all -1 on entry and exit).
inline Matrix<float> spectral_embedding(const CooccurrenceGraph& g, std::span<const row_id_t> group, index_t e,
                                        int iterations, const Rng& rng, std::vector<index_t>& local) {
    const auto n = static_cast<index_t>(group.size());
    for (index_t i = 0; i < n; ++i) local[static_cast<std::size_t>(group[i])] = i;
    // The induced subgraph in CSR, weights pre-scaled to D^-1/2 A D^-1/2.
    std::vector<index_t> off(static_cast<std::size_t>(n) + 1, 0);
    std::vector<index_t> col;
    std::vector<double> w;
    std::vector<double> deg(static_cast<std::size_t>(n), 0.0);
    for (index_t i = 0; i < n; ++i) {
        const auto r = static_cast<std::size_t>(group[i]);
        for (index_t k = g.offsets[r]; k < g.offsets[r + 1]; ++k) {
            const index_t j = local[static_cast<std::size_t>(g.cols[static_cast<std::size_t>(k)])];
            if (j < 0) continue;
            col.push_back(j);
            w.push_back(g.weights[static_cast<std::size_t>(k)]);
            deg[static_cast<std::size_t>(i)] += g.weights[static_cast<std::size_t>(k)];
        }
        off[static_cast<std::size_t>(i) + 1] = static_cast<index_t>(col.size());
    }
    for (const row_id_t it : group) local[static_cast<std::size_t>(it)] = -1;
    for (index_t i = 0; i < n; ++i)
        for (index_t k = off[static_cast<std::size_t>(i)]; k < off[static_cast<std::size_t>(i) + 1]; ++k)
            w[static_cast<std::size_t>(k)] /= std::sqrt(deg[static_cast<std::size_t>(i)] *
                                                        deg[static_cast<std::size_t>(col[static_cast<std::size_t>(k)])]);
    std::vector<double> v(static_cast<std::size_t>(n * e)), tv(v.size());
    for (std::size_t k = 0; k < v.size(); ++k) v[k] = rng.normal(k);
    orthonormalise_columns(v, n, e);
    for (int it = 0; it < iterations; ++it) {
        for (index_t i = 0; i < n; ++i) {  // tv = (v + S v) / 2
            double* out = tv.data() + i * e;
            const double* self = v.data() + i * e;
            for (index_t c = 0; c < e; ++c) out[c] = 0.5 * self[c];
            for (index_t k = off[static_cast<std::size_t>(i)]; k < off[static_cast<std::size_t>(i) + 1]; ++k) {
                const double a = 0.5 * w[static_cast<std::size_t>(k)];
                const double* nb = v.data() + col[static_cast<std::size_t>(k)] * e;
                for (index_t c = 0; c < e; ++c) out[c] += a * nb[c];
            }
        }
        v.swap(tv);
        orthonormalise_columns(v, n, e);
    }
    Matrix<float> u(Shape<2>{{n, e}});
    for (index_t i = 0; i < n; ++i) {
        const double* row = v.data() + i * e;
        double norm = 0;
        for (index_t c = 0; c < e; ++c) norm += row[c] * row[c];
        const double s = norm > 1e-24 ? 1.0 / std::sqrt(norm) : 0.0;
        for (index_t c = 0; c < e; ++c) u(i, c) = static_cast<float>(row[c] * s);
    }
    return u;
}

/// The last level's geometry, kept for Sinkhorn re-coding.
struct CollaborativeLeaves {
    index_t dims = 0;
    std::vector<index_t> leaf_of;           ///< item row -> clustered last-level group, or -1
    Matrix<float> embedding;                ///< [N, dims] item rows (zero-padded)
    std::vector<Matrix<float>> centroids;   ///< per clustered last-level group, [K, dims]
};

}  // namespace detail

/// P5's collaborative indexing on a host backend (Reference or Cpu; see the header comment).
template <class Be>
ItemCodes collaborative_indexing(const Be& be, const CooccurrenceGraph& g, const CollaborativeOptions& opt) {
    constexpr std::string_view op = "indexing::collaborative_indexing";
    opt.shape.validate(op);
    const index_t k = opt.shape.codebook_size, levels = opt.shape.levels, n = g.num_items;
    RECBLOCKS_CHECK_VALUE(k >= 2, op, ": codebook_size must be >= 2, got ", k);
    RECBLOCKS_CHECK_VALUE(opt.spectral_dims >= 1, op, ": spectral_dims must be >= 1, got ", opt.spectral_dims);
    RECBLOCKS_CHECK_VALUE(opt.power_iterations >= 1 && opt.kmeans_iterations >= 1, op,
                          ": power_iterations and kmeans_iterations must be >= 1, got ", opt.power_iterations, " and ",
                          opt.kmeans_iterations);
    RECBLOCKS_CHECK_VALUE(n >= 1 && static_cast<index_t>(g.offsets.size()) == n + 1 && g.offsets.front() == 0 &&
                              g.offsets.back() == g.num_edges() && g.weights.size() == g.cols.size(),
                          op, ": the graph is not CSR over ", n, " items");
    for (index_t r = 0; r < n; ++r)
        RECBLOCKS_CHECK_VALUE(g.offsets[static_cast<std::size_t>(r)] <= g.offsets[static_cast<std::size_t>(r) + 1], op,
                              ": graph offsets decrease at row ", r);
    for (std::size_t e = 0; e < g.cols.size(); ++e)
        RECBLOCKS_CHECK_VALUE(g.cols[e] >= 0 && g.cols[e] < n && std::isfinite(g.weights[e]) && g.weights[e] >= 0, op,
                              ": graph edge ", e, " has column ", g.cols[e], " and weight ", g.weights[e],
                              " (need a row in [0, ", n, ") and a finite weight >= 0)");

    const index_t dims = std::min(opt.spectral_dims, k);
    Matrix<std::int32_t> codes(Shape<2>{{n, levels}});
    auto leaves = std::make_shared<detail::CollaborativeLeaves>();
    leaves->dims = dims;
    leaves->leaf_of.assign(static_cast<std::size_t>(n), -1);
    leaves->embedding.resize(Shape<2>{{n, dims}});
    std::fill(leaves->embedding.begin(), leaves->embedding.end(), 0.0f);
    std::vector<index_t> local(static_cast<std::size_t>(n), -1);

    // Groups of the current level, each ascending in item row.
    std::vector<std::vector<row_id_t>> groups(1);
    groups[0].resize(static_cast<std::size_t>(n));
    std::iota(groups[0].begin(), groups[0].end(), row_id_t{0});
    const Rng root(opt.seed);
    std::vector<std::int32_t> labels;
    for (index_t level = 0; level < levels; ++level) {
        std::vector<std::vector<row_id_t>> next;
        const Rng lr = root.substream(static_cast<std::uint64_t>(level));
        for (const auto& grp : groups) {
            const auto size = static_cast<index_t>(grp.size());
            if (size <= k) {  // every item its own code, in item order
                for (index_t i = 0; i < size; ++i) {
                    codes(grp[static_cast<std::size_t>(i)], level) = static_cast<std::int32_t>(i);
                    next.push_back({grp[static_cast<std::size_t>(i)]});
                }
                continue;
            }
            const Rng gr = lr.substream(static_cast<std::uint64_t>(grp.front()));
            const index_t e = std::min(dims, size);
            const Matrix<float> u = detail::spectral_embedding(g, grp, e, opt.power_iterations, gr.substream(0), local);
            tokenizers::KMeansConfig kc;
            kc.k = k;
            kc.iterations = opt.kmeans_iterations;
            kc.seed = (std::uint64_t{gr.u32(0)} << 32) | gr.u32(1);
            kc.max_points_per_centroid = 0;
            tokenizers::KMeans km(kc);
            km.train(be, u.cview());
            labels.resize(static_cast<std::size_t>(size));
            km.assign(be, u.cview(), vector_view(labels.data(), size));
            std::vector<std::vector<row_id_t>> children(static_cast<std::size_t>(k));
            for (index_t i = 0; i < size; ++i) {
                const row_id_t item = grp[static_cast<std::size_t>(i)];
                codes(item, level) = labels[static_cast<std::size_t>(i)];
                children[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])].push_back(item);
            }
            if (level == levels - 1) {
                const auto leaf = static_cast<index_t>(leaves->centroids.size());
                Matrix<float> c(Shape<2>{{k, dims}});
                std::fill(c.begin(), c.end(), 0.0f);
                const auto cen = km.centroids();
                for (index_t r = 0; r < k; ++r)
                    for (index_t j = 0; j < e; ++j) c(r, j) = cen(r, j);
                leaves->centroids.push_back(std::move(c));
                for (index_t i = 0; i < size; ++i) {
                    const row_id_t item = grp[static_cast<std::size_t>(i)];
                    leaves->leaf_of[static_cast<std::size_t>(item)] = leaf;
                    for (index_t j = 0; j < e; ++j) leaves->embedding(item, j) = u(i, j);
                }
            }
            for (auto& ch : children)
                if (!ch.empty()) next.push_back(std::move(ch));
        }
        groups = std::move(next);
    }
    LastLevelDistances dist = [leaves](std::span<const row_id_t> items, MatrixView<float> out) {
        for (std::size_t r = 0; r < items.size(); ++r) {
            const index_t leaf = leaves->leaf_of[static_cast<std::size_t>(items[r])];
            RECBLOCKS_CHECK_VALUE(leaf >= 0, "indexing::collaborative_indexing: item row ", items[r],
                                  " was not clustered at the last level, so it has no distances");
            const auto& c = leaves->centroids[static_cast<std::size_t>(leaf)];
            const float* x = leaves->embedding.data() + static_cast<index_t>(items[r]) * leaves->dims;
            for (index_t code = 0; code < out.cols(); ++code) {
                double s = 0;
                for (index_t j = 0; j < leaves->dims; ++j) {
                    const double diff = double(x[j]) - double(c(code, j));
                    s += diff * diff;
                }
                out(static_cast<index_t>(r), code) = static_cast<float>(s);
            }
        }
    };
    return ItemCodes{"collaborative", tokenizers::SemanticIds(codes.cview(), opt.shape.sizes()), std::move(dist)};
}

}  // namespace indexing
RECBLOCKS_NAMESPACE_END
