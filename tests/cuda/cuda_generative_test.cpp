// The generative retriever on backend::Cuda against the same model in host
// memory on the Reference backend: training steps through the trainer
// (per-level cross-entropy, backward, Adam with clipping), then full-catalogue
// scores and the constrained beam search's items, within float tolerances, and
// the same bits on two GPU runs. Runs only where a GPU exists
// (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/models/generative_retriever.hpp"
#include "recblocks/train/generative_trainer.hpp"

namespace {

using namespace recblocks;

const backend::Reference kRef{};
const backend::Cuda kGpu{};

// 24 items, 3 levels (K = 3, 4, 2): every tuple used once.
tokenizers::SemanticIds ids_24() {
    Matrix<std::int32_t> codes(Shape<2>{{24, 3}});
    for (index_t i = 0; i < 24; ++i) {
        codes(i, 0) = static_cast<std::int32_t>(i / 8);
        codes(i, 1) = static_cast<std::int32_t>((i / 2) % 4);
        codes(i, 2) = static_cast<std::int32_t>(i % 2);
    }
    return tokenizers::SemanticIds(codes.cview(), {3, 4, 2});
}

models::GenerativeRetrieverConfig tiny_config() {
    models::GenerativeRetrieverConfig c;
    c.max_len = 5;
    c.d_model = 16;
    c.num_blocks = 2;
    c.heads = 2;
    c.dropout = 0.2;
    return c;
}

struct Served {
    Matrix<float> scores;
    Matrix<row_id_t> items;
    std::vector<double> losses;
};

/// Trains `steps` steps on `be`, then scores and decodes four histories.
template <MemorySpace Memory, class Be>
Served train_and_serve(models::GenerativeRetriever<float, policies::PreNorm, Memory>& model, const Be& be,
                       const tokenizers::SemanticIds& ids, int steps) {
    std::vector<std::vector<row_id_t>> users;
    for (index_t u = 0; u < 16; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < 4 + u % 4; ++t) s.push_back(static_cast<row_id_t>(1 + (u * 5 + 7 * t) % 24));
        users.push_back(s);
    }
    train::GenerativeTrainingOptions opt;
    opt.batch_size = 6;
    opt.lr = 5e-3;
    opt.clip_norm = 1.0;
    train::GenerativeTrainer<float, policies::PreNorm, Memory> trainer(model, users, opt);
    Served out;
    for (int s = 0; s < steps; ++s) out.losses.push_back(trainer.train_step(be, ThreadPool::global()));
    const index_t len = model.config().max_len;
    Matrix<row_id_t> hist(Shape<2>{{4, len}});
    for (index_t b = 0; b < 4; ++b)
        for (index_t t = 0; t < len; ++t) hist(b, t) = static_cast<row_id_t>(t < b ? 0 : 1 + (b * 3 + t) % 24);
    auto scores = make_tensor<float>(be, Shape<2>{{4, 25}});
    model.score_all(be, ThreadPool::global(), hist.cview(), scores.view());
    out.scores = to_host(scores);
    const tokenizers::CodeTrie trie(ids);
    decoding::BeamSearchWorkspace ws;
    decoding::BeamSearchOptions bo;
    bo.beam_width = 24;  // exhaustive on 24 items
    out.items.resize(Shape<2>{{4, 5}});
    Matrix<float> sc(Shape<2>{{4, 5}});
    decoding::constrained_beam_search(model, trie, 4, 5, out.items.view(), sc.view(), ws, bo);
    return out;
}

}  // namespace

TEST_CASE("cuda generative retriever trains, scores and decodes like the host model", "[cuda][models][generative]") {
    const auto ids = ids_24();
    const auto cfg = tiny_config();
    models::GenerativeRetriever<float> host(cfg, ids, Rng(3));
    models::GenerativeRetriever<float, policies::PreNorm, CudaMemory> device(cfg, ids, Rng(3), memory_of(kGpu));
    const auto want = train_and_serve(host, kRef, ids, 4);
    const auto got = train_and_serve(device, kGpu, ids, 4);
    for (std::size_t s = 0; s < want.losses.size(); ++s) CHECK(got.losses[s] == Approx(want.losses[s]).epsilon(1e-4));
    for (index_t b = 0; b < 4; ++b) {
        REQUIRE(std::isinf(got.scores(b, 0)));
        for (index_t i = 1; i <= 24; ++i)
            REQUIRE(got.scores(b, i) == Approx(want.scores(b, i)).margin(2e-4).epsilon(2e-3));
        // Decoding returns catalogue items; the best equals the host's unless two scores tie within float noise.
        for (index_t j = 0; j < 5; ++j) REQUIRE(got.items(b, j) >= 0);
        CHECK(got.scores(b, got.items(b, 0) + 1) == Approx(want.scores(b, want.items(b, 0) + 1)).margin(2e-4));
    }
    // The same bits on a second GPU run.
    models::GenerativeRetriever<float, policies::PreNorm, CudaMemory> again(cfg, ids, Rng(3), memory_of(kGpu));
    const auto repeat = train_and_serve(again, kGpu, ids, 4);
    REQUIRE(repeat.losses == got.losses);
    REQUIRE(std::memcmp(repeat.scores.data(), got.scores.data(), sizeof(float) * std::size_t(got.scores.numel())) == 0);
    REQUIRE(std::memcmp(repeat.items.data(), got.items.data(), sizeof(row_id_t) * std::size_t(got.items.numel())) == 0);
}
