#pragma once
// The one contract every item-indexing scheme keeps (P5's "how to index item IDs", TIGER, GRID,
// LC-Rec): a scheme maps the catalogue's items 1..N to code tuples of M levels, codebook sizes
// K_0..K_{M-1}, and says how far each item is from every last-level code when it has a geometry.
// Collisions (two items with one tuple) are then resolved the same way for every scheme.
//
//   indexing::ItemCodes c = indexing::sequential_indexing(train_sequences, n, {.codebook_size = 256, .levels = 3});
//   indexing::IndexedItems r = indexing::resolve_collisions(c, indexing::Resolution::extra_code);
//   r.ids              -> tokenizers::SemanticIds [N, L], row i - 1 = item i
//   r.before, r.after  -> CollisionStats; rate() = share of items whose tuple is not unique
//
// Schemes (one header each): sequential_indexing (P5: consecutive ids by first appearance, base K),
// collaborative_indexing (P5: recursive spectral clustering of the co-occurrence graph),
// semantic_rq_indexing (GRID / OneRec: residual k-means on item vectors), random_indexing.
//
// Resolution:
//   none        the scheme's tuples as they are.
//   extra_code  TIGER: one more level, an item's index within its collision group
//               (tokenizers::SemanticIds::with_disambiguation_code). Always unique afterwards.
//   sinkhorn    LC-Rec: colliding items re-coded at the last level by Sinkhorn-Knopp over their
//               distances to every last-level code (SemanticIds::rebalance_last_level). Needs the
//               scheme's distances: ValueError naming the scheme when it has none (random) and
//               something collides. Reduces collisions; need not remove them all.
//   sinkhorn_then_extra_code  LC-Rec first, then TIGER's code for what still collides (unique).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace indexing {

/// distances(items, out): out [items.size(), K_last] = each listed item's (row id, 0-based)
/// distance to every last-level code. Smaller is closer.
using LastLevelDistances = std::function<void(std::span<const row_id_t>, MatrixView<float>)>;

/// What an indexing scheme produces.
struct ItemCodes {
    std::string scheme;              ///< "sequential", "collaborative", "semantic-rq", "random", ...
    tokenizers::SemanticIds ids;     ///< [N, M], row i - 1 = item i, with the codebook sizes
    LastLevelDistances distances;    ///< empty when the scheme has no geometry (sequential, random)
};

enum class Resolution { none, extra_code, sinkhorn, sinkhorn_then_extra_code };

inline std::string_view resolution_name(Resolution r) {
    switch (r) {
        case Resolution::none: return "none";
        case Resolution::extra_code: return "extra code (TIGER)";
        case Resolution::sinkhorn: return "Sinkhorn (LC-Rec)";
        case Resolution::sinkhorn_then_extra_code: return "Sinkhorn, then extra code";
    }
    return "?";
}

/// The resolved IDs and what resolution changed.
struct IndexedItems {
    tokenizers::SemanticIds ids;
    tokenizers::CollisionStats before;  ///< of the scheme's tuples
    tokenizers::CollisionStats after;   ///< of `ids`
    index_t items_recoded = 0;          ///< items whose last code Sinkhorn changed
};

/// Resolves the collisions of `codes` (see the header comment).
inline IndexedItems resolve_collisions(const ItemCodes& codes, Resolution how,
                                       const tokenizers::SinkhornOptions& opt = {}) {
    IndexedItems out;
    out.before = codes.ids.collisions();
    tokenizers::SemanticIds ids = codes.ids;
    if (how == Resolution::sinkhorn || how == Resolution::sinkhorn_then_extra_code) {
        if (ids.collisions().groups > 0) {
            RECBLOCKS_CHECK_VALUE(static_cast<bool>(codes.distances), "indexing::resolve_collisions: the ",
                                  codes.scheme, " scheme gives no distances to its last-level codes, so Sinkhorn ",
                                  "re-coding does not apply; use the extra code");
            const auto rep = ids.rebalance_last_level(codes.distances, opt);
            out.items_recoded = rep.items_changed;
        }
    }
    if (how == Resolution::extra_code || how == Resolution::sinkhorn_then_extra_code)
        ids = ids.with_disambiguation_code();
    out.after = ids.collisions();
    out.ids = std::move(ids);
    return out;
}

/// K^M for M levels of K codes, saturating at `cap` (no overflow for any K, M).
inline index_t code_capacity(index_t codebook_size, index_t levels, index_t cap) {
    index_t c = 1;
    for (index_t m = 0; m < levels; ++m) {
        if (c > cap / codebook_size) return cap;
        c *= codebook_size;
    }
    return std::min(c, cap);
}

/// The settings every scheme shares.
struct CodeShape {
    index_t codebook_size = 256;  ///< K codes per level, >= 2 (>= 1 for random)
    index_t levels = 3;           ///< M, >= 1

    void validate(std::string_view who) const {
        RECBLOCKS_CHECK_VALUE(codebook_size >= 1 && codebook_size <= (index_t{1} << 30), who,
                              ": codebook_size must be in [1, 2^30], got ", codebook_size);
        RECBLOCKS_CHECK_VALUE(levels >= 1 && levels <= 64, who, ": levels must be in [1, 64], got ", levels);
    }
    [[nodiscard]] std::vector<std::int32_t> sizes() const {
        return std::vector<std::int32_t>(static_cast<std::size_t>(levels), static_cast<std::int32_t>(codebook_size));
    }
};

}  // namespace indexing
RECBLOCKS_NAMESPACE_END
