// Per-thread default cuBLAS handles for backend::Cuda values that name none.
#include <cstdint>
#include <mutex>
#include <vector>

#include "recblocks/backend/cuda/cuda.hpp"
#include "recblocks/backend/cuda/memory.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace {

/// One handle per device ordinal for the owning thread; destroyed at thread
/// exit (errors ignored: the CUDA runtime may already be shutting down).
struct ThreadHandles {
    std::vector<cublasHandle_t> by_device;
    ThreadHandles() = default;
    ThreadHandles(const ThreadHandles&) = delete;
    ThreadHandles& operator=(const ThreadHandles&) = delete;
    ~ThreadHandles() {
        for (cublasHandle_t h : by_device)
            if (h != nullptr) (void)cublasDestroy(h);
    }
};

}  // namespace

namespace detail {

cublasHandle_t default_cublas_handle() {
    thread_local ThreadHandles handles;
    int device = 0;
    RECBLOCKS_CUDA_CHECK(cudaGetDevice(&device));
    if (handles.by_device.size() <= static_cast<std::size_t>(device))
        handles.by_device.resize(static_cast<std::size_t>(device) + 1, nullptr);
    cublasHandle_t& h = handles.by_device[static_cast<std::size_t>(device)];
    if (h == nullptr) RECBLOCKS_CUBLAS_CHECK(cublasCreate(&h));
    return h;
}

void retain_cuda_pool_memory() {
    static std::mutex mutex;
    static std::vector<bool> done;  // by device ordinal
    int device = 0;
    RECBLOCKS_CUDA_CHECK(cudaGetDevice(&device));
    const std::lock_guard<std::mutex> lock(mutex);
    if (done.size() <= static_cast<std::size_t>(device)) done.resize(static_cast<std::size_t>(device) + 1, false);
    if (done[static_cast<std::size_t>(device)]) return;
    cudaMemPool_t pool = nullptr;
    RECBLOCKS_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    std::uint64_t keep_all = UINT64_MAX;
    RECBLOCKS_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
    done[static_cast<std::size_t>(device)] = true;
}

}  // namespace detail
RECBLOCKS_NAMESPACE_END
