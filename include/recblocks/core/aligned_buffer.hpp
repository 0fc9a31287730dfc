#pragma once
// AlignedBuffer: an owning, 64-byte aligned array of trivially copyable
// elements in a memory space (core/memory.hpp; host memory by default, where
// buffers of 4 MiB and more sit on transparent huge pages). 64 bytes is one
// cache line and one AVX-512 register. Copies are deep and stay in the space.
#include <cstddef>
#include <type_traits>
#include <utility>

#include "recblocks/core/check.hpp"
#include "recblocks/core/memory.hpp"
#include "recblocks/core/shape.hpp"

RECBLOCKS_NAMESPACE_BEGIN

template <class T, MemorySpace Memory = HostMemory>
class AlignedBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "AlignedBuffer holds trivially copyable types");

public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(Memory memory) : memory_(memory) {}
    /// `n` elements, zero-initialised.
    explicit AlignedBuffer(index_t n, Memory memory = {}) : memory_(memory) { resize(n); }
    AlignedBuffer(const AlignedBuffer& o) : AlignedBuffer(o.size_, o.memory_) {
        if (size_) memory_.copy(data_, o.data_, bytes(size_));
    }
    AlignedBuffer(AlignedBuffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
          capacity_(std::exchange(o.capacity_, 0)), memory_(o.memory_) {}
    AlignedBuffer& operator=(AlignedBuffer o) noexcept {
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
        std::swap(capacity_, o.capacity_);
        std::swap(memory_, o.memory_);
        return *this;
    }
    ~AlignedBuffer() { release(); }

    /// `n` zeroed elements (contents are not kept). The allocation only grows:
    /// a size within the largest one so far reuses it (a server whose batches
    /// vary in size touches no new pages); resize(0) frees it.
    void resize(index_t n) {
        RECBLOCKS_CHECK_VALUE(n >= 0, "AlignedBuffer: negative size ", n);
        if (n > 0 && n <= capacity_) {
            size_ = n;
            memory_.zero(data_, bytes(n));
            return;
        }
        release();
        if (n == 0) return;
        data_ = static_cast<T*>(memory_.allocate(bytes(n)));
        size_ = capacity_ = n;
    }
    /// Elements the allocation holds (>= size()).
    [[nodiscard]] index_t capacity() const noexcept { return capacity_; }

    [[nodiscard]] T* data() noexcept { return data_; }
    [[nodiscard]] const T* data() const noexcept { return data_; }
    [[nodiscard]] index_t size() const noexcept { return size_; }
    [[nodiscard]] const Memory& memory() const noexcept { return memory_; }
    T& operator[](index_t i) noexcept requires(Memory::host_accessible) { return data_[i]; }
    const T& operator[](index_t i) const noexcept requires(Memory::host_accessible) { return data_[i]; }
    T* begin() noexcept requires(Memory::host_accessible) { return data_; }
    T* end() noexcept requires(Memory::host_accessible) { return data_ + size_; }
    const T* begin() const noexcept requires(Memory::host_accessible) { return data_; }
    const T* end() const noexcept requires(Memory::host_accessible) { return data_ + size_; }

private:
    static std::size_t bytes(index_t n) { return static_cast<std::size_t>(n) * sizeof(T); }
    void release() noexcept {
        if (data_) memory_.deallocate(data_, bytes(capacity_));
        data_ = nullptr;
        size_ = capacity_ = 0;
    }
    T* data_ = nullptr;
    index_t size_ = 0;
    index_t capacity_ = 0;
    [[no_unique_address]] Memory memory_{};
};

RECBLOCKS_NAMESPACE_END
