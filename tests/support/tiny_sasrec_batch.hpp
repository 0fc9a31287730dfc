#pragma once
// The hand-written SASRec training batch of the model tests: 2 left-padded
// rows of 6 slots over 12 items, with next-item positives and one negative
// per slot (0 where padded).
#include "recblocks/core/tensor.hpp"

namespace rbtest {

struct TinySasrecBatch {
    recblocks::Matrix<recblocks::row_id_t> ids{recblocks::Shape<2>{{2, 6}}}, pos{recblocks::Shape<2>{{2, 6}}},
        neg{recblocks::Shape<2>{{2, 6}}};
    TinySasrecBatch() {
        const recblocks::row_id_t s[2][6] = {{0, 0, 3, 5, 7, 2}, {4, 1, 9, 9, 12, 6}};
        const recblocks::row_id_t p[2][6] = {{0, 0, 5, 7, 2, 8}, {1, 9, 9, 12, 6, 3}};
        const recblocks::row_id_t n[2][6] = {{0, 0, 1, 11, 4, 6}, {2, 5, 8, 10, 11, 7}};
        for (recblocks::index_t b = 0; b < 2; ++b)
            for (recblocks::index_t t = 0; t < 6; ++t) {
                ids(b, t) = s[b][t];
                pos(b, t) = p[b][t];
                neg(b, t) = n[b][t];
            }
    }
};

}  // namespace rbtest
