// ODR test, part B (see odr_a.cpp).
#include <recblocks/recblocks.hpp>

#include "recblocks_all_headers.hpp"

int recblocks_odr_b() {
    const recblocks::Shape<3> s{{1, 2, 3}};
    return static_cast<int>(s.numel());
}
