#pragma once
// FlatCatalogue: the catalogue's semantic IDs (N items x L codes) as static
// per-level arrays that constrained decoding reads without walking a trie
// (the layout of STATIC, 2026: a sparse transition matrix per level, plus a
// dense table for the first levels, where the prefix space is small).
//
// Level t (0-based) maps the prefixes of t codes that start some item's ID
// ("prefix rows", numbered 0 .. num_prefixes(t) - 1 in lexicographic order of
// the prefix; the empty prefix is row 0 of level 0) to the codes that extend
// them and the row of the extended prefix at level t + 1:
//
//   CSR, every level: allowed_next(t, row) -> the allowed codes, ascending, a
//       contiguous span of one array; the child for allowed_next(t, row)[j] is
//       first_child(t, row) + j (children of a row are consecutive rows of the
//       next level, and the rows of each level follow lexicographic order).
//   Dense, the first levels (while num_prefixes(t) x K_t <= max_dense_entries):
//       dense_children(t, row) -> K_t child rows indexed by the code itself,
//       -1 where the code is not allowed: no search, and masking a row is one
//       vectorised select over K_t entries.
//   Leaves: the rows of level L; items(leaf) lists the items of that ID
//       (ascending ids; more than one only under DuplicateIds::map_to_all).
//
// mask_log_probs(t, rows, log_probs [P, K_t]) writes -inf into every entry whose
// code does not continue row rows[p]: applying the catalogue to a model's
// output in one pass per row (a select against the dense row, or -inf fills
// between the CSR row's codes). The beam search (constrained_beam_search.hpp)
// fuses the same test into its selection instead of writing the mask.
//
// Memory: 4 B per prefix row and per edge (CSR), 4 B per item and per leaf,
// plus 4 B per dense entry: about 20 MB for 1e6 items under 3 x 256 codes and a
// collision code, of which the dense tables of levels 0 and 1 (256 + 65,536
// entries) take 0.26 MB.
//
// Errors (ValueError / ShapeError / IndexError, prefixed "FlatCatalogue"): no
// levels or a codebook-size count != L, an empty catalogue, a codebook size < 1,
// a code outside [0, K_t) (naming item, level and code), a duplicate full ID
// under DuplicateIds::reject (naming both items and the tuple), more items than
// int32 rows allow, max_dense_entries < 0.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/tokenizers/code_trie.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace decoding {

struct FlatCatalogueOptions {
    /// Duplicate full IDs: rejected (ValueError) or all listed under their leaf.
    tokenizers::DuplicateIds duplicates = tokenizers::DuplicateIds::reject;
    /// A level gets a dense child table when its prefix rows x K_t is at most
    /// this (and every earlier level has one): 2^20 entries = 4 MiB.
    index_t max_dense_entries = index_t{1} << 20;
};

class FlatCatalogue {
public:
    using row_t = std::int32_t;
    static constexpr row_t kNone = -1;

    FlatCatalogue() = default;

    /// The catalogue of codes [N, L] with code t in [0, codebook_sizes[t]).
    FlatCatalogue(MatrixView<const std::int32_t> codes, std::span<const std::int32_t> codebook_sizes,
                  FlatCatalogueOptions options = {}) {
        build(codes, codebook_sizes, options);
    }

    explicit FlatCatalogue(const tokenizers::SemanticIds& ids, FlatCatalogueOptions options = {}) {
        build(ids.codes(), ids.codebook_sizes(), options);
    }

    /// L: codes per ID.
    [[nodiscard]] index_t depth() const { return static_cast<index_t>(sizes_.size()); }
    [[nodiscard]] std::span<const std::int32_t> codebook_sizes() const { return sizes_; }
    [[nodiscard]] index_t num_items() const { return static_cast<index_t>(items_.size()); }
    /// Prefix rows of level t (t in [0, L]; level L's rows are the leaves, the distinct IDs).
    [[nodiscard]] index_t num_prefixes(index_t t) const { return prefixes_[static_cast<std::size_t>(t)]; }
    /// Levels 0 .. dense_levels() - 1 have dense child tables.
    [[nodiscard]] index_t dense_levels() const { return static_cast<index_t>(dense_.size()); }
    [[nodiscard]] bool is_dense(index_t t) const { return t < dense_levels(); }
    /// Bytes held by the arrays.
    [[nodiscard]] std::size_t memory_bytes() const {
        std::size_t b = 4 * (leaf_item_begin_.size() + items_.size());
        for (const auto& v : row_begin_) b += 4 * v.size();
        for (const auto& v : edge_code_) b += 4 * v.size();
        for (const auto& v : dense_) b += 4 * v.size();
        return b;
    }

    /// The codes that continue prefix row `row` of level t, ascending. Unchecked
    /// beyond a debug assertion (inner loops call it).
    [[nodiscard]] std::span<const std::int32_t> allowed_next(index_t t, row_t row) const {
        RECBLOCKS_DEBUG_ASSERT(t >= 0 && t < depth() && row >= 0 && row < num_prefixes(t));
        const auto& rb = row_begin_[static_cast<std::size_t>(t)];
        const auto b = static_cast<std::size_t>(rb[static_cast<std::size_t>(row)]);
        const auto e = static_cast<std::size_t>(rb[static_cast<std::size_t>(row) + 1]);
        return {edge_code_[static_cast<std::size_t>(t)].data() + b, e - b};
    }
    /// The level-(t + 1) row for allowed_next(t, row)[0]; the others follow.
    [[nodiscard]] row_t first_child(index_t t, row_t row) const {
        return row_begin_[static_cast<std::size_t>(t)][static_cast<std::size_t>(row)];
    }
    /// Dense levels only: K_t entries, entry c = the child row along code c or -1.
    [[nodiscard]] const row_t* dense_children(index_t t, row_t row) const {
        RECBLOCKS_DEBUG_ASSERT(is_dense(t) && row >= 0 && row < num_prefixes(t));
        return dense_[static_cast<std::size_t>(t)].data() +
               static_cast<std::size_t>(row) * static_cast<std::size_t>(sizes_[static_cast<std::size_t>(t)]);
    }

    /// The child of prefix row `row` of level t along `code`, or kNone (O(1) on a
    /// dense level, a binary search on a CSR one).
    [[nodiscard]] row_t child(index_t t, row_t row, std::int32_t code) const {
        RECBLOCKS_CHECK_INDEX(t >= 0 && t < depth(), "FlatCatalogue::child: level ", t, " outside [0, ", depth(), ")");
        RECBLOCKS_CHECK_INDEX(row >= 0 && row < num_prefixes(t), "FlatCatalogue::child: row ", row, " outside [0, ",
                              num_prefixes(t), ") at level ", t);
        if (code < 0 || code >= sizes_[static_cast<std::size_t>(t)]) return kNone;
        if (is_dense(t)) return dense_children(t, row)[code];
        const auto next = allowed_next(t, row);
        const auto it = std::lower_bound(next.begin(), next.end(), code);
        if (it == next.end() || *it != code) return kNone;
        return first_child(t, row) + static_cast<row_t>(it - next.begin());
    }

    /// The row of a prefix (0..L codes) at level prefix.size(), or kNone.
    [[nodiscard]] row_t find(std::span<const std::int32_t> prefix) const {
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(prefix.size()) <= depth(), "FlatCatalogue::find: prefix of ",
                              prefix.size(), " codes is longer than the IDs (", depth(), ")");
        row_t r = 0;
        for (std::size_t t = 0; t < prefix.size() && r != kNone; ++t) r = child(static_cast<index_t>(t), r, prefix[t]);
        return r;
    }

    /// True when `tuple` (L codes) is some item's ID.
    [[nodiscard]] bool contains(std::span<const std::int32_t> tuple) const {
        return static_cast<index_t>(tuple.size()) == depth() && depth() > 0 && find(tuple) != kNone;
    }

    /// The items whose ID is leaf row `leaf` (a row of level L), ascending.
    [[nodiscard]] std::span<const row_id_t> items(row_t leaf) const {
        RECBLOCKS_CHECK_INDEX(depth() > 0 && leaf >= 0 && leaf < num_prefixes(depth()), "FlatCatalogue::items: leaf ",
                              leaf, " outside [0, ", depth() > 0 ? num_prefixes(depth()) : 0, ")");
        return leaf_items(leaf);
    }
    /// items() without the check, for inner loops.
    [[nodiscard]] std::span<const row_id_t> leaf_items(row_t leaf) const {
        const auto b = static_cast<std::size_t>(leaf_item_begin_[static_cast<std::size_t>(leaf)]);
        return {items_.data() + b, static_cast<std::size_t>(leaf_item_begin_[static_cast<std::size_t>(leaf) + 1]) - b};
    }

    /// log_probs(p, c) = -inf for every code c that does not continue prefix row
    /// rows[p] of level t; allowed entries are left as they are.
    void mask_log_probs(index_t t, std::span<const row_t> rows, MatrixView<float> log_probs) const {
        constexpr std::string_view op = "FlatCatalogue::mask_log_probs";
        RECBLOCKS_CHECK_INDEX(t >= 0 && t < depth(), op, ": level ", t, " outside [0, ", depth(), ")");
        const index_t k = sizes_[static_cast<std::size_t>(t)];
        RECBLOCKS_CHECK_SHAPE(log_probs.rows() == static_cast<index_t>(rows.size()) && log_probs.cols() == k, op,
                              ": log_probs is ", log_probs.shape(), " but expected [", rows.size(), ", ", k, "]");
        for (std::size_t p = 0; p < rows.size(); ++p)
            RECBLOCKS_CHECK_INDEX(rows[p] >= 0 && rows[p] < num_prefixes(t), op, ": rows[", p, "] = ", rows[p],
                                  " outside [0, ", num_prefixes(t), ") at level ", t);
        constexpr float ninf = -std::numeric_limits<float>::infinity();
        for (std::size_t p = 0; p < rows.size(); ++p) {
            float* lp = log_probs.row(static_cast<index_t>(p));
            if (is_dense(t)) {
                const row_t* ch = dense_children(t, rows[p]);
                for (index_t c = 0; c < k; ++c) lp[c] = ch[c] >= 0 ? lp[c] : ninf;  // a vector select
            } else {
                std::int32_t next = 0;  // fill the gaps between allowed codes
                for (const std::int32_t c : allowed_next(t, rows[p])) {
                    std::fill(lp + next, lp + c, ninf);
                    next = c + 1;
                }
                std::fill(lp + next, lp + k, ninf);
            }
        }
    }

private:
    void build(MatrixView<const std::int32_t> codes, std::span<const std::int32_t> sizes, FlatCatalogueOptions opt) {
        constexpr std::string_view op = "FlatCatalogue";
        const index_t n = codes.rows(), m = codes.cols();
        RECBLOCKS_CHECK_SHAPE(m >= 1, op, ": codes is ", codes.shape(), "; need at least one level");
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(sizes.size()) == m, op, ": codes has ", m, " levels but ",
                              sizes.size(), " codebook sizes were given");
        RECBLOCKS_CHECK_VALUE(n >= 1, op, ": the catalogue is empty (no items)");
        RECBLOCKS_CHECK_VALUE(opt.max_dense_entries >= 0, op, ": max_dense_entries is ", opt.max_dense_entries,
                              "; need >= 0");
        for (std::size_t l = 0; l < sizes.size(); ++l)
            RECBLOCKS_CHECK_VALUE(sizes[l] >= 1, op, ": codebook size of level ", l, " is ", sizes[l], "; need >= 1");
        for (index_t i = 0; i < n; ++i)
            for (index_t l = 0; l < m; ++l) {
                const std::int32_t v = codes.row(i)[l];
                RECBLOCKS_CHECK_INDEX(v >= 0 && v < sizes[static_cast<std::size_t>(l)], op, ": item ", i, " has code ",
                                      v, " at level ", l, ", outside [0, ", sizes[static_cast<std::size_t>(l)], ")");
            }
        // The trie numbers nodes breadth-first in lexicographic order: its nodes
        // at depth t are this level's prefix rows, in the same order.
        const tokenizers::CodeTrie trie(codes, sizes, tokenizers::DuplicateIds::map_to_all);
        if (opt.duplicates == tokenizers::DuplicateIds::reject) reject_duplicates(trie, codes);

        sizes_.assign(sizes.begin(), sizes.end());
        prefixes_.resize(static_cast<std::size_t>(m + 1));
        for (index_t t = 0; t <= m; ++t) prefixes_[static_cast<std::size_t>(t)] = trie.level_begin(t + 1) - trie.level_begin(t);
        row_begin_.assign(static_cast<std::size_t>(m), {});
        edge_code_.assign(static_cast<std::size_t>(m), {});
        dense_.clear();
        for (index_t t = 0; t < m; ++t) {
            const auto ti = static_cast<std::size_t>(t);
            const auto base = trie.level_begin(t), child_base = trie.level_begin(t + 1);
            auto& rb = row_begin_[ti];
            auto& ec = edge_code_[ti];
            rb.resize(static_cast<std::size_t>(prefixes_[ti]) + 1);
            ec.reserve(static_cast<std::size_t>(prefixes_[ti + 1]));
            for (row_t r = 0; r < prefixes_[ti]; ++r) {
                rb[static_cast<std::size_t>(r)] = trie.first_child(base + r) - child_base;
                const auto next = trie.allowed_next(base + r);
                ec.insert(ec.end(), next.begin(), next.end());
            }
            rb.back() = prefixes_[ti + 1];
            // Dense while the table is small (first levels only: a dense level's
            // children are what the next dense level indexes by).
            const auto entries = static_cast<double>(prefixes_[ti]) * static_cast<double>(sizes_[ti]);
            if (static_cast<index_t>(dense_.size()) == t && entries <= static_cast<double>(opt.max_dense_entries)) {
                std::vector<row_t> d(static_cast<std::size_t>(entries), kNone);
                for (row_t r = 0; r < prefixes_[ti]; ++r)
                    for (row_t e = rb[static_cast<std::size_t>(r)]; e < rb[static_cast<std::size_t>(r) + 1]; ++e)
                        d[static_cast<std::size_t>(r) * static_cast<std::size_t>(sizes_[ti]) +
                          static_cast<std::size_t>(ec[static_cast<std::size_t>(e)])] = e;
                dense_.push_back(std::move(d));
            }
        }
        const index_t leaves = prefixes_[static_cast<std::size_t>(m)];
        const auto first_leaf = trie.level_begin(m);
        leaf_item_begin_.resize(static_cast<std::size_t>(leaves) + 1);
        items_.clear();
        items_.reserve(static_cast<std::size_t>(n));
        for (row_t l = 0; l < leaves; ++l) {
            leaf_item_begin_[static_cast<std::size_t>(l)] = static_cast<std::int32_t>(items_.size());
            const auto its = trie.leaf_items(first_leaf + l);
            items_.insert(items_.end(), its.begin(), its.end());
        }
        leaf_item_begin_.back() = static_cast<std::int32_t>(items_.size());
    }

    static void reject_duplicates(const tokenizers::CodeTrie& trie, MatrixView<const std::int32_t> codes) {
        for (auto leaf = trie.level_begin(trie.depth()); leaf < trie.num_nodes(); ++leaf) {
            const auto its = trie.leaf_items(leaf);
            if (its.size() < 2) continue;
            std::string t;
            for (index_t l = 0; l < codes.cols(); ++l) t += (l ? ", " : "") + std::to_string(codes.row(its[0])[l]);
            throw ValueError(recblocks::detail::concat(
                "FlatCatalogue: items ", its[0], " and ", its[1], " have the same ID (", t,
                "); make IDs unique first (SemanticIds::with_disambiguation_code) or build with "
                "FlatCatalogueOptions::duplicates = DuplicateIds::map_to_all"));
        }
    }

    std::vector<std::int32_t> sizes_;
    std::vector<index_t> prefixes_;                    // level -> prefix rows (L + 1 entries)
    std::vector<std::vector<row_t>> row_begin_;        // level -> CSR offsets (rows + 1), = first child row
    std::vector<std::vector<std::int32_t>> edge_code_;  // level -> codes of the edges (CSR columns)
    std::vector<std::vector<row_t>> dense_;            // first levels -> [rows x K_t] child row or -1
    std::vector<std::int32_t> leaf_item_begin_;        // leaf -> first entry of items_ (CSR)
    std::vector<row_id_t> items_;                      // item ids grouped by leaf, ascending within one
};

}  // namespace decoding
RECBLOCKS_NAMESPACE_END
