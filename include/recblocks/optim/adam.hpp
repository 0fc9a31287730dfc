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
// T, one pair per tensor, in list order; first_moment()/second_moment() expose them so
// a checkpoint can save and restore them bit-exactly.
#include <cmath>
#include <initializer_list>
#include <vector>

#include "recblocks/params/parameter_list.hpp"
#include "recblocks/core/check.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace optim {

template <class T>
class Adam {
public:
    struct Config {
        double lr = 1e-3;
        double beta1 = 0.9;
        double beta2 = 0.999;
        double eps = 1e-8;
        double weight_decay = 0.0;
        bool decoupled = false;  ///< false: Adam (L2 in the gradient); true: AdamW
        std::vector<ParamKind> decay_kinds{ParamKind::weight, ParamKind::embedding};
    };

    Adam(Config cfg, const ParamList<T>& params) : cfg_(std::move(cfg)) {
        RECBLOCKS_CHECK_VALUE(cfg_.lr >= 0 && cfg_.beta1 >= 0 && cfg_.beta1 < 1 && cfg_.beta2 >= 0 && cfg_.beta2 < 1 &&
                                  cfg_.eps >= 0 && cfg_.weight_decay >= 0,
                              "optim::Adam: need lr >= 0, betas in [0, 1), eps >= 0, weight_decay >= 0; got lr ",
                              cfg_.lr, ", betas (", cfg_.beta1, ", ", cfg_.beta2, "), eps ", cfg_.eps, ", weight_decay ",
                              cfg_.weight_decay);
        for (const auto& p : params) {
            m_.emplace_back(Shape<1>{{p.numel()}});
            v_.emplace_back(Shape<1>{{p.numel()}});
        }
    }

    [[nodiscard]] const Config& config() const { return cfg_; }
    [[nodiscard]] std::int64_t steps() const { return t_; }
    /// First and second moments of tensor i (for checkpoints).
    [[nodiscard]] Vector<T>& first_moment(std::size_t i) { return m_.at(i); }
    [[nodiscard]] Vector<T>& second_moment(std::size_t i) { return v_.at(i); }
    void set_steps(std::int64_t t) {
        RECBLOCKS_CHECK_VALUE(t >= 0, "optim::Adam::set_steps: step count must be >= 0, got ", t);
        t_ = t;
    }

    /// One update of every tensor in `params` (the list given to the
    /// constructor, same order and sizes) at learning rate `lr`.
    void step(const ParamList<T>& params, double lr) {
        RECBLOCKS_CHECK_SHAPE(params.size() == m_.size(), "optim::Adam::step: ", params.size(),
                              " tensors but the optimiser was built for ", m_.size());
        ++t_;
        const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t_));
        const double bc2_sqrt = std::sqrt(1.0 - std::pow(cfg_.beta2, double(t_)));
        const T b1 = static_cast<T>(cfg_.beta1), b2 = static_cast<T>(cfg_.beta2);
        const T step_size = static_cast<T>(lr / bc1), eps = static_cast<T>(cfg_.eps);
        const T inv_bc2_sqrt = static_cast<T>(1.0 / bc2_sqrt);
        for (std::size_t i = 0; i < params.size(); ++i) {
            const auto& p = params[i];
            RECBLOCKS_CHECK_SHAPE(p.numel() == m_[i].numel(), "optim::Adam::step: tensor '", p.name, "' has ",
                                  p.numel(), " entries but its state has ", m_[i].numel());
            const bool decay = cfg_.weight_decay > 0 && decays(p.kind);
            const T wd = static_cast<T>(decay ? cfg_.weight_decay : 0.0);
            const T shrink = static_cast<T>(cfg_.decoupled ? 1.0 - lr * (decay ? cfg_.weight_decay : 0.0) : 1.0);
            T* w = p.value;
            const T* g = p.grad;
            T* m = m_[i].data();
            T* v = v_[i].data();
            for (index_t j = 0, n = p.numel(); j < n; ++j) {
                T gj = g[j];
                if (!cfg_.decoupled) gj += wd * w[j];
                w[j] *= shrink;
                m[j] = b1 * m[j] + (T(1) - b1) * gj;
                v[j] = b2 * v[j] + (T(1) - b2) * gj * gj;
                w[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_bc2_sqrt + eps);
            }
        }
    }

private:
    [[nodiscard]] bool decays(ParamKind k) const {
        for (auto d : cfg_.decay_kinds)
            if (d == k) return true;
        return false;
    }
    Config cfg_;
    std::vector<Vector<T>> m_, v_;
    std::int64_t t_ = 0;
};

/// Adam's configuration from a trainer's options: their lr, beta1, beta2 and
/// weight_decay; every other field keeps its default.
template <class T, class Options>
typename Adam<T>::Config adam_config_from(const Options& o) {
    typename Adam<T>::Config c;
    c.lr = o.lr;
    c.beta1 = o.beta1;
    c.beta2 = o.beta2;
    c.weight_decay = o.weight_decay;
    return c;
}

}  // namespace optim
RECBLOCKS_NAMESPACE_END
