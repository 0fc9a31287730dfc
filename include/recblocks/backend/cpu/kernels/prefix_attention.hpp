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
        transpose_padded(k, ldk, keys, dh, kt, kpad);
        T* vp = nullptr;
        if (ctx) {
            grow(v_buf, keys * dhp);
            vp = v_buf.data();
            copy_padded(v, ldv, keys, dh, vp, dhp);
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
                if (nr == kRows) context<kRows>(s, kpad, 1, vp, dhp, kmax, dh, ctx + r0 * ldc, ldc);
                else
                    for (index_t i = 0; i < nr; ++i) context<1>(s + i * kpad, kpad, 1, vp, dhp, kmax, dh, ctx + (r0 + i) * ldc, ldc);
            }
        }
    }

    /// Backward of forward() for key_end non-decreasing over rows (every prefix
    /// mask's is): from dctx [rows, dh] (ld lddc), the forward's P and the
    /// weights that multiplied V, w (Drop(P), ld ldw; w == nullptr: no dropout,
    /// w = P), drop_scale = 1 / (1 - p), writes dq [rows, dh], dk and dv
    /// [keys, dh] (not accumulated). Pass 1 over blocks of 4 query rows:
    ///   dP' = dctx Vᵀ;  dP = Drop'(dP') (kept where w != 0);
    ///   dS = P (dP - rowsum(P dP)) * scale;  dq = dS K.
    /// Pass 2 over blocks of 4 keys, from the first row that sees them:
    ///   dk = dSᵀ Q;  dv = wᵀ dctx.
    /// dS and w are kept per row in per-thread buffers padded to whole
    /// registers, zero beyond each row's key_end.
    static void backward(const T* q, index_t ldq, const T* k, index_t ldk, const T* v, index_t ldv, const T* dctx,
                         index_t lddc, const T* p, index_t ldp, const T* w, index_t ldw, index_t rows, index_t keys,
                         index_t dh, const index_t* key_end, T drop_scale, T scale, T* dq, index_t ldq_out, T* dk,
                         index_t ldk_out, T* dv, index_t ldv_out) {
        const index_t kpad = (keys + kVecs * W - 1) / (kVecs * W) * (kVecs * W);
        const index_t dhp = (dh + W - 1) / W * W;
        thread_local std::vector<T> vt_buf, kp_buf, qp_buf, dcp_buf, ds_buf, ws_buf;
        grow(vt_buf, dh * kpad);
        grow(kp_buf, keys * dhp);
        grow(qp_buf, rows * dhp);
        grow(dcp_buf, rows * dhp);
        grow(ds_buf, rows * kpad);
        grow(ws_buf, rows * kpad);
        T *vt = vt_buf.data(), *kp = kp_buf.data(), *qp = qp_buf.data(), *dcp = dcp_buf.data();
        T *ds = ds_buf.data(), *ws = ws_buf.data();
        transpose_padded(v, ldv, keys, dh, vt, kpad);
        copy_padded(k, ldk, keys, dh, kp, dhp);
        copy_padded(q, ldq, rows, dh, qp, dhp);
        copy_padded(dctx, lddc, rows, dh, dcp, dhp);

        // Pass 1: dS (scaled) and the weights per row; dq.
        for (index_t r0 = 0; r0 < rows; r0 += kRows) {
            const index_t nr = std::min(kRows, rows - r0);
            const index_t kmax = key_end[r0 + nr - 1];
            // Zero-filled up to a multiple of both W (the score tiles' reach) and
            // 4 (pass 2 reads 4 keys from every row that sees the first).
            constexpr index_t kQuantum = W > kRows ? W : kRows;
            const index_t kround = std::min(kpad, (kmax + kQuantum - 1) / kQuantum * kQuantum);
            T* d0 = ds + r0 * kpad;
            if (nr == kRows) scores<kRows>(dcp + r0 * dhp, dhp, vt, kpad, dh, kmax, T(1), d0);
            else
                for (index_t i = 0; i < nr; ++i) scores<1>(dcp + (r0 + i) * dhp, dhp, vt, kpad, dh, kmax, T(1), d0 + i * kpad);
            for (index_t i = 0; i < nr; ++i) {
                const index_t r = r0 + i, n = key_end[r];
                T* d = ds + r * kpad;
                T* wr = ws + r * kpad;
                const T* pr = p + r * ldp;
                if (w) {
                    const T* wsrc = w + r * ldw;
                    for (index_t j = 0; j < n; ++j) {
                        d[j] = wsrc[j] != T(0) ? d[j] * drop_scale : T(0);
                        wr[j] = wsrc[j];
                    }
                } else {
                    std::copy(pr, pr + n, wr);
                }
                softmax_backward_row(pr, d, n, scale);
                std::fill(d + n, d + kround, T(0));
                std::fill(wr + n, wr + kround, T(0));
            }
            if (nr == kRows) context<kRows>(d0, kpad, 1, kp, dhp, kmax, dh, dq + r0 * ldq_out, ldq_out);
            else
                for (index_t i = 0; i < nr; ++i)
                    context<1>(d0 + i * kpad, kpad, 1, kp, dhp, kmax, dh, dq + (r0 + i) * ldq_out, ldq_out);
        }

        // Pass 2: dk, dv over blocks of keys, summing the rows that see them.
        const index_t seen = rows > 0 ? key_end[rows - 1] : 0;
        index_t first = 0;  // first row that sees key j0 (key_end is non-decreasing)
        for (index_t j0 = 0; j0 < keys; j0 += kRows) {
            const index_t nk = std::min(kRows, keys - j0);
            while (first < rows && key_end[first] <= j0) ++first;
            const index_t m = j0 < seen ? rows - first : 0;
            const T* dsb = ds + first * kpad + j0;
            const T* wsb = ws + first * kpad + j0;
            if (nk == kRows) {
                context<kRows>(dsb, 1, kpad, qp + first * dhp, dhp, m, dh, dk + j0 * ldk_out, ldk_out);
                context<kRows>(wsb, 1, kpad, dcp + first * dhp, dhp, m, dh, dv + j0 * ldv_out, ldv_out);
            } else {
                for (index_t i = 0; i < nk; ++i) {
                    context<1>(dsb + i, 1, kpad, qp + first * dhp, dhp, m, dh, dk + (j0 + i) * ldk_out, ldk_out);
                    context<1>(wsb + i, 1, kpad, dcp + first * dhp, dhp, m, dh, dv + (j0 + i) * ldv_out, ldv_out);
                }
            }
        }
    }

private:
    /// d[j] = scale * y[j] * (d[j] - sum_i y[i] d[i]) for j < n (softmax backward, in place).
    static void softmax_backward_row(const T* y, T* d, index_t n, T scale) {
        batch acc(T(0));
        index_t i = 0;
        for (; i + W <= n; i += W) acc = xsimd::fma(S::load(y + i), S::load(d + i), acc);
        if (i < n) acc = xsimd::fma(S::load_tail(y + i, n - i, T(0)), S::load_tail(d + i, n - i, T(0)), acc);
        const batch sum(S::hsum(acc)), sc(scale);
        for (i = 0; i + W <= n; i += W) S::store(d + i, S::load(y + i) * (S::load(d + i) - sum) * sc);
        if (i < n)
            S::store_tail(d + i, S::load_tail(y + i, n - i, T(0)) * (S::load_tail(d + i, n - i, T(0)) - sum) * sc,
                          n - i);
    }

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

    /// ctx[R, dh] = s[R, :kmax] v[:kmax, dh], with s(i, j) = s[i * s_row + j * s_col]
    /// (zero beyond each row's key_end) and v padded with zeros to whole
    /// registers (ld ldv).
    template <index_t R>
    static void context(const T* s, index_t s_row, index_t s_col, const T* v, index_t ldv, index_t kmax, index_t dh,
                        T* ctx, index_t ldc) {
        for (index_t c0 = 0; c0 < dh; c0 += kVecs * W) {
            const index_t nv = std::min(kVecs, (dh - c0 + W - 1) / W);
            switch (nv) {
                case 4: context_tile<R, 4>(s, s_row, s_col, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
                case 3: context_tile<R, 3>(s, s_row, s_col, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
                case 2: context_tile<R, 2>(s, s_row, s_col, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
                default: context_tile<R, 1>(s, s_row, s_col, v + c0, ldv, kmax, dh - c0, ctx + c0, ldc); break;
            }
        }
    }

    /// NV registers of columns starting at v; `cols` columns remain from there
    /// (the last register may be partial: a masked store).
    template <index_t R, index_t NV>
    static void context_tile(const T* s, index_t s_row, index_t s_col, const T* v, index_t ldv, index_t kmax,
                             index_t cols, T* ctx, index_t ldc) {
        batch acc[R][NV];
        for (index_t i = 0; i < R; ++i)
            for (index_t u = 0; u < NV; ++u) acc[i][u] = batch(T(0));
        const index_t last = std::min(W, cols - (NV - 1) * W);  // lanes of the last register
        for (index_t j = 0; j < kmax; ++j) {
            batch vv[NV];
            for (index_t u = 0; u < NV; ++u) vv[u] = S::load(v + j * ldv + u * W);
            for (index_t i = 0; i < R; ++i) {
                const batch pb(s[i * s_row + j * s_col]);
                for (index_t u = 0; u < NV; ++u) acc[i][u] = xsimd::fma(pb, vv[u], acc[i][u]);
            }
        }
        for (index_t i = 0; i < R; ++i) {
            for (index_t u = 0; u + 1 < NV; ++u) S::store(ctx + i * ldc + u * W, acc[i][u]);
            if (last == W) S::store(ctx + i * ldc + (NV - 1) * W, acc[i][NV - 1]);
            else S::store_tail(ctx + i * ldc + (NV - 1) * W, acc[i][NV - 1], last);
        }
    }

    /// dst [n, dh] -> rows of dhp (a multiple of W) with zero padding.
    static void copy_padded(const T* src, index_t ld, index_t n, index_t dh, T* dst, index_t dhp) {
        for (index_t j = 0; j < n; ++j) {
            std::copy(src + j * ld, src + j * ld + dh, dst + j * dhp);
            std::fill(dst + j * dhp + dh, dst + (j + 1) * dhp, T(0));
        }
    }

    /// dst [dh, kpad] = src [n, dh]ᵀ, zero beyond n. Column by column: strided
    /// loads stay in L1, stores are contiguous (row by row, the strided stores
    /// cost more than the whole score tile).
    static void transpose_padded(const T* src, index_t ld, index_t n, index_t dh, T* dst, index_t kpad) {
        for (index_t c = 0; c < dh; ++c) {
            T* d = dst + c * kpad;
            for (index_t j = 0; j < n; ++j) d[j] = src[j * ld + c];
            std::fill(d + n, d + kpad, T(0));
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
