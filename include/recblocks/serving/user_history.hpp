#pragma once
// A user's state between two requests to a server: the newest `max_len`
// items of their history (dense ids, oldest first). The model recomputes the
// user from it on every request (SASRec::score_all on the left-padded
// window). NextItemService keeps it for models without an exact incremental
// state (per-layer keys and values, models/incremental_sasrec.hpp), which it
// keeps instead when the model has one.
//
// Memory per user: max_len × 4 bytes of ids (reserved once) plus about 100
// bytes of bookkeeping (the vector, the cache's list and hash nodes, the key).
#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

class UserHistory {
public:
    explicit UserHistory(index_t max_len) : max_len_(max_len) {
        RECBLOCKS_CHECK_VALUE(max_len >= 1, "UserHistory: max_len must be >= 1, got ", max_len);
        items_.reserve(static_cast<std::size_t>(max_len));
    }

    /// Forgets everything (a reused cache entry starts empty).
    void clear() { items_.clear(); }
    /// Replaces the history by `items` (oldest first); keeps the newest max_len.
    void assign(std::span<const row_id_t> items) {
        items_.clear();
        append(items);
    }
    /// Appends new events (oldest first); the window slides past max_len.
    void append(std::span<const row_id_t> items) {
        const auto l = static_cast<std::size_t>(max_len_);
        if (items.size() >= l) {
            items_.assign(items.end() - static_cast<std::ptrdiff_t>(l), items.end());
            return;
        }
        const std::size_t keep = std::min(items_.size(), l - items.size());
        items_.erase(items_.begin(), items_.end() - static_cast<std::ptrdiff_t>(keep));
        items_.insert(items_.end(), items.begin(), items.end());
    }

    /// The kept items, oldest first (at most max_len).
    [[nodiscard]] std::span<const row_id_t> items() const { return items_; }
    [[nodiscard]] bool empty() const { return items_.empty(); }
    [[nodiscard]] index_t max_len() const { return max_len_; }

    /// Writes the model's input row [max_len]: zeros, then the items (left padding).
    void write_window(std::span<row_id_t> row) const {
        RECBLOCKS_CHECK_SHAPE(row.size() == static_cast<std::size_t>(max_len_), "UserHistory::write_window: row has ",
                              row.size(), " slots but max_len is ", max_len_);
        const std::size_t pad = row.size() - items_.size();
        std::fill(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(pad), row_id_t{0});
        std::copy(items_.begin(), items_.end(), row.begin() + static_cast<std::ptrdiff_t>(pad));
    }

    /// Bytes one cached user holds (ids plus bookkeeping; see the top of this file).
    [[nodiscard]] static constexpr std::size_t bytes_per_user(index_t max_len) {
        return static_cast<std::size_t>(max_len) * sizeof(row_id_t) + 100;
    }

private:
    index_t max_len_;
    std::vector<row_id_t> items_;
};

}  // namespace serving
RECBLOCKS_NAMESPACE_END
