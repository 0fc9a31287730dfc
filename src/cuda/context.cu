// Per-thread default cuBLAS handles for backend::Cuda values that name none.
#include <vector>

#include "recblocks/backend/cuda/cuda.hpp"

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

}  // namespace detail
RECBLOCKS_NAMESPACE_END
