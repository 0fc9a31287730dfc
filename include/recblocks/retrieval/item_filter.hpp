#pragma once
// Per-query filters of allowed items (category rules, availability, already
// seen items cleared): a bitset over item ids, bit i of word i / 64 set when
// item i may be returned. ExactIndex::search_filtered and IvfIndex's
// filtered searches take one per query (or one for a whole batch).
//
//   retrieval::ItemBitset allowed(index.size());       // all clear
//   for (row_id_t id : in_stock) allowed.set(id);
//   index.search_filtered(be, query, 10, ids, scores, allowed.view());
//
// A filter is a view (it does not own the words); its words must cover every
// id of the index (ShapeError otherwise).
#include <bit>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace retrieval {

/// A view of a bitset of allowed item ids.
struct AllowedItems {
    std::span<const std::uint64_t> words;

    /// Whether item `id` is allowed (ids beyond the words: no).
    [[nodiscard]] bool allows(row_id_t id) const {
        const auto w = static_cast<std::size_t>(id) >> 6;
        return w < words.size() && ((words[w] >> (static_cast<unsigned>(id) & 63u)) & 1u);
    }

    /// How many of the ids [0, n) are allowed.
    [[nodiscard]] index_t count(index_t n) const {
        index_t c = 0;
        const auto full = static_cast<std::size_t>(n >> 6);
        for (std::size_t w = 0; w < full && w < words.size(); ++w) c += std::popcount(words[w]);
        if ((n & 63) && full < words.size()) c += std::popcount(words[full] & ((std::uint64_t{1} << (n & 63)) - 1));
        return c;
    }

    /// ShapeError unless the words cover ids [0, n).
    void check_covers(std::string_view op, index_t n) const {
        RECBLOCKS_CHECK_SHAPE(index_t(words.size()) * 64 >= n, op, ": the filter has ", words.size(),
                              " words (", words.size() * 64, " ids) but the index has ids up to ", n - 1);
    }
};

/// An owning bitset of item ids (all clear at first).
class ItemBitset {
public:
    ItemBitset() = default;
    explicit ItemBitset(index_t n) : words_(static_cast<std::size_t>((n + 63) / 64), 0) {}

    void set(row_id_t id) { words_.at(static_cast<std::size_t>(id) >> 6) |= bit(id); }
    void reset(row_id_t id) { words_.at(static_cast<std::size_t>(id) >> 6) &= ~bit(id); }
    [[nodiscard]] AllowedItems view() const { return {words_}; }

private:
    static std::uint64_t bit(row_id_t id) { return std::uint64_t{1} << (static_cast<unsigned>(id) & 63u); }
    std::vector<std::uint64_t> words_;
};

}  // namespace retrieval
RECBLOCKS_NAMESPACE_END
