#pragma once
// A flat list of a model's learnable tensors: name, value, gradient, shape and
// kind. Blocks append theirs (`append_params(prefix, list)`); the optimiser,
// the checkpoint writer and the PyTorch name mapping all walk the same list,
// so a new block needs nothing else to be trained, saved and loaded.
// It lives in params/, below blocks/, because optim/, losses/ and io/ read it
// without needing any block; in namespace recblocks (as core/), since every
// layer above names it. A list belongs to a memory space (host by default):
// the tensors of a block instantiated for a device live there, and so do the
// list's pointers; host-only consumers (checkpoints, clipping) take host lists.
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/tensor.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// What a tensor is, for rules that treat kinds differently (AdamW's weight
/// decay skips biases and norms; l2_emb applies to embeddings only).
enum class ParamKind : std::uint8_t { weight, bias, norm, embedding };

template <class T, MemorySpace Memory = HostMemory>
struct ParamRef {
    using memory_type = Memory;
    std::string name;            ///< e.g. "blocks.0.attention.in_proj_weight"
    T* value = nullptr;          ///< in `memory`
    T* grad = nullptr;           ///< in `memory`
    std::vector<index_t> shape;  ///< row-major
    ParamKind kind = ParamKind::weight;
    [[no_unique_address]] Memory memory{};  ///< where value and grad live

    [[nodiscard]] index_t numel() const {
        index_t n = 1;
        for (index_t e : shape) n *= e;
        return n;
    }
    [[nodiscard]] VectorView<T> values() const { return vector_view(value, numel()); }
    [[nodiscard]] VectorView<T> grads() const { return vector_view(grad, numel()); }
};

template <class T, MemorySpace Memory = HostMemory>
using ParamList = std::vector<ParamRef<T, Memory>>;

/// Appends one tensor (value and gradient of equal shape, in the list's memory space).
template <class T, std::size_t R, MemorySpace Memory>
void append_param(ParamList<T, Memory>& out, std::string_view prefix, std::string_view name,
                  Tensor<T, R, Memory>& value, Tensor<T, R, Memory>& grad, ParamKind kind) {
    std::vector<index_t> shape(value.shape().extents.begin(), value.shape().extents.end());
    out.push_back(ParamRef<T, Memory>{std::string(prefix) + std::string(name), value.data(), grad.data(),
                                      std::move(shape), kind, value.memory()});
}

/// Sets every gradient in the list to zero (in its memory space).
template <class T, MemorySpace Memory>
void zero_grads(const ParamList<T, Memory>& params) {
    for (const auto& p : params) p.memory.zero(p.grad, static_cast<std::size_t>(p.numel()) * sizeof(T));
}

RECBLOCKS_NAMESPACE_END
