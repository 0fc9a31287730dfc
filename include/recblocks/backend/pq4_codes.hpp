#pragma once
// The code layout of 4-bit product quantization for fast scan, shared by the
// backends that scan it (backend/cpu/kernels/pq4_fast_scan.hpp, the Reference
// oracle) and the index that writes it (retrieval/ivf_index.hpp).
//
// Vectors go in blocks of 32; a block holds M sub-quantizer codes (4 bits
// each) of its 32 vectors as [M][16] bytes: byte j of sub-quantizer m holds
// the code of vector j in its low nibble and that of vector j + 16 in its
// high nibble. So 16 bytes of one sub-quantizer are one 128-bit register of
// table indexes for a byte shuffle, and consecutive sub-quantizers fill the
// lanes of a wider register in the order their look-up tables are stored
// (lut [M][16] u8). Only core/types.hpp is included (the CPU kernels that
// include this are compiled with ISA flags).
#include <cstdint>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Vectors per fast-scan block.
inline constexpr index_t kPq4BlockRows = 32;
/// Most sub-quantizers a fast scan sums without overflowing u16 (256 * 255 < 65536).
inline constexpr index_t kPq4MaxSubquantizers = 256;

/// Bytes of one block of M sub-quantizers.
constexpr index_t pq4_block_bytes(index_t m) { return 16 * m; }

/// Byte of vector v's code for sub-quantizer s, and whether it is the high nibble.
constexpr index_t pq4_byte(index_t v, index_t s, index_t m) {
    return (v / kPq4BlockRows) * pq4_block_bytes(m) + 16 * s + (v % kPq4BlockRows) % 16;
}
constexpr bool pq4_high(index_t v) { return (v % kPq4BlockRows) >= 16; }

/// Code of vector v, sub-quantizer s.
inline std::uint8_t pq4_get(const std::uint8_t* codes, index_t v, index_t s, index_t m) {
    const std::uint8_t b = codes[pq4_byte(v, s, m)];
    return pq4_high(v) ? std::uint8_t(b >> 4) : std::uint8_t(b & 15);
}

/// Sets the code of vector v, sub-quantizer s (0..15).
inline void pq4_set(std::uint8_t* codes, index_t v, index_t s, index_t m, std::uint8_t code) {
    std::uint8_t& b = codes[pq4_byte(v, s, m)];
    b = pq4_high(v) ? std::uint8_t((b & 0x0f) | (code << 4)) : std::uint8_t((b & 0xf0) | (code & 15));
}

RECBLOCKS_NAMESPACE_END
