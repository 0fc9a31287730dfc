#pragma once
// TF-IDF of sparse term bags, projected to d dimensions by a seeded Gaussian
// matrix that is never stored: what the content features of MovieLens titles
// (data/item_text_features.hpp, terms = hashed tokens) and of S3-Rec
// attribute bags (data/item_vectors.hpp, terms = attribute ids) share.
//
//   tf(i, t) = count of term t in document i;  idf(t) = ln((1 + N) / (1 + df(t))) + 1
//   (scikit-learn's smooth idf);  x_i = tf·idf / ||tf·idf||;  y_i = x_i R;  row i = y_i / ||y_i||
//
// R(t, j) ~ N(0, 1/d), drawn as Rng(seed).substream(t).normal(j) for the terms
// that occur. An empty document (or one whose projection is zero) gets a zero
// row. Deterministic at a seed; no threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

/// [N, dim] rows for N documents, each a list of term keys (any order, repeats
/// counted). ValueError when dim < 1.
inline Matrix<float> tfidf_random_projection(const std::vector<std::vector<std::uint64_t>>& docs, index_t dim,
                                             std::uint64_t seed) {
    RECBLOCKS_CHECK_VALUE(dim >= 1, "data::tfidf_random_projection: dim must be >= 1, got ", dim);
    const index_t n = static_cast<index_t>(docs.size()), d = dim;
    // Per document: (term, count), sorted by term.
    std::vector<std::vector<std::pair<std::uint64_t, double>>> rows(docs.size());
    std::unordered_map<std::uint64_t, index_t> df;
    for (std::size_t i = 0; i < docs.size(); ++i) {
        auto& r = rows[i];
        for (const std::uint64_t t : docs[i]) r.emplace_back(t, 1.0);
        std::sort(r.begin(), r.end());
        std::size_t k = 0;
        for (std::size_t j = 0; j < r.size(); ++j) {
            if (k > 0 && r[k - 1].first == r[j].first) r[k - 1].second += 1.0;
            else r[k++] = r[j];
        }
        r.resize(k);
        for (const auto& [t, c] : r) ++df[t];
    }
    Matrix<float> out(Shape<2>{{n, d}});
    std::fill(out.begin(), out.end(), 0.0f);
    std::unordered_map<std::uint64_t, std::vector<double>> proj;  // term -> row of R (drawn once)
    const Rng rng(seed);
    const double sd = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<double> y(static_cast<std::size_t>(d));
    for (std::size_t i = 0; i < rows.size(); ++i) {
        auto& r = rows[i];
        double norm = 0;
        for (auto& [t, v] : r) {
            v *= std::log((1.0 + static_cast<double>(n)) / (1.0 + static_cast<double>(df[t]))) + 1.0;
            norm += v * v;
        }
        if (norm == 0) continue;
        const double inv = 1.0 / std::sqrt(norm);
        std::fill(y.begin(), y.end(), 0.0);
        for (const auto& [t, v] : r) {
            auto [it, fresh] = proj.try_emplace(t);
            if (fresh) {
                it->second.resize(static_cast<std::size_t>(d));
                const Rng rt = rng.substream(t);
                for (index_t j = 0; j < d; ++j)
                    it->second[static_cast<std::size_t>(j)] = sd * rt.normal(static_cast<std::uint64_t>(j));
            }
            for (index_t j = 0; j < d; ++j) y[static_cast<std::size_t>(j)] += v * inv * it->second[static_cast<std::size_t>(j)];
        }
        double ny = 0;
        for (const double v : y) ny += v * v;
        if (ny == 0) continue;
        const double s = 1.0 / std::sqrt(ny);
        for (index_t j = 0; j < d; ++j)
            out(static_cast<index_t>(i), j) = static_cast<float>(y[static_cast<std::size_t>(j)] * s);
    }
    return out;
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
