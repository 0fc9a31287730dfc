#pragma once
// Top-k of a segment of scores with a size-k min-heap whose root is the
// current k-th best. A SIMD pre-filter compares whole batches against the
// root and only scalar-inserts candidates that beat it; after the first few
// thousand elements almost nothing does, so the scan runs at read bandwidth.
//
// Order: larger value first; equal values by smaller index. Because indices
// grow during the scan, an element equal to the root arrives after it and is
// never better, so the filter uses a strict ">". NaNs fail every comparison:
// they are never selected, and their presence is reported to the caller.
// (NaN tests use xsimd::isnan: xsimd 8.1 compiles `v != v` to an *ordered*
// compare on AVX-512, which is false for NaN.)
#include <limits>
#include <utility>

#include "recblocks/backend/cpu/kernels/simd.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct TopKKernels {
    using S = Simd<Arch, T>;
    using batch = typename S::batch;
    static constexpr index_t W = S::width;

    /// a ranks before b.
    static bool better(T va, row_id_t ia, T vb, row_id_t ib) { return va > vb || (va == vb && ia < ib); }

    // Min-heap on "better": the root is the worst kept element.
    static void sift_down(T* v, row_id_t* id, index_t size, index_t pos) {
        for (;;) {
            index_t worst = pos;
            const index_t l = 2 * pos + 1, r = l + 1;
            if (l < size && better(v[worst], id[worst], v[l], id[l])) worst = l;
            if (r < size && better(v[worst], id[worst], v[r], id[r])) worst = r;
            if (worst == pos) return;
            std::swap(v[pos], v[worst]);
            std::swap(id[pos], id[worst]);
            pos = worst;
        }
    }
    static void sift_up(T* v, row_id_t* id, index_t pos) {
        while (pos > 0) {
            const index_t parent = (pos - 1) / 2;
            if (!better(v[parent], id[parent], v[pos], id[pos])) return;
            std::swap(v[pos], v[parent]);
            std::swap(id[pos], id[parent]);
            pos = parent;
        }
    }

    /// Scans scores[0..n) (global index = offset + i) and writes the best k
    /// (k <= n) to out_v / out_id sorted best first. Returns true if a NaN was seen.
    static bool top_k(const T* scores, index_t n, index_t k, row_id_t offset, T* out_v, row_id_t* out_id) {
        index_t size = 0;
        index_t i = 0;
        // Fill the heap with the first k non-NaN scores.
        bool nan = false;
        for (; i < n && size < k; ++i) {
            const T s = scores[i];
            if (s != s) {
                nan = true;
                continue;
            }
            out_v[size] = s;
            out_id[size] = offset + static_cast<row_id_t>(i);
            sift_up(out_v, out_id, size);
            ++size;
        }
        auto offer = [&](index_t j) {
            const T s = scores[j];
            if (size < k) {  // only when NaNs kept the heap from filling
                if (s != s) return;
                out_v[size] = s;
                out_id[size] = offset + static_cast<row_id_t>(j);
                sift_up(out_v, out_id, size);
                ++size;
            } else if (s > out_v[0]) {
                out_v[0] = s;
                out_id[0] = offset + static_cast<row_id_t>(j);
                sift_down(out_v, out_id, size, 0);
            }
        };
        auto nan_mask = batch(T(0)) != batch(T(0));
        for (; i + 4 * W <= n; i += 4 * W) {
            const batch thr(size == k ? out_v[0] : -std::numeric_limits<T>::infinity());
            const batch a = S::load(scores + i), b = S::load(scores + i + W);
            const batch c = S::load(scores + i + 2 * W), d = S::load(scores + i + 3 * W);
            nan_mask = nan_mask || xsimd::isnan(a) || xsimd::isnan(b) || xsimd::isnan(c) || xsimd::isnan(d);
            if (xsimd::any((a > thr) || (b > thr) || (c > thr) || (d > thr)))
                for (index_t j = i; j < i + 4 * W; ++j) offer(j);
        }
        for (; i < n; ++i) {
            nan = nan || scores[i] != scores[i];
            offer(i);
        }
        nan = nan || xsimd::any(nan_mask);
        // Heap-sort in place: repeatedly move the worst to the end.
        for (index_t end = size - 1; end > 0; --end) {
            std::swap(out_v[0], out_v[end]);
            std::swap(out_id[0], out_id[end]);
            sift_down(out_v, out_id, end, 0);
        }
        return nan;
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
