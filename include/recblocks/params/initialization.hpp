#pragma once
// Initialisations applied to a whole ParamList after a model is built, as the
// reference trainers do after constructing theirs:
//
//   xavier_normal_init     every tensor with >= 2 dimensions ~ N(0, gain² · 2 / (fan_in + fan_out)),
//                          fan_in = shape[1] · r, fan_out = shape[0] · r, r = prod(shape[2:])
//                          (torch.nn.init.xavier_normal_; pmixer/SASRec.pytorch applies it to every
//                          parameter it can, and 1-D tensors keep their defaults)
//   truncated_normal_init  weights and tables ~ N(0, std²) redrawn beyond 2 std, biases 0
//                          (BERT's initializer_range 0.02; models::BERT4Rec uses it)
//
// Values are drawn on the host from a counter-based stream (substream k for
// the k-th tensor, element i at index i): the same numbers on any thread
// count, and copied once into each tensor's memory space.
#include <cmath>
#include <cstdint>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/params/parameter_list.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// The standard deviation xavier_normal_init draws a tensor of `shape` with
/// (0 for tensors with fewer than 2 dimensions, which it leaves alone).
[[nodiscard]] inline double xavier_normal_std(const std::vector<index_t>& shape, double gain = 1.0) {
    if (shape.size() < 2) return 0.0;
    double receptive = 1.0;
    for (std::size_t i = 2; i < shape.size(); ++i) receptive *= double(shape[i]);
    const double fan_in = double(shape[1]) * receptive, fan_out = double(shape[0]) * receptive;
    return fan_in + fan_out > 0 ? gain * std::sqrt(2.0 / (fan_in + fan_out)) : 0.0;
}

/// Draws every tensor of `params` with >= 2 dimensions from N(0, xavier_normal_std(shape)²).
template <class T, MemorySpace Memory>
void xavier_normal_init(const ParamList<T, Memory>& params, const Rng& rng, double gain = 1.0) {
    RECBLOCKS_CHECK_VALUE(gain > 0 && std::isfinite(gain), "xavier_normal_init: gain must be > 0, got ", gain);
    std::vector<T> host;
    for (std::size_t k = 0; k < params.size(); ++k) {
        const auto& p = params[k];
        const double sd = xavier_normal_std(p.shape, gain);
        if (sd == 0.0) continue;
        const Rng r = rng.substream(k);
        host.resize(static_cast<std::size_t>(p.numel()));
        for (index_t i = 0, n = p.numel(); i < n; ++i)
            host[static_cast<std::size_t>(i)] = static_cast<T>(sd * r.normal(std::uint64_t(i)));
        p.memory.upload(p.value, host.data(), host.size() * sizeof(T));
    }
}

/// Draws weights and embedding tables from N(0, std²) truncated at 2 std
/// (redrawn, as tf.truncated_normal_initializer does), zeroes biases, and leaves
/// norms alone.
template <class T, MemorySpace Memory>
void truncated_normal_init(const ParamList<T, Memory>& params, const Rng& rng, double std) {
    RECBLOCKS_CHECK_VALUE(std > 0 && std::isfinite(std), "truncated_normal_init: std must be > 0, got ", std);
    std::vector<T> host;
    for (std::size_t k = 0; k < params.size(); ++k) {
        const auto& p = params[k];
        const auto bytes = static_cast<std::size_t>(p.numel()) * sizeof(T);
        if (p.kind == ParamKind::bias) {
            p.memory.zero(p.value, bytes);
            continue;
        }
        if (p.kind != ParamKind::weight && p.kind != ParamKind::embedding) continue;
        const Rng r = rng.substream(k);
        host.resize(static_cast<std::size_t>(p.numel()));
        for (index_t i = 0, n = p.numel(); i < n; ++i) {
            double z = r.normal(std::uint64_t(i));
            for (std::uint64_t redraw = 1; std::fabs(z) > 2.0; ++redraw) z = r.substream(redraw).normal(std::uint64_t(i));
            host[static_cast<std::size_t>(i)] = static_cast<T>(std * z);
        }
        p.memory.upload(p.value, host.data(), bytes);
    }
}

RECBLOCKS_NAMESPACE_END
