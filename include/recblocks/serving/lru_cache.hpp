#pragma once
// A bounded map that forgets the least recently used entry when full: the
// per-user state of a server (serving/user_history.hpp), so memory stays
// capacity × (one entry) however many users come by.
//
// find() and get_or_insert() count as a use. When the cache is full, a new
// key takes over the node of the least recently used entry (its value is
// reset through `reset` before reuse), so the list stops allocating once the
// cache has filled; the hash index still allocates one node per insert.
// Not thread-safe: one owner (a server's batching thread) uses it.
#include <cstddef>
#include <functional>
#include <list>
#include <unordered_map>
#include <utility>

#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace serving {

template <class Key, class Value, class Hash = std::hash<Key>>
class LruCache {
public:
    /// ValueError if capacity is 0.
    explicit LruCache(std::size_t capacity) : capacity_(capacity) {
        RECBLOCKS_CHECK_VALUE(capacity >= 1, "LruCache: capacity must be >= 1, got ", capacity);
        index_.reserve(capacity);
    }

    [[nodiscard]] std::size_t size() const { return index_.size(); }
    [[nodiscard]] std::size_t capacity() const { return capacity_; }
    /// Entries dropped to make room so far.
    [[nodiscard]] std::size_t evictions() const { return evictions_; }
    [[nodiscard]] bool contains(const Key& k) const { return index_.count(k) != 0; }

    /// The value of k (now the most recently used), or nullptr.
    Value* find(const Key& k) {
        const auto it = index_.find(k);
        if (it == index_.end()) return nullptr;
        order_.splice(order_.begin(), order_, it->second);
        return &it->second->second;
    }

    /// The value of k, inserted as `make()` if absent (evicting the least
    /// recently used entry when full; its node and value are reused: `reuse`
    /// is called on the old value instead of make() then). `inserted` says which.
    template <class Make, class Reuse>
    Value& get_or_insert(const Key& k, Make&& make, Reuse&& reuse, bool* inserted = nullptr) {
        if (Value* v = find(k)) {
            if (inserted) *inserted = false;
            return *v;
        }
        if (inserted) *inserted = true;
        if (index_.size() == capacity_) {
            auto last = std::prev(order_.end());
            index_.erase(last->first);
            ++evictions_;
            last->first = k;
            reuse(last->second);
            order_.splice(order_.begin(), order_, last);
        } else {
            order_.emplace_front(k, make());
        }
        index_.emplace(k, order_.begin());
        return order_.front().second;
    }

    /// Removes k; false if absent.
    bool erase(const Key& k) {
        const auto it = index_.find(k);
        if (it == index_.end()) return false;
        order_.erase(it->second);
        index_.erase(it);
        return true;
    }

    /// Keys from the most to the least recently used (for tests and inspection).
    template <class F>
    void for_each(F&& f) const {
        for (const auto& [k, v] : order_) f(k, v);
    }

private:
    std::size_t capacity_;
    std::size_t evictions_ = 0;
    std::list<std::pair<Key, Value>> order_;  // front = most recently used
    std::unordered_map<Key, typename std::list<std::pair<Key, Value>>::iterator, Hash> index_;
};

}  // namespace serving
RECBLOCKS_NAMESPACE_END
