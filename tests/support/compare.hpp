#pragma once
// Test helpers: element-wise comparison with |got - ref| <= atol + rtol * |ref|
// that reports the worst element, and seeded random fills.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>
#include <string>

#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"

namespace rbtest {

using namespace recblocks;

struct Tolerance {
    double atol;
    double rtol;
};

/// Default tolerances for comparing a T kernel against the double-accumulating reference.
template <class T>
constexpr Tolerance default_tolerance() {
    if constexpr (std::is_same_v<T, float>) return {2e-6, 2e-5};
    else return {1e-13, 1e-12};
}

struct Mismatch {
    bool ok = true;
    std::string report;
};

/// Compares two equally-shaped views; the report names the worst element.
template <class T, std::size_t R>
Mismatch compare(TensorView<const T, R> got, TensorView<const T, R> ref, Tolerance tol) {
    Mismatch m;
    if (got.shape() != ref.shape()) {
        m.ok = false;
        m.report = "shape " + to_string(got.shape()) + " vs reference " + to_string(ref.shape());
        return m;
    }
    const index_t n = got.numel();
    double worst_excess = -1;
    index_t worst = -1;
    for (index_t i = 0; i < n; ++i) {
        const double g = got.data()[i], r = ref.data()[i];
        const bool both_nan = std::isnan(g) && std::isnan(r);
        const bool same_inf = std::isinf(r) && g == r;
        if (both_nan || same_inf) continue;
        const double excess = std::fabs(g - r) - (tol.atol + tol.rtol * std::fabs(r));
        if (!(excess <= 0) && (worst < 0 || excess > worst_excess || std::isnan(excess))) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst >= 0) {
        std::ostringstream os;
        os.precision(9);
        os << "worst element at flat index " << worst << ": got " << got.data()[worst] << ", reference "
           << ref.data()[worst] << " (atol " << tol.atol << ", rtol " << tol.rtol << ")";
        m.ok = false;
        m.report = os.str();
    }
    return m;
}

#define RBTEST_REQUIRE_CLOSE(got, ref, tol)                                        \
    do {                                                                           \
        const auto rbtest_m = ::rbtest::compare((got), (ref), (tol));              \
        INFO(rbtest_m.report);                                                     \
        REQUIRE(rbtest_m.ok);                                                      \
    } while (0)

/// Fills a tensor with uniform values in [lo, hi) from (seed, stream).
template <class T, std::size_t R>
void fill_uniform(Tensor<T, R>& t, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
    const Rng rng(seed);
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<T>(lo + (hi - lo) * rng.uniform_double(i));
}

}  // namespace rbtest
