#pragma once
// CudaMemory: device memory for backend::Cuda's tensors (TensorOn<T, R, Cuda>).
// Allocations are stream-ordered (cudaMallocAsync / cudaFreeAsync on the
// backend's stream) from the device's default memory pool, which is told to
// keep freed memory (release threshold: unlimited), so a tensor resized back
// and forth or a workspace rebuilt per batch reuses pooled memory instead of
// calling the driver. Uploads are ordered on the stream (the host buffer may be
// reused on return); downloads wait for the stream.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstring>

#include "recblocks/backend/cuda/cuda.hpp"
#include "recblocks/backend/memory.hpp"

RECBLOCKS_NAMESPACE_BEGIN

namespace detail {
/// Sets the current device's default memory pool to keep freed memory; once
/// per device and process (defined in src/cuda/context.cu).
void retain_cuda_pool_memory();
}  // namespace detail

struct CudaMemory {
    static constexpr bool host_accessible = false;
    cudaStream_t stream = nullptr;

    [[nodiscard]] void* allocate(std::size_t bytes) const {
        detail::retain_cuda_pool_memory();
        const std::size_t padded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
        void* p = nullptr;
        RECBLOCKS_CUDA_CHECK(cudaMallocAsync(&p, padded, stream));
        RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(p, 0, padded, stream));
        return p;
    }
    void deallocate(void* p, std::size_t) const noexcept { (void)cudaFreeAsync(p, stream); }
    void zero(void* p, std::size_t bytes) const {
        if (bytes) RECBLOCKS_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
    }
    void copy(void* dst, const void* src, std::size_t bytes) const {
        if (bytes) RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    }
    void upload(void* dst, const void* host, std::size_t bytes) const {
        if (bytes) RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, stream));
    }
    void download(void* host, const void* src, std::size_t bytes) const {
        if (!bytes) return;
        RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, stream));
        RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    bool operator==(const CudaMemory&) const = default;
};

static_assert(MemorySpace<CudaMemory>);

/// Page-locked host memory (cudaMallocHost): host accessible, and the source
/// of uploads that the GPU copies by DMA without a staging copy — the only
/// kind a captured CUDA graph may copy from. Models on CudaMemory stage their
/// ids and masks here (staging_memory_t<CudaMemory>).
struct CudaPinnedMemory : detail::HostCopies {
    static constexpr bool host_accessible = true;

    [[nodiscard]] void* allocate(std::size_t bytes) const {
        const std::size_t padded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
        void* p = nullptr;
        RECBLOCKS_CUDA_CHECK(cudaMallocHost(&p, padded ? padded : kAlignment));
        std::memset(p, 0, padded);
        return p;
    }
    void deallocate(void* p, std::size_t) const noexcept { (void)cudaFreeHost(p); }
    bool operator==(const CudaPinnedMemory&) const = default;
};

static_assert(MemorySpace<CudaPinnedMemory>);

template <>
struct StagingMemory<CudaMemory> {
    using type = CudaPinnedMemory;
};

/// An upload from page-locked memory may still be reading it: wait for the
/// stream before the staging buffers are rewritten (found by ADL, preferred
/// over the generic no-op).
inline void wait_for_staged_uploads(const CudaMemory& memory) {
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(memory.stream));
}

template <>
struct BackendMemory<backend::Cuda> {
    using type = CudaMemory;
    static CudaMemory of(const backend::Cuda& be) { return {be.stream}; }
};

RECBLOCKS_NAMESPACE_END
