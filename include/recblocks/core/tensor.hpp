#pragma once
// Tensor: owning, contiguous, row-major, 64-byte aligned storage with a shape,
// in a memory space (core/memory.hpp): host memory by default, a device's when
// a backend says so (backend/memory.hpp: TensorOn<T, Rank, Backend>). Public
// functions take TensorView; a Tensor hands out views of itself. Views of
// device memory are passed to that backend's ops only; element access from the
// host exists only where the space is host accessible.
#include <cstdint>
#include <initializer_list>

#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN

template <class T, std::size_t Rank, MemorySpace Memory = HostMemory>
class Tensor {
public:
    using memory_type = Memory;

    Tensor() = default;
    /// An empty tensor whose storage will live in `memory`.
    explicit Tensor(Memory memory) : buffer_(memory) {}
    /// A zero-filled tensor of `shape`.
    explicit Tensor(Shape<Rank> shape, Memory memory = {}) : buffer_(memory) { resize(shape); }

    /// Reshapes to `shape` and zero-fills (contents are not kept). Allocates
    /// only when the element count changes.
    void resize(Shape<Rank> shape) {
        index_t n = 1;
        for (std::size_t i = 0; i < Rank; ++i) {
            RECBLOCKS_CHECK_SHAPE(shape[i] >= 0, "Tensor: negative extent in shape ", shape);
            RECBLOCKS_CHECK_VALUE(!__builtin_mul_overflow(n, shape[i], &n) &&
                                      n <= PTRDIFF_MAX / static_cast<index_t>(sizeof(T)),
                                  "Tensor: shape ", shape, " has more elements than memory can address");
        }
        buffer_.resize(shape.numel());
        shape_ = shape;
    }

    [[nodiscard]] TensorView<T, Rank> view() { return {buffer_.data(), shape_}; }
    [[nodiscard]] TensorView<const T, Rank> view() const { return {buffer_.data(), shape_}; }
    [[nodiscard]] TensorView<const T, Rank> cview() const { return view(); }
    operator TensorView<T, Rank>() { return view(); }              // NOLINT(google-explicit-constructor)
    operator TensorView<const T, Rank>() const { return view(); }  // NOLINT(google-explicit-constructor)

    [[nodiscard]] T* data() { return buffer_.data(); }
    [[nodiscard]] const T* data() const { return buffer_.data(); }
    [[nodiscard]] const Shape<Rank>& shape() const { return shape_; }
    [[nodiscard]] index_t extent(std::size_t i) const { return shape_[i]; }
    [[nodiscard]] index_t numel() const { return shape_.numel(); }
    [[nodiscard]] const Memory& memory() const { return buffer_.memory(); }
    /// Sets every element to zero, in its memory space (no reallocation).
    void zero() {
        if (numel()) buffer_.memory().zero(buffer_.data(), static_cast<std::size_t>(numel()) * sizeof(T));
    }
    T* begin() requires(Memory::host_accessible) { return buffer_.begin(); }
    T* end() requires(Memory::host_accessible) { return buffer_.end(); }
    const T* begin() const requires(Memory::host_accessible) { return buffer_.begin(); }
    const T* end() const requires(Memory::host_accessible) { return buffer_.end(); }

    template <class... I>
        requires(sizeof...(I) == Rank && Memory::host_accessible)
    T& operator()(I... idx) { return view()(idx...); }
    template <class... I>
        requires(sizeof...(I) == Rank && Memory::host_accessible)
    const T& operator()(I... idx) const { return view()(idx...); }

private:
    AlignedBuffer<T, Memory> buffer_;
    Shape<Rank> shape_{};
};

template <class T, MemorySpace Memory = HostMemory>
using Matrix = Tensor<T, 2, Memory>;
template <class T, MemorySpace Memory = HostMemory>
using Vector = Tensor<T, 1, Memory>;

/// Copies `src` into `dst` across memory spaces (host -> device, device ->
/// host, within one space), resizing `dst` only when the shapes differ: a
/// repeated copy of the same shape allocates nothing. A copy to the host has
/// finished when this returns. Device spaces order the copy on their own
/// stream (a device-to-device copy on dst's): work on another stream that
/// writes `src` must be synchronised first. A device tensor keeps the stream
/// it was allocated on (copies and assignment carry it along) and must not
/// outlive it.
template <class T, std::size_t Rank, MemorySpace From, MemorySpace To>
void copy_tensor(const Tensor<T, Rank, From>& src, Tensor<T, Rank, To>& dst) {
    if (dst.shape() != src.shape()) dst.resize(src.shape());
    const std::size_t bytes = static_cast<std::size_t>(src.numel()) * sizeof(T);
    if (bytes == 0) return;
    if constexpr (From::host_accessible) {
        dst.memory().upload(dst.data(), src.data(), bytes);
    } else if constexpr (To::host_accessible) {
        src.memory().download(dst.data(), src.data(), bytes);
    } else if constexpr (std::is_same_v<From, To>) {
        dst.memory().copy(dst.data(), src.data(), bytes);
    } else {  // two device spaces: through the host
        Tensor<T, Rank> staging(src.shape());
        copy_tensor(src, staging);
        copy_tensor(staging, dst);
    }
}

/// t[i] = f(i) for every element (flat index), computed on the host and
/// copied into t's memory space at once: how parameters are initialised
/// wherever they live.
template <class T, std::size_t Rank, MemorySpace Memory, class F>
void fill_from_host(Tensor<T, Rank, Memory>& t, F&& f) {
    Tensor<T, Rank> host(t.shape());
    for (index_t i = 0; i < host.numel(); ++i) host.data()[i] = static_cast<T>(f(i));
    copy_tensor(host, t);
}

/// A copy of `src` in memory space `to` (e.g. `copy_to(host_table, CudaMemory{stream})`;
/// backend/memory.hpp's `to(backend, t)` picks the backend's space).
template <class T, std::size_t Rank, MemorySpace From, MemorySpace To>
[[nodiscard]] Tensor<T, Rank, To> copy_to(const Tensor<T, Rank, From>& src, To to) {
    Tensor<T, Rank, To> dst(to);
    copy_tensor(src, dst);
    return dst;
}

RECBLOCKS_NAMESPACE_END
