// Tests for core/rng.hpp: Philox4x32-10 known answers and the statistical
// and reproducibility properties of Rng.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include "recblocks/core/rng.hpp"
#include "recblocks/core/thread_pool.hpp"

using namespace recblocks;

TEST_CASE("rng: Philox4x32-10 known-answer tests (Random123 kat_vectors)", "[core][rng]") {
    // philox4x32 10 rounds from Random123's kat_vectors; also reproduced by an
    // independent Python implementation of the SC'11 paper's algorithm.
    using C = Philox4x32::Counter;
    using K = Philox4x32::Key;
    CHECK(Philox4x32::generate(C{0, 0, 0, 0}, K{0, 0}) == C{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
    CHECK(Philox4x32::generate(C{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, K{0xffffffffu, 0xffffffffu}) ==
          C{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
    CHECK(Philox4x32::generate(C{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, K{0xa4093822u, 0x299f31d0u}) ==
          C{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
    // Usable at compile time.
    static_assert(Philox4x32::generate(C{0, 0, 0, 0}, K{0, 0})[0] == 0x6627e8d5u);
}

TEST_CASE("rng: Rng addresses Philox blocks as (index, stream) under key seed", "[core][rng]") {
    // Counter = {block lo, block hi, stream lo, stream hi}, key = {seed lo, seed hi};
    // word i of the stream is word (i & 3) of block (i >> 2). Values from an
    // independent Python Philox.
    const Rng rng(0x123456789abcdef0ull, 0x1122334455667788ull);
    CHECK(rng.stream() == 0x1122334455667788ull);
    CHECK(rng.u32(21) == 0xb89085c0u);
    CHECK(rng.u32((0x0123456789abcdefull << 2) | 3) == 0x183f3509u);
    CHECK(rng.uniform(21) == 0.7209551930427551f);
    // Rng(0, 0).u32(0..3) is Philox of the zero counter and key.
    const Rng zero(0);
    CHECK(zero.u32(0) == 0x6627e8d5u);
    CHECK(zero.u32(3) == 0x9b00dbd8u);
    CHECK(zero.block(0) == Philox4x32::Counter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
}

TEST_CASE("rng: same (seed, stream, index) gives the same value; streams and seeds differ", "[core][rng]") {
    const Rng a(2024, 3), b(2024, 3), other_stream(2024, 4), other_seed(2025, 3);
    int same_stream_equal = 0, diff_stream_equal = 0, diff_seed_equal = 0;
    for (std::uint64_t i = 0; i < 4096; ++i) {
        same_stream_equal += a.u32(i) == b.u32(i);
        diff_stream_equal += a.u32(i) == other_stream.u32(i);
        diff_seed_equal += a.u32(i) == other_seed.u32(i);
        if (a.uniform(i) != b.uniform(i) || a.normal(i) != b.normal(i) || a.below(i, 1000) != b.below(i, 1000) ||
            a.uniform_double(i) != b.uniform_double(i))
            FAIL("draw " << i << " is not reproducible");
    }
    CHECK(same_stream_equal == 4096);
    CHECK(diff_stream_equal <= 1);  // chance collisions: expected 4096 / 2^32
    CHECK(diff_seed_equal <= 1);
    // The high halves of seed and stream matter too.
    CHECK(Rng(1).u32(0) != Rng(1 | (1ull << 32)).u32(0));
    CHECK(Rng(1, 1).u32(0) != Rng(1, 1 | (1ull << 32)).u32(0));
    // Consecutive indices give different words.
    std::set<std::uint32_t> distinct;
    for (std::uint64_t i = 0; i < 1000; ++i) distinct.insert(a.u32(i));
    CHECK(distinct.size() >= 999);
}

TEST_CASE("rng: uniform is in [0, 1) with mean 1/2 and a flat histogram", "[core][rng]") {
    const Rng rng(7, 1);
    const int n = 100'000;
    double sum = 0.0;
    int bins[10] = {};
    bool in_range = true;
    for (int i = 0; i < n; ++i) {
        const float u = rng.uniform(static_cast<std::uint64_t>(i));
        in_range = in_range && u >= 0.0f && u < 1.0f;
        sum += u;
        ++bins[static_cast<int>(u * 10.0f)];
    }
    CHECK(in_range);
    CHECK(std::fabs(sum / n - 0.5) < 0.01);
    double chi2 = 0.0;
    for (int b : bins) chi2 += (b - n / 10.0) * (b - n / 10.0) / (n / 10.0);
    CHECK(chi2 < 40.0);  // 9 degrees of freedom: P(chi2 > 40) < 1e-5

    double dsum = 0.0;
    bool d_in_range = true;
    for (int i = 0; i < n; ++i) {
        const double u = rng.uniform_double(static_cast<std::uint64_t>(i));
        d_in_range = d_in_range && u >= 0.0 && u < 1.0;
        dsum += u;
    }
    CHECK(d_in_range);
    CHECK(std::fabs(dsum / n - 0.5) < 0.01);
    // uniform is a 24-bit value of the word: exactly representable.
    CHECK(rng.uniform(5) == static_cast<float>(rng.u32(5) >> 8) / 16777216.0f);
}

TEST_CASE("rng: normal has mean 0, variance 1 and a Gaussian shape", "[core][rng]") {
    const Rng rng(99, 0);
    const int n = 100'000;
    double s1 = 0.0, s2 = 0.0, s4 = 0.0;
    int within_1sd = 0;
    bool finite = true;
    for (int i = 0; i < n; ++i) {
        const double z = rng.normal(static_cast<std::uint64_t>(i));
        finite = finite && std::isfinite(z);
        s1 += z;
        s2 += z * z;
        s4 += z * z * z * z;
        within_1sd += std::fabs(z) < 1.0;
    }
    CHECK(finite);
    const double mean = s1 / n;
    const double var = s2 / n - mean * mean;
    CHECK(std::fabs(mean) < 0.02);
    CHECK(std::fabs(var - 1.0) < 0.03);
    CHECK(std::fabs(s4 / n - 3.0) < 0.15);  // kurtosis of a Gaussian
    CHECK(std::fabs(within_1sd / static_cast<double>(n) - 0.6827) < 0.01);
    // Even and odd draws of one Box-Muller pair are not equal (cos vs sin).
    CHECK(rng.normal(10) != rng.normal(11));
}

TEST_CASE("rng: below(i, n) is in range and roughly uniform", "[core][rng]") {
    const Rng rng(31337, 2);
    for (std::uint32_t n : {1u, 2u, 3u, 7u, 1000u, 0xFFFFFFFFu}) {
        bool ok = true;
        for (std::uint64_t i = 0; i < 2000; ++i) ok = ok && rng.below(i, n) < n;
        INFO("n = " << n);
        CHECK(ok);
    }
    CHECK(rng.below(0, 1) == 0u);

    const int n = 100'000, k = 7;
    int counts[k] = {};
    for (int i = 0; i < n; ++i) ++counts[rng.below(static_cast<std::uint64_t>(i), k)];
    double chi2 = 0.0;
    for (int c : counts) chi2 += (c - n / double(k)) * (c - n / double(k)) / (n / double(k));
    CHECK(chi2 < 35.0);  // 6 degrees of freedom: P(chi2 > 35) < 1e-5
    for (int c : counts) CHECK(c > 0);
}

TEST_CASE("rng: substreams are reproducible and independent", "[core][rng]") {
    const Rng root(5, 0);
    const Rng s1 = root.substream(1), s2 = root.substream(2), s1_again = root.substream(1);
    CHECK(s1.stream() == s1_again.stream());
    CHECK(s1.stream() != s2.stream());
    CHECK(s1.stream() != root.stream());
    CHECK(root.substream(1).substream(2).stream() != root.substream(2).substream(1).stream());
    CHECK(root.substream(1).substream(2).stream() == s1.substream(2).stream());
    CHECK(Rng(5, 1).substream(0).stream() != Rng(5, 2).substream(0).stream());

    const int n = 20'000;
    int equal = 0;
    double sx = 0, sy = 0, sxy = 0, sxx = 0, syy = 0, sxr = 0, srr = 0, sr = 0;
    for (int i = 0; i < n; ++i) {
        const auto u = static_cast<std::uint64_t>(i);
        equal += s1.u32(u) == s2.u32(u);
        const double x = s1.uniform(u) - 0.5, y = s2.uniform(u) - 0.5, r = root.uniform(u) - 0.5;
        sx += x, sy += y, sxy += x * y, sxx += x * x, syy += y * y;
        sxr += x * r, srr += r * r;
        sr += r;
    }
    CHECK(s1.u32(0) == s1_again.u32(0));
    CHECK(equal <= 1);
    const double corr12 = (sxy / n - (sx / n) * (sy / n)) / std::sqrt((sxx / n) * (syy / n));
    const double corr1r = (sxr / n - (sx / n) * (sr / n)) / std::sqrt((sxx / n) * (srr / n));
    CHECK(std::fabs(corr12) < 0.03);  // ~4 standard errors at n = 20000
    CHECK(std::fabs(corr1r) < 0.03);
}

TEST_CASE("rng: a parallel fill gives the same array for 1, 2 and 3 threads", "[core][rng][thread_pool]") {
    const Rng rng(0xC0FFEE, 11);
    const index_t n = 10'000;
    auto fill = [&](int threads, index_t grain) {
        ThreadPool pool(threads);
        std::vector<float> out(static_cast<std::size_t>(n), -1.0f);
        parallel_for(pool, 0, n, grain, [&](index_t b, index_t e) {
            for (index_t i = b; i < e; ++i) out[static_cast<std::size_t>(i)] = rng.uniform(static_cast<std::uint64_t>(i));
        });
        return out;
    };
    std::vector<float> serial(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) serial[static_cast<std::size_t>(i)] = rng.uniform(static_cast<std::uint64_t>(i));
    const auto a1 = fill(1, 64);
    const auto a2 = fill(2, 64);
    const auto a3 = fill(3, 37);
    const auto a3b = fill(3, 1000);
    CHECK(a1 == serial);
    CHECK(a2 == serial);
    CHECK(a3 == serial);
    CHECK(a3b == serial);
}

TEST_CASE("rng: substreams do not coincide with directly numbered streams", "[core][rng]") {
    const Rng root(99);
    for (std::uint64_t k = 0; k < 1000; ++k) {
        const std::uint64_t child = root.substream(k).stream();
        CHECK(child >= 1000);  // none of the small ids a user would pick
        CHECK(root.substream(k).u32(0) != Rng(99, k + 1).u32(0));
    }
}
