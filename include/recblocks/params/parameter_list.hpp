#pragma once
// A flat list of a model's learnable tensors: name, value, gradient, shape and
// kind. Blocks append theirs (`append_params(prefix, list)`); the optimiser,
// the checkpoint writer and the PyTorch name mapping all walk the same list,
// so a new block needs nothing else to be trained, saved and loaded.
// It lives in params/, below blocks/, because optim/, losses/ and io/ read it
// without needing any block; in namespace recblocks (as core/), since every
// layer above names it.
#include <string>
#include <string_view>
#include <vector>

#include "recblocks/core/tensor.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// What a tensor is, for rules that treat kinds differently (AdamW's weight
/// decay skips biases and norms; l2_emb applies to embeddings only).
enum class ParamKind : std::uint8_t { weight, bias, norm, embedding };

template <class T>
struct ParamRef {
    std::string name;            ///< e.g. "blocks.0.attention.in_proj_weight"
    T* value = nullptr;
    T* grad = nullptr;
    std::vector<index_t> shape;  ///< row-major
    ParamKind kind = ParamKind::weight;

    [[nodiscard]] index_t numel() const {
        index_t n = 1;
        for (index_t e : shape) n *= e;
        return n;
    }
    [[nodiscard]] VectorView<T> values() const { return vector_view(value, numel()); }
    [[nodiscard]] VectorView<T> grads() const { return vector_view(grad, numel()); }
};

template <class T>
using ParamList = std::vector<ParamRef<T>>;

/// Appends one tensor (value and gradient of equal shape).
template <class T, std::size_t R>
void append_param(ParamList<T>& out, std::string_view prefix, std::string_view name, Tensor<T, R>& value,
                  Tensor<T, R>& grad, ParamKind kind) {
    std::vector<index_t> shape(value.shape().extents.begin(), value.shape().extents.end());
    out.push_back(ParamRef<T>{std::string(prefix) + std::string(name), value.data(), grad.data(), std::move(shape), kind});
}

/// Sets every gradient in the list to zero.
template <class T>
void zero_grads(const ParamList<T>& params) {
    for (const auto& p : params) std::fill(p.grad, p.grad + p.numel(), T(0));
}

RECBLOCKS_NAMESPACE_END
