#pragma once
// Gradient utilities for training loops: the global L2 norm, clipping by it
// (torch.nn.utils.clip_grad_norm_), and a finiteness check so a NaN/Inf stops
// training with a clear error instead of corrupting the weights.
//
// Each runs on a backend, where the gradients live (one reduction per tensor,
// its result read on the host); the overloads without a backend are for host
// lists and use the Reference backend.
#include <cmath>
#include <string>

#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/params/parameter_list.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace optim {

/// sqrt(Σ g²) over every gradient of the list (per-tensor sums, added in double).
template <class Be, class T, MemorySpace Memory>
double global_grad_norm(const Be& be, const ParamList<T, Memory>& params) {
    double s = 0;
    for (const auto& p : params) s += double(ops::dot(be, VectorView<const T>(p.grads()), VectorView<const T>(p.grads())));
    return std::sqrt(s);
}

/// Scales every gradient by max_norm / (norm + 1e-6) when the global norm
/// exceeds max_norm (PyTorch's rule). Returns the norm before clipping.
template <class Be, class T, MemorySpace Memory>
double clip_grad_norm(const Be& be, const ParamList<T, Memory>& params, double max_norm) {
    RECBLOCKS_CHECK_VALUE(max_norm > 0, "optim::clip_grad_norm: max_norm must be > 0, got ", max_norm);
    const double norm = global_grad_norm(be, params);
    if (norm > max_norm) {
        const T scale = static_cast<T>(max_norm / (norm + 1e-6));
        for (const auto& p : params) {
            const auto g = matrix_view(p.grad, 1, p.numel());
            ops::scale_rows(be, MatrixView<const T>(g), VectorView<const T>{}, scale, g);
        }
    }
    return norm;
}

/// Throws ValueError naming the first tensor whose gradient holds a NaN or
/// Inf (its sum is then not finite; on host memory the entry is named too).
template <class Be, class T, MemorySpace Memory>
void check_finite_grads(const Be& be, const ParamList<T, Memory>& params, std::int64_t step) {
    for (const auto& p : params) {
        const double sum = double(ops::sum(be, MatrixView<const T>(matrix_view(p.grad, 1, p.numel()))));
        if (std::isfinite(sum)) continue;
        index_t entry = -1;
        if constexpr (Memory::host_accessible)
            for (index_t i = 0; i < p.numel() && entry < 0; ++i)
                if (!std::isfinite(double(p.grad[i]))) entry = i;
        RECBLOCKS_CHECK_VALUE(false, "training step ", step, ": the gradient of '", p.name,
                              "' has a non-finite value", entry >= 0 ? " at entry " + std::to_string(entry) : "",
                              "; stopping before it reaches the weights");
    }
}

/// The same on host lists, one thread (the Reference backend).
template <class T>
double global_grad_norm(const ParamList<T>& params) {
    return global_grad_norm(backend::Reference{}, params);
}
template <class T>
double clip_grad_norm(const ParamList<T>& params, double max_norm) {
    return clip_grad_norm(backend::Reference{}, params, max_norm);
}
template <class T>
void check_finite_grads(const ParamList<T>& params, std::int64_t step) {
    check_finite_grads(backend::Reference{}, params, step);
}

}  // namespace optim
RECBLOCKS_NAMESPACE_END
