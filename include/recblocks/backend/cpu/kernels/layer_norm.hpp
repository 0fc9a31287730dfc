#pragma once
// Layer norm over rows of width D. Forward: mean, then the variance of the
// deviations (two passes over an L1-resident row, which avoids the
// cancellation of E[x²] - E[x]²), then y = (x - mean) * rstd * gamma + beta.
// Backward, with xhat = (x - mean) * rstd and g = dy * gamma:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
//   dgamma += dy * xhat,  dbeta += dy   (into caller-provided partial sums)
// Row statistics are combined in double; lanes accumulate in T.
#include <cmath>

#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct LayerNormKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;

    static void forward(const T* x, index_t ldx, const T* gamma, const T* beta, T eps, T* y, index_t ldy, T* mean,
                        T* rstd, index_t rows, index_t d) {
        for (index_t r = 0; r < rows; ++r) {
            const T* xr = x + r * ldx;
            T* yr = y + r * ldy;
            batch s(T(0));
            index_t i = 0;
            for (; i + W <= d; i += W) s += S::load(xr + i);
            if (i < d) s += S::load_tail(xr + i, d - i, T(0));
            const T mu = static_cast<T>(static_cast<double>(S::hsum(s)) / static_cast<double>(d));
            const batch vmu(mu);
            batch v(T(0));
            for (i = 0; i + W <= d; i += W) {
                const batch c = S::load(xr + i) - vmu;
                v = xsimd::fma(c, c, v);
            }
            if (i < d) {
                const batch c = S::load_tail(xr + i, d - i, mu) - vmu;  // padding contributes 0
                v = xsimd::fma(c, c, v);
            }
            const double var = static_cast<double>(S::hsum(v)) / static_cast<double>(d);
            const T rs = static_cast<T>(1.0 / std::sqrt(var + static_cast<double>(eps)));
            const batch vrs(rs);
            for (i = 0; i + W <= d; i += W)
                S::store(yr + i, xsimd::fma((S::load(xr + i) - vmu) * vrs, S::load(gamma + i), S::load(beta + i)));
            if (i < d)
                S::store_tail(yr + i,
                              xsimd::fma((S::load_tail(xr + i, d - i, mu) - vmu) * vrs,
                                         S::load_tail(gamma + i, d - i, T(0)), S::load_tail(beta + i, d - i, T(0))),
                              d - i);
            if (mean) mean[r] = mu;
            if (rstd) rstd[r] = rs;
        }
    }

    /// Adds this block of rows' parameter gradients into dgamma_acc / dbeta_acc [d].
    static void backward(const T* x, index_t ldx, const T* gamma, const T* mean, const T* rstd, const T* dy,
                         index_t lddy, T* dx, index_t lddx, T* dgamma_acc, T* dbeta_acc, index_t rows, index_t d) {
        for (index_t r = 0; r < rows; ++r) {
            const T* xr = x + r * ldx;
            const T* gr = dy + r * lddy;
            T* dr = dx + r * lddx;
            const batch vmu(mean[r]), vrs(rstd[r]);
            batch m1(T(0)), m2(T(0));
            index_t i = 0;
            auto step = [&](const batch& xv, const batch& gv, const batch& gam, const batch& dg, const batch& db,
                            batch& dg_out, batch& db_out) {
                const batch xhat = (xv - vmu) * vrs;
                const batch g = gv * gam;
                m1 += g;
                m2 = xsimd::fma(g, xhat, m2);
                dg_out = xsimd::fma(gv, xhat, dg);
                db_out = db + gv;
            };
            for (; i + W <= d; i += W) {
                batch dgo, dbo;
                step(S::load(xr + i), S::load(gr + i), S::load(gamma + i), S::load(dgamma_acc + i),
                     S::load(dbeta_acc + i), dgo, dbo);
                S::store(dgamma_acc + i, dgo);
                S::store(dbeta_acc + i, dbo);
            }
            if (i < d) {
                const index_t n = d - i;
                batch dgo, dbo;
                // Padding: x = mean and dy = 0 contribute nothing.
                step(S::load_tail(xr + i, n, mean[r]), S::load_tail(gr + i, n, T(0)), S::load_tail(gamma + i, n, T(0)),
                     S::load_tail(dgamma_acc + i, n, T(0)), S::load_tail(dbeta_acc + i, n, T(0)), dgo, dbo);
                S::store_tail(dgamma_acc + i, dgo, n);
                S::store_tail(dbeta_acc + i, dbo, n);
            }
            const T inv_d = static_cast<T>(1.0 / static_cast<double>(d));
            const batch a(S::hsum(m1) * inv_d), b(S::hsum(m2) * inv_d);
            for (i = 0; i + W <= d; i += W) {
                const batch xhat = (S::load(xr + i) - vmu) * vrs;
                const batch g = S::load(gr + i) * S::load(gamma + i);
                S::store(dr + i, vrs * (g - a - xhat * b));
            }
            if (i < d) {
                const index_t n = d - i;
                const batch xhat = (S::load_tail(xr + i, n, mean[r]) - vmu) * vrs;
                const batch g = S::load_tail(gr + i, n, T(0)) * S::load_tail(gamma + i, n, T(0));
                S::store_tail(dr + i, vrs * (g - a - xhat * b), n);
            }
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
