#pragma once
// Gradient utilities for training loops: the global L2 norm, clipping by it
// (torch.nn.utils.clip_grad_norm_), and a finiteness check so a NaN/Inf stops
// training with a clear error instead of corrupting the weights.
#include <cmath>
#include <string>

#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace optim {

/// sqrt(Σ g²) over every gradient of the list (double accumulation).
template <class T>
double global_grad_norm(const ParamList<T>& params) {
    double s = 0;
    for (const auto& p : params)
        for (index_t i = 0, n = p.numel(); i < n; ++i) s += double(p.grad[i]) * double(p.grad[i]);
    return std::sqrt(s);
}

/// Scales every gradient by max_norm / (norm + 1e-6) when the global norm
/// exceeds max_norm (PyTorch's rule). Returns the norm before clipping.
template <class T>
double clip_grad_norm(const ParamList<T>& params, double max_norm) {
    RECBLOCKS_CHECK_VALUE(max_norm > 0, "optim::clip_grad_norm: max_norm must be > 0, got ", max_norm);
    const double norm = global_grad_norm(params);
    if (norm > max_norm) {
        const T scale = static_cast<T>(max_norm / (norm + 1e-6));
        for (const auto& p : params)
            for (index_t i = 0, n = p.numel(); i < n; ++i) p.grad[i] *= scale;
    }
    return norm;
}

/// Throws ValueError naming the first tensor whose gradient holds a NaN or Inf.
template <class T>
void check_finite_grads(const ParamList<T>& params, std::int64_t step) {
    for (const auto& p : params)
        for (index_t i = 0, n = p.numel(); i < n; ++i)
            RECBLOCKS_CHECK_VALUE(std::isfinite(double(p.grad[i])), "training step ", step, ": the gradient of '",
                                  p.name, "' has a non-finite value (", double(p.grad[i]), ") at entry ", i,
                                  "; stopping before it reaches the weights");
}

}  // namespace optim
RECBLOCKS_NAMESPACE_END
