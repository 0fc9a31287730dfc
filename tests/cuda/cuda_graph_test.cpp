// SASRec serving through CudaGraphCache (backend/cuda/graph.hpp): the scores of
// a captured graph, replayed with newly staged ids of the same batch shape,
// equal the eager scores bit for bit; a second batch size is a second graph;
// the legacy default stream is refused. Runs only where a GPU exists
// (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "recblocks/backend/cuda/graph.hpp"
#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/models/sasrec.hpp"
#include "support/histories.hpp"

namespace {

using namespace recblocks;

/// A stream of the test's own (capture is refused on the legacy default stream).
struct OwnStream {
    cudaStream_t s = nullptr;
    OwnStream() { RECBLOCKS_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
    ~OwnStream() { (void)cudaStreamDestroy(s); }
};

}  // namespace

TEST_CASE("cuda graphs: SASRec scores replayed from a captured graph equal the eager scores",
          "[cuda][models][graph]") {
    models::SASRecConfig cfg;
    cfg.num_items = 300;
    cfg.max_len = 20;
    cfg.d_model = 16;
    cfg.heads = 2;
    cfg.mask_padding_keys = true;
    const OwnStream stream;
    const backend::Cuda gpu{stream.s};
    models::SASRec<float, policies::QueryNorm, CudaMemory> model(cfg, Rng(3), memory_of(gpu));
    CudaGraphCache graphs;
    for (index_t bsz : {1, 4}) {
        auto scores = make_tensor<float>(gpu, Shape<2>{{bsz, cfg.num_items + 1}});
        auto eager = make_tensor<float>(gpu, scores.shape());
        for (index_t seed = 0; seed < 4; ++seed) {
            const auto ids = rbtest::left_padded_histories(bsz, cfg.max_len, cfg.num_items, seed);
            model.score_all(gpu, ThreadPool::global(), ids.cview(), eager.view());
            const Matrix<float> want = to_host(eager);
            model.stage_queries(ids.cview());
            graphs.run(gpu, static_cast<std::uint64_t>(bsz), [&](const backend::Cuda& be) {
                model.score_all_staged(be, ThreadPool::global(), scores.view());
            });
            const Matrix<float> got = to_host(scores);
            REQUIRE(std::memcmp(got.data(), want.data(), sizeof(float) * std::size_t(want.numel())) == 0);
        }
    }
    REQUIRE(graphs.size() == 2);
    const backend::Cuda legacy{};
    REQUIRE_THROWS_WITH(graphs.run(legacy, 1, [](const backend::Cuda&) {}), Catch::Contains("legacy default stream"));
}
