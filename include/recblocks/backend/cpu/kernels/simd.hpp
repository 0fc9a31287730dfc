#pragma once
// Helpers shared by the xsimd kernels: batch type for (Arch, T), loads and
// stores of a partial batch at the end of a row. Tails go through a small
// aligned buffer padded with a neutral value, so tail elements take exactly
// the same arithmetic path as the rest (same rounding, same exp/erf).
//
// Everything here is a template on Arch: each ISA's translation unit gets its
// own symbols (see ../dispatch_instantiate.hpp).
#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstring>

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
        alignas(64) T buf[width];
        for (index_t i = 0; i < width; ++i) buf[i] = i < n ? p[i] : fill;
        return batch::load_aligned(buf);
    }
    /// Stores the first n (< width) lanes of v to p.
    static void store_tail(T* p, const batch& v, index_t n) {
        alignas(64) T buf[width];
        v.store_aligned(buf);
        for (index_t i = 0; i < n; ++i) p[i] = buf[i];
    }
    /// Largest lane (NaN-free input).
    static T hmax(const batch& v) {
        alignas(64) T buf[width];
        v.store_aligned(buf);
        T m = buf[0];
        for (index_t i = 1; i < width; ++i) m = buf[i] > m ? buf[i] : m;
        return m;
    }
    /// Lane-wise sum in a fixed order (deterministic for a given ISA).
    static T hsum(const batch& v) { return xsimd::hadd(v); }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
