#pragma once
// Adam and AdamW over a ParamList, with torch.optim's exact update:
//
//   g ← g + wd · p                          (Adam with weight_decay: L2 in the gradient)
//   p ← p · (1 - lr · wd)                   (AdamW: decoupled decay, instead)
//   m ← β1 m + (1-β1) g;   v ← β2 v + (1-β2) g²
//   p ← p - (lr / (1-β1^t)) · m / (sqrt(v) / sqrt(1-β2^t) + eps)
//
// Weight decay applies to the kinds in Config::decay_kinds (by default weights
// and embeddings, not biases or norms: BERT's rule). Moments are stored in
// T, one pair per tensor, in list order, in the memory space of the backend
// that steps them (host by default; Adam<T, CudaMemory> keeps them on the GPU);
// first_moment()/second_moment() expose them so a checkpoint can save and
// restore them bit-exactly. Each tensor is one fused ops::adam_update.
#include <cmath>
#include <initializer_list>
#include <vector>

#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/check.hpp"
#include "recblocks/ops/adam_update.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace optim {

/// Adam's settings (torch.optim.Adam / AdamW), whatever the element type and memory.
struct AdamConfig {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decoupled = false;  ///< false: Adam (L2 in the gradient); true: AdamW
    std::vector<ParamKind> decay_kinds{ParamKind::weight, ParamKind::embedding};
};

template <class T, MemorySpace Memory = HostMemory>
class Adam {
public:
    using Config = AdamConfig;

    /// State for `params`, allocated where each tensor lives (its ParamRef's memory space).
    Adam(Config cfg, const ParamList<T, Memory>& params) : cfg_(std::move(cfg)) {
        RECBLOCKS_CHECK_VALUE(cfg_.lr >= 0 && cfg_.beta1 >= 0 && cfg_.beta1 < 1 && cfg_.beta2 >= 0 && cfg_.beta2 < 1 &&
                                  cfg_.eps >= 0 && cfg_.weight_decay >= 0,
                              "optim::Adam: need lr >= 0, betas in [0, 1), eps >= 0, weight_decay >= 0; got lr ",
                              cfg_.lr, ", betas (", cfg_.beta1, ", ", cfg_.beta2, "), eps ", cfg_.eps, ", weight_decay ",
                              cfg_.weight_decay);
        for (const auto& p : params) {
            m_.emplace_back(Shape<1>{{p.numel()}}, p.memory);
            v_.emplace_back(Shape<1>{{p.numel()}}, p.memory);
        }
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] std::int64_t steps() const { return t_; }
    /// First and second moments of tensor i (for checkpoints).
    [[nodiscard]] Vector<T, Memory>& first_moment(std::size_t i) { return m_.at(i); }
    [[nodiscard]] Vector<T, Memory>& second_moment(std::size_t i) { return v_.at(i); }
    void set_steps(std::int64_t t) {
        RECBLOCKS_CHECK_VALUE(t >= 0, "optim::Adam::set_steps: step count must be >= 0, got ", t);
        t_ = t;
    }

    /// One update of every tensor in `params` (the list given to the
    /// constructor, same order and sizes) at learning rate `lr`, on backend
    /// `be` (whose memory space holds the tensors and this optimiser's state).
    template <class Be>
        requires std::is_same_v<memory_space_t<Be>, Memory>
    void step(const Be& be, const ParamList<T, Memory>& params, double lr) {
        RECBLOCKS_CHECK_SHAPE(params.size() == m_.size(), "optim::Adam::step: ", params.size(),
                              " tensors but the optimiser was built for ", m_.size());
        ++t_;
        AdamUpdate<T> u{};
        u.step_size = static_cast<T>(lr / (1.0 - std::pow(cfg_.beta1, double(t_))));
        u.beta1 = static_cast<T>(cfg_.beta1);
        u.beta2 = static_cast<T>(cfg_.beta2);
        u.eps = static_cast<T>(cfg_.eps);
        u.inv_bc2_sqrt = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(cfg_.beta2, double(t_))));
        for (std::size_t i = 0; i < params.size(); ++i) {
            const auto& p = params[i];
            RECBLOCKS_CHECK_SHAPE(p.numel() == m_[i].numel(), "optim::Adam::step: tensor '", p.name, "' has ",
                                  p.numel(), " entries but its state has ", m_[i].numel());
            const double wd = cfg_.weight_decay > 0 && decays(p.kind) ? cfg_.weight_decay : 0.0;
            u.l2 = static_cast<T>(cfg_.decoupled ? 0.0 : wd);
            u.shrink = static_cast<T>(cfg_.decoupled ? 1.0 - lr * wd : 1.0);
            ops::adam_update(be, u, p.values(), VectorView<const T>(p.grads()), m_[i].view(), v_[i].view());
        }
    }

    /// step() for host tensors, one thread (the Reference backend's loop).
    void step(const ParamList<T, Memory>& params, double lr) requires(Memory::host_accessible) {
        step(backend::Reference{}, params, lr);
    }

private:
    [[nodiscard]] bool decays(ParamKind k) const {
        for (auto d : cfg_.decay_kinds)
            if (d == k) return true;
        return false;
    }
    Config cfg_;
    std::vector<Vector<T, Memory>> m_, v_;
    std::int64_t t_ = 0;
};

/// Adam's configuration from a trainer's options: their lr, beta1, beta2 and
/// weight_decay; every other field keeps its default.
template <class T, class Options>
AdamConfig adam_config_from(const Options& o) {
    AdamConfig c;
    c.lr = o.lr;
    c.beta1 = o.beta1;
    c.beta2 = o.beta2;
    c.weight_decay = o.weight_decay;
    return c;
}

}  // namespace optim
RECBLOCKS_NAMESPACE_END
