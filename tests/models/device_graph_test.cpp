// Serving as a captured graph replays it (backend/cuda/graph.hpp), proven on
// rbtest::GuardedDevice's stand-in for graph capture: SASRec's and BERT4Rec's
// staged serving (score_all_staged) records only device work — no download, no value-returning
// primitive, no allocation once warm — and the recording, replayed after new
// ids are staged, gives exactly the host Reference's scores for those ids.
#include <catch2/catch.hpp>

#include <cstring>

#include "../support/guarded_device.hpp"
#include "../support/histories.hpp"
#include "../support/same_bits.hpp"
#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/ops/reduce.hpp"

using namespace recblocks;
using rbtest::CaptureError;
using rbtest::GraphCapture;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;
using rbtest::same_bits;

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};
}  // namespace

TEST_CASE("device graphs: SASRec's staged serving replays from a capture with newly staged ids",
          "[models][device][graph]") {
    models::SASRecConfig cfg;
    cfg.num_items = 40;
    cfg.max_len = 7;
    cfg.d_model = 8;
    cfg.heads = 2;
    cfg.mask_padding_keys = true;
    models::SASRec<double> host(cfg, Rng(5));
    models::SASRec<double, policies::QueryNorm, GuardedMemory> dev(cfg, Rng(5), memory_of(kDev));
    const index_t bsz = 3;
    Matrix<double> want(Shape<2>{{bsz, cfg.num_items + 1}});
    Matrix<double, GuardedMemory> got(want.shape(), memory_of(kDev));

    // Before a shape has run eagerly, capture refuses its allocations.
    dev.stage_queries(rbtest::left_padded_histories(bsz, cfg.max_len, cfg.num_items, 0).cview());
    GraphCapture graph;
    REQUIRE_THROWS_AS(graph.capture([&] { dev.score_all_staged(kDev, ThreadPool::global(), got.view()); }),
                      CaptureError);

    // Eager once (sizes every workspace), then captured: the capture runs nothing.
    dev.score_all_staged(kDev, ThreadPool::global(), got.view());
    got.zero();
    graph.capture([&] { dev.score_all_staged(kDev, ThreadPool::global(), got.view()); });
    REQUIRE(graph.size() > 10);
    REQUIRE(same_bits(got, Matrix<double>(want.shape())));  // still zero

    // Replayed after staging other histories: those histories' scores.
    for (index_t seed = 1; seed <= 3; ++seed) {
        const auto ids = rbtest::left_padded_histories(bsz, cfg.max_len, cfg.num_items, seed);
        host.score_all(kRef, ThreadPool::global(), ids.cview(), want.view());
        dev.stage_queries(ids.cview());
        graph.replay();
        REQUIRE(same_bits(got, want));
    }

    // What a captured stream refuses: a primitive returning a value, a download.
    Matrix<double, GuardedMemory> v(Shape<2>{{2, 2}}, memory_of(kDev));
    REQUIRE_THROWS_WITH(graph.capture([&] { (void)ops::sum(kDev, v.cview()); }),
                        Catch::Contains("returns a value"));
    double h[4];
    REQUIRE_THROWS_WITH(graph.capture([&] { v.memory().download(h, v.data(), sizeof h); }),
                        Catch::Contains("a download"));
    // The staging phase checks ids on the host, before anything is recorded.
    auto bad = rbtest::left_padded_histories(bsz, cfg.max_len, cfg.num_items, 1);
    bad(2, 6) = 41;
    REQUIRE_THROWS_WITH(dev.stage_queries(bad.cview()), Catch::Contains("ids[2, 6] = 41 is outside [0, 40]"));
}

TEST_CASE("device graphs: BERT4Rec's staged serving replays from a capture with newly staged ids",
          "[models][device][graph][bert4rec]") {
    models::BERT4RecConfig cfg;
    cfg.num_items = 30;
    cfg.max_len = 6;
    cfg.d_model = 8;
    cfg.heads = 2;
    models::BERT4Rec<double> host(cfg, Rng(8));
    models::BERT4Rec<double, GuardedMemory> dev(cfg, Rng(8), memory_of(kDev));
    const index_t bsz = 2;
    Matrix<double> want(Shape<2>{{bsz, cfg.num_items + 1}});
    Matrix<double, GuardedMemory> got(want.shape(), memory_of(kDev));
    dev.stage_queries(rbtest::left_padded_histories(bsz, cfg.max_len, cfg.num_items, 0).cview());
    dev.score_all_staged(kDev, ThreadPool::global(), got.view());  // eager: sizes the workspaces
    GraphCapture graph;
    graph.capture([&] { dev.score_all_staged(kDev, ThreadPool::global(), got.view()); });
    for (index_t seed = 1; seed <= 3; ++seed) {
        const auto ids = rbtest::left_padded_histories(bsz, cfg.max_len, cfg.num_items, seed);
        host.score_all(kRef, ThreadPool::global(), ids.cview(), want.view());
        dev.stage_queries(ids.cview());
        graph.replay();
        REQUIRE(same_bits(got, want));
    }
}
