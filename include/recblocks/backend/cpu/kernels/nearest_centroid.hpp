#pragma once
// Kernels of k-means assignment and residual-quantizer beam search
// (tokenizers/kmeans.hpp, tokenizers/residual_quantizer.hpp). With g = x·c_k
// from a GEMM, the squared distance is ||x||² + ||c_k||² - 2 g, so the
// nearest centroid is the argmin of the "shifted" ||c_k||² - 2 g:
//
//   squared_distances    ||x_i - y||² (or ||x_i||²) per row: two accumulators
//                        of W lanes, the lanes added in order, then the tail
//   shifted_argmin_rows  g[k] = norms[k] - 2 g[k] over each row, and the
//                        first k of the smallest (one min pass, one find pass)
//   offer_smallest       base + norms[k] - 2 g[k] offered to a sorted list of
//                        the `cap` smallest (ties: earlier offer first); a
//                        register of candidates is skipped when none beats
//                        the current last entry
#include <cstdint>
#include <limits>

#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct NearestCentroidKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;

    /// ||x - y||² (y null: ||x||²).
    static T squared_distance(const T* x, const T* y, index_t d) {
        batch acc0(T(0)), acc1(T(0));
        index_t j = 0;
        for (; j + 2 * W <= d; j += 2 * W) {
            batch a = S::load(x + j), b = S::load(x + j + W);
            if (y) {
                a -= S::load(y + j);
                b -= S::load(y + j + W);
            }
            acc0 = xsimd::fma(a, a, acc0);
            acc1 = xsimd::fma(b, b, acc1);
        }
        for (; j + W <= d; j += W) {
            batch a = S::load(x + j);
            if (y) a -= S::load(y + j);
            acc0 = xsimd::fma(a, a, acc0);
        }
        alignas(64) T lanes[W];
        (acc0 + acc1).store_aligned(lanes);
        T s = T(0);
        for (index_t l = 0; l < W; ++l) s += lanes[l];
        for (; j < d; ++j) {
            const T t = y ? x[j] - y[j] : x[j];
            s += t * t;
        }
        return s;
    }

    static void squared_distances(const T* x, index_t ldx, index_t rows, index_t d, const T* y, T* out) {
        for (index_t r = 0; r < rows; ++r) out[r] = squared_distance(x + r * ldx, y, d);
    }

    /// One row: g[k] = norms[k] - 2 g[k]; returns the first k of the smallest (its value in best).
    static index_t shifted_argmin(T* g, const T* norms, index_t n, T& best) {
        const index_t nv = n / W * W;
        batch vmin(std::numeric_limits<T>::infinity());
        const batch two(T(2));
        for (index_t k = 0; k < nv; k += W) {
            const batch v = xsimd::fnma(two, S::load(g + k), S::load(norms + k));
            S::store(g + k, v);
            vmin = xsimd::min(vmin, v);
        }
        alignas(64) T lanes[W];
        vmin.store_aligned(lanes);
        T m = lanes[0];
        for (index_t j = 1; j < W; ++j) m = std::min(m, lanes[j]);
        for (index_t k = nv; k < n; ++k) {
            g[k] = norms[k] - T(2) * g[k];
            m = std::min(m, g[k]);
        }
        best = m;
        const batch bm(m);
        for (index_t k = 0; k < nv; k += W) {
            if (xsimd::any(S::load(g + k) == bm)) {
                for (index_t j = k;; ++j)
                    if (g[j] == m) return j;
            }
        }
        for (index_t k = nv; k < n; ++k)
            if (g[k] == m) return k;
        return 0;  // only when every value is NaN (excluded by the callers' checks)
    }

    static void shifted_argmin_rows(T* g, index_t ldg, index_t rows, const T* norms, index_t n, index_t* arg,
                                    T* best) {
        for (index_t r = 0; r < rows; ++r) arg[r] = shifted_argmin(g + r * ldg, norms, n, best[r]);
    }

    static index_t offer_smallest(T* g, const T* norms, index_t n, T base, index_t first, T* sel_s, index_t* sel_i,
                                  index_t cap, index_t filled) {
        auto offer = [&](T s, index_t cand) {
            if (filled == cap && !(s < sel_s[cap - 1])) return;
            index_t p = filled < cap ? filled++ : cap - 1;
            while (p > 0 && s < sel_s[p - 1]) {
                sel_s[p] = sel_s[p - 1];
                sel_i[p] = sel_i[p - 1];
                --p;
            }
            sel_s[p] = s;
            sel_i[p] = cand;
        };
        index_t j = 0;
        const batch vbase(base), two(T(2));
        for (; j + W <= n; j += W) {
            const batch sc = vbase + xsimd::fnma(two, S::load(g + j), S::load(norms + j));
            const T thr = filled == cap ? sel_s[cap - 1] : std::numeric_limits<T>::infinity();
            if (!xsimd::any(sc < batch(thr))) continue;
            S::store(g + j, sc);
            for (index_t t = j; t < j + W; ++t) offer(g[t], first + t);
        }
        for (; j < n; ++j) offer(base + (norms[j] - T(2) * g[j]), first + j);
        return filled;
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
