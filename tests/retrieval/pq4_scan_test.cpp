// ops::pq4_scan (the 4-bit PQ fast scan of IvfIndex) against the Reference
// backend's plain loop, on every CPU backend (each ISA level the machine has,
// 1 and 3 threads): integer sums, so the results match bit for bit. Sizes
// hit the AVX-512 remainder pair (m % 4 == 2), one block and many, and LUT
// entries of 255 (the u16 range).
#include <catch2/catch.hpp>

#include <vector>

#include "backend/backends.hpp"
#include "recblocks/backend/pq4_codes.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/ops/pq4_scan.hpp"

using namespace recblocks;

TEST_CASE("pq4_scan matches the reference on every ISA", "[retrieval][pq4]") {
    backend::Reference ref;
    for (index_t m : {2, 4, 6, 8, 32, 34, 64, 256}) {
        for (index_t blocks : {1, 3, 17}) {
            const index_t n = blocks * kPq4BlockRows;
            const Rng rng(std::uint64_t(1000 * m + blocks));
            std::vector<std::uint8_t> codes(std::size_t(blocks * pq4_block_bytes(m)));
            for (index_t v = 0; v < n; ++v)
                for (index_t s = 0; s < m; ++s)
                    pq4_set(codes.data(), v, s, m, std::uint8_t(rng.below(std::uint64_t(v * m + s), 16)));
            std::vector<std::uint8_t> lut(std::size_t(16 * m));
            for (index_t i = 0; i < 16 * m; ++i)
                lut[std::size_t(i)] = m == 256 ? 255 : std::uint8_t(rng.substream(1).below(std::uint64_t(i), 256));
            // The layout round-trips.
            for (index_t v = 0; v < n; v += 7)
                REQUIRE(pq4_get(codes.data(), v, m - 1, m) == rng.below(std::uint64_t(v * m + m - 1), 16));
            std::vector<std::uint16_t> want(static_cast<std::size_t>(n)), got(static_cast<std::size_t>(n));
            ops::pq4_scan(ref, vector_view<const std::uint8_t>(codes.data(), index_t(codes.size())), m,
                          vector_view<const std::uint8_t>(lut.data(), 16 * m), vector_view(want.data(), n));
            if (m == 256) REQUIRE(want[0] == 256 * 255);
            // Thresholds: none, the median-ish, above everything, and 65535.
            for (std::uint16_t t : {std::uint16_t(0), want[std::size_t(n / 2)], std::uint16_t(65535)}) {
                std::vector<std::uint32_t> want_masks(static_cast<std::size_t>(blocks)), masks(want_masks.size());
                ops::pq4_scan(ref, vector_view<const std::uint8_t>(codes.data(), index_t(codes.size())), m,
                              vector_view<const std::uint8_t>(lut.data(), 16 * m), vector_view(want.data(), n), t,
                              vector_view(want_masks.data(), blocks));
                for (index_t v = 0; v < n; ++v)
                    REQUIRE(((want_masks[std::size_t(v / 32)] >> (v % 32)) & 1u) == (want[std::size_t(v)] >= t));
                rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                    INFO(name << " m=" << m << " blocks=" << blocks << " threshold=" << t);
                    std::fill(got.begin(), got.end(), std::uint16_t(1));
                    ops::pq4_scan(be, vector_view<const std::uint8_t>(codes.data(), index_t(codes.size())), m,
                                  vector_view<const std::uint8_t>(lut.data(), 16 * m), vector_view(got.data(), n));
                    REQUIRE(got == want);
                    ops::pq4_scan(be, vector_view<const std::uint8_t>(codes.data(), index_t(codes.size())), m,
                                  vector_view<const std::uint8_t>(lut.data(), 16 * m), vector_view(got.data(), n), t,
                                  vector_view(masks.data(), blocks));
                    REQUIRE(got == want);
                    REQUIRE(masks == want_masks);
                });
            }
        }
    }
}

TEST_CASE("pq4_scan rejects bad shapes with named errors", "[retrieval][pq4]") {
    backend::Reference ref;
    std::vector<std::uint8_t> codes(64), lut(64);
    std::vector<std::uint16_t> out(32);
    auto cv = vector_view<const std::uint8_t>(codes.data(), 64);
    REQUIRE_THROWS_WITH(ops::pq4_scan(ref, cv, 3, vector_view<const std::uint8_t>(lut.data(), 48),
                                      vector_view(out.data(), 32)),
                        Catch::Contains("m = 3"));
    REQUIRE_THROWS_WITH(ops::pq4_scan(ref, cv, 4, vector_view<const std::uint8_t>(lut.data(), 48),
                                      vector_view(out.data(), 32)),
                        Catch::Contains("lut has 48"));
    REQUIRE_THROWS_WITH(ops::pq4_scan(ref, cv, 4, vector_view<const std::uint8_t>(lut.data(), 64),
                                      vector_view(out.data(), 16)),
                        Catch::Contains("out has 16"));
}
