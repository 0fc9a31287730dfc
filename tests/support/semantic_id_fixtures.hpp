#pragma once
// Small catalogues of semantic IDs for the generative-retrieval tests.
#include "recblocks/core/tensor.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

namespace rbtest {

/// 12 items, 3 levels (K = 2, 3, 2): every tuple used exactly once.
inline recblocks::tokenizers::SemanticIds ids_12() {
    using recblocks::index_t;
    recblocks::Matrix<std::int32_t> codes(recblocks::Shape<2>{{12, 3}});
    for (index_t i = 0; i < 12; ++i) {
        codes(i, 0) = static_cast<std::int32_t>(i / 6);
        codes(i, 1) = static_cast<std::int32_t>((i / 2) % 3);
        codes(i, 2) = static_cast<std::int32_t>(i % 2);
    }
    return recblocks::tokenizers::SemanticIds(codes.cview(), {2, 3, 2});
}

}  // namespace rbtest
