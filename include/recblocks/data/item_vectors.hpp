#pragma once
// Item vectors for semantic indexing, from either source a user has:
//
//   content        attribute_tfidf_projection(attrs, cfg): each item's attribute bag (categories,
//                  brand; data/item_attributes.hpp) -> TF-IDF over attribute ids -> seeded Gaussian
//                  random projection -> L2 normalisation. The Amazon files carry no text, so this
//                  is what semantic IDs are built from there.
//   collaborative  item_table_vectors(table): the rows of a trained model's item table (e.g. a
//                  SASRec's item embedding, rows 1..N; row 0 is padding), copied, optionally
//                  normalised.
//
// Both return [N, d] with row i - 1 holding item i, the layout the tokenizers take.
//
// TF-IDF (no hashing: attribute ids index the vocabulary directly): tf(i, a) = how often a is in
// item i's bag; idf(a) = ln((1 + N) / (1 + df(a))) + 1 with df(a) the number of items whose bag
// holds a (scikit-learn's smooth idf); the sparse row is L2-normalised. Projection: y = x R with
// R [A, d], R(a, j) ~ N(0, 1/d) drawn as Rng(seed).substream(a).normal(j) (R is never stored),
// then y / ||y||. An item with an empty bag gets a zero row. Deterministic at a seed; no threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/data/item_attributes.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

struct AttributeFeatureConfig {
    index_t dim = 64;        ///< d of the projection, >= 1
    std::uint64_t seed = 1;  ///< of the projection matrix
};

/// [N, d]: row i - 1 is item i's projected TF-IDF attribute vector (unit norm, or zero for an
/// empty bag). ValueError when dim < 1.
inline Matrix<float> attribute_tfidf_projection(const ItemAttributes& attrs, const AttributeFeatureConfig& cfg) {
    RECBLOCKS_CHECK_VALUE(cfg.dim >= 1, "data::attribute_tfidf_projection: dim must be >= 1, got ", cfg.dim);
    const index_t n = attrs.num_items(), d = cfg.dim;
    // Per item: (attribute, count), sorted by attribute.
    std::vector<std::vector<std::pair<std::int32_t, double>>> rows(static_cast<std::size_t>(n));
    std::unordered_map<std::int32_t, index_t> df;
    for (index_t i = 0; i < n; ++i) {
        auto& r = rows[static_cast<std::size_t>(i)];
        for (const std::int32_t a : attrs.bags[static_cast<std::size_t>(i + 1)]) {
            RECBLOCKS_CHECK_VALUE(a >= 0, "data::attribute_tfidf_projection: item ", i + 1,
                                  " has a negative attribute id ", a);
            r.emplace_back(a, 1.0);
        }
        std::sort(r.begin(), r.end());
        std::size_t k = 0;
        for (std::size_t j = 0; j < r.size(); ++j) {
            if (k > 0 && r[k - 1].first == r[j].first) r[k - 1].second += 1.0;
            else r[k++] = r[j];
        }
        r.resize(k);
        for (const auto& [a, cnt] : r) ++df[a];
    }
    Matrix<float> out(Shape<2>{{n, d}});
    std::fill(out.begin(), out.end(), 0.0f);
    std::unordered_map<std::int32_t, std::vector<double>> proj;  // attribute -> row of R (drawn once)
    const Rng rng(cfg.seed);
    const double sd = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<double> y(static_cast<std::size_t>(d));
    for (index_t i = 0; i < n; ++i) {
        auto& r = rows[static_cast<std::size_t>(i)];
        double norm = 0;
        for (auto& [a, v] : r) {
            v *= std::log((1.0 + static_cast<double>(n)) / (1.0 + static_cast<double>(df[a]))) + 1.0;
            norm += v * v;
        }
        if (norm == 0) continue;
        const double inv = 1.0 / std::sqrt(norm);
        std::fill(y.begin(), y.end(), 0.0);
        for (const auto& [a, v] : r) {
            auto [it, fresh] = proj.try_emplace(a);
            if (fresh) {
                it->second.resize(static_cast<std::size_t>(d));
                const Rng ra = rng.substream(static_cast<std::uint64_t>(a));
                for (index_t j = 0; j < d; ++j)
                    it->second[static_cast<std::size_t>(j)] = sd * ra.normal(static_cast<std::uint64_t>(j));
            }
            for (index_t j = 0; j < d; ++j) y[static_cast<std::size_t>(j)] += v * inv * it->second[static_cast<std::size_t>(j)];
        }
        double ny = 0;
        for (const double v : y) ny += v * v;
        if (ny == 0) continue;
        const double s = 1.0 / std::sqrt(ny);
        for (index_t j = 0; j < d; ++j) out(i, j) = static_cast<float>(y[static_cast<std::size_t>(j)] * s);
    }
    return out;
}

struct TableVectorOptions {
    bool skip_padding_row = true;  ///< the table's row 0 is padding (recblocks' models): use rows 1..N
    bool l2_normalize = false;     ///< scale each row to unit norm (a zero row stays zero)
};

/// [N, d] item vectors from an item embedding table [N + 1, d] (or [N, d] without a padding row).
/// ValueError for an empty result or a non-finite entry (naming the row and column).
inline Matrix<float> item_table_vectors(MatrixView<const float> table, const TableVectorOptions& opt = {}) {
    constexpr std::string_view op = "data::item_table_vectors";
    const index_t first = opt.skip_padding_row ? 1 : 0;
    const index_t n = table.rows() - first, d = table.cols();
    RECBLOCKS_CHECK_VALUE(n >= 1 && d >= 1, op, ": table is ", table.shape(), "; need at least one item row",
                          opt.skip_padding_row ? " after the padding row 0" : "", " and one column");
    Matrix<float> out(Shape<2>{{n, d}});
    for (index_t i = 0; i < n; ++i) {
        const float* src = table.row(i + first);
        double norm = 0;
        for (index_t j = 0; j < d; ++j) {
            RECBLOCKS_CHECK_VALUE(std::isfinite(src[j]), op, ": table row ", i + first, " column ", j, " is ", src[j]);
            norm += static_cast<double>(src[j]) * src[j];
        }
        const double s = (opt.l2_normalize && norm > 0) ? 1.0 / std::sqrt(norm) : 1.0;
        for (index_t j = 0; j < d; ++j) out(i, j) = static_cast<float>(src[j] * s);
    }
    return out;
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
