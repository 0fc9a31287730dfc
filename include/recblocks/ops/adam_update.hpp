#pragma once
// One fused Adam / AdamW update of a tensor, in one pass over its value,
// gradient and two moments (torch.optim.Adam's arithmetic, in T):
//
//   g ← g + l2 · w              (Adam's weight_decay; skipped when l2 = 0)
//   w ← w · shrink              (AdamW's decoupled decay, 1 - lr·wd; 1 otherwise)
//   m ← β1 m + (1-β1) g;   v ← β2 v + (1-β2) g²
//   w ← w - step_size · m / (sqrt(v) · inv_bc2_sqrt + eps)
//
// step_size = lr / (1 - β1^t) and inv_bc2_sqrt = 1 / sqrt(1 - β2^t) come from
// the optimiser (optim/adam.hpp), which owns the step count; they travel as
// an AdamUpdate<T> (backend/primitives.hpp). The views live in
// the backend's memory space (the moments are allocated there too).
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// Updates w [n], m [n], v [n] in place from g [n].
template <class B, class T>
void adam_update(const B& be, const AdamUpdate<T>& u, VectorView<T> w, std::type_identity_t<VectorView<const T>> g,
                 VectorView<T> m, VectorView<T> v) {
    constexpr std::string_view op = "ops::adam_update";
    detail::check_length(op, "g", g, w.size(), "w's length");
    detail::check_length(op, "m", m, w.size(), "w's length");
    detail::check_length(op, "v", v, w.size(), "w's length");
    if (w.size() == 0) return;
    Primitives<B>::template adam_update<T>(be, u, w, g, m, v);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
