#pragma once
// Vector kernels: dot, axpy, sum, max. Four independent accumulators hide the
// FMA latency; the final lane reduction has a fixed order, so results depend
// only on the input and the ISA, never on timing. Accumulation is in T.
#include <limits>

#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct Blas1Kernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;

    /// x · y over n elements.
    static T dot(const T* x, const T* y, index_t n) {
        batch a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
        index_t i = 0;
        for (; i + 4 * W <= n; i += 4 * W) {
            a0 = xsimd::fma(S::load(x + i), S::load(y + i), a0);
            a1 = xsimd::fma(S::load(x + i + W), S::load(y + i + W), a1);
            a2 = xsimd::fma(S::load(x + i + 2 * W), S::load(y + i + 2 * W), a2);
            a3 = xsimd::fma(S::load(x + i + 3 * W), S::load(y + i + 3 * W), a3);
        }
        for (; i + W <= n; i += W) a0 = xsimd::fma(S::load(x + i), S::load(y + i), a0);
        if (i < n) a1 = xsimd::fma(S::load_tail(x + i, n - i, T(0)), S::load_tail(y + i, n - i, T(0)), a1);
        return S::hsum((a0 + a1) + (a2 + a3));
    }

    /// d[r] = b_r . x for four rows of length k (anywhere in memory): four sums
    /// in flight while the loads stream.
    static void dot4(const T* b0, const T* b1, const T* b2, const T* b3, const T* x, index_t k, T* d) {
        batch a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
        index_t i = 0;
        for (; i + W <= k; i += W) {
            const batch xv = S::load(x + i);
            a0 = xsimd::fma(S::load(b0 + i), xv, a0);
            a1 = xsimd::fma(S::load(b1 + i), xv, a1);
            a2 = xsimd::fma(S::load(b2 + i), xv, a2);
            a3 = xsimd::fma(S::load(b3 + i), xv, a3);
        }
        if (i < k) {
            const index_t t = k - i;
            const batch xv = S::load_tail(x + i, t, T(0));
            a0 = xsimd::fma(S::load_tail(b0 + i, t, T(0)), xv, a0);
            a1 = xsimd::fma(S::load_tail(b1 + i, t, T(0)), xv, a1);
            a2 = xsimd::fma(S::load_tail(b2 + i, t, T(0)), xv, a2);
            a3 = xsimd::fma(S::load_tail(b3 + i, t, T(0)), xv, a3);
        }
        d[0] = S::hsum(a0);
        d[1] = S::hsum(a1);
        d[2] = S::hsum(a2);
        d[3] = S::hsum(a3);
    }

    /// y[j] = alpha * (b_j . x) + beta * y[j] for the n rows b_j of a row-major
    /// [n, k] matrix (ld ldb); beta == 0 does not read y. Matrix-vector
    /// products with short rows (scoring a catalogue of D = 50 embeddings):
    /// four rows at a time, so four sums are in flight while the loads stream.
    static void dot_rows(const T* b, index_t ldb, index_t n, index_t k, const T* x, T alpha, T beta, T* y) {
        index_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const T* b0 = b + j * ldb;
            T d[4];
            dot4(b0, b0 + ldb, b0 + 2 * ldb, b0 + 3 * ldb, x, k, d);
            for (index_t r = 0; r < 4; ++r) y[j + r] = beta == T(0) ? alpha * d[r] : alpha * d[r] + beta * y[j + r];
        }
        for (; j < n; ++j) {
            const T d = dot(b + j * ldb, x, k);
            y[j] = beta == T(0) ? alpha * d : alpha * d + beta * y[j];
        }
    }

    /// y[0..n) += alpha * x[0..n).
    static void axpy(index_t n, T alpha, const T* x, T* y) {
        const batch va(alpha);
        index_t i = 0;
        for (; i + 2 * W <= n; i += 2 * W) {
            S::store(y + i, xsimd::fma(va, S::load(x + i), S::load(y + i)));
            S::store(y + i + W, xsimd::fma(va, S::load(x + i + W), S::load(y + i + W)));
        }
        for (; i + W <= n; i += W) S::store(y + i, xsimd::fma(va, S::load(x + i), S::load(y + i)));
        if (i < n)
            S::store_tail(y + i, xsimd::fma(va, S::load_tail(x + i, n - i, T(0)), S::load_tail(y + i, n - i, T(0))),
                          n - i);
    }

    /// Sum of rows × cols elements (row stride ld).
    static T sum(const T* x, index_t ld, index_t rows, index_t cols) {
        batch a0(T(0)), a1(T(0));
        for (index_t r = 0; r < rows; ++r) {
            const T* p = x + r * ld;
            index_t i = 0;
            for (; i + 2 * W <= cols; i += 2 * W) {
                a0 += S::load(p + i);
                a1 += S::load(p + i + W);
            }
            for (; i + W <= cols; i += W) a0 += S::load(p + i);
            if (i < cols) a1 += S::load_tail(p + i, cols - i, T(0));
        }
        return S::hsum(a0 + a1);
    }

    /// Largest of rows × cols elements; NaN if any element is NaN.
    static T max_value(const T* x, index_t ld, index_t rows, index_t cols) {
        constexpr T lowest = -std::numeric_limits<T>::infinity();
        batch m(lowest);
        auto nan = batch(T(0)) != batch(T(0));
        for (index_t r = 0; r < rows; ++r) {
            const T* p = x + r * ld;
            index_t i = 0;
            for (; i + W <= cols; i += W) {
                const batch v = S::load(p + i);
                nan = nan || xsimd::isnan(v);
                m = xsimd::max(m, v);
            }
            if (i < cols) {
                const batch v = S::load_tail(p + i, cols - i, lowest);
                nan = nan || xsimd::isnan(v);
                m = xsimd::max(m, v);
            }
        }
        return xsimd::any(nan) ? std::numeric_limits<T>::quiet_NaN() : S::hmax(m);
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
