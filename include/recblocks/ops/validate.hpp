#pragma once
// Shared argument checks for the ops/ wrappers. Every message names the
// operation and the argument, and gives what was found next to what was
// expected, e.g. "[recblocks.shape] ops::gemm: c is [4, 7] but op(a) * op(b) is [4, 8]".
#include <cmath>
#include <cstdint>
#include <string_view>

#include "recblocks/backend/primitives.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops::detail {

/// A matrix view's rows must not overlap: ld >= cols.
template <class T>
void check_layout(std::string_view op, std::string_view arg, MatrixView<T> m) {
    RECBLOCKS_CHECK_SHAPE(m.rows() <= 1 || m.ld() >= m.cols(), op, ": ", arg, " has leading dimension ", m.ld(),
                          " smaller than its ", m.cols(), " columns");
    RECBLOCKS_CHECK_SHAPE(m.rows() >= 0 && m.cols() >= 0, op, ": ", arg, " has a negative extent: ", m.shape());
    RECBLOCKS_CHECK_SHAPE(m.empty() || m.data() != nullptr, op, ": ", arg, " is ", m.shape(), " but has no data");
}

template <class A, class B>
void check_same_shape(std::string_view op, std::string_view a_name, const A& a, std::string_view b_name,
                      const B& b) {
    RECBLOCKS_CHECK_SHAPE(a.shape() == b.shape(), op, ": ", b_name, " is ", b.shape(), " but ", a_name, " is ",
                          a.shape());
}

template <class V>
void check_length(std::string_view op, std::string_view arg, const V& v, index_t expected, std::string_view what) {
    RECBLOCKS_CHECK_SHAPE(v.size() == expected, op, ": ", arg, " has ", v.size(), " entries but ", what, " is ",
                          expected);
}

/// Whether the memory spans of two matrix views overlap (first to last
/// element). Conservative: two views that interleave without sharing an
/// element (the left and right halves of one matrix) count as overlapping.
template <class T>
bool overlaps(MatrixView<const T> a, MatrixView<const T> b) {
    if (a.empty() || b.empty()) return false;
    const auto addr = [](const T* p) { return reinterpret_cast<std::uintptr_t>(p); };
    const std::uintptr_t a_end = addr(a.row(a.rows() - 1) + a.cols()), b_end = addr(b.row(b.rows() - 1) + b.cols());
    return addr(a.data()) < b_end && addr(b.data()) < a_end;
}

/// An output may be an input itself (same data and leading dimension: an
/// element-wise update in place) or lie apart from it, nothing in between.
template <class T>
void check_alias_or_disjoint(std::string_view op, std::string_view in_name, MatrixView<const T> in,
                             std::string_view out_name, MatrixView<const T> out) {
    const bool same = in.data() == out.data() && (in.rows() <= 1 || in.ld() == out.ld());
    RECBLOCKS_CHECK_SHAPE(same || !overlaps(in, out), op, ": ", out_name, " partly overlaps ", in_name,
                          " (it may be ", in_name, " itself or apart from it)");
}

/// Every id must index a row of a table with `rows` rows.
inline void check_ids(std::string_view op, VectorView<const row_id_t> ids, index_t rows) {
    for (index_t i = 0; i < ids.size(); ++i)
        RECBLOCKS_CHECK_INDEX(ids(i) >= 0 && ids(i) < rows, op, ": ids[", i, "] = ", ids(i),
                              " is out of range for a table of ", rows, " rows");
}

}  // namespace ops::detail
RECBLOCKS_NAMESPACE_END
