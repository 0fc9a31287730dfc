#pragma once
// The column-panel layout of a retrieval item table, shared by every backend
// that scores one (backend/cpu/kernels/retrieval.hpp, the Reference oracle)
// and by the indexes that build one (retrieval/exact_index.hpp).
//
// Rows go in panels of 64, each stored column by column ([d][64]), so a scan
// broadcasts one query element against 64 rows and never sums horizontally.
// Elements are f32, bf16 bits (std::uint16_t) or int8 codes with one scale
// per row. Only core/types.hpp is included: the CPU kernels that include this
// are compiled with ISA flags (see backend/cpu/kernel_table.hpp).
#include <cstdint>
#include <type_traits>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Rows per panel of a column-panelled table ([d][64] per panel).
inline constexpr index_t kPanelRows = 64;
/// Largest D of an int8 panel table (the CPU kernel keeps the query's int16 copy on the stack).
inline constexpr index_t kI8MaxDim = 4096;

/// Columns a panel stores per row: d, or d rounded up to even for int8
/// (columns go in pairs there).
template <class E>
constexpr index_t panel_cols(index_t d) {
    return std::is_same_v<E, std::int8_t> ? d + (d & 1) : d;
}

/// Offset of element (r, c) in a panelled table of d columns. f32: each
/// column's 64 rows in order. bf16: 32-bit word w of a column holds rows w
/// and w + 32 (so a shift or a mask widens a register). int8: columns in
/// pairs, 16-bit word j of a pair holds row j's two codes (one multiply-add
/// of int16 pairs takes both).
template <class E>
constexpr index_t panel_offset(index_t r, index_t c, index_t d) {
    constexpr index_t P = kPanelRows;
    const index_t base = (r / P) * P * panel_cols<E>(d), j = r % P;
    if constexpr (std::is_same_v<E, std::uint16_t>) return base + c * P + 2 * (j % 32) + j / 32;
    else if constexpr (std::is_same_v<E, std::int8_t>) return base + (c / 2) * 2 * P + 2 * j + c % 2;
    else return base + c * P + j;
}

/// Rows [0, rows) of a panelled table of `dim` columns stored as E
/// (float, bf16 bits, int8), from a panel boundary on; `scales` (int8: one
/// per row, from the same row 0) or null (every scale 1). Padding rows of
/// the last panel are stored (as zeros) but are not among `rows`.
template <class E>
struct PanelView {
    const E* data = nullptr;
    index_t rows = 0;
    index_t dim = 0;
    const float* scales = nullptr;

    /// Rows [r0, r0 + n) (r0 on a panel boundary).
    [[nodiscard]] constexpr PanelView rows_from(index_t r0, index_t n) const {
        return {data + r0 * panel_cols<E>(dim), n, dim, scales ? scales + r0 : nullptr};
    }
};

RECBLOCKS_NAMESPACE_END
