#pragma once
// Workspace: a bump allocator for scratch memory that is reused across calls.
// Touching fresh pages costs ~10 µs each on some hosts and glibc returns large
// blocks to the kernel, so hot paths take their scratch from a Workspace that
// grows to its high-water mark during warm-up and then never allocates again.
//
//   Workspace ws;
//   for (...) { ws.reset(); float* tmp = ws.take<float>(n); ... }
#include <cstddef>
#include <cstdint>
#include <vector>

#include "recblocks/core/aligned_buffer.hpp"

RECBLOCKS_NAMESPACE_BEGIN

class Workspace {
public:
    Workspace() = default;
    /// Pre-sizes the arena to `bytes` so even the first call does not grow it.
    explicit Workspace(std::size_t bytes) { reserve(bytes); }

    /// Ensures at least `bytes` of capacity. Only valid when nothing is taken.
    void reserve(std::size_t bytes) {
        RECBLOCKS_CHECK_VALUE(used_ == 0 && overflow_.empty(),
                              "Workspace::reserve: called while ", used_, " bytes are taken; call reset() first");
        if (bytes > static_cast<std::size_t>(arena_.size())) {
            arena_.resize(static_cast<index_t>(round_up(bytes)));
            ++growths_;
        }
    }

    /// `n` elements of scratch, 64-byte aligned, valid until reset(). Contents
    /// are unspecified. When the arena is full the request is served from an
    /// overflow block, and the next reset() grows the arena to fit them all.
    template <class T>
    [[nodiscard]] T* take(index_t n) {
        RECBLOCKS_CHECK_VALUE(n >= 0, "Workspace::take: negative element count ", n);
        const std::size_t bytes = round_up(static_cast<std::size_t>(n) * sizeof(T));
        if (used_ + bytes <= static_cast<std::size_t>(arena_.size())) {
            T* p = reinterpret_cast<T*>(arena_.data() + used_);
            used_ += bytes;
            return p;
        }
        overflow_.emplace_back(static_cast<index_t>(bytes));
        overflow_bytes_ += bytes;
        ++growths_;
        return reinterpret_cast<T*>(overflow_.back().data());
    }

    /// Releases everything taken; folds overflow into one larger arena so the
    /// next round of the same requests is served without allocating.
    void reset() {
        const std::size_t need = used_ + overflow_bytes_;
        used_ = 0;
        if (!overflow_.empty()) {
            overflow_.clear();
            overflow_bytes_ = 0;
            arena_.resize(static_cast<index_t>(round_up(need)));
        }
    }

    [[nodiscard]] std::size_t capacity() const { return static_cast<std::size_t>(arena_.size()); }
    [[nodiscard]] std::size_t used() const { return used_ + overflow_bytes_; }
    /// How many times memory was allocated; constant after warm-up.
    [[nodiscard]] std::size_t growth_count() const { return growths_; }

private:
    static std::size_t round_up(std::size_t b) { return (b + kAlignment - 1) / kAlignment * kAlignment; }
    AlignedBuffer<std::byte> arena_;
    std::vector<AlignedBuffer<std::byte>> overflow_;
    std::size_t used_ = 0;
    std::size_t overflow_bytes_ = 0;
    std::size_t growths_ = 0;
};

RECBLOCKS_NAMESPACE_END
