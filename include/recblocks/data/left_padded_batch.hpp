#pragma once
// Left-padded batches: each row holds the last L items of a sequence,
// right-aligned, with 0 (the padding id) in front — the layout SASRec's
// causal attention and key-padding mask expect.
#include <algorithm>
#include <span>
#include <vector>

#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace data {

/// Writes out [B, L]: row b = the last min(L, |seqs[b]|) items of seqs[b],
/// right-aligned, zeros before them.
inline void left_padded_batch(std::span<const std::span<const row_id_t>> seqs, MatrixView<row_id_t> out) {
    RECBLOCKS_CHECK_SHAPE(out.rows() == static_cast<index_t>(seqs.size()), "data::left_padded_batch: out is ",
                          out.shape(), " but there are ", seqs.size(), " sequences");
    const index_t len = out.cols();
    for (index_t b = 0; b < out.rows(); ++b) {
        const auto& s = seqs[static_cast<std::size_t>(b)];
        const index_t n = std::min<index_t>(len, static_cast<index_t>(s.size()));
        row_id_t* row = out.row(b);
        for (index_t j = 0; j < len - n; ++j) row[j] = 0;
        for (index_t j = 0; j < n; ++j) row[len - n + j] = s[s.size() - static_cast<std::size_t>(n) + static_cast<std::size_t>(j)];
    }
}

}  // namespace data
RECBLOCKS_NAMESPACE_END
