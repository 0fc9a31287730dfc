#pragma once
// CodeTrie: a prefix trie over a catalogue's semantic IDs (N items x L codes),
// built once and read fast by constrained decoding.
//
// Layout (flat arrays, no pointers): nodes are numbered breadth-first with the
// children of a node sorted by code, so node ids at each depth follow the
// lexicographic order of their prefixes, and the children of a node are
// consecutive ids. Node 0 is the root (the empty prefix); the node reached by
// edge e is e + 1. Per node: the offset of its first edge (CSR); per edge: its
// code. Leaves are the nodes at depth L; per leaf the items whose ID it is
// (CSR, ascending ids).
//
//   allowed_next(node) -> span of the codes that continue a real ID (sorted)
//   first_child(node)  -> id of the child for allowed_next(node)[0]; the child
//                         for allowed_next(node)[j] is first_child(node) + j
//   child(node, code)  -> the child, or kNoNode (binary search)
//   items(leaf)        -> the items with that ID
//
// Memory: 4 B per edge, 4 B per node (offsets) + 4 B per item; 10k items with
// 3 x 256 codes take about 100 KB.
//
// Duplicates: two items with the same full ID are rejected by default
// (ValueError naming both items and the tuple); DuplicateIds::map_to_all keeps
// them all under one leaf instead.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/tokenizers/semantic_ids.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

/// What CodeTrie does with items that share a full ID.
enum class DuplicateIds : std::uint8_t {
    reject,      ///< ValueError (the default: a tuple must name one item)
    map_to_all,  ///< the leaf lists every such item
};

class CodeTrie {
public:
    using node_t = std::int32_t;
    static constexpr node_t kRoot = 0;
    static constexpr node_t kNoNode = -1;

    CodeTrie() = default;

    /// Builds the trie of codes [N, L] (any leading dimension) with code m in
    /// [0, codebook_sizes[m]). ShapeError for L = 0 or a sizes count != L,
    /// ValueError for N = 0 or a size < 1, IndexError for a code out of range,
    /// ValueError for a duplicate full ID under DuplicateIds::reject.
    CodeTrie(MatrixView<const std::int32_t> codes, std::span<const std::int32_t> codebook_sizes,
             DuplicateIds duplicates = DuplicateIds::reject) {
        build(codes, codebook_sizes, duplicates);
    }

    /// The trie of a SemanticIds map.
    explicit CodeTrie(const SemanticIds& ids, DuplicateIds duplicates = DuplicateIds::reject) {
        build(ids.codes(), ids.codebook_sizes(), duplicates);
    }

    /// L: codes per ID; leaves are at this depth.
    [[nodiscard]] index_t depth() const { return depth_; }
    [[nodiscard]] std::span<const std::int32_t> codebook_sizes() const { return sizes_; }
    [[nodiscard]] index_t num_nodes() const { return static_cast<index_t>(edge_begin_.size()) - 1; }
    [[nodiscard]] index_t num_items() const { return static_cast<index_t>(items_.size()); }
    [[nodiscard]] index_t num_leaves() const { return num_nodes() - level_begin_[static_cast<std::size_t>(depth_)]; }
    /// Nodes at depth d are the ids [level_begin(d), level_begin(d + 1)); d in [0, L].
    [[nodiscard]] node_t level_begin(index_t d) const { return level_begin_[static_cast<std::size_t>(d)]; }
    [[nodiscard]] bool is_leaf(node_t node) const { return node >= level_begin_[static_cast<std::size_t>(depth_)]; }
    /// Bytes held by the flat arrays.
    [[nodiscard]] std::size_t memory_bytes() const {
        return 4 * (edge_code_.size() + edge_begin_.size() + leaf_item_begin_.size() + items_.size());
    }

    /// The codes that extend `node`'s prefix to one of the catalogue's IDs,
    /// ascending (empty for a leaf). Unchecked beyond a debug assertion: the
    /// search's inner loop calls it.
    [[nodiscard]] std::span<const std::int32_t> allowed_next(node_t node) const {
        RECBLOCKS_DEBUG_ASSERT(node >= 0 && node < num_nodes());
        const auto b = static_cast<std::size_t>(edge_begin_[static_cast<std::size_t>(node)]);
        const auto e = static_cast<std::size_t>(edge_begin_[static_cast<std::size_t>(node) + 1]);
        return {edge_code_.data() + b, e - b};
    }

    /// The child for allowed_next(node)[0]; the others follow consecutively.
    [[nodiscard]] node_t first_child(node_t node) const { return edge_begin_[static_cast<std::size_t>(node)] + 1; }

    /// The child of `node` along `code`, or kNoNode.
    [[nodiscard]] node_t child(node_t node, std::int32_t code) const {
        RECBLOCKS_CHECK_INDEX(node >= 0 && node < num_nodes(), "CodeTrie::child: node ", node, " outside [0, ",
                              num_nodes(), ")");
        const auto next = allowed_next(node);
        const auto it = std::lower_bound(next.begin(), next.end(), code);
        if (it == next.end() || *it != code) return kNoNode;
        return first_child(node) + static_cast<node_t>(it - next.begin());
    }

    /// The node of a prefix (length 0..L), or kNoNode when no ID starts with it.
    [[nodiscard]] node_t find(std::span<const std::int32_t> prefix) const {
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(prefix.size()) <= depth_, "CodeTrie::find: prefix of ",
                              prefix.size(), " codes is longer than the IDs (", depth_, ")");
        node_t n = kRoot;
        for (const std::int32_t c : prefix) {
            n = child(n, c);
            if (n == kNoNode) break;
        }
        return n;
    }

    /// True when `tuple` (L codes) is a catalogue item's ID.
    [[nodiscard]] bool contains(std::span<const std::int32_t> tuple) const {
        return static_cast<index_t>(tuple.size()) == depth_ && find(tuple) != kNoNode;
    }

    /// The items whose ID ends at `leaf`, ascending (IndexError if not a leaf).
    [[nodiscard]] std::span<const row_id_t> items(node_t leaf) const {
        RECBLOCKS_CHECK_INDEX(leaf >= level_begin(depth_) && leaf < num_nodes(), "CodeTrie::items: node ", leaf,
                              " is not a leaf (leaves are [", level_begin(depth_), ", ", num_nodes(), "))");
        return leaf_items(leaf);
    }

    /// items() without the check, for inner loops.
    [[nodiscard]] std::span<const row_id_t> leaf_items(node_t leaf) const {
        const auto l = static_cast<std::size_t>(leaf - level_begin_[static_cast<std::size_t>(depth_)]);
        const auto b = static_cast<std::size_t>(leaf_item_begin_[l]);
        return {items_.data() + b, static_cast<std::size_t>(leaf_item_begin_[l + 1]) - b};
    }

private:
    void build(MatrixView<const std::int32_t> codes, std::span<const std::int32_t> sizes, DuplicateIds duplicates) {
        constexpr std::string_view op = "CodeTrie";
        const index_t n = codes.rows(), m = codes.cols();
        RECBLOCKS_CHECK_SHAPE(m >= 1, op, ": codes is ", codes.shape(), "; need at least one level");
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(sizes.size()) == m, op, ": codes has ", m, " levels but ",
                              sizes.size(), " codebook sizes were given");
        RECBLOCKS_CHECK_VALUE(n >= 1, op, ": the catalogue is empty");
        RECBLOCKS_CHECK_VALUE(n < index_t{std::numeric_limits<row_id_t>::max()} / (m + 1), op, ": ", n,
                              " items exceed the int32 node id range");
        for (std::size_t l = 0; l < sizes.size(); ++l)
            RECBLOCKS_CHECK_VALUE(sizes[l] >= 1, op, ": codebook size of level ", l, " is ", sizes[l], "; need >= 1");
        // Packed copy (the view may be strided), range-checked.
        std::vector<std::int32_t> c(static_cast<std::size_t>(n * m));
        for (index_t i = 0; i < n; ++i)
            for (index_t l = 0; l < m; ++l) {
                const std::int32_t v = codes.row(i)[l];
                RECBLOCKS_CHECK_INDEX(v >= 0 && v < sizes[static_cast<std::size_t>(l)], op, ": item ", i, " has code ",
                                      v, " at level ", l, ", outside [0, ", sizes[static_cast<std::size_t>(l)], ")");
                c[static_cast<std::size_t>(i * m + l)] = v;
            }
        std::vector<row_id_t> order;
        detail::sort_rows(c.data(), n, m, order);
        const std::int32_t* cp = c.data();
        auto row = [&](index_t s) { return cp + order[static_cast<std::size_t>(s)] * m; };
        for (index_t s = 1; s < n; ++s)
            if (duplicates == DuplicateIds::reject && detail::compare_tuples(row(s - 1), row(s), m) == 0) {
                std::string t;
                for (index_t l = 0; l < m; ++l) t += (l ? ", " : "") + std::to_string(row(s)[l]);
                throw ValueError(recblocks::detail::concat(op, ": items ", order[static_cast<std::size_t>(s - 1)], " and ",
                                                order[static_cast<std::size_t>(s)], " have the same ID (", t,
                                                "); make IDs unique first (SemanticIds::with_disambiguation_code) "
                                                "or build with DuplicateIds::map_to_all"));
            }

        depth_ = m;
        sizes_.assign(sizes.begin(), sizes.end());
        edge_code_.clear();
        level_begin_.assign(static_cast<std::size_t>(m + 2), 0);
        std::vector<node_t> parent_of_node{kNoNode};  // node -> parent
        std::vector<node_t> node_at(static_cast<std::size_t>(n), kRoot);  // sorted position -> node at depth d
        level_begin_[1] = 1;
        for (index_t d = 0; d < m; ++d) {
            node_t prev_parent = kNoNode;
            for (index_t s = 0; s < n; ++s) {
                const node_t parent = node_at[static_cast<std::size_t>(s)];
                const bool fresh = parent != prev_parent || row(s)[d] != row(s - 1)[d];
                prev_parent = parent;
                if (fresh) {
                    edge_code_.push_back(row(s)[d]);
                    parent_of_node.push_back(parent);
                }
                node_at[static_cast<std::size_t>(s)] = static_cast<node_t>(edge_code_.size());
            }
            level_begin_[static_cast<std::size_t>(d + 2)] = static_cast<node_t>(edge_code_.size()) + 1;
        }
        const auto nodes = static_cast<std::size_t>(edge_code_.size()) + 1;
        // Children of a node are consecutive edges, parents in increasing order:
        // count children per node, then prefix sums give each node's first edge.
        edge_begin_.assign(nodes + 1, 0);
        for (std::size_t v = 1; v < nodes; ++v) ++edge_begin_[static_cast<std::size_t>(parent_of_node[v]) + 1];
        for (std::size_t v = 0; v < nodes; ++v) edge_begin_[v + 1] += edge_begin_[v];
        // Leaves: items in sorted order are grouped by leaf, leaves ascending.
        const node_t first_leaf = level_begin_[static_cast<std::size_t>(m)];
        leaf_item_begin_.assign(nodes - static_cast<std::size_t>(first_leaf) + 1, 0);
        items_.resize(static_cast<std::size_t>(n));
        for (index_t s = 0; s < n; ++s) {
            items_[static_cast<std::size_t>(s)] = order[static_cast<std::size_t>(s)];
            ++leaf_item_begin_[static_cast<std::size_t>(node_at[static_cast<std::size_t>(s)] - first_leaf) + 1];
        }
        for (std::size_t l = 0; l + 1 < leaf_item_begin_.size(); ++l) leaf_item_begin_[l + 1] += leaf_item_begin_[l];
    }

    index_t depth_ = 0;
    std::vector<std::int32_t> sizes_;
    std::vector<std::int32_t> edge_code_;        // edge e's code; edge e leads to node e + 1
    std::vector<std::int32_t> edge_begin_;       // node -> first edge (CSR, nodes + 1 entries)
    std::vector<node_t> level_begin_;            // depth -> first node (L + 2 entries)
    std::vector<std::int32_t> leaf_item_begin_;  // leaf -> first entry of items_ (CSR)
    std::vector<row_id_t> items_;                // item ids grouped by leaf, ascending within a leaf
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
