#pragma once
// The contract every vector quantizer of tokenizers/ keeps (FAISS's Quantizer:
// train, compute_codes, decode), so code that turns item vectors into codes —
// semantic IDs, tests, benchmarks — is written once for all of them:
//
//   q.train(be, x)                x [N, d] f32; learns what the quantizer learns
//                                 (RQ: its codebooks; FSQ: nothing, see below)
//   q.encode(be, x, codes)        codes [N, q.code_length()] int32, one code per
//                                 level (RQ) or channel (FSQ), each in [0, range)
//   q.decode(be, codes, x_hat)    x_hat [N, d]: the vector the codes stand for
//   q.code_length()               codes per vector: RQ's M levels, FSQ's C channels
//
// x and x_hat live where the backend computes (host memory for Reference and
// Cpu, device memory for Cuda, with the quantizer instantiated for that memory:
// ResidualQuantizerOn<Be>); codes are ids and live in host memory.
// Codes are the per-level matrix, not a packed index: RQ's M·log2(K) bits do
// not fit one integer in general, and FSQ's mixed-radix index is one call away
// (FiniteScalarQuantizer::codes_to_indices). Errors are the same everywhere:
// ShapeError for a shape that does not match, IndexError for a code out of
// range in decode, ValueError for NaN/Inf input or a call before training.
#include <concepts>
#include <cstdint>

#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace tokenizers {

template <class Q, class Be>
concept Quantizer = requires(Q& q, const Q& cq, const Be& be, MatrixView<const float> x,
                             MatrixView<std::int32_t> codes, MatrixView<const std::int32_t> const_codes,
                             MatrixView<float> x_hat) {
    q.train(be, x);
    cq.encode(be, x, codes);
    cq.decode(be, const_codes, x_hat);
    { cq.code_length() } -> std::convertible_to<index_t>;
};

}  // namespace tokenizers
RECBLOCKS_NAMESPACE_END
