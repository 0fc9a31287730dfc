#pragma once
// Nearest-centroid search after a GEMM g = x·cᵀ (k-means assignment, residual
// quantizer beams): ||x - c_k||² = ||x||² + ||c_k||² - 2 g[k], so the nearest
// centroid is the argmin of the shifted ||c_k||² - 2 g[k]. The k-means update
// (mean_by_label) belongs to the family: assignment and update both run where
// the data live.
#include <concepts>

#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// Distances, the nearest centroid of every row and the mean of each
/// cluster: what k-means and a greedy residual-quantizer encode need (any
/// backend, GPUs included).
template <class B, class T = float>
concept has_nearest_centroid = requires(const B& be, MatrixView<const T> x, MatrixView<T> g, VectorView<T> v,
                                        VectorView<const T> norms, VectorView<index_t> arg,
                                        VectorView<const index_t> labels) {
    Primitives<B>::template squared_distances<T>(be, x, norms, v);
    Primitives<B>::template shifted_argmin_rows<T>(be, g, norms, arg, v);
    Primitives<B>::template mean_by_label<T>(be, x, labels, g, arg);
};

/// The beam search's sorted list of the smallest candidates, updated one row of
/// candidates at a time: a sequential host-side step (Reference and Cpu).
template <class B, class T = float>
concept has_beam_selection = has_nearest_centroid<B, T> && requires(const B& be, VectorView<T> v,
                                                                    VectorView<const T> norms, VectorView<index_t> arg) {
    { Primitives<B>::template offer_smallest<T>(be, v, norms, T(0), index_t{0}, v, arg, index_t{0}) } -> std::same_as<index_t>;
};

/// out [N] = ||x_i - y||² for the rows of x [N, D] and y [D]; y empty: ||x_i||².
template <class B, class T>
    requires has_nearest_centroid<B, T>
void squared_distances(const B& be, std::type_identity_t<MatrixView<const T>> x,
                       std::type_identity_t<VectorView<const T>> y, VectorView<T> out) {
    constexpr std::string_view op = "ops::squared_distances";
    detail::check_layout(op, "x", x);
    if (y.data() != nullptr) detail::check_length(op, "y", y, x.cols(), "the number of columns of x");
    detail::check_length(op, "out", out, x.rows(), "the number of rows of x");
    if (x.rows() == 0) return;
    Primitives<B>::template squared_distances<T>(be, x, y, out);
}

/// g [N, K] becomes norms[k] - 2 g[i, k]; arg / best [N] = the first k of
/// each row's smallest and its value. norms [K].
template <class B, class T>
    requires has_nearest_centroid<B, T>
void shifted_argmin_rows(const B& be, MatrixView<T> g, std::type_identity_t<VectorView<const T>> norms,
                         VectorView<index_t> arg, VectorView<T> best) {
    constexpr std::string_view op = "ops::shifted_argmin_rows";
    detail::check_layout(op, "g", g);
    RECBLOCKS_CHECK_SHAPE(g.cols() >= 1, op, ": g is ", g.shape(), "; need at least one centroid");
    detail::check_length(op, "norms", norms, g.cols(), "the number of columns of g");
    detail::check_length(op, "arg", arg, g.rows(), "the number of rows of g");
    detail::check_length(op, "best", best, g.rows(), "the number of rows of g");
    if (g.rows() == 0) return;
    Primitives<B>::template shifted_argmin_rows<T>(be, g, norms, arg, best);
}

/// The k-means update: counts [K] = how many rows of x [N, D] carry each
/// label of labels [N] (each in [0, K)), and row k of centroids [K, D] = the
/// mean of those rows, summed in double in row order (the same bits on every
/// thread count and on every backend that keeps the order: Reference, Cpu,
/// Cuda), scaled once by 1 / count. A centroid with no rows is left as it was.
/// Labels are checked on host memory (IndexError); a device backend skips a
/// row whose label is out of range.
template <class B, class T>
    requires has_nearest_centroid<B, T>
void mean_by_label(const B& be, std::type_identity_t<MatrixView<const T>> x, VectorView<const index_t> labels,
                   MatrixView<T> centroids, VectorView<index_t> counts) {
    constexpr std::string_view op = "ops::mean_by_label";
    detail::check_layout(op, "x", x);
    detail::check_layout(op, "centroids", centroids);
    detail::check_length(op, "labels", labels, x.rows(), "the number of rows of x");
    detail::check_length(op, "counts", counts, centroids.rows(), "the number of rows of centroids");
    RECBLOCKS_CHECK_SHAPE(centroids.cols() == x.cols(), op, ": centroids is ", centroids.shape(), " but x is ",
                          x.shape(), "; the widths must match");
    if constexpr (host_memory_v<B>)
        for (index_t i = 0; i < labels.size(); ++i)
            RECBLOCKS_CHECK_INDEX(labels(i) >= 0 && labels(i) < centroids.rows(), op, ": labels[", i, "] = ",
                                  labels(i), " is outside [0, ", centroids.rows(), ")");
    if (centroids.rows() == 0) return;
    Primitives<B>::template mean_by_label<T>(be, x, labels, centroids, counts);
}

/// Offers (base + norms[k] - 2 g[k], first + k) for k in [0, K) to the list
/// (best_scores, best_ids) [cap] of the cap smallest, sorted ascending, of
/// which `filled` are set; returns the new count. g [K] is overwritten.
template <class B, class T>
    requires has_beam_selection<B, T>
index_t offer_smallest(const B& be, VectorView<T> g, std::type_identity_t<VectorView<const T>> norms, T base,
                       index_t first, VectorView<T> best_scores, VectorView<index_t> best_ids, index_t filled) {
    constexpr std::string_view op = "ops::offer_smallest";
    detail::check_length(op, "norms", norms, g.size(), "the length of g");
    detail::check_length(op, "best_ids", best_ids, best_scores.size(), "the length of best_scores");
    RECBLOCKS_CHECK_SHAPE(best_scores.size() >= 1, op, ": the list of the smallest has no room");
    RECBLOCKS_CHECK_SHAPE(filled >= 0 && filled <= best_scores.size(), op, ": filled = ", filled,
                          " is outside [0, ", best_scores.size(), "]");
    return Primitives<B>::template offer_smallest<T>(be, g, norms, base, first, best_scores, best_ids, filled);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
