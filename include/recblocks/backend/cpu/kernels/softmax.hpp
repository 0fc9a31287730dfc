#pragma once
// Row softmax, three passes over a row that stays in L1: (1) the maximum,
// (2) e = exp(x - max) stored to y while summing, (3) y *= 1 / sum. Masked
// entries are first written to y as -inf, so they come out as exactly 0.
// A row whose maximum is -inf (nothing kept) becomes all zeros.
// Accumulation in T; exp is exp_batch (math.hpp, about 1 ulp).
#include <cmath>
#include <cstdint>
#include <limits>

#include "recblocks/backend/cpu/kernels/math.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct SoftmaxKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;
    static constexpr T kNegInf = -std::numeric_limits<T>::infinity();

    static void softmax_row(const T* x, T* y, index_t n) {
        batch m(kNegInf);
        index_t i = 0;
        for (; i + W <= n; i += W) m = xsimd::max(m, S::load(x + i));
        if (i < n) m = xsimd::max(m, S::load_tail(x + i, n - i, kNegInf));
        const T mx = S::hmax(m);
        if (mx == kNegInf) {
            for (index_t j = 0; j < n; ++j) y[j] = T(0);
            return;
        }
        const batch vmx(mx);
        batch s(T(0));
        for (i = 0; i + W <= n; i += W) {
            const batch e = exp_batch<Arch, T>(S::load(x + i) - vmx);
            S::store(y + i, e);
            s += e;
        }
        if (i < n) {
            const batch e = exp_batch<Arch, T>(S::load_tail(x + i, n - i, kNegInf) - vmx);
            S::store_tail(y + i, e, n - i);
            s += e;
        }
        const batch inv(T(1) / S::hsum(s));
        for (i = 0; i + W <= n; i += W) S::store(y + i, S::load(y + i) * inv);
        if (i < n) S::store_tail(y + i, S::load_tail(y + i, n - i, T(0)) * inv, n - i);
    }

    /// rows × cols; mask may be null (no mask), else bytes with row stride ldm.
    static void softmax_rows(const T* x, index_t ldx, const std::uint8_t* mask, index_t ldm, T* y, index_t ldy,
                             index_t rows, index_t cols) {
        for (index_t r = 0; r < rows; ++r) {
            const T* xr = x + r * ldx;
            T* yr = y + r * ldy;
            if (mask) {
                const std::uint8_t* mr = mask + r * ldm;
                for (index_t c = 0; c < cols; ++c) yr[c] = mr[c] ? xr[c] : kNegInf;
                softmax_row(yr, yr, cols);
            } else {
                softmax_row(xr, yr, cols);
            }
        }
    }

    /// dx = y * (dy - sum(dy * y)) per row; dx may alias dy.
    static void softmax_rows_backward(const T* y, index_t ldy, const T* dy, index_t lddy, T* dx, index_t lddx,
                                      index_t rows, index_t cols) {
        for (index_t r = 0; r < rows; ++r) {
            const T* yr = y + r * ldy;
            const T* gr = dy + r * lddy;
            T* dr = dx + r * lddx;
            batch acc(T(0));
            index_t i = 0;
            for (; i + W <= cols; i += W) acc = xsimd::fma(S::load(yr + i), S::load(gr + i), acc);
            if (i < cols) acc = xsimd::fma(S::load_tail(yr + i, cols - i, T(0)), S::load_tail(gr + i, cols - i, T(0)), acc);
            const batch s(S::hsum(acc));
            for (i = 0; i + W <= cols; i += W) S::store(dr + i, S::load(yr + i) * (S::load(gr + i) - s));
            if (i < cols)
                S::store_tail(dr + i, S::load_tail(yr + i, cols - i, T(0)) * (S::load_tail(gr + i, cols - i, T(0)) - s),
                              cols - i);
        }
    }

    /// Softmax cross-entropy in place (ops/softmax_cross_entropy.hpp), rows ×
    /// cols with row stride ldx: (1) z = x + bias written back while taking
    /// the maximum, (2) e = exp(z - max) written back while summing in T
    /// lanes, (3) row = e · (scale / sum), minus scale at the target. Returns
    /// the rows' losses, log(sum) + max - z_t in double, added in row order.
    /// A row with a negative target becomes zeros and adds nothing.
    static double softmax_xent_rows(T* x, index_t ldx, const T* bias, const row_id_t* targets, T scale, index_t rows,
                                    index_t cols) {
        double total = 0;
        for (index_t r = 0; r < rows; ++r) {
            T* z = x + r * ldx;
            const index_t t = targets[r];
            index_t i = 0;
            if (t < 0) {
                for (; i + W <= cols; i += W) S::store(z + i, batch(T(0)));
                if (i < cols) S::store_tail(z + i, batch(T(0)), cols - i);
                continue;
            }
            batch m(kNegInf);
            if (bias) {
                for (; i + W <= cols; i += W) {
                    const batch v = S::load(z + i) + S::load(bias + i);
                    S::store(z + i, v);
                    m = xsimd::max(m, v);
                }
                if (i < cols) {
                    // Missing lanes: -inf + 0, neutral for the maximum.
                    const batch v = S::load_tail(z + i, cols - i, kNegInf) + S::load_tail(bias + i, cols - i, T(0));
                    S::store_tail(z + i, v, cols - i);
                    m = xsimd::max(m, v);
                }
            } else {
                for (; i + W <= cols; i += W) m = xsimd::max(m, S::load(z + i));
                if (i < cols) m = xsimd::max(m, S::load_tail(z + i, cols - i, kNegInf));
            }
            const T mx = S::hmax(m);
            const T zt = z[t];
            const batch vmx(mx);
            batch s(T(0));
            for (i = 0; i + W <= cols; i += W) {
                const batch e = exp_batch<Arch, T>(S::load(z + i) - vmx);
                S::store(z + i, e);
                s += e;
            }
            if (i < cols) {
                const batch e = exp_batch<Arch, T>(S::load_tail(z + i, cols - i, kNegInf) - vmx);
                S::store_tail(z + i, e, cols - i);
                s += e;
            }
            const T sum = S::hsum(s);
            const batch f(scale / sum);
            for (i = 0; i + W <= cols; i += W) S::store(z + i, S::load(z + i) * f);
            if (i < cols) S::store_tail(z + i, S::load_tail(z + i, cols - i, T(0)) * f, cols - i);
            z[t] -= scale;
            total += std::log(double(sum)) + double(mx) - double(zt);
        }
        return total;
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
