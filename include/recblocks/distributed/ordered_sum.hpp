#pragma once
// The one order in which every communicator sums: contributions added left to
// right, element by element, in (rank, block) order,
//
//   out[i] = ((x_0[i] + x_1[i]) + x_2[i]) + ...
//
// Floating-point addition is not associative, so fixing this order (rather
// than leaving it to an MPI library's reduction tree) is what makes a sum over
// N ranks equal, bit for bit, the same sum computed by one process.
#include <algorithm>
#include <cstddef>
#include <span>

#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace distributed {

/// acc[i] += x[i]: the next contribution of an ordered sum.
template <class T>
void add_next_contribution(std::span<T> acc, std::span<const T> x) {
    RECBLOCKS_CHECK_SHAPE(acc.size() == x.size(), "distributed::add_next_contribution: the sum has ", acc.size(),
                          " elements but the contribution ", x.size());
    T* a = acc.data();
    const T* b = x.data();
    for (std::size_t i = 0, n = acc.size(); i < n; ++i) a[i] += b[i];
}

/// out = the ordered sum of the blocks of `blocks` (consecutive, out.size() elements each, at least one).
template <class T>
void ordered_sum_of_blocks(std::span<const T> blocks, std::span<T> out) {
    const std::size_t n = out.size();
    RECBLOCKS_CHECK_SHAPE(n > 0 ? blocks.size() % n == 0 && !blocks.empty() : blocks.empty(),
                          "distributed::ordered_sum_of_blocks: ", blocks.size(),
                          " values are not a whole number (>= 1) of blocks of ", n);
    if (n == 0) return;
    if (blocks.data() != out.data()) std::copy_n(blocks.data(), n, out.data());
    for (std::size_t b = n; b < blocks.size(); b += n) add_next_contribution<T>(out, blocks.subspan(b, n));
}

}  // namespace distributed
RECBLOCKS_NAMESPACE_END
