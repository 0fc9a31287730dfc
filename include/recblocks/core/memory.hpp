#pragma once
// Memory spaces: where a Tensor's elements live and how they are allocated,
// zeroed, copied and moved to and from the host. A backend names its space
// (backend/memory.hpp: host memory for Reference and Cpu, device memory for
// Cuda), so one component class holds its parameters, gradients and scratch
// wherever the backend it is instantiated for computes.
//
// A memory space is a small copyable value (it may carry context, e.g. a CUDA
// stream) with
//   static constexpr bool host_accessible;          // may the host dereference its pointers?
//   void* allocate(std::size_t bytes) const;         // zero-filled, 64-byte aligned; throws on failure
//   void deallocate(void* p, std::size_t bytes) const noexcept;
//   void zero(void* p, std::size_t bytes) const;
//   void copy(void* dst, const void* src, std::size_t bytes) const;       // within the space
//   void upload(void* dst, const void* host, std::size_t bytes) const;    // host -> space
//   void download(void* host, const void* src, std::size_t bytes) const;  // space -> host; done on return
#include <concepts>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN

inline constexpr std::size_t kAlignment = 64;
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

template <class M>
concept MemorySpace = std::copyable<M> && requires(const M& m, void* p, const void* q, std::size_t n) {
    { M::host_accessible } -> std::convertible_to<bool>;
    { m.allocate(n) } -> std::same_as<void*>;
    m.deallocate(p, n);
    m.zero(p, n);
    m.copy(p, q, n);
    m.upload(p, q, n);
    m.download(p, q, n);
};

namespace detail {
/// zero / copy / upload / download of a host-accessible space: plain memset and memcpy.
struct HostCopies {
    void zero(void* p, std::size_t bytes) const {
        if (bytes) std::memset(p, 0, bytes);
    }
    void copy(void* dst, const void* src, std::size_t bytes) const {
        if (bytes) std::memcpy(dst, src, bytes);
    }
    void upload(void* dst, const void* host, std::size_t bytes) const { copy(dst, host, bytes); }
    void download(void* host, const void* src, std::size_t bytes) const { copy(host, src, bytes); }
    bool operator==(const HostCopies&) const = default;
};
}  // namespace detail

/// Host memory: 64-byte aligned. Blocks of 4 MiB and more are aligned to 2 MiB
/// and, on Linux, asked to be backed by transparent huge pages (madvise, before
/// the first touch): a streamed table then takes one page fault and one TLB
/// entry per 2 MiB instead of per 4 KiB (DARE's gathered search 2.5x -> 3.0x; docs/dare.md).
struct HostMemory : detail::HostCopies {
    static constexpr bool host_accessible = true;

    [[nodiscard]] void* allocate(std::size_t bytes) const {
        // aligned_alloc wants a size that is a multiple of the alignment.
        const bool huge = bytes >= 2 * kHugePageBytes;
        const std::size_t align = huge ? kHugePageBytes : kAlignment;
        const std::size_t padded = (bytes + align - 1) / align * align;
        void* p = std::aligned_alloc(align, padded);
        if (!p) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
        if (huge) (void)madvise(p, padded, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
        std::memset(p, 0, padded);
        return p;
    }
    void deallocate(void* p, std::size_t) const noexcept { std::free(p); }
    bool operator==(const HostMemory&) const = default;
};

static_assert(MemorySpace<HostMemory>);

/// Where a component working in Memory keeps the host-side copies of its
/// inputs (ids, masks) before they are uploaded: ordinary host memory, except
/// where the device copies best (or only, inside a captured CUDA graph) from
/// page-locked memory — backend/cuda/memory.hpp maps CudaMemory to
/// CudaPinnedMemory. A staging space is always host accessible.
template <MemorySpace Memory>
struct StagingMemory {
    using type = HostMemory;
};
template <MemorySpace Memory>
using staging_memory_t = typename StagingMemory<Memory>::type;

/// Called by a component before it rewrites its staging buffers: returns once
/// no upload from them is still in flight. Uploads into host memory are done
/// on return, so this waits for nothing; backend/cuda/memory.hpp overloads it
/// for CudaMemory (uploads from page-locked memory are asynchronous).
template <MemorySpace Memory>
void wait_for_staged_uploads(const Memory&) {}

RECBLOCKS_NAMESPACE_END
