#pragma once
// Helpers shared by the xsimd kernels: batch type for (Arch, T), loads and
// stores of a partial batch at the end of a row. The missing lanes of a tail
// load hold a neutral value, so tail elements take exactly the same
// arithmetic path as the rest (same rounding, same exp/erf). AVX-512 and AVX2
// use masked loads/stores (no fault past the end, no stall); other ISAs go
// through a small aligned buffer. D = 50 rows, SASRec's width, are mostly tail.
//
// Everything here is a template on Arch: each ISA's translation unit gets its
// own symbols (see ../dispatch_instantiate.hpp).
#include <xsimd/xsimd.hpp>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct Simd {
    using batch = xsimd::batch<T, Arch>;
    using mask = xsimd::batch_bool<T, Arch>;
    static constexpr index_t width = static_cast<index_t>(batch::size);

    static batch load(const T* p) { return batch::load_unaligned(p); }
    static void store(T* p, const batch& v) { v.store_unaligned(p); }

    /// Loads p[0..n) (n < width) and fills the remaining lanes with `fill`.
    static batch load_tail(const T* p, index_t n, T fill) {
#if defined(__x86_64__)
        if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
            if constexpr (std::is_same_v<T, float>)
                return batch(_mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << n) - 1u), p));
            else
                return batch(_mm512_mask_loadu_pd(_mm512_set1_pd(fill), static_cast<__mmask8>((1u << n) - 1u), p));
        } else if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
            if constexpr (std::is_same_v<T, float>) {
                const __m256i m = lanes_below(n);
                return batch(_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m)));
            } else {
                const __m256i m = lanes_below(n);
                return batch(_mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m)));
            }
        }
#endif
        alignas(64) T buf[width];
        for (index_t i = 0; i < width; ++i) buf[i] = i < n ? p[i] : fill;
        return batch::load_aligned(buf);
    }
    /// Stores the first n (< width) lanes of v to p.
    static void store_tail(T* p, const batch& v, index_t n) {
#if defined(__x86_64__)
        if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
            if constexpr (std::is_same_v<T, float>)
                _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
            else
                _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1u), v);
            return;
        } else if constexpr (std::is_base_of_v<xsimd::avx2, Arch>) {
            if constexpr (std::is_same_v<T, float>) _mm256_maskstore_ps(p, lanes_below(n), v);
            else _mm256_maskstore_pd(p, lanes_below(n), v);
            return;
        }
#endif
        alignas(64) T buf[width];
        v.store_aligned(buf);
        for (index_t i = 0; i < n; ++i) p[i] = buf[i];
    }
#if defined(__x86_64__)
    /// AVX2 lane mask: all ones in lanes [0, n), zero elsewhere.
    static __m256i lanes_below(index_t n) {
        if constexpr (std::is_same_v<T, float>)
            return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        else
            return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
#endif

    /// Largest lane (NaN-free input). A shuffle tree on AVX-512: the row
    /// softmax is latency-bound on this reduction at D = 64.
    static T hmax(const batch& v) {
#if defined(__x86_64__)
        if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
            if constexpr (std::is_same_v<T, float>) return _mm512_reduce_max_ps(v);
            else return _mm512_reduce_max_pd(v);
        }
#endif
        alignas(64) T buf[width];
        v.store_aligned(buf);
        T m = buf[0];
        for (index_t i = 1; i < width; ++i) m = buf[i] > m ? buf[i] : m;
        return m;
    }
    /// Lane-wise sum in a fixed order (deterministic for a given ISA).
    static T hsum(const batch& v) {
#if defined(__x86_64__)
        if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
            if constexpr (std::is_same_v<T, float>) return _mm512_reduce_add_ps(v);
            else return _mm512_reduce_add_pd(v);
        }
#endif
        return xsimd::hadd(v);
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
