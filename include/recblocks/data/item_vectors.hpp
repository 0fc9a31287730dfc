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
#include "recblocks/data/tfidf_projection.hpp"

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
    const index_t n = attrs.num_items();
    std::vector<std::vector<std::uint64_t>> terms(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
        for (const std::int32_t a : attrs.bags[static_cast<std::size_t>(i + 1)]) {
            RECBLOCKS_CHECK_VALUE(a >= 0, "data::attribute_tfidf_projection: item ", i + 1,
                                  " has a negative attribute id ", a);
            terms[static_cast<std::size_t>(i)].push_back(static_cast<std::uint64_t>(a));
        }
    return tfidf_random_projection(terms, cfg.dim, cfg.seed);
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
