#pragma once
// Row gather (embedding lookup) and scatter-add (its gradient).
// Gather copies rows and prefetches the row needed a few ids ahead, because
// ids are random and each row is only a few cache lines. Scatter-add is split
// by *destination* rows: a call handles only ids in [row_begin, row_end), so
// threads never touch the same row, and every row receives its additions in
// increasing i — the same order, and the same bits, as a serial loop.
#include <cstring>

#include "recblocks/backend/cpu/kernels/blas1.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct EmbeddingKernels {
    static constexpr index_t kPrefetchDistance = 8;

    static void gather_rows(const T* table, index_t ldt, const row_id_t* ids, index_t n, T* out, index_t ldo,
                            index_t cols) {
        const std::size_t row_bytes = static_cast<std::size_t>(cols) * sizeof(T);
        for (index_t i = 0; i < n; ++i) {
            if (i + kPrefetchDistance < n) {
                const char* p = reinterpret_cast<const char*>(table + ids[i + kPrefetchDistance] * ldt);
                for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off, 0, 0);
            }
            std::memcpy(out + i * ldo, table + ids[i] * ldt, row_bytes);
        }
    }

    static void scatter_add_rows(const T* src, index_t lds, const row_id_t* ids, index_t n, T* table, index_t ldt,
                                 index_t cols, row_id_t row_begin, row_id_t row_end) {
        for (index_t i = 0; i < n; ++i) {
            const row_id_t id = ids[i];
            if (id >= row_begin && id < row_end) Blas1Kernels<Arch, T>::axpy(cols, T(1), src + i * lds, table + id * ldt);
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
