#pragma once
// 4-bit product-quantization fast scan: for blocks of 32 encoded vectors of M
// sub-quantizers (M even, <= 256), acc[v] = sum_m lut[m][code(v, m)] in u16,
// where lut [M][16] holds one query's quantized (u8) inner products with each
// sub-quantizer's 16 centroids.
//
// Layout (backend/pq4_codes.hpp): a block is [M][16] bytes; byte j of
// sub-quantizer m holds code(j, m) in its low nibble and code(j + 16, m) in
// its high nibble. Sub-quantizers m, m + 1 (m + 2, m + 3 on AVX-512) then
// fill one register whose 128-bit lanes line up with their LUTs, and one
// byte shuffle (pshufb: a 16-entry table lookup per lane) scores 16 vectors
// of each. The u8 results are widened by masking and shifting the 16-bit
// words (even and odd vectors apart) and summed in u16: exact, no overflow
// while M * 255 < 65536. The lanes are summed and the even / odd words
// interleaved once per block. The sums are integers, so every ISA (and the
// scalar code of SSE2, which has no byte shuffle) gives the same bits.
//
// With `masks`, bit v of masks[b] says out[32 b + v] >= threshold: the caller
// converts and offers only those (a threshold from its current k-th best
// skips almost every vector).
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch>
struct Pq4FastScanKernels {
#if defined(__x86_64__)
    static constexpr bool kAvx512 = std::is_base_of_v<xsimd::avx512bw, Arch>;
    static constexpr bool kAvx2 = std::is_base_of_v<xsimd::avx2, Arch>;
#else
    static constexpr bool kAvx512 = false;
    static constexpr bool kAvx2 = false;
#endif

    /// out [32 blocks] = the u16 sums of `blocks` blocks of codes [blocks][M][16];
    /// masks [blocks] (unless null): bit v of masks[b] = (out[32 b + v] >= threshold).
    static void scan(const std::uint8_t* codes, index_t blocks, index_t m, const std::uint8_t* lut,
                     std::uint16_t threshold, std::uint16_t* out, std::uint32_t* masks) {
        const index_t block_bytes = 16 * m;
        for (index_t b = 0; b < blocks; ++b) {
            const std::uint8_t* c = codes + b * block_bytes;
            std::uint16_t* o = out + 32 * b;
#if defined(__x86_64__)
            if constexpr (kAvx512) {
                scan_block_avx512(c, m, lut, o);
                if (masks) masks[b] = _mm512_cmpge_epu16_mask(_mm512_loadu_si512(o), _mm512_set1_epi16(short(threshold)));
                continue;
            } else if constexpr (kAvx2) {
                scan_block_avx2(c, m, lut, o);
                if (masks) masks[b] = mask_avx2(o, threshold);
                continue;
            }
#endif
            scan_block_scalar(c, m, lut, o);
            if (masks) {
                std::uint32_t bits = 0;
                for (int v = 0; v < 32; ++v) bits |= std::uint32_t(o[v] >= threshold) << v;
                masks[b] = bits;
            }
        }
    }

    static void scan_block_scalar(const std::uint8_t* c, index_t m, const std::uint8_t* lut, std::uint16_t* o) {
        std::uint32_t acc[32] = {};
        for (index_t s = 0; s < m; ++s) {
            const std::uint8_t* t = lut + 16 * s;
            for (int j = 0; j < 16; ++j) {
                const std::uint8_t byte = c[16 * s + j];
                acc[j] += t[byte & 15];
                acc[j + 16] += t[byte >> 4];
            }
        }
        for (int v = 0; v < 32; ++v) o[v] = static_cast<std::uint16_t>(acc[v]);
    }

#if defined(__x86_64__)
    /// 8 even-vector and 8 odd-vector sums -> 16 sums in vector order.
    static void store_interleaved(__m128i even, __m128i odd, std::uint16_t* o) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_unpacklo_epi16(even, odd));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 8), _mm_unpackhi_epi16(even, odd));
    }

    /// Sub-quantizers [s0, m) in pairs, into 256-bit accumulators (lane 0: even s, lane 1: odd s).
    static void pairs_avx2(const std::uint8_t* c, index_t s0, index_t m, const std::uint8_t* lut, __m256i acc[4]) {
        const __m256i nib = _mm256_set1_epi8(0x0f), low = _mm256_set1_epi16(0x00ff);
        for (index_t s = s0; s < m; s += 2) {
            const __m256i code = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + 16 * s));
            const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + 16 * s));
            const __m256i lo = _mm256_shuffle_epi8(t, _mm256_and_si256(code, nib));
            const __m256i hi = _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(code, 4), nib));
            acc[0] = _mm256_add_epi16(acc[0], _mm256_and_si256(lo, low));  // vectors 0, 2, .., 14
            acc[1] = _mm256_add_epi16(acc[1], _mm256_srli_epi16(lo, 8));   // vectors 1, 3, .., 15
            acc[2] = _mm256_add_epi16(acc[2], _mm256_and_si256(hi, low));  // vectors 16, 18, ..
            acc[3] = _mm256_add_epi16(acc[3], _mm256_srli_epi16(hi, 8));   // vectors 17, 19, ..
        }
    }

    /// Bit v: o[v] >= t, for 32 u16 (no unsigned compare on AVX2: max(o, t) == o).
    static std::uint32_t mask_avx2(const std::uint16_t* o, std::uint16_t t) {
        const __m256i tv = _mm256_set1_epi16(short(t));
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o + 16));
        const __m256i ga = _mm256_cmpeq_epi16(_mm256_max_epu16(a, tv), a);
        const __m256i gb = _mm256_cmpeq_epi16(_mm256_max_epu16(b, tv), b);
        // packs interleaves the 128-bit lanes (a0 b0 a1 b1); the permute puts them in order.
        const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packs_epi16(ga, gb), 0xD8);
        return std::uint32_t(_mm256_movemask_epi8(bytes));
    }

    static __m128i lanes_sum(__m256i a) {
        return _mm_add_epi16(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    }

    static void scan_block_avx2(const std::uint8_t* c, index_t m, const std::uint8_t* lut, std::uint16_t* o) {
        __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                          _mm256_setzero_si256()};
        pairs_avx2(c, 0, m, lut, acc);
        store_interleaved(lanes_sum(acc[0]), lanes_sum(acc[1]), o);
        store_interleaved(lanes_sum(acc[2]), lanes_sum(acc[3]), o + 16);
    }

    static void scan_block_avx512(const std::uint8_t* c, index_t m, const std::uint8_t* lut, std::uint16_t* o) {
        const __m512i nib = _mm512_set1_epi8(0x0f), low = _mm512_set1_epi16(0x00ff);
        __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                          _mm512_setzero_si512()};
        index_t s = 0;
        for (; s + 4 <= m; s += 4) {  // four sub-quantizers, one per 128-bit lane
            const __m512i code = _mm512_loadu_si512(c + 16 * s);
            const __m512i t = _mm512_loadu_si512(lut + 16 * s);
            const __m512i lo = _mm512_shuffle_epi8(t, _mm512_and_si512(code, nib));
            const __m512i hi = _mm512_shuffle_epi8(t, _mm512_and_si512(_mm512_srli_epi16(code, 4), nib));
            acc[0] = _mm512_add_epi16(acc[0], _mm512_and_si512(lo, low));
            acc[1] = _mm512_add_epi16(acc[1], _mm512_srli_epi16(lo, 8));
            acc[2] = _mm512_add_epi16(acc[2], _mm512_and_si512(hi, low));
            acc[3] = _mm512_add_epi16(acc[3], _mm512_srli_epi16(hi, 8));
        }
        __m256i half[4];
        for (int i = 0; i < 4; ++i)
            half[i] = _mm256_add_epi16(_mm512_castsi512_si256(acc[i]), _mm512_extracti64x4_epi64(acc[i], 1));
        pairs_avx2(c, s, m, lut, half);  // a last pair when m % 4 == 2
        store_interleaved(lanes_sum(half[0]), lanes_sum(half[1]), o);
        store_interleaved(lanes_sum(half[2]), lanes_sum(half[3]), o + 16);
    }
#endif
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
