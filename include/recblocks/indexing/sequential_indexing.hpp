#pragma once
// Sequential indexing (P5, Hua et al. 2023, "How to index item IDs"): items numbered
// consecutively in the order they first appear in the users' training histories (users in the
// given order, each history in time order), the number written in base K over M digits, most
// significant first. Items that never appear get the numbers after, in ascending item id.
// Items that co-occur early share leading digits; every tuple is unique by construction.
//
//   auto c = indexing::sequential_indexing(split.train, n, {.codebook_size = 256, .levels = 3});
//
// Errors: ValueError when K^M < N (not enough tuples) or the shape is bad; IndexError naming
// the user and position of an item id outside 1..N.
#include <cstdint>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/indexing/item_codes.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace indexing {

/// Rank of each item (0-based row i - 1 -> rank) by first appearance in `histories`.
inline std::vector<index_t> first_appearance_ranks(const std::vector<std::vector<row_id_t>>& histories,
                                                   index_t num_items, std::string_view who) {
    std::vector<index_t> rank(static_cast<std::size_t>(num_items), -1);
    index_t next = 0;
    for (std::size_t u = 0; u < histories.size(); ++u)
        for (std::size_t p = 0; p < histories[u].size(); ++p) {
            const row_id_t it = histories[u][p];
            RECBLOCKS_CHECK_INDEX(it >= 1 && it <= num_items, who, ": history ", u, " position ", p, " has item ", it,
                                  ", outside 1..", num_items);
            auto& r = rank[static_cast<std::size_t>(it - 1)];
            if (r < 0) r = next++;
        }
    for (auto& r : rank)
        if (r < 0) r = next++;
    return rank;
}

/// P5's sequential indexing (see the header comment).
inline ItemCodes sequential_indexing(const std::vector<std::vector<row_id_t>>& histories, index_t num_items,
                                     const CodeShape& shape) {
    constexpr std::string_view op = "indexing::sequential_indexing";
    shape.validate(op);
    RECBLOCKS_CHECK_VALUE(num_items >= 1, op, ": num_items must be >= 1, got ", num_items);
    const index_t k = shape.codebook_size, m = shape.levels;
    RECBLOCKS_CHECK_VALUE(code_capacity(k, m, num_items) >= num_items, op, ": ", m, " levels of ", k,
                          " codes give fewer than the ", num_items, " tuples the items need");
    const auto rank = first_appearance_ranks(histories, num_items, op);
    Matrix<std::int32_t> codes(Shape<2>{{num_items, m}});
    for (index_t i = 0; i < num_items; ++i) {
        index_t r = rank[static_cast<std::size_t>(i)];
        for (index_t l = m - 1; l >= 0; --l) {
            codes(i, l) = static_cast<std::int32_t>(r % k);
            r /= k;
        }
    }
    return ItemCodes{"sequential", tokenizers::SemanticIds(codes.cview(), shape.sizes()), {}};
}

}  // namespace indexing
RECBLOCKS_NAMESPACE_END
