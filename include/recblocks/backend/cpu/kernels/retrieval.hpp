#pragma once
// Retrieval kernels (float queries): score item rows stored as f32, bf16 bits
// or int8 codes with a per-row scale against one query, and select the best.
//
// Tables are scanned in column panels: 64 rows stored column by column
// ([d][64]). One broadcast query element meets 64 rows in 64 / W registers,
// so a scan is loads and FMAs only, walking memory in order, with no
// horizontal sums. Measured on Zen 4, 1e6 x 64 f32 from DRAM: 30 GB/s (the
// sequential-sum bandwidth) against 20.5 GB/s for row-major rows with a
// 16-register shuffle fold; 105 against 28 GB/s for a 9,728 x 16 table in L2.
// Every row sums its columns in order, so its score has the same bits
// wherever it sits. The table is read once, at 4, 2 or 1 bytes per element:
// bf16 pairs rows in 32-bit words (a shift or a mask widens a register to
// f32); int8 pairs columns and multiplies them by an int16 copy of the query
// with one integer multiply-add (panel_scores_i8): widening int8 to f32 made
// that scan compute-bound at ~28 GB/s even from L1 (an exponent-bits trick
// instead of the convert measured no faster on Zen 4).
//
// Row-major rows are still scored for a re-rank (score_ids_f32: shortlisted
// rows gathered whole, 16 at a time, folded by a shuffle tree).
//
// Selection: offer keeps a size-k min-heap (TopKKernels' order: larger score
// first, equal scores by smaller id); a SIMD compare against the root skips
// most batches, so the scan costs one compare per score. collect_above is the
// same test for retrieval::TopKCollector, which buffers everything above a
// threshold and selects in bulk (cheaper than a heap when k is large).
//
// The 4-bit product-quantization fast scan of an IVF index's lists
// (pq4_fast_scan.hpp) is in this section too.
//
// RetrievalKernelTable is the retrieval section of CpuKernelTable<float>
// (kernel_table.hpp): one table per ISA, one selector.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "recblocks/backend/cpu/kernels/pq4_fast_scan.hpp"
#include "recblocks/backend/cpu/kernels/simd.hpp"
#include "recblocks/backend/panels.hpp"
#include "recblocks/backend/cpu/kernels/top_k.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch>
struct RetrievalKernels {
    using S = Simd<Arch, float>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;
#if defined(__x86_64__)
    static constexpr bool kAvx512 = std::is_base_of_v<xsimd::avx512f, Arch>;
    static constexpr bool kAvx2 = std::is_base_of_v<xsimd::avx2, Arch>;
#else
    static constexpr bool kAvx512 = false;
    static constexpr bool kAvx2 = false;
#endif

    // Element types. F32 also loads (a full register, or the first t < W
    // elements with zeros after: the row-major re-rank).
    struct F32 {
        using E = float;
        static batch load(const float* p) { return S::load(p); }
        static batch load_tail(const float* p, index_t t) { return S::load_tail(p, t, 0.0f); }
    };
    struct BF16 {  // bf16 bits (the upper half of an f32); panels pair rows, see panel_scores
        using E = std::uint16_t;
    };
    struct I8 {  // int8 codes; panels pair columns, see panel_scores_i8
        using E = std::int8_t;
    };
    /// An int8 panel scan's query: int16 pairs and their scale (prepare_i8).
    struct I8Query {
        float qscale;
        alignas(64) std::uint32_t pair[kI8MaxDim / 2];
    };

    /// Dot product of one row with x (non-AVX-512 path; fixed order).
    template <class L>
    static float row_dot(const typename L::E* r, index_t d, const float* x) {
        batch acc(0.0f);
        index_t i = 0;
        for (; i + W <= d; i += W) acc = xsimd::fma(L::load(r + i), S::load(x + i), acc);
        if (i < d) acc = xsimd::fma(L::load_tail(r + i, d - i), S::load_tail(x + i, d - i, 0.0f), acc);
        return S::hsum(acc);
    }

#if defined(__x86_64__)
    /// 16 registers -> one register whose lane r is the sum of a[r]'s lanes.
    static __m512 fold16(__m512* a) {
        __m512 b[8], c[4], e[2];
        for (int i = 0; i < 8; ++i)  // lane halves: row 2i | row 2i+1
            b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                                 _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
        for (int j = 0; j < 4; ++j)  // 128-bit lane q: row 4j+q
            c[j] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], 0x88),
                                 _mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], 0xDD));
        for (int m = 0; m < 2; ++m)  // lane q holds [row 8m+q, row 8m+4+q] twice
            e[m] = _mm512_add_ps(_mm512_unpacklo_ps(c[2 * m], c[2 * m + 1]), _mm512_unpackhi_ps(c[2 * m], c[2 * m + 1]));
        const __m512 f = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(e[0]), _mm512_castps_pd(e[1]))),
            _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(e[0]), _mm512_castps_pd(e[1]))));
        // Lane 4q + t holds row 4t + q.
        const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        return _mm512_permutexvar_ps(order, f);
    }

    /// Rows of at most 64 elements: the query stays in NC registers and the
    /// rows are read one after the other, so the loads walk memory in order
    /// (row-interleaved loads ran f32 at a third of the read bandwidth).
    template <class L, int NC, class RowAt>
    static void score16_short(RowAt row, index_t rows, index_t d, const float* x, const float* scales, float* y) {
        const index_t t = d - 16 * (NC - 1);  // 1..16 elements in the last register
        __m512 xv[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC - 1; ++c) xv[c] = _mm512_loadu_ps(x + 16 * c);
        xv[NC - 1] = S::load_tail(x + 16 * (NC - 1), t, 0.0f);
        if (t == 16) xv[NC - 1] = _mm512_loadu_ps(x + 16 * (NC - 1));
        __m512 acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r) {
            const typename L::E* p = row(r < rows ? r : rows - 1);
            __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 4
            for (int c = 0; c < NC - 1; ++c) a = _mm512_fmadd_ps(L::load(p + 16 * c), xv[c], a);
            a = _mm512_fmadd_ps(t == 16 ? L::load(p + 16 * (NC - 1)) : L::load_tail(p + 16 * (NC - 1), t), xv[NC - 1],
                                a);
            acc[r] = a;
        }
        __m512 s = fold16(acc);
        const __mmask16 m = static_cast<__mmask16>((1u << rows) - 1u);
        if (scales) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, scales));
        _mm512_mask_storeu_ps(y, m, s);
    }

    /// Scores of rows row(0..rows) (rows <= 16) -> y[0..rows).
    template <class L, class RowAt>
    static void score16(RowAt row, index_t rows, index_t d, const float* x, const float* scales, float* y) {
        switch ((d + 15) / 16) {
            case 1: return score16_short<L, 1>(row, rows, d, x, scales, y);
            case 2: return score16_short<L, 2>(row, rows, d, x, scales, y);
            case 3: return score16_short<L, 3>(row, rows, d, x, scales, y);
            case 4: return score16_short<L, 4>(row, rows, d, x, scales, y);
            default: break;
        }
        __m512 acc[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
        index_t i = 0;
        for (; i + 16 <= d; i += 16) {
            const __m512 xv = _mm512_loadu_ps(x + i);
#pragma GCC unroll 16
            for (int r = 0; r < 16; ++r) acc[r] = _mm512_fmadd_ps(L::load(row(r < rows ? r : rows - 1) + i), xv, acc[r]);
        }
        if (i < d) {
            const index_t t = d - i;
            const __m512 xv = S::load_tail(x + i, t, 0.0f);
#pragma GCC unroll 16
            for (int r = 0; r < 16; ++r)
                acc[r] = _mm512_fmadd_ps(L::load_tail(row(r < rows ? r : rows - 1) + i, t), xv, acc[r]);
        }
        __m512 s = fold16(acc);
        const __mmask16 m = static_cast<__mmask16>((1u << rows) - 1u);
        if (scales) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, scales));
        _mm512_mask_storeu_ps(y, m, s);
    }
#endif

    /// y[j] = scale[j] * <row ids[j], x> for row-major rows b + id * ldb (a
    /// shortlist to re-rank; scales may be null).
    template <class L>
    static void score_ids(const typename L::E* b, index_t ldb, const row_id_t* ids, index_t n, index_t d,
                          const float* x, const float* scales, float* y) {
#if defined(__x86_64__)
        if constexpr (kAvx512) {
            alignas(64) float sc[16];
            for (index_t j = 0; j < n; j += 16) {
                const row_id_t* id = ids + j;
                const index_t rows = std::min<index_t>(16, n - j);
                if (scales)
                    for (index_t r = 0; r < rows; ++r) sc[r] = scales[id[r]];
                score16<L>([&](index_t r) { return b + index_t(id[r]) * ldb; }, rows, d, x, scales ? sc : nullptr,
                           y + j);
            }
            return;
        }
#endif
        for (index_t j = 0; j < n; ++j)
            y[j] = (scales ? scales[ids[j]] : 1.0f) * row_dot<L>(b + index_t(ids[j]) * ldb, d, x);
    }

    static void score_ids_f32(const float* b, index_t ldb, const row_id_t* ids, index_t n, index_t d, const float* x,
                              const float*, float* y) {
        score_ids<F32>(b, ldb, ids, n, d, x, nullptr, y);
    }
    /// Scores of one panel of a column-panelled table: 64 rows stored column
    /// by column ([d][64]). One broadcast query element meets 64 rows in
    /// 64 / W registers, so there is no horizontal sum at all; each row sums
    /// its columns in order, so its score does not depend on where it sits.
    /// bf16 panels pair rows (panel_offset): one load and a shift or a mask
    /// widen two registers of rows (a zero-extend + shift per register cost
    /// as much as the FMA).
    template <class L>
    static void panel_scores(const typename L::E* panel, index_t d, const float* x, batch* acc,
                             const I8Query* q8 = nullptr) {
        constexpr index_t P = kPanelRows, R = P / W;
#pragma GCC unroll 16
        for (index_t r = 0; r < R; ++r) acc[r] = batch(0.0f);
        if constexpr (std::is_same_v<L, BF16>) {
            using U = xsimd::batch<std::uint32_t, Arch>;
            const U high(0xffff0000u);
            const auto* words = reinterpret_cast<const std::uint32_t*>(panel);
            for (index_t c = 0; c < d; ++c) {
                const batch xc(x[c]);
#pragma GCC unroll 8
                for (index_t r = 0; r < R / 2; ++r) {
                    const U u = U::load_unaligned(words + c * (P / 2) + r * W);
                    acc[r] = xsimd::fma(xsimd::bitwise_cast<batch>(u << 16), xc, acc[r]);
                    acc[r + R / 2] = xsimd::fma(xsimd::bitwise_cast<batch>(u & high), xc, acc[r + R / 2]);
                }
            }
        } else if constexpr (std::is_same_v<L, I8>) {
            alignas(64) float s[P];
            panel_scores_i8(panel, d, *q8, s);
#pragma GCC unroll 16
            for (index_t r = 0; r < R; ++r) acc[r] = batch::load_aligned(s + r * W);
        } else {
            for (index_t c = 0; c < d; ++c) {
                const batch xc(x[c]);
#pragma GCC unroll 16
                for (index_t r = 0; r < R; ++r) acc[r] = xsimd::fma(L::load(panel + c * P + r * W), xc, acc[r]);
            }
        }
    }

    // int8 scoring: the query is rounded to int16 at a power-of-two scale
    // (qscale), so a row's score is an exact integer sum of int8 x int16
    // products (pairs of columns per multiply-add: vpmaddwd), in any order,
    // times qscale and the row's scale. Sums run in int32 over at most
    // kI8PairsPerChunk column pairs (2 * 128 * 32767 * 128 < 2^31), then
    // add up in float, chunk by chunk. Widening int8 to f32 instead
    // (sign-extend + convert + FMA per 16 codes) made the scan compute-bound
    // at ~28 GB/s even from L1.
    static constexpr index_t kI8PairsPerChunk = 128;

    /// The query as int16 pairs (column 2i low, 2i + 1 high) and its scale,
    /// prepared once per call: a per-panel rounding cost more than the panel.
    static void prepare_i8(const float* x, index_t d, I8Query& q) {
        float m = 0.0f;
        for (index_t c = 0; c < d; ++c) m = std::max(m, std::abs(x[c]));
        int e = 0;
        std::frexp(m, &e);  // m < 2^e
        q.qscale = m > 0.0f ? std::ldexp(1.0f, e - 15) : 1.0f;
        const float inv = 1.0f / q.qscale;  // a power of two: exact
        auto code = [&](index_t c) -> std::uint32_t {
            if (c >= d) return 0u;
            return std::uint16_t(std::int16_t(std::clamp(std::nearbyint(x[c] * inv), -32767.0f, 32767.0f)));
        };
        for (index_t i = 0; i < (d + 1) / 2; ++i) q.pair[i] = code(2 * i) | (code(2 * i + 1) << 16);
    }

    /// s[0..64) = the scores of one int8 panel (before the row scales).
    static void panel_scores_i8(const std::int8_t* panel, index_t d, const I8Query& q, float* s) {
        constexpr index_t P = kPanelRows;
        const std::uint32_t* xpair = q.pair;
        const float qscale = q.qscale;
        const index_t pairs = (d + 1) / 2;
        alignas(64) float total[P] = {};
        for (index_t c0 = 0; c0 < pairs; c0 += kI8PairsPerChunk) {
            const index_t c1 = std::min(pairs, c0 + kI8PairsPerChunk);
            alignas(64) std::int32_t isum[P];
#if defined(__x86_64__)
            if constexpr (kAvx512) {
                __m512i a[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                                _mm512_setzero_si512()};
                for (index_t c = c0; c < c1; ++c) {
                    const __m512i xb = _mm512_set1_epi32(static_cast<int>(xpair[c]));
                    const std::int8_t* col = panel + c * 2 * P;
#pragma GCC unroll 4
                    for (int r = 0; r < 4; ++r)
                        a[r] = _mm512_add_epi32(a[r], _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256(
                                                                            reinterpret_cast<const __m256i*>(col + 32 * r))),
                                                                        xb));
                }
                for (int r = 0; r < 4; ++r) _mm512_store_si512(reinterpret_cast<__m512i*>(isum + 16 * r), a[r]);
            } else if constexpr (kAvx2) {
                __m256i a[8];
                for (int r = 0; r < 8; ++r) a[r] = _mm256_setzero_si256();
                for (index_t c = c0; c < c1; ++c) {
                    const __m256i xb = _mm256_set1_epi32(static_cast<int>(xpair[c]));
                    const std::int8_t* col = panel + c * 2 * P;
#pragma GCC unroll 8
                    for (int r = 0; r < 8; ++r)
                        a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(
                                                                            reinterpret_cast<const __m128i*>(col + 16 * r))),
                                                                        xb));
                }
                for (int r = 0; r < 8; ++r) _mm256_store_si256(reinterpret_cast<__m256i*>(isum + 8 * r), a[r]);
            } else
#endif
            {
                for (index_t j = 0; j < P; ++j) isum[j] = 0;
                for (index_t c = c0; c < c1; ++c) {
                    const std::int8_t* col = panel + c * 2 * P;
                    const std::int32_t lo = std::int16_t(xpair[c] & 0xffffu), hi = std::int16_t(xpair[c] >> 16);
                    for (index_t j = 0; j < P; ++j) isum[j] += col[2 * j] * lo + col[2 * j + 1] * hi;
                }
            }
            for (index_t j = 0; j < P; ++j) total[j] += float(isum[j]);
        }
        for (index_t j = 0; j < P; ++j) s[j] = total[j] * qscale;
    }

    /// The query as a panel kernel of L consumes it: prepared once per call.
    template <class L>
    struct QueryFor {
        struct None {};
        QueryFor(const float* x, index_t d) {
            if constexpr (std::is_same_v<L, I8>) prepare_i8(x, d, q);
        }
        [[nodiscard]] const I8Query* get() const {
            if constexpr (std::is_same_v<L, I8>) return &q;
            else return nullptr;
        }
        std::conditional_t<std::is_same_v<L, I8>, I8Query, None> q;
    };

    /// One row's int8 score (before its scale), the same bits as panel_scores_i8.
    static float row_score_i8(const std::int8_t* panels, index_t d, index_t id, const I8Query& q) {
        const std::uint32_t* xpair = q.pair;
        const float qscale = q.qscale;
        const std::int8_t* p = panels + panel_offset<std::int8_t>(id, 0, d);
        const index_t pairs = (d + 1) / 2;
        float total = 0.0f;
        for (index_t c0 = 0; c0 < pairs; c0 += kI8PairsPerChunk) {
            std::int32_t isum = 0;
            for (index_t c = c0; c < std::min(pairs, c0 + kI8PairsPerChunk); ++c) {
                const std::int32_t lo = std::int16_t(xpair[c] & 0xffffu), hi = std::int16_t(xpair[c] >> 16);
                isum += p[c * 2 * kPanelRows] * lo + p[c * 2 * kPanelRows + 1] * hi;
            }
            total += float(isum);
        }
        return total * qscale;
    }

    /// y[0..n) = scale[j] * scores of rows 0..n of a panelled table (the last
    /// panel zero-padded; scales, if any, padded to whole panels).
    template <class L>
    static void score_panels(const typename L::E* panels, index_t n, index_t d, const float* x, const float* scales,
                             float* y) {
        constexpr index_t P = kPanelRows, R = P / W;
        const QueryFor<L> q8(x, d);
        for (index_t p0 = 0; p0 < n; p0 += P) {
            batch acc[R];
            panel_scores<L>(panels + p0 * panel_cols<typename L::E>(d), d, x, acc, q8.get());
            if (scales)
#pragma GCC unroll 16
                for (index_t r = 0; r < R; ++r) acc[r] = acc[r] * S::load(scales + p0 + r * W);
            alignas(64) float tail[P];
            float* out = p0 + P <= n ? y + p0 : tail;
#pragma GCC unroll 16
            for (index_t r = 0; r < R; ++r) acc[r].store_unaligned(out + r * W);
            if (out == tail) std::copy_n(tail, n - p0, y + p0);
        }
    }

    /// Like score_panels followed by collect_above(y, n, threshold, first,
    /// ...), without writing y: only the rows scoring above the threshold
    /// leave registers. The outputs need 16 spare entries (see collect_above).
    template <class L>
    static index_t score_panels_above(const typename L::E* panels, index_t n, index_t d, const float* x,
                                      const float* scales, float threshold, row_id_t first, float* out_v,
                                      row_id_t* out_id) {
        constexpr index_t P = kPanelRows, R = P / W;
        const QueryFor<L> q8(x, d);
        index_t count = 0;
        for (index_t p0 = 0; p0 < n; p0 += P) {
            batch acc[R];
            panel_scores<L>(panels + p0 * panel_cols<typename L::E>(d), d, x, acc, q8.get());
            if (scales)
#pragma GCC unroll 16
                for (index_t r = 0; r < R; ++r) acc[r] = acc[r] * S::load(scales + p0 + r * W);
#if defined(__x86_64__)
            if constexpr (kAvx512) {
                // No branch on the masks: survivors sit at random places, and
                // a mispredicted branch costs more than storing nothing.
                const __m512 thr = _mm512_set1_ps(threshold);
                const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 4
                for (index_t r = 0; r < R; ++r) {
                    const index_t row0 = p0 + r * 16, t = std::clamp<index_t>(n - row0, 0, 16);
                    const __mmask16 live = static_cast<__mmask16>((1u << t) - 1u);
                    const __mmask16 m = _mm512_mask_cmp_ps_mask(live, acc[r], thr, _CMP_GT_OQ);
                    const __m512i ids = _mm512_add_epi32(lane, _mm512_set1_epi32(first + static_cast<row_id_t>(row0)));
                    _mm512_storeu_ps(out_v + count, _mm512_maskz_compress_ps(m, acc[r]));
                    _mm512_storeu_si512(out_id + count, _mm512_maskz_compress_epi32(m, ids));
                    count += static_cast<index_t>(__builtin_popcount(m));
                }
                continue;
            }
#endif
            alignas(64) float sc[P];
            for (index_t r = 0; r < R; ++r) acc[r].store_aligned(sc + r * W);
            for (index_t j = 0; j < std::min(P, n - p0); ++j)
                if (sc[j] > threshold) {
                    out_v[count] = sc[j];
                    out_id[count++] = first + static_cast<row_id_t>(p0 + j);
                }
        }
        return count;
    }

    /// score_panels for the rows ids[0..n) (a shortlist to re-rank). A row's
    /// elements sit a column apart; each is summed in the same order and with
    /// the same (fused or not) multiply-add as in score_panels, in lane 0 of
    /// a register, so a row scores the same bits both ways.
    template <class L>
    static void score_ids_panels(const typename L::E* panels, index_t d, const row_id_t* ids, index_t n,
                                 const float* x, const float* scales, float* y) {
        constexpr index_t P = kPanelRows;
        using E = typename L::E;
        const QueryFor<L> q8(x, d);
        for (index_t j = 0; j < n; ++j) {
            const index_t id = ids[j];
            if constexpr (std::is_same_v<L, I8>) {
                y[j] = row_score_i8(panels, d, id, q8.q) * (scales ? scales[id] : 1.0f);
                continue;
            }
            const E* p = panels + panel_offset<E>(id, 0, d);
            batch acc(0.0f);
            for (index_t c = 0; c < d; ++c) {
                float v;
                if constexpr (std::is_same_v<E, std::uint16_t>) {
                    const std::uint32_t bits = std::uint32_t(p[c * P]) << 16;
                    std::memcpy(&v, &bits, 4);
                } else {
                    v = float(p[c * P]);
                }
                acc = xsimd::fma(batch(v), batch(x[c]), acc);
            }
            if (scales) acc = acc * batch(scales[id]);
            alignas(64) float lanes[W];
            acc.store_aligned(lanes);
            y[j] = lanes[0];
        }
    }

    // Per element type, for the table.
    template <class L>
    static void score_panels_t(const typename L::E* p, index_t n, index_t d, const float* x, const float* scales,
                               float* y) {
        score_panels<L>(p, n, d, x, scales, y);
    }
    template <class L>
    static index_t score_panels_above_t(const typename L::E* p, index_t n, index_t d, const float* x,
                                        const float* scales, float threshold, row_id_t first, float* out_v,
                                        row_id_t* out_id) {
        return score_panels_above<L>(p, n, d, x, scales, threshold, first, out_v, out_id);
    }
    template <class L>
    static void score_ids_panels_t(const typename L::E* p, index_t d, const row_id_t* ids, index_t n,
                                   const float* x, const float* scales, float* y) {
        score_ids_panels<L>(p, d, ids, n, x, scales, y);
    }

    /// Appends the scores of s[0..n) above `threshold` and their ids (first + j)
    /// to out_v / out_id, in order; returns how many. The outputs need 16
    /// writable entries past the last one appended (whole registers are stored).
    static index_t collect_above(const float* s, index_t n, float threshold, row_id_t first, float* out_v,
                                 row_id_t* out_id) {
        index_t count = 0, j = 0;
#if defined(__x86_64__)
        if constexpr (kAvx512) {
            // Compress in registers, then store whole registers: a compressing
            // store to memory is microcoded (slow) on Zen 4.
            const __m512 thr = _mm512_set1_ps(threshold);
            const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            for (; j < n; j += 16) {
                const index_t t = std::min<index_t>(16, n - j);
                const __mmask16 live = static_cast<__mmask16>((1u << t) - 1u);
                const __m512 v = _mm512_maskz_loadu_ps(live, s + j);
                const __mmask16 m = _mm512_mask_cmp_ps_mask(live, v, thr, _CMP_GT_OQ);
                // No branch on m: survivors sit at random places, and a
                // mispredicted branch costs more than storing nothing.
                const __m512i ids = _mm512_add_epi32(lane, _mm512_set1_epi32(first + static_cast<row_id_t>(j)));
                _mm512_storeu_ps(out_v + count, _mm512_maskz_compress_ps(m, v));
                _mm512_storeu_si512(out_id + count, _mm512_maskz_compress_epi32(m, ids));
                count += static_cast<index_t>(__builtin_popcount(m));
            }
            return count;
        }
#endif
        for (; j < n; ++j)
            if (s[j] > threshold) {
                out_v[count] = s[j];
                out_id[count++] = first + static_cast<row_id_t>(j);
            }
        return count;
    }

    /// How many of keys[0..n) are >= t.
    static index_t count_at_least(const std::uint32_t* keys, index_t n, std::uint32_t t) {
        using U = xsimd::batch<std::uint32_t, Arch>;
        constexpr index_t UW = index_t(U::size);
        const U tv(t), one(1u), zero(0u);
        U acc(0u);
        index_t j = 0;
        for (; j + UW <= n; j += UW) acc += xsimd::select(U::load_unaligned(keys + j) >= tv, one, zero);
        index_t count = index_t(xsimd::hadd(acc));
        for (; j < n; ++j) count += keys[j] >= t;
        return count;
    }

    /// A threshold t with count(keys >= t) >= k and count(keys > t) <= k + slack
    /// (1 <= k <= n; t may fall between two keys). Bisection on the value
    /// between the smallest and the largest key, each step one SIMD count:
    /// no data moves and no branch depends on the data. It stops early once
    /// between k and k + slack keys are >= the midpoint.
    static std::uint32_t kth_largest(const std::uint32_t* keys, index_t n, index_t k, index_t slack) {
        using U = xsimd::batch<std::uint32_t, Arch>;
        constexpr index_t UW = index_t(U::size);
        U vmin(0xffffffffu), vmax(0u);
        index_t j = 0;
        for (; j + UW <= n; j += UW) {
            const U u = U::load_unaligned(keys + j);
            vmin = xsimd::min(vmin, u);
            vmax = xsimd::max(vmax, u);
        }
        alignas(64) std::uint32_t lmin[UW], lmax[UW];
        vmin.store_aligned(lmin);
        vmax.store_aligned(lmax);
        std::uint32_t lo = *std::min_element(lmin, lmin + UW), hi = *std::max_element(lmax, lmax + UW);
        for (; j < n; ++j) {
            lo = std::min(lo, keys[j]);
            hi = std::max(hi, keys[j]);
        }
        while (lo < hi) {  // invariant: count(>= lo) >= k, the k-th largest <= hi
            const std::uint32_t mid = lo + (hi - lo) / 2 + 1;
            const index_t c = count_at_least(keys, n, mid);
            if (c < k) {
                hi = mid - 1;
            } else {
                lo = mid;
                if (c <= k + slack) break;
            }
        }
        return lo;
    }

    /// Offers scores s[0..n) (ids first, first + 1, ...; ascending across
    /// calls) to the min-heap (hv, hid) of `size` <= k entries; ids in the
    /// sorted list ex[0..n_ex) are skipped. Returns the new size.
    static index_t offer(const float* s, index_t n, row_id_t first, index_t k, float* hv, row_id_t* hid, index_t size,
                         const row_id_t* ex, index_t n_ex) {
        using H = TopKKernels<Arch, float>;
        auto push = [&](index_t j) {
            const row_id_t id = first + static_cast<row_id_t>(j);
            const float v = s[j];
            if (size == k && !(v > hv[0])) return;  // ids ascend: an equal score is worse
            if (n_ex && std::binary_search(ex, ex + n_ex, id)) return;
            if (size < k) {
                hv[size] = v;
                hid[size] = id;
                H::sift_up(hv, hid, size);
                ++size;
            } else {
                hv[0] = v;
                hid[0] = id;
                H::sift_down(hv, hid, size, 0);
            }
        };
        index_t j = 0;
        for (; j < n && size < k; ++j) push(j);
        for (; j + 4 * W <= n; j += 4 * W) {
            const batch thr(hv[0]);
            const batch a = S::load(s + j), b = S::load(s + j + W), c = S::load(s + j + 2 * W),
                        e = S::load(s + j + 3 * W);
            if (xsimd::any((a > thr) || (b > thr) || (c > thr) || (e > thr)))
                for (index_t t = j; t < j + 4 * W; ++t) push(t);
        }
        for (; j < n; ++j) push(j);
        return size;
    }
};

/// The retrieval kernels of one ISA as function pointers.
struct RetrievalKernelTable {
    template <class E>
    using ScorePanels = void (*)(const E*, index_t, index_t, const float*, const float*, float*);
    template <class E>
    using ScorePanelsAbove = index_t (*)(const E*, index_t, index_t, const float*, const float*, float, row_id_t,
                                         float*, row_id_t*);
    template <class E>
    using ScoreIdsPanels = void (*)(const E*, index_t, const row_id_t*, index_t, const float*, const float*, float*);

    const char* arch_name;
    ScorePanels<float> score_panels_f32;
    ScorePanels<std::uint16_t> score_panels_bf16;
    ScorePanels<std::int8_t> score_panels_i8;
    ScorePanelsAbove<float> score_panels_above_f32;
    ScorePanelsAbove<std::uint16_t> score_panels_above_bf16;
    ScorePanelsAbove<std::int8_t> score_panels_above_i8;
    ScoreIdsPanels<float> score_ids_panels_f32;
    ScoreIdsPanels<std::uint16_t> score_ids_panels_bf16;
    ScoreIdsPanels<std::int8_t> score_ids_panels_i8;
    void (*score_ids_f32)(const float*, index_t, const row_id_t*, index_t, index_t, const float*, const float*,
                          float*);
    index_t (*offer)(const float*, index_t, row_id_t, index_t, float*, row_id_t*, index_t, const row_id_t*, index_t);
    index_t (*collect_above)(const float*, index_t, float, row_id_t, float*, row_id_t*);
    std::uint32_t (*kth_largest)(const std::uint32_t*, index_t, index_t, index_t);
    /// 4-bit PQ fast scan (kernels/pq4_fast_scan.hpp): codes, blocks, M, lut [M][16], threshold,
    /// out [32 blocks], masks [blocks] or null.
    void (*pq4_scan)(const std::uint8_t*, index_t, index_t, const std::uint8_t*, std::uint16_t, std::uint16_t*,
                     std::uint32_t*);

    /// The panel kernels for element type E (float, bf16 bits, int8).
    template <class E>
    [[nodiscard]] ScorePanels<E> score_panels() const {
        if constexpr (std::is_same_v<E, float>) return score_panels_f32;
        else if constexpr (std::is_same_v<E, std::uint16_t>) return score_panels_bf16;
        else return score_panels_i8;
    }
    template <class E>
    [[nodiscard]] ScorePanelsAbove<E> score_panels_above() const {
        if constexpr (std::is_same_v<E, float>) return score_panels_above_f32;
        else if constexpr (std::is_same_v<E, std::uint16_t>) return score_panels_above_bf16;
        else return score_panels_above_i8;
    }
    template <class E>
    [[nodiscard]] ScoreIdsPanels<E> score_ids_panels() const {
        if constexpr (std::is_same_v<E, float>) return score_ids_panels_f32;
        else if constexpr (std::is_same_v<E, std::uint16_t>) return score_ids_panels_bf16;
        else return score_ids_panels_i8;
    }
};

template <class Arch>
constexpr RetrievalKernelTable make_retrieval_kernel_table() {
    using K = RetrievalKernels<Arch>;
    using F32 = typename K::F32;
    using BF16 = typename K::BF16;
    using I8 = typename K::I8;
    return {Arch::name(),
            &K::template score_panels_t<F32>,
            &K::template score_panels_t<BF16>,
            &K::template score_panels_t<I8>,
            &K::template score_panels_above_t<F32>,
            &K::template score_panels_above_t<BF16>,
            &K::template score_panels_above_t<I8>,
            &K::template score_ids_panels_t<F32>,
            &K::template score_ids_panels_t<BF16>,
            &K::template score_ids_panels_t<I8>,
            &K::score_ids_f32,
            &K::offer,
            &K::collect_above,
            &K::kth_largest,
            &Pq4FastScanKernels<Arch>::scan};
}

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
