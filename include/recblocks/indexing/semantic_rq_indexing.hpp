#pragma once
// Semantic indexing by RQ-KMeans (GRID's and OneRec's training-free default; TIGER's tuples
// without the autoencoder): residual k-means on the item vectors (tokenizers/residual_quantizer.hpp),
// each item coded by a beam search over the levels. Item vectors come from content
// (data::attribute_tfidf_projection, data::hashed_tfidf_projection) or from a trained model's item
// table (data::item_table_vectors).
//
//   auto c = indexing::semantic_rq_indexing(be, x /*[N, d], row i - 1 = item i*/, {});
//
// Sinkhorn re-coding uses, as LC-Rec does, the distance of an item's residual after the first
// M - 1 levels to every last-level codeword. Deterministic at a seed for any thread count.
// Errors: those of the residual quantizer (ValueError: N < K, non-finite x, bad config).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/indexing/item_codes.hpp"
#include "recblocks/tokenizers/residual_quantizer.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace indexing {

struct SemanticRqOptions {
    CodeShape shape{};           ///< K codewords per level, M levels
    index_t beam = 5;            ///< encoding beam (FAISS's max_beam_size); 1 = greedy
    index_t train_beam = 1;      ///< beams kept between levels while training
    int kmeans_iterations = 20;  ///< per level
    std::uint64_t seed = 1;
};

/// RQ-KMeans semantic IDs of the rows of x on a host backend (Reference or Cpu).
template <class Be>
ItemCodes semantic_rq_indexing(const Be& be, MatrixView<const float> x, const SemanticRqOptions& opt) {
    constexpr std::string_view op = "indexing::semantic_rq_indexing";
    opt.shape.validate(op);
    RECBLOCKS_CHECK_VALUE(opt.beam >= 1 && opt.train_beam >= 1 && opt.kmeans_iterations >= 1, op,
                          ": beam, train_beam and kmeans_iterations must be >= 1, got ", opt.beam, ", ", opt.train_beam,
                          " and ", opt.kmeans_iterations);
    tokenizers::ResidualQuantizerConfig rc;
    rc.levels = opt.shape.levels;
    rc.codebook_size = opt.shape.codebook_size;
    rc.beam_size = opt.beam;
    rc.train_beam_size = opt.train_beam;
    rc.kmeans.iterations = opt.kmeans_iterations;
    rc.kmeans.seed = opt.seed;
    struct State {
        tokenizers::ResidualQuantizer rq;
        Matrix<float> x;
        Matrix<std::int32_t> codes;
    };
    auto st = std::make_shared<State>(State{tokenizers::ResidualQuantizer(rc), Matrix<float>(x.shape()), {}});
    // Copy row by row: x may be a strided view.
    for (index_t i = 0; i < x.rows(); ++i) std::copy_n(x.row(i), x.cols(), st->x.data() + i * x.cols());
    st->rq.train(be, st->x.cview());
    st->codes.resize(Shape<2>{{x.rows(), opt.shape.levels}});
    st->rq.encode(be, st->x.cview(), st->codes.view());
    LastLevelDistances dist = [st](std::span<const row_id_t> items, MatrixView<float> out) {
        const index_t d = st->x.extent(1), m = st->codes.extent(1);
        std::vector<double> res(static_cast<std::size_t>(d));
        const auto last = st->rq.codebook(m - 1);
        for (std::size_t r = 0; r < items.size(); ++r) {
            const index_t it = items[r];
            for (index_t j = 0; j < d; ++j) res[static_cast<std::size_t>(j)] = st->x(it, j);
            for (index_t l = 0; l + 1 < m; ++l) {
                const auto cb = st->rq.codebook(l);
                for (index_t j = 0; j < d; ++j) res[static_cast<std::size_t>(j)] -= cb(st->codes(it, l), j);
            }
            for (index_t c = 0; c < last.rows(); ++c) {
                double s = 0;
                for (index_t j = 0; j < d; ++j) {
                    const double e = res[static_cast<std::size_t>(j)] - double(last(c, j));
                    s += e * e;
                }
                out(static_cast<index_t>(r), c) = static_cast<float>(s);
            }
        }
    };
    return ItemCodes{"semantic-rq", tokenizers::SemanticIds(st->codes.cview(), opt.shape.sizes()), std::move(dist)};
}

}  // namespace indexing
RECBLOCKS_NAMESPACE_END
