#pragma once
// AlignedBuffer: an owning, 64-byte aligned array of trivially copyable
// elements. 64 bytes is one cache line and one AVX-512 register.
// Buffers of 4 MiB and more are aligned to 2 MiB and, on Linux, asked to be
// backed by transparent huge pages (madvise, before the first touch): a
// streamed table then takes one page fault and one TLB entry per 2 MiB instead
// of per 4 KiB (measured: DARE's gathered search 2.5x -> 3.0x; docs/dare.md).
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "recblocks/core/check.hpp"
#include "recblocks/core/shape.hpp"

RECBLOCKS_NAMESPACE_BEGIN

inline constexpr std::size_t kAlignment = 64;
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

template <class T>
class AlignedBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "AlignedBuffer holds trivially copyable types");

public:
    AlignedBuffer() = default;
    /// `n` elements, zero-initialised.
    explicit AlignedBuffer(index_t n) { resize(n); }
    AlignedBuffer(const AlignedBuffer& o) : AlignedBuffer(o.size_) {
        if (size_) std::memcpy(static_cast<void*>(data_), o.data_, bytes(size_));
    }
    AlignedBuffer(AlignedBuffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    AlignedBuffer& operator=(AlignedBuffer o) noexcept {
        std::swap(data_, o.data_);
        std::swap(size_, o.size_);
        return *this;
    }
    ~AlignedBuffer() { std::free(data_); }

    /// Reallocates to `n` zeroed elements (contents are not kept).
    void resize(index_t n) {
        RECBLOCKS_CHECK_VALUE(n >= 0, "AlignedBuffer: negative size ", n);
        if (n == size_) {
            if (n) std::memset(static_cast<void*>(data_), 0, bytes(n));  // void*: bf16/f16 are not trivial types (-Wclass-memaccess)
            return;
        }
        std::free(data_);
        data_ = nullptr;
        size_ = 0;
        if (n == 0) return;
        // aligned_alloc wants a size that is a multiple of the alignment.
        const bool huge = bytes(n) >= 2 * kHugePageBytes;
        const std::size_t align = huge ? kHugePageBytes : kAlignment;
        const std::size_t padded = (bytes(n) + align - 1) / align * align;
        data_ = static_cast<T*>(std::aligned_alloc(align, padded));
        if (!data_) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
        if (huge) (void)madvise(static_cast<void*>(data_), padded, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
        std::memset(static_cast<void*>(data_), 0, padded);
        size_ = n;
    }

    [[nodiscard]] T* data() noexcept { return data_; }
    [[nodiscard]] const T* data() const noexcept { return data_; }
    [[nodiscard]] index_t size() const noexcept { return size_; }
    T& operator[](index_t i) noexcept { return data_[i]; }
    const T& operator[](index_t i) const noexcept { return data_[i]; }
    T* begin() noexcept { return data_; }
    T* end() noexcept { return data_ + size_; }
    const T* begin() const noexcept { return data_; }
    const T* end() const noexcept { return data_ + size_; }

private:
    static std::size_t bytes(index_t n) { return static_cast<std::size_t>(n) * sizeof(T); }
    T* data_ = nullptr;
    index_t size_ = 0;
};

RECBLOCKS_NAMESPACE_END
