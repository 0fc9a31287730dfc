#pragma once
// Element-wise ReLU and GELU (exact erf form) with their derivatives:
//   relu'(x) = [x > 0]
//   gelu(x) = x * Phi(x),  gelu'(x) = Phi(x) + x * phi(x),
//   Phi(x) = (1 + erf(x / sqrt 2)) / 2,  phi(x) = exp(-x² / 2) / sqrt(2 pi)
// erf and exp are xsimd's vectorised versions.
#include <cstdint>

#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct ActivationKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;

    static batch relu(const batch& x) { return xsimd::select(x > batch(T(0)), x, batch(T(0))); }
    static batch gelu(const batch& x) {
        const batch phi = T(0.5) * (T(1) + xsimd::erf(x * T(0.70710678118654752440)));
        return x * phi;
    }
    static batch relu_grad(const batch& x, const batch& dy) {
        return xsimd::select(x > batch(T(0)), dy, batch(T(0)));
    }
    static batch gelu_grad(const batch& x, const batch& dy) {
        const batch cdf = T(0.5) * (T(1) + xsimd::erf(x * T(0.70710678118654752440)));
        const batch pdf = T(0.39894228040143267794) * xsimd::exp(T(-0.5) * x * x);
        return dy * xsimd::fma(x, pdf, cdf);
    }

    /// act: 0 = relu, 1 = gelu (Activation's values).
    static void forward(std::uint8_t act, const T* x, index_t ldx, T* y, index_t ldy, index_t rows, index_t cols) {
        if (ldx == cols && ldy == cols) {  // contiguous: one long row
            cols *= rows;
            rows = 1;
        }
        for (index_t r = 0; r < rows; ++r) {
            const T* xr = x + r * ldx;
            T* yr = y + r * ldy;
            index_t i = 0;
            if (act == 0) {
                for (; i + W <= cols; i += W) S::store(yr + i, relu(S::load(xr + i)));
                if (i < cols) S::store_tail(yr + i, relu(S::load_tail(xr + i, cols - i, T(0))), cols - i);
            } else {
                for (; i + W <= cols; i += W) S::store(yr + i, gelu(S::load(xr + i)));
                if (i < cols) S::store_tail(yr + i, gelu(S::load_tail(xr + i, cols - i, T(0))), cols - i);
            }
        }
    }

    static void backward(std::uint8_t act, const T* x, index_t ldx, const T* dy, index_t lddy, T* dx, index_t lddx,
                         index_t rows, index_t cols) {
        if (ldx == cols && lddy == cols && lddx == cols) {
            cols *= rows;
            rows = 1;
        }
        for (index_t r = 0; r < rows; ++r) {
            const T* xr = x + r * ldx;
            const T* gr = dy + r * lddy;
            T* dr = dx + r * lddx;
            index_t i = 0;
            const index_t n = cols;
            if (act == 0) {
                for (; i + W <= n; i += W) S::store(dr + i, relu_grad(S::load(xr + i), S::load(gr + i)));
                if (i < n)
                    S::store_tail(dr + i, relu_grad(S::load_tail(xr + i, n - i, T(0)), S::load_tail(gr + i, n - i, T(0))),
                                  n - i);
            } else {
                for (; i + W <= n; i += W) S::store(dr + i, gelu_grad(S::load(xr + i), S::load(gr + i)));
                if (i < n)
                    S::store_tail(dr + i, gelu_grad(S::load_tail(xr + i, n - i, T(0)), S::load_tail(gr + i, n - i, T(0))),
                                  n - i);
            }
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
