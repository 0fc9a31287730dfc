// Primitives<backend::Cuda>: batched prefix attention, flash-style (no [L, L]
// tensor in device memory), explicitly instantiated for float and double.
//
// Contract (backend/primitives.hpp, AttentionShape / AttentionDropout): q is
// [batch * q_len, D], k and v [batch * kv_len, D] (any ld >= D, typically
// column blocks of one packed QKV matrix), head h uses columns
// [h * head_dim, (h + 1) * head_dim). Query row r of every sequence sees keys
// [0, key_end[r]) minus keys whose keep byte (keep [batch, kv_len]) is 0.
// P = softmax over the visible keys of scale * q·k; W = Drop(P) (times
// drop.scale where kept) or P; ctx = W V. Rows with no visible key: P = 0,
// ctx = 0.
//
// Conventions shared by every kernel below:
//   * one block of kAttnThreads = 128 threads (4 warps) per work item; the
//     item index runs over blockIdx.x = (b * heads + h) and blockIdx.y = tile,
//     both grid-stride, so any grid size is correct;
//   * DP = head_dim rounded up to 32, 64, 128 or 256: a lane of a warp owns
//     the head columns lane, lane + 32, ... (DP / 32 of them) when a row is
//     accumulated across the warp;
//   * tiles of Q, dO, K and V sit in shared memory with row stride DP + 1
//     (odd: lanes reading the same column of 32 different rows hit 32
//     different banks), zero-padded past head_dim and past the last row;
//   * sums are in T (float accumulates in float, double in double) and run in
//     a fixed order that depends only on the shape: the same bits on every run,
//     no atomics;
//   * the score of (row r, key j) is s = (sum over c of q[r, c] k[j, c], fmas in
//     column order) * scale in every kernel, so the backward recomputes exactly
//     the forward's scores.
//
// Dropout bits: lane (b * heads + h) uses Rng(key0 | key1 << 32, stream)
// .substream(lane) from core/rng.hpp (its constexpr members run on the device
// with --expt-relaxed-constexpr); weight (r, j) is kept iff
// (u32(r * kv_len + j) >> 8) >= threshold: the same Philox words as the CPU
// and the Reference backend.
#include <cstdint>
#include <limits>

#include "recblocks/backend/cuda/device_utils.cuh"
#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/core/rng.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cuda_detail {
namespace {

inline constexpr int kAttnThreads = 128;
inline constexpr int kAttnWarps = kAttnThreads / 32;
/// Widest head the kernels take (DP = 256).
inline constexpr index_t kAttnMaxHeadDim = 256;

__device__ inline float attn_log(float x) { return logf(x); }
__device__ inline double attn_log(double x) { return log(x); }

/// Everything the attention kernels read, by value (kernel parameter space).
template <class T>
struct AttnArgs {
    const T* q;
    index_t ldq;
    const T* k;
    index_t ldk;
    const T* v;
    index_t ldv;
    const index_t* key_end;     ///< [q_len], shared by all sequences
    const std::uint8_t* keep;   ///< [batch, kv_len] with ld ldkeep, or nullptr (keep all)
    index_t ldkeep;
    index_t lanes;              ///< batch * heads
    index_t heads, q_len, kv_len;
    int hd;                     ///< head_dim
    T scale;
    std::uint64_t seed, stream; ///< dropout Rng (seed = key0 | key1 << 32)
    std::uint32_t threshold;    ///< 0: no dropout
    T drop_scale;
};

/// Whether dropout keeps weight (r, j) of the lane whose substream is `rng`.
template <class T>
__device__ inline bool attn_kept(const AttnArgs<T>& a, const Rng& rng, index_t r, index_t j) {
    return (rng.u32(static_cast<std::uint64_t>(r * a.kv_len + j)) >> 8) >= a.threshold;
}

/// Loads rows [first, first + n) of one head (columns [h * hd, h * hd + hd)) of
/// a [.., ld] matrix into a tile of `Rows` rows with stride DP + 1; rows >= n
/// and columns >= hd become 0. Consecutive threads take consecutive columns:
/// coalesced global reads, conflict-free shared writes.
template <class T, int DP, int Rows>
__device__ inline void attn_load_tile(T* tile, const T* src, index_t ld, index_t first, index_t n, index_t col0,
                                      int hd) {
    constexpr int S = DP + 1;
    for (int e = static_cast<int>(threadIdx.x); e < Rows * DP; e += kAttnThreads) {
        const int row = e / DP, c = e % DP;
        T val = T(0);
        if (row < n && c < hd) val = src[(first + row) * ld + col0 + c];
        tile[row * S + c] = val;
    }
}

/// keep flags of keys [j0, j0 + BN) of sequence b: 1 iff j < kv_len and the
/// keep byte (if any) is nonzero.
template <class T, int BN>
__device__ inline void attn_load_keep(unsigned char* s_keep, const AttnArgs<T>& a, index_t b, index_t j0) {
    const int t = static_cast<int>(threadIdx.x);
    if (t < BN) {
        const index_t j = j0 + t;
        s_keep[t] = j < a.kv_len && (a.keep == nullptr || a.keep[b * a.ldkeep + j] != 0) ? 1 : 0;
    }
}

// ============================================================================
// Forward
// ============================================================================
//
// attention_forward_kernel<T, DP, BM, BN>: one block per (sequence b, head h,
// tile of BM query rows); grid (b * heads + h, query tile). Shared memory:
// Q tile [BM][DP + 1], K and V tiles [BN][DP + 1], scores/weights [BM][BN]
// (dynamic, (BM + 2 BN)(DP + 1) + BM BN elements of T), plus key ends [BM] and
// keep flags [BN]. The block walks the key tiles [j0, j0 + BN) up to the
// largest key_end of its rows:
//   1. scores: thread t computes the pairs (row, key) = (t / BN + i * 128 / BN,
//      t % BN) (one key per thread, so each K element read from shared
//      memory serves all its rows; a warp's Q reads are broadcasts) and writes
//      scale * q·k, or -inf where the key is not visible to the row;
//   2. online softmax: warp w owns rows w * BM / 4 ... (BM / 4 of them); lane
//      j < BN takes key j: tile max by a shuffle all-reduce, m' = max(m, tile
//      max), p = exp(s - m'), the previous sums rescaled by exp(m - m'); each
//      lane keeps its own partial normaliser l (combined once, at the end, by
//      the fixed shuffle tree); p dropped (0) where dropout drops it;
//   3. P·V: the warp's lanes own head columns; acc[row][c] += p_j * v[j][c]
//      over the tile's keys in order (p broadcast from shared memory).
// Finally ctx = acc * (drop.scale or 1) / l (0 if l == 0) and, in training,
// state[lane * q_len + r] = m + log(l) (the row's log-sum-exp; +inf for a row
// with no visible key, so exp(s - state) is 0). BM = 4 (one row per warp) for
// q_len <= 4: serving's last position is one block per (b, h). Accumulation
// in T, fixed order: deterministic.
template <class T, int DP, int BM, int BN>
struct FwdCfg {
    static_assert(DP % 32 == 0 && BM % kAttnWarps == 0 && kAttnThreads % BN == 0 && BN <= 32);
    static constexpr int S = DP + 1;
    static constexpr int RW = BM / kAttnWarps;                      ///< rows per warp
    static constexpr int VD = DP / 32;                              ///< head columns per lane
    static constexpr int RS = kAttnThreads / BN;                    ///< row step of a thread's score pairs
    static constexpr int NP = (BM * BN + kAttnThreads - 1) / kAttnThreads;  ///< score pairs per thread
    static constexpr std::size_t smem = sizeof(T) * (static_cast<std::size_t>(BM + 2 * BN) * S + BM * BN);
};

template <class T, int DP, int BM, int BN>
__global__ void __launch_bounds__(kAttnThreads)
    attention_forward_kernel(AttnArgs<T> a, T* state, T* ctx, index_t ldc) {
    using C = FwdCfg<T, DP, BM, BN>;
    constexpr int S = C::S;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    T* sQ = reinterpret_cast<T*>(attn_smem);
    T* sK = sQ + BM * S;
    T* sV = sK + BN * S;
    T* sP = sV + BN * S;  // [BM][BN]
    __shared__ index_t sKE[BM];
    __shared__ unsigned char sKeep[BN];

    const int t = static_cast<int>(threadIdx.x), lane = t & 31, warp = t >> 5;
    const T neg_inf = -pos_inf<T>();
    const bool dropout = a.threshold != 0;
    const index_t q_tiles = ceil_div(a.q_len, BM);
    for (index_t bh = blockIdx.x; bh < a.lanes; bh += gridDim.x) {
        const index_t b = bh / a.heads, col0 = (bh % a.heads) * a.hd;
        const Rng rng = Rng(a.seed, a.stream).substream(static_cast<std::uint64_t>(bh));
        for (index_t qt = blockIdx.y; qt < q_tiles; qt += gridDim.y) {
            const index_t r0 = qt * BM, nr = min_index(BM, a.q_len - r0);
            __syncthreads();  // the previous item's readers of shared memory are done
            attn_load_tile<T, DP, BM>(sQ, a.q, a.ldq, b * a.q_len + r0, nr, col0, a.hd);
            if (t < BM) sKE[t] = t < nr ? min_index(a.key_end[r0 + t], a.kv_len) : 0;
            __syncthreads();
            index_t kend = 0;  // keys any row of the tile sees (the same in every thread)
            for (int i = 0; i < BM; ++i) kend = sKE[i] > kend ? sKE[i] : kend;

            T m[C::RW], l[C::RW], acc[C::RW][C::VD];
#pragma unroll
            for (int i = 0; i < C::RW; ++i) {
                m[i] = neg_inf;
                l[i] = T(0);
#pragma unroll
                for (int d = 0; d < C::VD; ++d) acc[i][d] = T(0);
            }

            for (index_t j0 = 0; j0 < kend; j0 += BN) {
                const index_t nk = min_index(BN, kend - j0);
                attn_load_tile<T, DP, BN>(sK, a.k, a.ldk, b * a.kv_len + j0, nk, col0, a.hd);
                attn_load_tile<T, DP, BN>(sV, a.v, a.ldv, b * a.kv_len + j0, nk, col0, a.hd);
                attn_load_keep<T, BN>(sKeep, a, b, j0);
                __syncthreads();

                // 1. scores of this thread's pairs (one key, NP rows).
                {
                    const int key = t % BN, row0 = t / BN;
                    T s[C::NP];
#pragma unroll
                    for (int i = 0; i < C::NP; ++i) s[i] = T(0);
                    const T* kr = sK + key * S;
                    for (int c = 0; c < a.hd; ++c) {
                        const T kc = kr[c];
#pragma unroll
                        for (int i = 0; i < C::NP; ++i) {
                            const int row = row0 + i * C::RS;
                            if (row < BM) s[i] = fma(sQ[row * S + c], kc, s[i]);
                        }
                    }
                    const bool key_ok = key < nk && sKeep[key] != 0;
#pragma unroll
                    for (int i = 0; i < C::NP; ++i) {
                        const int row = row0 + i * C::RS;
                        if (row < BM) sP[row * BN + key] = key_ok && j0 + key < sKE[row] ? s[i] * a.scale : neg_inf;
                    }
                }
                __syncthreads();

                // 2. online softmax of the warp's rows (lane j takes key j of the tile).
                T alpha[C::RW];
#pragma unroll
                for (int i = 0; i < C::RW; ++i) {
                    const int row = warp * C::RW + i;
                    const T sv = lane < BN ? sP[row * BN + lane] : neg_inf;
                    const T mn = dev_fmax(m[i], warp_allreduce(sv, FmaxOp{}));
                    // sv == -inf covers mn == -inf (nothing visible yet): no exp(-inf - -inf).
                    T p = sv == neg_inf ? T(0) : dev_exp(sv - mn);
                    alpha[i] = m[i] == neg_inf ? T(0) : dev_exp(m[i] - mn);  // acc, l are 0 while m == -inf
                    l[i] = l[i] * alpha[i] + p;
                    m[i] = mn;
                    if (dropout && p != T(0) && !attn_kept(a, rng, r0 + row, j0 + lane)) p = T(0);
                    if (lane < BN) sP[row * BN + lane] = p;
                }
                __syncwarp();

                // 3. acc = acc * alpha + P V over the tile's keys, in key order.
#pragma unroll
                for (int i = 0; i < C::RW; ++i)
#pragma unroll
                    for (int d = 0; d < C::VD; ++d) acc[i][d] *= alpha[i];
                for (int j = 0; j < nk; ++j) {
                    T vj[C::VD];
#pragma unroll
                    for (int d = 0; d < C::VD; ++d) vj[d] = sV[j * S + lane + 32 * d];
#pragma unroll
                    for (int i = 0; i < C::RW; ++i) {
                        const T pj = sP[(warp * C::RW + i) * BN + j];
#pragma unroll
                        for (int d = 0; d < C::VD; ++d) acc[i][d] = fma(pj, vj[d], acc[i][d]);
                    }
                }
                __syncthreads();  // before the next tile overwrites sK, sV, sP
            }

            // Normalise and write the warp's rows.
            const T keep_scale = dropout ? a.drop_scale : T(1);
#pragma unroll
            for (int i = 0; i < C::RW; ++i) {
                const int row = warp * C::RW + i;
                const T lsum = warp_allreduce(l[i], SumOp{});
                if (row >= nr) continue;
                const index_t r = r0 + row;
                const T f = lsum > T(0) ? keep_scale / lsum : T(0);
                T* out = ctx + (b * a.q_len + r) * ldc + col0;
#pragma unroll
                for (int d = 0; d < C::VD; ++d) {
                    const int c = lane + 32 * d;
                    if (c < a.hd) out[c] = acc[i][d] * f;
                }
                if (state != nullptr && lane == 0)
                    state[bh * a.q_len + r] = lsum > T(0) ? m[i] + attn_log(lsum) : pos_inf<T>();
            }
        }
    }
}

// ============================================================================
// Backward
// ============================================================================
//
// Three kernels (FlashAttention-2's backward), all deterministic:
//   attention_delta_kernel  D[lane * q_len + r] = dctx_r · ctx_r over the head's
//                           columns: one warp per (lane, row), lanes over
//                           columns, sums in T, the fixed shuffle tree.
//   attention_dkdv_kernel   one block per (b, h, tile of BN keys): K and V of
//                           the tile stay in shared memory; the block loops
//                           over the query tiles of BM rows in increasing order
//                           (skipping tiles whose rows see none of its keys)
//                           and accumulates dv_j += W[r, j] dctx_r and
//                           dk_j += scale dS[r, j] q_r in registers: warp w owns
//                           keys w * BN / 4 ..., its lanes the head columns.
//                           Keys no row sees get 0. dk, dv overwritten.
//   attention_dq_kernel     one block per (b, h, tile of BM query rows): Q and
//                           dctx rows stay in shared memory; the block loops
//                           over the key tiles up to its largest key_end and
//                           accumulates dq_r += scale dS[r, j] k_j in registers
//                           (warp w owns rows w * BM / 4 ..., lanes the
//                           columns). dq overwritten; rows that see no key: 0.
// Both tile kernels first compute, for every (row, key) pair of the tile
// (attn_backward_pairs; thread t takes key t % BN and rows t / BN + i * 128 /
// BN, so one K and V read from shared memory serves all its rows):
//   s = scale q·k, P = exp(s - state_r), dP = dctx_r · v_j,
//   dropout: dP' = kept ? dP * drop.scale : 0, W = kept ? P * drop.scale : 0;
//   else dP' = dP, W = P;   dS = P (dP' - D_r)
// (0 for pairs that are not visible), stored as W and scale * dS in shared
// memory [BM][BN]. Tiles: BM = BN = 32 when DP * sizeof(T) <= 512, else 16
// (registers: 2 BN / 4 * DP / 32 accumulators per thread in dk/dv). Shared
// memory: (2 BM + 2 BN)(DP + 1) + 2 BM BN elements of T (dq: one BM BN less).
template <class T, int DP>
struct BwdCfg {
    static_assert(DP % 32 == 0);
    static constexpr int BM = DP * sizeof(T) <= 512 ? 32 : 16;
    static constexpr int BN = BM;
    static constexpr int S = DP + 1;
    static constexpr int VD = DP / 32;
    static constexpr int RW = BM / kAttnWarps;  ///< dq: rows per warp
    static constexpr int KW = BN / kAttnWarps;  ///< dk/dv: keys per warp
    static constexpr int RS = kAttnThreads / BN;
    static constexpr int NP = BM * BN / kAttnThreads;
    static_assert(BM * BN % kAttnThreads == 0 && kAttnThreads % BN == 0);
    static constexpr std::size_t smem_dkdv =
        sizeof(T) * (static_cast<std::size_t>(2 * BM + 2 * BN) * S + 2 * BM * BN);
    static constexpr std::size_t smem_dq = sizeof(T) * (static_cast<std::size_t>(2 * BM + 2 * BN) * S + BM * BN);
};

template <class T>
__global__ void __launch_bounds__(kBlock)
    attention_delta_kernel(const T* dctx, index_t lddc, const T* ctx, index_t ldc, index_t lanes, index_t heads,
                           index_t q_len, int hd, T* delta) {
    const int lane = static_cast<int>(threadIdx.x) & 31;
    const index_t n = lanes * q_len;
    for (index_t i = blockIdx.x * index_t{kWarps} + (threadIdx.x >> 5); i < n; i += index_t{gridDim.x} * kWarps) {
        const index_t bh = i / q_len, r = i % q_len;
        const index_t row = (bh / heads) * q_len + r, col0 = (bh % heads) * hd;
        const T* g = dctx + row * lddc + col0;
        const T* o = ctx + row * ldc + col0;
        T acc = T(0);
        for (int c = lane; c < hd; c += 32) acc = fma(g[c], o[c], acc);
        acc = warp_reduce(acc, SumOp{});
        if (lane == 0) delta[i] = acc;
    }
}

/// The pair phase of the backward tile kernels (see above). Reads the tiles
/// sQ, sdO [BM][S], sK, sV [BN][S] and the row data (key ends, state, D) and
/// key flags; writes sW (if WantW) and sdS [BM][BN]. Call between barriers.
template <class T, int DP, bool WantW>
__device__ inline void attn_backward_pairs(const AttnArgs<T>& a, const Rng& rng, index_t r0, index_t j0,
                                           const T* sQ, const T* sdO, const T* sK, const T* sV, const index_t* sKE,
                                           const T* sLSE, const T* sD, const unsigned char* sKeep, T* sW, T* sdS) {
    using C = BwdCfg<T, DP>;
    constexpr int S = C::S, BN = C::BN;
    const int t = static_cast<int>(threadIdx.x);
    const int key = t % BN, row0 = t / BN;
    T s[C::NP], dp[C::NP];
#pragma unroll
    for (int i = 0; i < C::NP; ++i) {
        s[i] = T(0);
        dp[i] = T(0);
    }
    const T* kr = sK + key * S;
    const T* vr = sV + key * S;
    for (int c = 0; c < a.hd; ++c) {
        const T kc = kr[c], vc = vr[c];
#pragma unroll
        for (int i = 0; i < C::NP; ++i) {
            const int row = row0 + i * C::RS;
            s[i] = fma(sQ[row * S + c], kc, s[i]);
            dp[i] = fma(sdO[row * S + c], vc, dp[i]);
        }
    }
    const bool key_ok = sKeep[key] != 0;
#pragma unroll
    for (int i = 0; i < C::NP; ++i) {
        const int row = row0 + i * C::RS;
        T w = T(0), ds = T(0);
        if (key_ok && j0 + key < sKE[row]) {
            const T p = dev_exp(s[i] * a.scale - sLSE[row]);
            T dpk = dp[i];
            w = p;
            if (a.threshold != 0) {
                const bool kept = attn_kept(a, rng, r0 + row, j0 + key);
                dpk = kept ? dpk * a.drop_scale : T(0);
                w = kept ? p * a.drop_scale : T(0);
            }
            ds = a.scale * (p * (dpk - sD[row]));
        }
        if constexpr (WantW) sW[row * BN + key] = w;
        sdS[row * BN + key] = ds;
    }
}

/// Row data of a query tile: key ends (clamped to kv_len; 0 past q_len), the
/// saved log-sum-exp and D. Threads t < BM.
template <class T, int BM>
__device__ inline void attn_load_rows(const AttnArgs<T>& a, index_t bh, index_t r0, index_t nr, const T* lse,
                                      const T* delta, index_t* sKE, T* sLSE, T* sD) {
    const int t = static_cast<int>(threadIdx.x);
    if (t < BM) {
        const bool in = t < nr;
        sKE[t] = in ? min_index(a.key_end[r0 + t], a.kv_len) : 0;
        sLSE[t] = in ? lse[bh * a.q_len + r0 + t] : T(0);
        sD[t] = in ? delta[bh * a.q_len + r0 + t] : T(0);
    }
}

template <class T, int DP>
__global__ void __launch_bounds__(kAttnThreads)
    attention_dkdv_kernel(AttnArgs<T> a, const T* dctx, index_t lddc, const T* lse, const T* delta, T* dk,
                          index_t lddk, T* dv, index_t lddv) {
    using C = BwdCfg<T, DP>;
    constexpr int S = C::S, BM = C::BM, BN = C::BN;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    T* sQ = reinterpret_cast<T*>(attn_smem);
    T* sdO = sQ + BM * S;
    T* sK = sdO + BM * S;
    T* sV = sK + BN * S;
    T* sW = sV + BN * S;   // [BM][BN]
    T* sdS = sW + BM * BN;  // [BM][BN]
    __shared__ index_t sKE[BM];
    __shared__ T sLSE[BM], sD[BM];
    __shared__ unsigned char sKeep[BN];

    const int t = static_cast<int>(threadIdx.x), lane = t & 31, warp = t >> 5;
    const index_t k_tiles = ceil_div(a.kv_len, BN), q_tiles = ceil_div(a.q_len, BM);
    for (index_t bh = blockIdx.x; bh < a.lanes; bh += gridDim.x) {
        const index_t b = bh / a.heads, col0 = (bh % a.heads) * a.hd;
        const Rng rng = Rng(a.seed, a.stream).substream(static_cast<std::uint64_t>(bh));
        for (index_t kt = blockIdx.y; kt < k_tiles; kt += gridDim.y) {
            const index_t j0 = kt * BN, nk = min_index(BN, a.kv_len - j0);
            __syncthreads();  // the previous item's readers of shared memory are done
            attn_load_tile<T, DP, BN>(sK, a.k, a.ldk, b * a.kv_len + j0, nk, col0, a.hd);
            attn_load_tile<T, DP, BN>(sV, a.v, a.ldv, b * a.kv_len + j0, nk, col0, a.hd);
            attn_load_keep<T, BN>(sKeep, a, b, j0);

            T gk[C::KW][C::VD], gv[C::KW][C::VD];
#pragma unroll
            for (int i = 0; i < C::KW; ++i)
#pragma unroll
                for (int d = 0; d < C::VD; ++d) {
                    gk[i][d] = T(0);
                    gv[i][d] = T(0);
                }

            for (index_t qt = 0; qt < q_tiles; ++qt) {
                const index_t r0 = qt * BM, nr = min_index(BM, a.q_len - r0);
                // Does any row of this query tile see a key of ours? (Also the
                // barrier after which the previous tile's readers are done.)
                const bool sees = t < nr && min_index(a.key_end[r0 + t], a.kv_len) > j0;
                if (__syncthreads_or(sees) == 0) continue;
                attn_load_tile<T, DP, BM>(sQ, a.q, a.ldq, b * a.q_len + r0, nr, col0, a.hd);
                attn_load_tile<T, DP, BM>(sdO, dctx, lddc, b * a.q_len + r0, nr, col0, a.hd);
                attn_load_rows<T, BM>(a, bh, r0, nr, lse, delta, sKE, sLSE, sD);
                __syncthreads();
                attn_backward_pairs<T, DP, true>(a, rng, r0, j0, sQ, sdO, sK, sV, sKE, sLSE, sD, sKeep, sW, sdS);
                __syncthreads();
                // dv_j += W[r, j] dO_r, dk_j += scale dS[r, j] q_r over the tile's rows, in row order.
                for (int row = 0; row < nr; ++row) {
                    T qv[C::VD], ov[C::VD];
#pragma unroll
                    for (int d = 0; d < C::VD; ++d) {
                        qv[d] = sQ[row * S + lane + 32 * d];
                        ov[d] = sdO[row * S + lane + 32 * d];
                    }
#pragma unroll
                    for (int i = 0; i < C::KW; ++i) {
                        const int kk = warp * C::KW + i;
                        const T w = sW[row * BN + kk], ds = sdS[row * BN + kk];
#pragma unroll
                        for (int d = 0; d < C::VD; ++d) {
                            gv[i][d] = fma(w, ov[d], gv[i][d]);
                            gk[i][d] = fma(ds, qv[d], gk[i][d]);
                        }
                    }
                }
            }

#pragma unroll
            for (int i = 0; i < C::KW; ++i) {
                const int kk = warp * C::KW + i;
                if (kk >= nk) continue;
                const index_t row = b * a.kv_len + j0 + kk;
                T* ok = dk + row * lddk + col0;
                T* ov = dv + row * lddv + col0;
#pragma unroll
                for (int d = 0; d < C::VD; ++d) {
                    const int c = lane + 32 * d;
                    if (c < a.hd) {
                        ok[c] = gk[i][d];
                        ov[c] = gv[i][d];
                    }
                }
            }
        }
    }
}

template <class T, int DP>
__global__ void __launch_bounds__(kAttnThreads)
    attention_dq_kernel(AttnArgs<T> a, const T* dctx, index_t lddc, const T* lse, const T* delta, T* dq,
                        index_t lddq) {
    using C = BwdCfg<T, DP>;
    constexpr int S = C::S, BM = C::BM, BN = C::BN;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    T* sQ = reinterpret_cast<T*>(attn_smem);
    T* sdO = sQ + BM * S;
    T* sK = sdO + BM * S;
    T* sV = sK + BN * S;
    T* sdS = sV + BN * S;  // [BM][BN]
    __shared__ index_t sKE[BM];
    __shared__ T sLSE[BM], sD[BM];
    __shared__ unsigned char sKeep[BN];

    const int t = static_cast<int>(threadIdx.x), lane = t & 31, warp = t >> 5;
    const index_t q_tiles = ceil_div(a.q_len, BM);
    for (index_t bh = blockIdx.x; bh < a.lanes; bh += gridDim.x) {
        const index_t b = bh / a.heads, col0 = (bh % a.heads) * a.hd;
        const Rng rng = Rng(a.seed, a.stream).substream(static_cast<std::uint64_t>(bh));
        for (index_t qt = blockIdx.y; qt < q_tiles; qt += gridDim.y) {
            const index_t r0 = qt * BM, nr = min_index(BM, a.q_len - r0);
            __syncthreads();  // the previous item's readers of shared memory are done
            attn_load_tile<T, DP, BM>(sQ, a.q, a.ldq, b * a.q_len + r0, nr, col0, a.hd);
            attn_load_tile<T, DP, BM>(sdO, dctx, lddc, b * a.q_len + r0, nr, col0, a.hd);
            attn_load_rows<T, BM>(a, bh, r0, nr, lse, delta, sKE, sLSE, sD);
            __syncthreads();
            index_t kend = 0;  // the same in every thread
            for (int i = 0; i < BM; ++i) kend = sKE[i] > kend ? sKE[i] : kend;

            T g[C::RW][C::VD];
#pragma unroll
            for (int i = 0; i < C::RW; ++i)
#pragma unroll
                for (int d = 0; d < C::VD; ++d) g[i][d] = T(0);

            for (index_t j0 = 0; j0 < kend; j0 += BN) {
                const index_t nk = min_index(BN, a.kv_len - j0);
                attn_load_tile<T, DP, BN>(sK, a.k, a.ldk, b * a.kv_len + j0, nk, col0, a.hd);
                attn_load_tile<T, DP, BN>(sV, a.v, a.ldv, b * a.kv_len + j0, nk, col0, a.hd);
                attn_load_keep<T, BN>(sKeep, a, b, j0);
                __syncthreads();
                attn_backward_pairs<T, DP, false>(a, rng, r0, j0, sQ, sdO, sK, sV, sKE, sLSE, sD, sKeep, nullptr,
                                                  sdS);
                __syncthreads();
                // dq_r += scale dS[r, j] k_j over the tile's keys, in key order.
                for (int j = 0; j < nk; ++j) {
                    T kv[C::VD];
#pragma unroll
                    for (int d = 0; d < C::VD; ++d) kv[d] = sK[j * S + lane + 32 * d];
#pragma unroll
                    for (int i = 0; i < C::RW; ++i) {
                        const T ds = sdS[(warp * C::RW + i) * BN + j];
#pragma unroll
                        for (int d = 0; d < C::VD; ++d) g[i][d] = fma(ds, kv[d], g[i][d]);
                    }
                }
                __syncthreads();  // before the next tile overwrites sK, sV, sdS
            }

#pragma unroll
            for (int i = 0; i < C::RW; ++i) {
                const int row = warp * C::RW + i;
                if (row >= nr) continue;
                T* out = dq + (b * a.q_len + r0 + row) * lddq + col0;
#pragma unroll
                for (int d = 0; d < C::VD; ++d) {
                    const int c = lane + 32 * d;
                    if (c < a.hd) out[c] = g[i][d];
                }
            }
        }
    }
}

// ============================================================================
// Launch helpers
// ============================================================================

/// A single-row view may carry any ld; kernels need ld >= cols.
template <class V>
index_t attn_ld(const V& m) {
    const index_t ld = m.rows() <= 1 ? m.cols() : m.ld();
    return ld > 0 ? ld : 1;
}

/// Calls f(std::integral_constant<int, DP>{}) for the smallest DP in
/// {32, 64, 128, 256} with DP >= head_dim.
template <class F>
void dispatch_head_dim(index_t head_dim, F&& f) {
    if (head_dim <= 32) f(std::integral_constant<int, 32>{});
    else if (head_dim <= 64) f(std::integral_constant<int, 64>{});
    else if (head_dim <= 128) f(std::integral_constant<int, 128>{});
    else f(std::integral_constant<int, 256>{});
}

/// Grid (lanes, tiles), each capped (the kernels loop).
dim3 attn_grid(index_t lanes, index_t tiles) {
    return dim3(static_cast<unsigned>(min_index(lanes, index_t{1} << 30)),
                static_cast<unsigned>(min_index(tiles, 65535)), 1);
}

/// Allows `kernel` `bytes` of dynamic shared memory (above the 48 KiB default).
template <class K>
void allow_shared(K* kernel, std::size_t bytes) {
    if (bytes > 48 * 1024)
        RECBLOCKS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  static_cast<int>(bytes)));
}

template <class T>
AttnArgs<T> make_attn_args(AttentionShape s, MatrixView<const T> q, MatrixView<const T> k, MatrixView<const T> v,
                           VectorView<const index_t> key_end, MatrixView<const std::uint8_t> keep, T scale,
                           const AttentionDropout<T>& drop) {
    AttnArgs<T> a{};
    a.q = q.data();
    a.ldq = attn_ld(q);
    a.k = k.data();
    a.ldk = attn_ld(k);
    a.v = v.data();
    a.ldv = attn_ld(v);
    a.key_end = key_end.data();
    a.keep = keep.data();
    a.ldkeep = keep.data() != nullptr ? attn_ld(keep) : 0;
    a.lanes = s.batch * s.heads;
    a.heads = s.heads;
    a.q_len = s.q_len;
    a.kv_len = s.kv_len;
    a.hd = static_cast<int>(s.head_dim);
    a.scale = scale;
    a.seed = static_cast<std::uint64_t>(drop.key0) | (static_cast<std::uint64_t>(drop.key1) << 32);
    a.stream = drop.stream;
    a.threshold = drop.threshold;
    a.drop_scale = drop.scale;
    return a;
}

void check_head_dim(AttentionShape s, const char* op) {
    if (s.head_dim > kAttnMaxHeadDim)
        throw BackendError(detail::concat(op, ": head_dim ", s.head_dim, " exceeds the CUDA backend's limit of ",
                                          kAttnMaxHeadDim));
}

}  // namespace
}  // namespace cuda_detail

// ============================================================================
// Host entry points
// ============================================================================

using P = Primitives<backend::Cuda>;
using namespace cuda_detail;

template <class T>
index_t P::attention_state_size(const B&, AttentionShape s, bool) {
    return s.batch * s.heads * s.q_len;  // the row log-sum-exp; the dropout mask is recomputed
}

template <class T>
void P::attention_forward(const B& be, AttentionShape s, MatrixView<const T> q, MatrixView<const T> k,
                          MatrixView<const T> v, VectorView<const index_t> key_end,
                          MatrixView<const std::uint8_t> keep, T scale, const AttentionDropout<T>& drop,
                          VectorView<T> state, MatrixView<T> ctx) {
    check_head_dim(s, "ops::attention_forward");
    const index_t lanes = s.batch * s.heads;
    if (lanes == 0 || s.q_len == 0) return;
    const AttnArgs<T> a = make_attn_args(s, q, k, v, key_end, keep, scale, drop);
    T* st = state.data();
    T* out = ctx.data();
    const index_t ldc = attn_ld(ctx);
    dispatch_head_dim(s.head_dim, [&](auto dp) {
        constexpr int DP = decltype(dp)::value;
        constexpr int BN = DP <= 128 ? 32 : 16;
        const auto launch = [&](auto bm) {
            constexpr int BM = decltype(bm)::value;
            constexpr std::size_t smem = FwdCfg<T, DP, BM, BN>::smem;
            auto* kernel = &attention_forward_kernel<T, DP, BM, BN>;
            allow_shared(kernel, smem);
            kernel<<<attn_grid(lanes, ceil_div(s.q_len, BM)), kAttnThreads, smem, be.stream>>>(a, st, out, ldc);
            RECBLOCKS_CUDA_CHECK_LAUNCH();
        };
        if (s.q_len <= 4) launch(std::integral_constant<int, 4>{});  // serving: one block per (b, h)
        else if constexpr (DP <= 64) launch(std::integral_constant<int, 32>{});
        else launch(std::integral_constant<int, 16>{});
    });
}

template <class T>
void P::attention_backward(const B& be, AttentionShape s, MatrixView<const T> q, MatrixView<const T> k,
                           MatrixView<const T> v, VectorView<const index_t> key_end,
                           MatrixView<const std::uint8_t> keep, T scale, const AttentionDropout<T>& drop,
                           VectorView<const T> state, MatrixView<const T> ctx, MatrixView<const T> dctx,
                           MatrixView<T> dq, MatrixView<T> dk, MatrixView<T> dv) {
    check_head_dim(s, "ops::attention_backward");
    const index_t lanes = s.batch * s.heads;
    if (lanes == 0 || (s.q_len == 0 && s.kv_len == 0)) return;
    const AttnArgs<T> a = make_attn_args(s, q, k, v, key_end, keep, scale, drop);
    const index_t lddc = attn_ld(dctx);
    Scratch scratch(static_cast<std::size_t>(lanes * s.q_len) * sizeof(T), be.stream);
    T* delta = scratch.at<T>(0);
    if (s.q_len > 0) {
        const auto blocks = static_cast<unsigned>(min_index(ceil_div(lanes * s.q_len, kWarps), 1 << 20));
        attention_delta_kernel<<<blocks, kBlock, 0, be.stream>>>(dctx.data(), lddc, ctx.data(), attn_ld(ctx), lanes,
                                                                 s.heads, s.q_len, a.hd, delta);
        RECBLOCKS_CUDA_CHECK_LAUNCH();
    }
    dispatch_head_dim(s.head_dim, [&](auto dp) {
        constexpr int DP = decltype(dp)::value;
        using C = BwdCfg<T, DP>;
        if (s.kv_len > 0) {
            auto* kernel = &attention_dkdv_kernel<T, DP>;
            allow_shared(kernel, C::smem_dkdv);
            kernel<<<attn_grid(lanes, ceil_div(s.kv_len, C::BN)), kAttnThreads, C::smem_dkdv, be.stream>>>(
                a, dctx.data(), lddc, state.data(), delta, dk.data(), attn_ld(dk), dv.data(), attn_ld(dv));
            RECBLOCKS_CUDA_CHECK_LAUNCH();
        }
        if (s.q_len > 0) {
            auto* kernel = &attention_dq_kernel<T, DP>;
            allow_shared(kernel, C::smem_dq);
            kernel<<<attn_grid(lanes, ceil_div(s.q_len, C::BM)), kAttnThreads, C::smem_dq, be.stream>>>(
                a, dctx.data(), lddc, state.data(), delta, dq.data(), attn_ld(dq));
            RECBLOCKS_CUDA_CHECK_LAUNCH();
        }
    });
}

// ============================================================================
// Explicit instantiations (declared extern in backend/cuda/primitives.hpp)
// ============================================================================

#define RECBLOCKS_CUDA_INSTANTIATE_ATTENTION(T)                                                                    \
    template index_t P::attention_state_size<T>(const backend::Cuda&, AttentionShape, bool);                      \
    template void P::attention_forward<T>(const backend::Cuda&, AttentionShape, MatrixView<const T>,              \
                                          MatrixView<const T>, MatrixView<const T>, VectorView<const index_t>,     \
                                          MatrixView<const std::uint8_t>, T, const AttentionDropout<T>&,           \
                                          VectorView<T>, MatrixView<T>);                                           \
    template void P::attention_backward<T>(const backend::Cuda&, AttentionShape, MatrixView<const T>,             \
                                           MatrixView<const T>, MatrixView<const T>, VectorView<const index_t>,    \
                                           MatrixView<const std::uint8_t>, T, const AttentionDropout<T>&,          \
                                           VectorView<const T>, MatrixView<const T>, MatrixView<const T>,          \
                                           MatrixView<T>, MatrixView<T>, MatrixView<T>)

RECBLOCKS_CUDA_INSTANTIATE_ATTENTION(float);
RECBLOCKS_CUDA_INSTANTIATE_ATTENTION(double);

#undef RECBLOCKS_CUDA_INSTANTIATE_ATTENTION

RECBLOCKS_NAMESPACE_END
