#pragma once
// Which memory space a backend computes on, and tensors allocated there.
//
//   memory_space_t<B>        HostMemory for Reference and Cpu; CudaMemory (device,
//                            pooled, stream-ordered) for Cuda (backend/cuda/memory.hpp)
//   memory_of(be)            the space's value for this backend value (e.g. its stream)
//   TensorOn<T, Rank, B>     a Tensor whose storage B's primitives can read and write
//   make_tensor<T>(be, shape)  one, zero-filled
//   to(be, t)                an explicit copy of t into be's space (host -> device, ...)
//   to_host(t)               an explicit copy of t into host memory
//
// A component written once over B keeps its parameters, gradients, optimiser
// state and scratch in TensorOn<..., B>: host memory on the CPU, device memory
// on a GPU, with no #ifdef and no second code path.
#include "recblocks/backend/tags.hpp"
#include "recblocks/core/memory.hpp"
#include "recblocks/core/tensor.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// The memory space of backend B; specialised by device backends.
template <class B>
struct BackendMemory {
    using type = HostMemory;
    static HostMemory of(const B&) { return {}; }
};

template <class B>
using memory_space_t = typename BackendMemory<B>::type;

/// A backend whose tensors the host can read: the only kind the components
/// that still keep host memory (most blocks and the models, for now) accept,
/// so handing them backend::Cuda fails at compile time, not with host
/// pointers in a device kernel.
template <class B>
concept HostBackend = memory_space_t<B>::host_accessible;

template <class B>
[[nodiscard]] memory_space_t<B> memory_of(const B& be) {
    return BackendMemory<B>::of(be);
}

template <class T, std::size_t Rank, class B>
using TensorOn = Tensor<T, Rank, memory_space_t<B>>;
template <class T, class B>
using MatrixOn = TensorOn<T, 2, B>;
template <class T, class B>
using VectorOn = TensorOn<T, 1, B>;

template <class T, class B, std::size_t Rank>
[[nodiscard]] TensorOn<T, Rank, B> make_tensor(const B& be, Shape<Rank> shape) {
    return TensorOn<T, Rank, B>(shape, memory_of(be));
}

/// An explicit copy of `t` into the memory space of `be`.
template <class B, class T, std::size_t Rank, MemorySpace From>
[[nodiscard]] TensorOn<T, Rank, B> to(const B& be, const Tensor<T, Rank, From>& t) {
    return copy_to(t, memory_of(be));
}

/// An explicit copy of `t` into host memory (finished when this returns).
template <class T, std::size_t Rank, MemorySpace From>
[[nodiscard]] Tensor<T, Rank> to_host(const Tensor<T, Rank, From>& t) {
    return copy_to(t, HostMemory{});
}

RECBLOCKS_NAMESPACE_END
