#pragma once
// Bias helpers shared by the blocks' linear layers: write a bias into every
// row (before a gemm with beta = 1 adds the product), and accumulate a bias
// gradient (the column sums of the upstream gradient).
#include <algorithm>
#include <type_traits>

#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/reduce.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks::detail {

/// out[r, :] = bias for every row r of out [R, C]; bias [C].
template <class T>
void broadcast_rows(std::type_identity_t<VectorView<const T>> bias, MatrixView<T> out) {
    for (index_t r = 0; r < out.rows(); ++r) std::copy(bias.data(), bias.data() + bias.size(), out.row(r));
}

/// acc [C] += column sums of g [R, C]; `scratch` grows to C once and is reused.
template <class Be, class T>
void add_column_sums(const Be& be, std::type_identity_t<MatrixView<const T>> g, VectorView<T> acc, Vector<T>& scratch) {
    if (scratch.numel() < g.cols()) scratch.resize(Shape<1>{{g.cols()}});
    auto sums = vector_view(scratch.data(), g.cols());
    ops::sum_rows(be, g, sums);
    for (index_t c = 0; c < g.cols(); ++c) acc(c) += sums(c);
}

}  // namespace blocks::detail
RECBLOCKS_NAMESPACE_END
