#pragma once
// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11, the
// generator behind cuRAND's and JAX's defaults). A draw is a pure function of
// (seed, stream, counter), so element i of a tensor, or the dropout bit of
// activation i, gets the same value whichever thread computes it and however
// the work is split: parallel initialisation and dropout are reproducible for
// any thread count.
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "recblocks/version.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// The Philox4x32-10 bijection: a 128-bit counter and a 64-bit key give 128 random bits.
class Philox4x32 {
public:
    using Counter = std::array<std::uint32_t, 4>;
    using Key = std::array<std::uint32_t, 2>;

    static constexpr Counter generate(Counter ctr, Key key) {
        for (int round = 0; round < 10; ++round) {
            if (round > 0) {
                key[0] += kWeyl0;
                key[1] += kWeyl1;
            }
            const std::uint64_t p0 = std::uint64_t{kMul0} * ctr[0];
            const std::uint64_t p1 = std::uint64_t{kMul1} * ctr[2];
            ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
                   static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
        }
        return ctr;
    }

private:
    static constexpr std::uint32_t kMul0 = 0xD2511F53u;
    static constexpr std::uint32_t kMul1 = 0xCD9E8D57u;
    static constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;
    static constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;
};

/// A seeded family of independent streams. `Rng(seed, stream)` draws are
/// addressed by a 64-bit index: `u32(i)`, `uniform(i)`, `normal(i)` always
/// return the same value for the same (seed, stream, i).
class Rng {
public:
    constexpr explicit Rng(std::uint64_t seed, std::uint64_t stream = 0)
        : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}, stream_(stream) {}

    /// Four 32-bit words for block `block` of this stream.
    [[nodiscard]] constexpr Philox4x32::Counter block(std::uint64_t block) const {
        return Philox4x32::generate({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                                     static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)},
                                    key_);
    }

    /// The i-th 32-bit word of the stream.
    [[nodiscard]] constexpr std::uint32_t u32(std::uint64_t i) const { return block(i >> 2)[i & 3]; }

    /// Uniform float in [0, 1) with 24 random bits; the i-th of the stream.
    [[nodiscard]] constexpr float uniform(std::uint64_t i) const {
        return static_cast<float>(u32(i) >> 8) * 0x1.0p-24f;
    }

    /// Uniform double in [0, 1) with 53 random bits (uses words 2i and 2i+1).
    [[nodiscard]] constexpr double uniform_double(std::uint64_t i) const {
        const auto b = block(i >> 1);
        const std::uint32_t hi = b[(i & 1) * 2], lo = b[(i & 1) * 2 + 1];
        return static_cast<double>(((std::uint64_t{hi} << 32) | lo) >> 11) * 0x1.0p-53;
    }

    /// Standard normal, the i-th of the stream (Box–Muller on one Philox block).
    [[nodiscard]] double normal(std::uint64_t i) const {
        const auto b = block(i >> 1);
        const double u1 = (static_cast<double>(b[0] >> 8) + 1.0) * 0x1.0p-24;  // (0, 1]: log is finite
        const double u2 = static_cast<double>(b[1] >> 8) * 0x1.0p-24;
        const double r = std::sqrt(-2.0 * std::log(u1));
        const double a = 2.0 * std::numbers::pi * u2;
        return (i & 1) ? r * std::sin(a) : r * std::cos(a);
    }

    /// Integer uniform in [0, n) for n >= 1 (Lemire's multiply-shift; bias < n / 2^32).
    [[nodiscard]] constexpr std::uint32_t below(std::uint64_t i, std::uint32_t n) const {
        return static_cast<std::uint32_t>((std::uint64_t{u32(i)} * n) >> 32);
    }

    /// A child generator for a sub-task (e.g. one layer's initialisation).
    /// The child's stream id is a Philox hash of (parent stream, child), under
    /// a key distinct from the draw key, so children do not collide with
    /// streams a user numbers directly (Rng(seed, 1), Rng(seed, 2), ...) in
    /// any structured way.
    [[nodiscard]] constexpr Rng substream(std::uint64_t child) const {
        const auto h = Philox4x32::generate(
            {static_cast<std::uint32_t>(child), static_cast<std::uint32_t>(child >> 32),
             static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)},
            {key_[0] ^ 0x5BD1E995u, key_[1] ^ 0x1B873593u});
        Rng r = *this;
        r.stream_ = (std::uint64_t{h[0]} << 32) | h[1];
        return r;
    }

    [[nodiscard]] constexpr std::uint64_t stream() const { return stream_; }
    [[nodiscard]] constexpr Philox4x32::Key key() const { return key_; }

private:
    Philox4x32::Key key_;
    std::uint64_t stream_;
};

RECBLOCKS_NAMESPACE_END
