#pragma once
// Deterministic left-padded histories [rows, len] over items 1..n for the
// serving tests: row b of `seed` has (b + seed) % len padded slots.
#include "recblocks/core/tensor.hpp"

namespace rbtest {

inline recblocks::Matrix<recblocks::row_id_t> left_padded_histories(recblocks::index_t rows, recblocks::index_t len,
                                                                   recblocks::index_t n, recblocks::index_t seed) {
    recblocks::Matrix<recblocks::row_id_t> ids(recblocks::Shape<2>{{rows, len}});
    for (recblocks::index_t b = 0; b < rows; ++b)
        for (recblocks::index_t t = 0; t < len; ++t)
            ids(b, t) = t < (b + seed) % len ? 0 : static_cast<recblocks::row_id_t>(1 + (b * 7 + t * 3 + seed) % n);
    return ids;
}

}  // namespace rbtest
