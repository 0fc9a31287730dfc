#pragma once
// The bias gradient shared by the blocks' linear layers: acc += the column
// sums of the upstream gradient, as two backend calls (sum_rows into a
// scratch vector the block keeps, then an add), so it runs where the block's
// memory lives. (A bias is written into every row by ops::broadcast_rows.)
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/reduce.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks::detail {

/// acc [C] += column sums of g [R, C]; `scratch` is resized to C once and reused.
template <class Be, class T, MemorySpace Memory>
void add_column_sums(const Be& be, std::type_identity_t<MatrixView<const T>> g, VectorView<T> acc,
                     Vector<T, Memory>& scratch) {
    if (scratch.numel() != g.cols()) scratch.resize(Shape<1>{{g.cols()}});
    ops::sum_rows(be, g, scratch.view());
    const auto as_row = [](auto v) { return matrix_view(v.data(), 1, v.size()); };
    ops::add(be, as_row(VectorView<const T>(acc)), as_row(scratch.cview()), as_row(acc));
}

}  // namespace blocks::detail
RECBLOCKS_NAMESPACE_END
