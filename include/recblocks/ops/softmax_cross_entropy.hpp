#pragma once
// Softmax cross-entropy of a block of logits against one target column per
// row, with the gradient written in place: the inner step of a full-softmax
// loss over a catalogue (BERT4Rec's cloze loss, SASRec-CE), run on a chunk of
// rows after the logits gemm and before the two gradient gemms.
//
// For every row r of logits [R, C] with target t = targets[r] >= 0, and
// z = logits[r, :] + bias (bias [C], or none):
//
//   returned sum   += log Σ_c exp(z_c) - z_t                     (in double)
//   logits[r, c]    = scale · (softmax(z)_c - [c == t])           (rounded once to T)
//
// A row whose target is negative is ignored: it adds nothing and its logits
// become 0. The sum comes back to the host (a device backend synchronises for
// it). Any non-finite logit or bias entry of a counted row makes the returned
// sum non-finite (NaN or ±inf), so a caller checks the sum, not the rows.
#include "recblocks/ops/validate.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace ops {

/// logits [R, C] (overwritten with the gradient), bias [C] or empty (must not
/// overlap logits), targets [R]: a column in [0, C), or negative to ignore the
/// row. Host-memory backends check the targets before touching anything;
/// device backends check them in their kernels, write nothing on a bad target
/// and throw the same IndexError.
template <class B, class T>
double softmax_cross_entropy(const B& be, MatrixView<T> logits, std::type_identity_t<VectorView<const T>> bias,
                             VectorView<const row_id_t> targets, T scale) {
    constexpr std::string_view op = "ops::softmax_cross_entropy";
    detail::check_layout(op, "logits", logits);
    detail::check_length(op, "targets", targets, logits.rows(), "logits' rows");
    if (bias.data() != nullptr) {
        detail::check_length(op, "bias", bias, logits.cols(), "logits' columns");
        RECBLOCKS_CHECK_SHAPE(!detail::overlaps(matrix_view(bias.data(), 1, bias.size()), MatrixView<const T>(logits)),
                              op, ": bias overlaps logits");
    }
    RECBLOCKS_CHECK_VALUE(std::isfinite(double(scale)), op, ": scale must be finite, got ", scale);
    if constexpr (host_memory_v<B>)
        for (index_t r = 0; r < targets.size(); ++r)
            RECBLOCKS_CHECK_INDEX(targets(r) < logits.cols(), op, ": targets[", r, "] = ", targets(r),
                                  " is outside [0, ", logits.cols(), ") (logits' columns; negative ignores the row)");
    if (logits.rows() == 0) return 0.0;
    RECBLOCKS_CHECK_SHAPE(logits.cols() >= 1, op, ": logits is ", logits.shape(), " but needs at least one column");
    return Primitives<B>::template softmax_cross_entropy<T>(be, logits, bias, targets, scale);
}

}  // namespace ops
RECBLOCKS_NAMESPACE_END
