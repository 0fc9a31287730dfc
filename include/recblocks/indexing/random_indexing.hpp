#pragma once
// Random indexing (P5's baseline): every code of every item drawn uniformly from [0, K),
// independently, code m of item i = Rng(seed).substream(i).below(m, K). Tuples carry no
// information about the items, and collide as chance has it (about N^2 / (2 K^M) pairs); the
// scheme has no geometry, so only TIGER's extra code resolves its collisions.
#include <cstdint>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/indexing/item_codes.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace indexing {

inline ItemCodes random_indexing(index_t num_items, const CodeShape& shape, std::uint64_t seed) {
    constexpr std::string_view op = "indexing::random_indexing";
    shape.validate(op);
    RECBLOCKS_CHECK_VALUE(num_items >= 1, op, ": num_items must be >= 1, got ", num_items);
    Matrix<std::int32_t> codes(Shape<2>{{num_items, shape.levels}});
    const Rng rng(seed);
    for (index_t i = 0; i < num_items; ++i) {
        const Rng r = rng.substream(static_cast<std::uint64_t>(i));
        for (index_t m = 0; m < shape.levels; ++m)
            codes(i, m) = static_cast<std::int32_t>(
                r.below(static_cast<std::uint64_t>(m), static_cast<std::uint32_t>(shape.codebook_size)));
    }
    return ItemCodes{"random", tokenizers::SemanticIds(codes.cview(), shape.sizes()), {}};
}

}  // namespace indexing
RECBLOCKS_NAMESPACE_END
