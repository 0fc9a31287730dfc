#pragma once
// The CUDA backend tag and its host-side utilities.
//
//   backend::Cuda        a cheap value: the stream to launch on and, optionally,
//                        the cuBLAS handle to use. Default-constructed it works:
//                        the legacy default stream and a per-thread, per-device
//                        cuBLAS handle created on first use.
//   DeviceBuffer<T>      owning device memory (cudaMalloc / cudaFree), move-only,
//                        with copies from and to host spans and matrix views.
//   cuda_device_count()  number of usable devices; 0 (never throws) when there is
//                        no driver or no GPU.
//   RECBLOCKS_CUDA_CHECK / RECBLOCKS_CUBLAS_CHECK  turn a failed cudaError_t /
//                        cublasStatus_t into recblocks::BackendError naming the
//                        call, file:line and the CUDA error string.
//
// Memory model: every TensorView passed to Primitives<backend::Cuda> (and so to
// ops:: with a Cuda backend) points to DEVICE memory. Kernels run on
// `Cuda::stream`; primitives that return a value or must report a data error
// (dot, sum, max_value, top_k_rows, gather_rows, scatter_add_rows) synchronise
// that stream before returning; the others are asynchronous.
//
// This header needs the CUDA toolkit's include directory (CUDA::cudart) and the
// library recblocks::cuda at link time; it is not part of the header-only core.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <climits>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN

namespace detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
    throw BackendError(concat("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in `", call,
                              "` at ", file, ":", line));
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t st, const char* call, const char* file, int line) {
    throw BackendError(concat("cuBLAS error ", cublasGetStatusName(st), " (", cublasGetStatusString(st), ") in `",
                              call, "` at ", file, ":", line));
}

}  // namespace detail

RECBLOCKS_NAMESPACE_END

/// Evaluates a CUDA runtime call; throws recblocks::BackendError unless it returns cudaSuccess.
#define RECBLOCKS_CUDA_CHECK(call)                                                              \
    do {                                                                                        \
        const cudaError_t recblocks_cuda_err_ = (call);                                         \
        if (recblocks_cuda_err_ != cudaSuccess) [[unlikely]]                                    \
            ::recblocks::detail::throw_cuda_error(recblocks_cuda_err_, #call, __FILE__, __LINE__); \
    } while (0)

/// Evaluates a cuBLAS call; throws recblocks::BackendError unless it returns CUBLAS_STATUS_SUCCESS.
#define RECBLOCKS_CUBLAS_CHECK(call)                                                                \
    do {                                                                                            \
        const cublasStatus_t recblocks_cublas_st_ = (call);                                         \
        if (recblocks_cublas_st_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                             \
            ::recblocks::detail::throw_cublas_error(recblocks_cublas_st_, #call, __FILE__, __LINE__); \
    } while (0)

RECBLOCKS_NAMESPACE_BEGIN

/// Number of CUDA devices this process can use; 0 when there is no driver, no
/// device, or the runtime cannot initialise. Never throws.
inline int cuda_device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the (non-sticky) error for later calls
        return 0;
    }
    return n;
}

namespace detail {
/// The calling thread's cuBLAS handle for the current device, created on first
/// use and destroyed when the thread exits (defined in src/cuda/context.cu).
cublasHandle_t default_cublas_handle();
}  // namespace detail

namespace backend {

/// CUDA backend tag. A trivially copyable value; copying it does not copy or
/// own the stream or handle.
///
/// @var stream  stream every kernel and cuBLAS call is issued on; nullptr is the
///              legacy default stream. The caller owns it.
/// @var cublas  cuBLAS handle for gemm; nullptr uses a per-thread default handle
///              (one per device, created on first use). A handle given here must be
///              in CUBLAS_POINTER_MODE_HOST (the default); gemm binds `stream` to it
///              (cublasSetStream) before each call.
/// @var trusted_ids  the ids passed to gather_rows were checked on the host (as
///              the models do when they stage their inputs): the kernel still
///              refuses to write on a bad id, but the call does not wait for the
///              device to report one. What a captured CUDA graph needs
///              (backend/cuda/graph.hpp sets it); false by default.
struct Cuda {
    cudaStream_t stream = nullptr;
    cublasHandle_t cublas = nullptr;
    bool trusted_ids = false;

    /// The handle gemm uses: `cublas`, or the thread's default one.
    [[nodiscard]] cublasHandle_t blas() const { return cublas != nullptr ? cublas : detail::default_cublas_handle(); }
    /// Blocks until every call issued on `stream` has finished.
    void synchronize() const { RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream)); }
};

}  // namespace backend

/// Owning, uninitialised device memory for `size()` elements of T (cudaMalloc).
/// Move-only. Copies are synchronous with respect to the host: they are issued
/// on `stream` (default: the legacy default stream) and wait for it.
template <class T>
class DeviceBuffer {
    static_assert(std::is_trivially_copyable_v<T>, "DeviceBuffer holds trivially copyable elements");

public:
    DeviceBuffer() = default;
    /// Allocates n elements (no allocation for n == 0).
    explicit DeviceBuffer(index_t n) {
        RECBLOCKS_CHECK_VALUE(n >= 0, "DeviceBuffer: negative size ", n);
        if (n > 0) {
            void* p = nullptr;
            RECBLOCKS_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(n) * sizeof(T)));
            data_ = static_cast<T*>(p);
            size_ = n;
        }
    }
    /// Allocates and fills from host memory.
    static DeviceBuffer from_host(std::span<const T> host, cudaStream_t stream = nullptr) {
        DeviceBuffer b(static_cast<index_t>(host.size()));
        b.copy_from_host(host, stream);
        return b;
    }

    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            release();
            data_ = std::exchange(o.data_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    ~DeviceBuffer() { release(); }

    [[nodiscard]] T* data() { return data_; }
    [[nodiscard]] const T* data() const { return data_; }
    [[nodiscard]] index_t size() const { return size_; }
    [[nodiscard]] bool empty() const { return size_ == 0; }

    /// The whole buffer as a (device) vector view.
    [[nodiscard]] VectorView<T> view() { return vector_view(data_, size_); }
    [[nodiscard]] VectorView<const T> view() const { return vector_view<const T>(data_, size_); }
    /// The first rows * ld elements as a rows x cols (device) matrix with leading dimension ld (default cols).
    [[nodiscard]] MatrixView<T> matrix(index_t rows, index_t cols, index_t ld = -1) {
        if (ld < 0) ld = cols;
        check_fits(rows, cols, ld);
        return matrix_view(data_, rows, cols, ld);
    }
    [[nodiscard]] MatrixView<const T> matrix(index_t rows, index_t cols, index_t ld = -1) const {
        if (ld < 0) ld = cols;
        check_fits(rows, cols, ld);
        return matrix_view<const T>(data_, rows, cols, ld);
    }

    /// Copies host.size() == size() elements from the host.
    void copy_from_host(std::span<const T> host, cudaStream_t stream = nullptr) {
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(host.size()) == size_, "DeviceBuffer::copy_from_host: host has ",
                              host.size(), " elements but the buffer has ", size_);
        if (size_ == 0) return;
        RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(data_, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream));
        RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    /// Copies size() elements to host.size() == size() host elements.
    void copy_to_host(std::span<T> host, cudaStream_t stream = nullptr) const {
        RECBLOCKS_CHECK_SHAPE(static_cast<index_t>(host.size()) == size_, "DeviceBuffer::copy_to_host: host has ",
                              host.size(), " elements but the buffer has ", size_);
        if (size_ == 0) return;
        RECBLOCKS_CUDA_CHECK(cudaMemcpyAsync(host.data(), data_, host.size_bytes(), cudaMemcpyDeviceToHost, stream));
        RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    /// The contents as a host vector.
    [[nodiscard]] std::vector<T> to_host(cudaStream_t stream = nullptr) const {
        std::vector<T> h(static_cast<std::size_t>(size_));
        copy_to_host(std::span<T>(h), stream);
        return h;
    }

private:
    void check_fits(index_t rows, index_t cols, index_t ld) const {
        RECBLOCKS_CHECK_SHAPE(rows >= 0 && cols >= 0 && ld >= cols, "DeviceBuffer::matrix: bad shape [", rows, ", ",
                              cols, "] with ld ", ld);
        const index_t need = rows == 0 ? 0 : (rows - 1) * ld + cols;
        RECBLOCKS_CHECK_SHAPE(need <= size_, "DeviceBuffer::matrix: [", rows, ", ", cols, "] with ld ", ld, " needs ",
                              need, " elements but the buffer has ", size_);
    }
    void release() noexcept {
        if (data_ != nullptr) (void)cudaFree(data_);  // errors at teardown are ignored
        data_ = nullptr;
        size_ = 0;
    }

    T* data_ = nullptr;
    index_t size_ = 0;
};

namespace detail {
template <class T>
void copy_matrix(MatrixView<const T> src, MatrixView<T> dst, cudaMemcpyKind kind, cudaStream_t stream,
                 const char* what) {
    RECBLOCKS_CHECK_SHAPE(src.shape() == dst.shape(), what, ": destination is ", dst.shape(), " but source is ",
                          src.shape());
    if (src.empty()) return;
    // A single-row view may carry any ld; the copy pitch must be >= the row width.
    const auto pitch = [](const auto& m) {
        const index_t ld = m.rows() <= 1 ? m.cols() : m.ld();
        return static_cast<std::size_t>(ld) * sizeof(T);
    };
    RECBLOCKS_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), pitch(dst), src.data(), pitch(src),
                                           static_cast<std::size_t>(src.cols()) * sizeof(T),
                                           static_cast<std::size_t>(src.rows()), kind, stream));
    RECBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream));
}
}  // namespace detail

/// Copies a host matrix (any ld) into an equally shaped device matrix (any ld); waits for `stream`.
template <class T>
void copy_to_device(std::type_identity_t<MatrixView<const T>> host, MatrixView<T> device,
                    cudaStream_t stream = nullptr) {
    detail::copy_matrix<T>(host, device, cudaMemcpyHostToDevice, stream, "copy_to_device");
}

/// Copies a device matrix (any ld) into an equally shaped host matrix (any ld); waits for `stream`.
template <class T>
void copy_to_host(std::type_identity_t<MatrixView<const T>> device, MatrixView<T> host,
                  cudaStream_t stream = nullptr) {
    detail::copy_matrix<T>(device, host, cudaMemcpyDeviceToHost, stream, "copy_to_host");
}

RECBLOCKS_NAMESPACE_END
