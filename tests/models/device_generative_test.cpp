// The generative retriever instantiated for a device memory space and run on
// rbtest::GuardedDevice (the Reference's arithmetic, memory the host cannot
// touch outside a primitive). Training steps through train::GenerativeTrainer
// (per-level cross-entropy, backward, Adam, clipping), the decode context,
// constrained beam search and full-ranking scores must give exactly the bits of
// the same model in host memory on the Reference backend: the code path
// backend::Cuda runs, with the oracle's arithmetic.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "../support/semantic_id_fixtures.hpp"
#include "../support/guarded_device.hpp"
#include "../support/same_bits.hpp"
#include "recblocks/decoding/constrained_beam_search.hpp"
#include "recblocks/models/generative_retriever.hpp"
#include "recblocks/train/generative_trainer.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;
using rbtest::same_bits;
using rbtest::same_params;

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};

std::vector<std::vector<row_id_t>> users_of(index_t users, index_t n) {
    std::vector<std::vector<row_id_t>> out;
    for (index_t u = 0; u < users; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < 3 + u % 5; ++t) s.push_back(static_cast<row_id_t>(1 + (u * 7 + 5 * t) % n));
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace

TEST_CASE("device models: the generative retriever trains, decodes and scores on a device backend with the host's bits",
          "[models][device][generative]") {
    const auto ids = rbtest::ids_12();
    models::GenerativeRetrieverConfig cfg;
    cfg.max_len = 4;
    cfg.d_model = 8;
    cfg.num_blocks = 2;
    cfg.heads = 2;
    cfg.dropout = 0.2;
    using HostModel = models::GenerativeRetriever<double>;
    using DevModel = models::GenerativeRetriever<double, policies::PreNorm, GuardedMemory>;
    HostModel host(cfg, ids, Rng(3));
    DevModel dev(cfg, ids, Rng(3), memory_of(kDev));
    REQUIRE(same_params(dev.params(), host.params(), false));

    const auto users = users_of(20, 12);
    train::GenerativeTrainingOptions opt;
    opt.batch_size = 6;
    opt.lr = 1e-2;
    opt.clip_norm = 0.1;  // small enough to clip: the norm and the scaling run on the device
    train::GenerativeTrainer<double> th(host, users, opt);
    train::GenerativeTrainer<double, policies::PreNorm, GuardedMemory> td(dev, users, opt);
    for (int s = 0; s < 4; ++s) {
        const double lh = th.train_step(kRef, ThreadPool::global());
        REQUIRE(td.train_step(kDev, ThreadPool::global()) == lh);
        REQUIRE(same_params(dev.params(), host.params(), true));
        REQUIRE(same_params(dev.params(), host.params(), false));
    }

    // Serving: the decode context, the constrained beam search over it, full ranking.
    Matrix<row_id_t> hist(Shape<2>{{3, 4}});
    const row_id_t h[3][4] = {{0, 0, 5, 9}, {1, 2, 3, 4}, {0, 12, 12, 7}};
    for (index_t b = 0; b < 3; ++b)
        for (index_t t = 0; t < 4; ++t) hist(b, t) = h[b][t];
    host.prepare_queries(kRef, ThreadPool::global(), hist.cview());
    dev.prepare_queries(kDev, ThreadPool::global(), hist.cview());
    const tokenizers::CodeTrie trie(ids);
    decoding::BeamSearchWorkspace wh, wd;
    decoding::BeamSearchOptions bo;
    bo.beam_width = 4;
    Matrix<row_id_t> items_h(Shape<2>{{3, 3}}), items_d(Shape<2>{{3, 3}});
    Matrix<float> sc_h(Shape<2>{{3, 3}}), sc_d(Shape<2>{{3, 3}});
    decoding::constrained_beam_search(host, trie, 3, 3, items_h.view(), sc_h.view(), wh, bo);
    decoding::constrained_beam_search(dev, trie, 3, 3, items_d.view(), sc_d.view(), wd, bo);
    for (index_t i = 0; i < items_h.numel(); ++i) {
        REQUIRE(items_d.data()[i] == items_h.data()[i]);
        REQUIRE(items_h.data()[i] >= 0);
        REQUIRE(std::memcmp(&sc_d.data()[i], &sc_h.data()[i], sizeof(float)) == 0);
    }
    Matrix<double> scores(Shape<2>{{3, 13}});
    Matrix<double, GuardedMemory> dev_scores(scores.shape(), memory_of(kDev));
    host.score_all(kRef, ThreadPool::global(), hist.cview(), scores.view());
    dev.score_all(kDev, ThreadPool::global(), hist.cview(), dev_scores.view());
    REQUIRE(same_bits(dev_scores, scores));
    CHECK(std::isinf(scores(0, 0)));
    // The beam's best is the exhaustive best (beam 4 covers 12 items here).
    for (index_t b = 0; b < 3; ++b) {
        index_t best = 1;
        for (index_t i = 2; i <= 12; ++i)
            if (scores(b, i) > scores(b, best)) best = i;
        CHECK(items_h(b, 0) + 1 == best);
    }

    // Bad ids are caught on the host, before anything runs on the device.
    hist(1, 2) = 13;
    REQUIRE_THROWS_WITH(dev.prepare_queries(kDev, ThreadPool::global(), hist.cview()),
                        Catch::Contains("item id 13 at [1, 2] is outside [0, 12]"));
}
