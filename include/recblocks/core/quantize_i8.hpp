#pragma once
// Symmetric int8 quantization with one scale per row:
//   scale[r] = max_c |x[r, c]| / 127,  q[r, c] = round_half_even(x[r, c] / scale[r])
// and x ≈ q * scale. A row of zeros gets scale 0 and codes 0. The error per
// element is at most scale / 2 (for rows whose largest magnitude is a normal
// float above 127 * FLT_MIN, about 1.5e-36; tinier rows lose precision as the
// scale becomes subnormal). Rows must be finite (NaN/Inf -> ValueError).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "recblocks/core/tensor_view.hpp"

RECBLOCKS_NAMESPACE_BEGIN

/// Quantizes `x` [R, C] into `codes` [R, C] and `scales` [R].
inline void quantize_rows_i8(MatrixView<const float> x, MatrixView<std::int8_t> codes, VectorView<float> scales) {
    RECBLOCKS_CHECK_SHAPE(codes.shape() == x.shape(), "quantize_rows_i8: codes is ", codes.shape(),
                          " but x is ", x.shape());
    RECBLOCKS_CHECK_SHAPE(scales.size() == x.rows(), "quantize_rows_i8: scales has ", scales.size(),
                          " entries but x has ", x.rows(), " rows");
    for (index_t r = 0; r < x.rows(); ++r) {
        const float* row = x.row(r);
        float amax = 0.0f;
        for (index_t c = 0; c < x.cols(); ++c) {
            RECBLOCKS_CHECK_VALUE(std::isfinite(row[c]), "quantize_rows_i8: x[", r, ", ", c, "] is ", row[c],
                                  "; only finite values can be quantized");
            amax = std::max(amax, std::fabs(row[c]));
        }
        const float scale = amax / 127.0f;
        scales(r) = scale;
        std::int8_t* out = codes.row(r);
        for (index_t c = 0; c < x.cols(); ++c) {
            // nearbyint rounds half to even under the default rounding mode.
            const float q = scale > 0.0f ? std::nearbyint(row[c] / scale) : 0.0f;
            out[c] = static_cast<std::int8_t>(std::clamp(q, -127.0f, 127.0f));
        }
    }
}

/// Reconstructs `x` [R, C] = codes [R, C] * scales [R] (broadcast over columns).
inline void dequantize_rows_i8(MatrixView<const std::int8_t> codes, VectorView<const float> scales,
                               MatrixView<float> x) {
    RECBLOCKS_CHECK_SHAPE(codes.shape() == x.shape(), "dequantize_rows_i8: codes is ", codes.shape(),
                          " but x is ", x.shape());
    RECBLOCKS_CHECK_SHAPE(scales.size() == x.rows(), "dequantize_rows_i8: scales has ", scales.size(),
                          " entries but x has ", x.rows(), " rows");
    for (index_t r = 0; r < x.rows(); ++r)
        for (index_t c = 0; c < x.cols(); ++c) x(r, c) = static_cast<float>(codes(r, c)) * scales(r);
}

RECBLOCKS_NAMESPACE_END
