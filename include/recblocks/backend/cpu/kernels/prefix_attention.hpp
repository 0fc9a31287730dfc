#pragma once
// Attention of one (sequence, head) whose mask shows query row r a prefix of
// the keys, [0, key_end[r]) (causal, block-causal, bidirectional), fused:
// scores, softmax and the weighted sum of the values for 4 query rows at a
// time, without GEMM packing and without an [L, L] mask.
//   q [rows, dh] (ldq); k, v [keys, dh] (ldk, ldv); keep [keys] optional
//   (0 hides key j); p optional [rows, >= write_end[r]] (ldp) receives
//   P[r, j] for j < key_end[r] and zeros on [key_end[r], write_end[r]);
//   ctx optional [rows, dh] (ldc) receives P V.
// K is transposed once into a per-thread buffer (dh x keys, padded to whole
// registers), then 4 rows x up to 4 registers of scores accumulate over dh
// (FMA with q broadcast); the row softmax is SoftmaxKernels::softmax_row
// (exp_batch) in that buffer; the context accumulates 4 rows x up to 4
// registers of dh over the keys (FMA with P broadcast), from a copy of V with
// rows padded to whole registers (no masked loads in the inner loop: GCC then
// keeps the 16 accumulators in registers). Accumulation in T, in an order
// fixed per ISA. The per-thread buffers grow once and are reused.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "recblocks/backend/cpu/kernels/simd.hpp"
#include "recblocks/backend/cpu/kernels/softmax.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct PrefixAttentionKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;
    static constexpr index_t kRows = 4;  // query rows per block
    static constexpr index_t kVecs = 4;  // registers per row in a block

    static void forward(const T* q, index_t ldq, const T* k, index_t ldk, const T* v, index_t ldv, index_t rows,
                        index_t keys, index_t dh, const index_t* key_end, const index_t* write_end,
                        const std::uint8_t* keep, T scale, T* p, index_t ldp, T* ctx, index_t ldc) {
        const index_t kpad = (keys + kVecs * W - 1) / (kVecs * W) * (kVecs * W);
        const index_t dhp = (dh + W - 1) / W * W;  // V's columns, padded to whole registers
        thread_local std::vector<T> kt_buf, s_buf, v_buf;
        grow(kt_buf, dh * kpad);
        grow(s_buf, kRows * kpad);
        T* kt = kt_buf.data();
        T* s = s_buf.data();
        // Column by column: strided loads stay in L1, stores are contiguous
        // (row by row, the strided stores cost more than the whole score tile).
        for (index_t c = 0; c < dh; ++c) {
            T* dst = kt + c * kpad;
            for (index_t j = 0; j < keys; ++j) dst[j] = k[j * ldk + c];
            std::fill(dst + keys, dst + kpad, T(0));
        }
        T* vp = nullptr;
        if (ctx) {
            grow(v_buf, keys * dhp);
            vp = v_buf.data();
            for (index_t j = 0; j < keys; ++j) {
                std::copy(v + j * ldv, v + j * ldv + dh, vp + j * dhp);
                std::fill(vp + j * dhp + dh, vp + (j + 1) * dhp, T(0));
            }
        }

        for (index_t r0 = 0; r0 < rows; r0 += kRows) {
            const index_t nr = std::min(kRows, rows - r0);
            index_t kmax = 0;
            for (index_t i = 0; i < nr; ++i) kmax = std::max(kmax, key_end[r0 + i]);
            if (nr == kRows) scores<kRows>(q + r0 * ldq, ldq, kt, kpad, dh, kmax, scale, s);
            else
                for (index_t i = 0; i < nr; ++i) scores<1>(q + (r0 + i) * ldq, ldq, kt, kpad, dh, kmax, scale, s + i * kpad);
            for (index_t i = 0; i < nr; ++i) {
                T* row = s + i * kpad;
                const index_t n = key_end[r0 + i];
                if (keep)
                    for (index_t j = 0; j < n; ++j)
                        if (!keep[j]) row[j] = -std::numeric_limits<T>::infinity();
                SoftmaxKernels<Arch, T>::softmax_row(row, row, n);
                std::fill(row + n, row + kmax, T(0));
                if (p) {
                    T* pr = p + (r0 + i) * ldp;
                    const index_t we = write_end[r0 + i];
                    std::copy(row, row + std::min(we, kmax), pr);
                    if (we > kmax) std::fill(pr + kmax, pr + we, T(0));
                }
            }
            if (ctx) {
                if (nr == kRows) context<kRows>(s, kpad, vp, dhp, kmax, dh, ctx + r0 * ldc, ldc);
                else
                    for (index_t i = 0; i < nr; ++i) context<1>(s + i * kpad, kpad, vp, dhp, kmax, dh, ctx + (r0 + i) * ldc, ldc);
            }
        }
    }

private:
    static void grow(std::vector<T>& buf, index_t n) {
        if (static_cast<index_t>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
    }

    /// s[R, kmax rounded up to W] = scale * q[R, dh] kt[dh, :kmax] (kt: ld kpad, zero-padded).
    template <index_t R>
    static void scores(const T* q, index_t ldq, const T* kt, index_t kpad, index_t dh, index_t kmax, T scale, T* s) {
        for (index_t j0 = 0; j0 < kmax; j0 += kVecs * W) {
            const index_t nv = std::min(kVecs, (kmax - j0 + W - 1) / W);
            switch (nv) {
                case 4: score_tile<R, 4>(q, ldq, kt + j0, kpad, dh, scale, s + j0, kpad); break;
                case 3: score_tile<R, 3>(q, ldq, kt + j0, kpad, dh, scale, s + j0, kpad); break;
                case 2: score_tile<R, 2>(q, ldq, kt + j0, kpad, dh, scale, s + j0, kpad); break;
                default: score_tile<R, 1>(q, ldq, kt + j0, kpad, dh, scale, s + j0, kpad); break;
            }
        }
    }

    template <index_t R, index_t NV>
    static void score_tile(const T* q, index_t ldq, const T* kt, index_t kpad, index_t dh, T scale, T* s, index_t lds) {
        batch acc[R][NV];
        for (index_t i = 0; i < R; ++i)
            for (index_t u = 0; u < NV; ++u) acc[i][u] = batch(T(0));
        for (index_t c = 0; c < dh; ++c) {
            batch kv[NV];
            for (index_t u = 0; u < NV; ++u) kv[u] = S::load(kt + c * kpad + u * W);
            for (index_t i = 0; i < R; ++i) {
                const batch qb(q[i * ldq + c]);
                for (index_t u = 0; u < NV; ++u) acc[i][u] = xsimd::fma(qb, kv[u], acc[i][u]);
            }
        }
        const batch sc(scale);
        for (index_t i = 0; i < R; ++i)
            for (index_t u = 0; u < NV; ++u) S::store(s + i * lds + u * W, acc[i][u] * sc);
    }

    /// ctx[R, dh] = s[R, :kmax] v[:kmax, dh] (s zero beyond each row's key_end;
    /// v padded with zeros to whole registers, ld ldv).
    template <index_t R>
    static void context(const T* s, index_t lds, const T* v, index_t ldv, index_t kmax, index_t dh, T* ctx,
                        index_t ldc) {
        for (index_t c0 = 0; c0 < dh; c0 += kVecs * W) {
            const index_t nv = std::min(kVecs, (dh - c0 + W - 1) / W);
            switch (nv) {
                case 4: context_tile<R, 4>(s, lds, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
                case 3: context_tile<R, 3>(s, lds, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
                case 2: context_tile<R, 2>(s, lds, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
                default: context_tile<R, 1>(s, lds, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
            }
        }
    }

    /// NV registers of columns starting at v; `cols` columns remain from there
    /// (the last register may be partial: a masked store).
    template <index_t R, index_t NV>
    static void context_tile(const T* s, index_t lds, const T* v, index_t ldv, index_t kmax, index_t cols, T* ctx,
                             index_t ldc) {
        batch acc[R][NV];
        for (index_t i = 0; i < R; ++i)
            for (index_t u = 0; u < NV; ++u) acc[i][u] = batch(T(0));
        const index_t last = std::min(W, cols - (NV - 1) * W);  // lanes of the last register
        for (index_t j = 0; j < kmax; ++j) {
            batch vv[NV];
            for (index_t u = 0; u < NV; ++u) vv[u] = S::load(v + j * ldv + u * W);
            for (index_t i = 0; i < R; ++i) {
                const batch pb(s[i * lds + j]);
                for (index_t u = 0; u < NV; ++u) acc[i][u] = xsimd::fma(pb, vv[u], acc[i][u]);
            }
        }
        for (index_t i = 0; i < R; ++i) {
            for (index_t u = 0; u + 1 < NV; ++u) S::store(ctx + i * ldc + u * W, acc[i][u]);
            if (last == W) S::store(ctx + i * ldc + (NV - 1) * W, acc[i][NV - 1]);
            else S::store_tail(ctx + i * ldc + (NV - 1) * W, acc[i][NV - 1], last);
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
