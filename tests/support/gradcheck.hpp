#pragma once
// Central finite differences against analytic gradients, for any block that
// lists its tensors in a ParamList<double>.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>

#include "recblocks/params/parameter_list.hpp"

namespace rbtest {

/// For every entry of `values` (n of them), compares (loss(v+h) - loss(v-h)) / 2h
/// with grads[i]; `stride` > 1 checks every stride-th entry only (large tensors).
inline void check_fd(const std::string& name, double* values, const double* grads, recblocks::index_t n,
                     const std::function<double()>& loss, double tol = 1e-5, recblocks::index_t stride = 1) {
    const double h = 1e-6;
    for (recblocks::index_t i = 0; i < n; i += stride) {
        const double keep = values[i];
        values[i] = keep + h;
        const double up = loss();
        values[i] = keep - h;
        const double down = loss();
        values[i] = keep;
        const double num = (up - down) / (2 * h);
        INFO(name << "[" << i << "] numeric " << num << " analytic " << grads[i]);
        REQUIRE(std::fabs(num - grads[i]) <= tol * (1.0 + std::fabs(num)));
    }
}

/// Checks every parameter of the list.
inline void check_fd(const recblocks::ParamList<double>& params, const std::function<double()>& loss,
                     double tol = 1e-5, recblocks::index_t max_checks_per_tensor = 400) {
    for (const auto& p : params) {
        const recblocks::index_t n = p.numel();
        const recblocks::index_t stride = n > max_checks_per_tensor ? n / max_checks_per_tensor + 1 : 1;
        check_fd(p.name, p.value, p.grad, n, loss, tol, stride);
    }
}

}  // namespace rbtest
