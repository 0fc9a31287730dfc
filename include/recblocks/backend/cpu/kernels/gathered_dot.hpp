#pragma once
// Dot products of one query with rows picked by id from a table:
//
//   y[i] = alpha * <table[ids[i]], x>     for i in [0, n)
//
// The search stage of long-sequence target attention (DARE): the behaviours of
// a history are ids into an embedding table, so their rows are gathered, not
// streamed. Ids are random and a row is only one to four cache lines, so the
// hardware prefetcher cannot guess the next row: software prefetches it. Fusing
// the gather into the dot reads every row once and writes only n scores.
//
// Rows of more than one cache line: prefetches are issued in blocks. Before
// the kBlock rows [b, b + kBlock) are summed (four at a time, four sums in
// flight), every line of the next block's rows is prefetched into L2
// (prefetcht1) back to back. Measured on Zen 4 (AMD EPYC, 2-core KVM guest),
// random 256 B rows of a 256 MiB table on huge pages: 18-23 GB/s, 66-75 % of a
// sequential one-thread read, against 10-14.6 GB/s (38-46 %) for one row
// prefetched 32 ids ahead per row summed, whatever the distance (8..128) or
// hint (t2 the same, nta and t0 ~9 GB/s). Also tried and slower: a row's lines
// prefetched out of order or only its first line (8-10 GB/s); 64-row blocks
// (~10 % slower; 256 rows no better); ids sorted within a window (+5 %).
// (benchmarks/peers/gather_ceiling.cpp; docs/dare.md.)
//
// Rows of one line (d = 16 f32) keep one row prefetched kPrefetchDistance ids
// ahead: blocks gained little there with huge pages (11-12 vs 11 GB/s) and
// lost ~25 % on 4 KiB pages (the search at d_a = 16: 95 vs 74 us), where 128
// back-to-back prefetches each need a page walk.
#include <algorithm>
#include <cstddef>

#include "recblocks/backend/cpu/kernels/blas1.hpp"
#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct GatheredDotKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;
    static constexpr index_t kBlock = 128;            // rows of more than one line: rows per prefetch block
    static constexpr index_t kPrefetchDistance = 32;  // rows of one line: ids ahead

    static void prefetch_rows(const T* table, index_t ldt, const row_id_t* ids, index_t lo, index_t hi,
                              std::size_t row_bytes) {
        for (index_t j = lo; j < hi; ++j) {
            const char* p = reinterpret_cast<const char*>(table + ids[j] * ldt);
            for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off, 0, 2);
        }
    }

    static void dot4(const T* b0, const T* b1, const T* b2, const T* b3, const T* x, index_t k, T alpha, T* y) {
        T d[4];
        Blas1Kernels<Arch, T>::dot4(b0, b1, b2, b3, x, k, d);
        for (index_t r = 0; r < 4; ++r) y[r] = alpha * d[r];
    }

    static T dot1(const T* b, const T* x, index_t k) {
        batch a(T(0));
        index_t i = 0;
        for (; i + W <= k; i += W) a = xsimd::fma(S::load(b + i), S::load(x + i), a);
        if (i < k) a = xsimd::fma(S::load_tail(b + i, k - i, T(0)), S::load_tail(x + i, k - i, T(0)), a);
        return S::hsum(a);
    }

    static void gathered_dot(const T* table, index_t ldt, const row_id_t* ids, index_t n, const T* x, index_t k, T alpha,
                             T* y) {
        const std::size_t row_bytes = static_cast<std::size_t>(k) * sizeof(T);
        if (row_bytes <= 64) {  // one line per row: prefetch each row kPrefetchDistance ids ahead
            index_t j = 0;
            for (; j + 4 <= n; j += 4) {
                if (j + kPrefetchDistance + 4 <= n)
                    prefetch_rows(table, ldt, ids, j + kPrefetchDistance, j + kPrefetchDistance + 4, row_bytes);
                dot4(table + ids[j] * ldt, table + ids[j + 1] * ldt, table + ids[j + 2] * ldt, table + ids[j + 3] * ldt,
                     x, k, alpha, y + j);
            }
            for (; j < n; ++j) y[j] = alpha * dot1(table + ids[j] * ldt, x, k);
            return;
        }
        prefetch_rows(table, ldt, ids, 0, std::min(kBlock, n), row_bytes);
        for (index_t b = 0; b < n; b += kBlock) {
            const index_t e = std::min(b + kBlock, n);
            prefetch_rows(table, ldt, ids, e, std::min(e + kBlock, n), row_bytes);
            index_t j = b;
            for (; j + 4 <= e; j += 4)
                dot4(table + ids[j] * ldt, table + ids[j + 1] * ldt, table + ids[j + 2] * ldt, table + ids[j + 3] * ldt,
                     x, k, alpha, y + j);
            for (; j < e; ++j) y[j] = alpha * dot1(table + ids[j] * ldt, x, k);
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
