#pragma once
// Leave-one-out evaluation of a Matryoshka model at each nested width: the
// model ranks with the prefix [0, m) of its user and item vectors
// (`score_all_at_width(be, pool, ids, scores, m)`, e.g. models::SASRec),
// under the same protocol, users and negatives as evaluate_next_item.
#include <vector>

#include "recblocks/eval/next_item_evaluation.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace eval {

/// A model seen through its width-m scores, for evaluate_next_item.
template <class Model>
struct AtWidth {
    Model& model;
    index_t width;
    template <class Be>
    void score_all(const Be& be, ThreadPool& pool, MatrixView<const row_id_t> ids, MatrixView<float> scores) {
        model.score_all_at_width(be, pool, ids, scores, width);
    }
};

/// One MetricsAccumulator per width, in the order given.
template <class Model, class Be>
std::vector<MetricsAccumulator> evaluate_next_item_at_widths(Model& model, const Be& be, ThreadPool& pool,
                                                             const data::LeaveOneOut& split, index_t num_items,
                                                             index_t max_len, const std::vector<index_t>& widths,
                                                             const NextItemEvalOptions& opt) {
    std::vector<MetricsAccumulator> out;
    out.reserve(widths.size());
    for (const index_t m : widths) {
        AtWidth<Model> at{model, m};
        out.push_back(evaluate_next_item(at, be, pool, split, num_items, max_len, opt));
    }
    return out;
}

}  // namespace eval
RECBLOCKS_NAMESPACE_END
