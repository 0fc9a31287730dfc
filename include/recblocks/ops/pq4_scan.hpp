#pragma once
// The fast scan of 4-bit product-quantization codes (backend/pq4_codes.hpp):
// one query's u8 look-up tables summed over every vector of a run of blocks.
// retrieval::IvfIndex scans its inverted lists with it.
#include <concepts>
#include <cstdint>

#include "recblocks/backend/pq4_codes.hpp"
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

template <class B>
concept has_pq4_scan = requires(const B& be, const std::uint8_t* codes, const std::uint8_t* lut, std::uint16_t* out,
                                std::uint32_t* masks) {
    Primitives<B>::pq4_scan(be, codes, index_t{1}, index_t{2}, lut, std::uint16_t{0}, out, masks);
};

/// out [32 * blocks] = for each vector v of `codes` (blocks of 32 vectors of
/// m sub-quantizers, m even and <= 256), sum_s lut[s][code(v, s)] with lut
/// [m][16] u8 — exact integer sums. codes: blocks * 16 m bytes. masks
/// [blocks] (or empty): bit v of masks[b] = (out[32 b + v] >= threshold), so
/// a caller with a running k-th best touches only the vectors that beat it.
template <class B>
    requires has_pq4_scan<B>
void pq4_scan(const B& be, VectorView<const std::uint8_t> codes, index_t m, VectorView<const std::uint8_t> lut,
              VectorView<std::uint16_t> out, std::uint16_t threshold = 0, VectorView<std::uint32_t> masks = {}) {
    constexpr std::string_view op = "ops::pq4_scan";
    RECBLOCKS_CHECK_VALUE(m >= 2 && m % 2 == 0 && m <= kPq4MaxSubquantizers, op, ": m = ", m,
                          " sub-quantizers; need an even number in [2, ", kPq4MaxSubquantizers, "]");
    RECBLOCKS_CHECK_SHAPE(codes.size() % pq4_block_bytes(m) == 0, op, ": codes have ", codes.size(),
                          " bytes, not a whole number of ", pq4_block_bytes(m), "-byte blocks");
    const index_t blocks = codes.size() / pq4_block_bytes(m);
    RECBLOCKS_CHECK_SHAPE(lut.size() == 16 * m, op, ": lut has ", lut.size(), " entries but expected 16 * m = ", 16 * m);
    RECBLOCKS_CHECK_SHAPE(out.size() == blocks * kPq4BlockRows, op, ": out has ", out.size(), " entries but the ",
                          blocks, " blocks hold ", blocks * kPq4BlockRows, " vectors");
    RECBLOCKS_CHECK_SHAPE(masks.size() == 0 || masks.size() == blocks, op, ": masks has ", masks.size(),
                          " entries but there are ", blocks, " blocks (or pass none)");
    if (blocks == 0) return;
    Primitives<B>::pq4_scan(be, codes.data(), blocks, m, lut.data(), threshold, out.data(),
                            masks.size() ? masks.data() : nullptr);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
