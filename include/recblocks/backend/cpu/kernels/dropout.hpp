#pragma once
// The dropout mask kernel: element i of a call is kept iff the 24 high bits of
// word i of the Philox4x32-10 stream (key, stream) are >= threshold, and kept
// values are scaled. Bit-identical to Rng{key, stream}.u32(i) (core/rng.hpp),
// so masks do not depend on the ISA or the thread count.
//
// Philox is re-stated here (templated on Arch) rather than called from
// core/rng.hpp: kernels are compiled with ISA flags, and a shared inline
// function could end up as the one copy the whole program uses. The rounds
// run on 16 counters at once in structure-of-arrays form, which the compiler
// vectorises (32x32->64-bit multiplies) for the translation unit's ISA.
#include <algorithm>
#include <cstdint>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace cpu {

template <class Arch, class T>
struct DropoutKernels {
    static constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
    static constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
    static constexpr int kBlocks = 16;  // Philox blocks per group: 64 elements

    static std::uint32_t word(std::uint64_t i, std::uint32_t k0, std::uint32_t k1, std::uint64_t stream) {
        const std::uint64_t g = i >> 2;
        std::uint32_t c[4] = {static_cast<std::uint32_t>(g), static_cast<std::uint32_t>(g >> 32),
                              static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)};
        for (int round = 0; round < 10; ++round) {
            if (round > 0) {
                k0 += kWeyl0;
                k1 += kWeyl1;
            }
            const std::uint64_t p0 = std::uint64_t{kMul0} * c[0], p1 = std::uint64_t{kMul1} * c[2];
            const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k0;
            const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k1;
            c[0] = n0;
            c[1] = static_cast<std::uint32_t>(p1);
            c[2] = n2;
            c[3] = static_cast<std::uint32_t>(p0);
        }
        return c[i & 3];
    }

    /// The ten Philox rounds on kBlocks counters in structure-of-arrays form.
    /// A separate function with restrict pointers: inlined into apply(), GCC
    /// unrolled the arrays into scalars instead of vectorising them.
    [[gnu::noinline]] static void rounds(std::uint32_t* __restrict c0, std::uint32_t* __restrict c1,
                                         std::uint32_t* __restrict c2, std::uint32_t* __restrict c3, std::uint32_t k0,
                                         std::uint32_t k1) {
        for (int round = 0; round < 10; ++round) {
            if (round > 0) {
                k0 += kWeyl0;
                k1 += kWeyl1;
            }
            for (int j = 0; j < kBlocks; ++j) {
                const std::uint64_t p0 = std::uint64_t{kMul0} * c0[j], p1 = std::uint64_t{kMul1} * c2[j];
                const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
                const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
                c1[j] = static_cast<std::uint32_t>(p1);
                c3[j] = static_cast<std::uint32_t>(p0);
                c0[j] = n0;
                c2[j] = n2;
            }
        }
    }

    /// Elements [begin, end) of a stream: dst[i - begin] = src[i - begin] * scale
    /// if element i is kept, else 0 (src and dst point at element begin; dst may alias src).
    static void apply(const T* src, T* dst, index_t begin, index_t end, std::uint32_t key0, std::uint32_t key1,
                      std::uint64_t stream, std::uint32_t threshold, T scale) {
        auto one = [&](index_t j, std::uint32_t w) {
            dst[j - begin] = (w >> 8) >= threshold ? src[j - begin] * scale : T(0);
        };
        index_t i = begin;
        // Up to 3 elements to reach a Philox block boundary.
        for (; i < end && (i & 3) != 0; ++i) one(i, word(static_cast<std::uint64_t>(i), key0, key1, stream));
        const std::uint32_t s0 = static_cast<std::uint32_t>(stream), s1 = static_cast<std::uint32_t>(stream >> 32);
        // Groups of 64 elements (16 Philox blocks, vectorised); the last may be partial.
        for (; i < end; i += 64) {
            const std::uint64_t g0 = static_cast<std::uint64_t>(i) >> 2;
            std::uint32_t c0[kBlocks], c1[kBlocks], c2[kBlocks], c3[kBlocks];
            for (int j = 0; j < kBlocks; ++j) {
                c0[j] = static_cast<std::uint32_t>(g0 + static_cast<std::uint64_t>(j));
                c1[j] = static_cast<std::uint32_t>((g0 + static_cast<std::uint64_t>(j)) >> 32);
                c2[j] = s0;
                c3[j] = s1;
            }
            rounds(c0, c1, c2, c3, key0, key1);
            std::uint32_t words[64];
            for (int j = 0; j < kBlocks; ++j) {
                words[4 * j] = c0[j];
                words[4 * j + 1] = c1[j];
                words[4 * j + 2] = c2[j];
                words[4 * j + 3] = c3[j];
            }
            const index_t count = std::min<index_t>(64, end - i);
            for (index_t e = 0; e < count; ++e) one(i + e, words[e]);
        }
    }
};

}  // namespace cpu
RECBLOCKS_NAMESPACE_END
