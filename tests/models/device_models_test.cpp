// Whole models instantiated for a device memory space and run on
// rbtest::GuardedDevice (tests/support/guarded_device.hpp: the Reference's
// arithmetic, memory the host cannot touch outside a primitive). A training
// step (forward, loss, backward, Adam) and serving must give exactly the bits
// of the same model in host memory on the Reference backend: the model is a
// sequence of backend calls, the code path backend::Cuda runs.
#include <catch2/catch.hpp>

#include <cstring>

#include "../support/guarded_device.hpp"
#include "../support/tiny_sasrec_batch.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/optim/adam.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};

template <class T, std::size_t R>
bool same_bits(const Tensor<T, R, GuardedMemory>& device, const Tensor<T, R>& host) {
    const Tensor<T, R> back = to_host(device);
    return back.shape() == host.shape() &&
           std::memcmp(back.data(), host.data(), static_cast<std::size_t>(host.numel()) * sizeof(T)) == 0;
}

template <class Norm>
void check_sasrec_on_device(models::SASRecConfig cfg) {
    models::SASRec<double, Norm> host(cfg, Rng(3));
    models::SASRec<double, Norm, GuardedMemory> dev(cfg, Rng(3), memory_of(kDev));
    REQUIRE(host.params().size() == dev.params().size());
    const rbtest::TinySasrecBatch batch;
    optim::Adam<double> host_adam({}, host.params());
    optim::Adam<double, GuardedMemory> dev_adam({}, dev.params());
    for (std::uint64_t step = 1; step <= 2; ++step) {
        const auto lh = host.train_step_bce(kRef, ThreadPool::global(), batch.ids.cview(), batch.pos.cview(),
                                            batch.neg.cview(), step);
        const auto ld = dev.train_step_bce(kDev, ThreadPool::global(), batch.ids.cview(), batch.pos.cview(),
                                           batch.neg.cview(), step);
        REQUIRE(ld.count == lh.count);
        REQUIRE(ld.loss == lh.loss);
        REQUIRE(dev.last_width_losses() == host.last_width_losses());
        for (std::size_t i = 0; i < host.params().size(); ++i) {
            const auto& h = host.params()[i];
            const auto& d = dev.params()[i];
            INFO(h.name);
            REQUIRE(d.name == h.name);
            Vector<double> g(Shape<1>{{h.numel()}});
            d.memory.download(g.data(), d.grad, static_cast<std::size_t>(h.numel()) * sizeof(double));
            REQUIRE(std::memcmp(g.data(), h.grad, static_cast<std::size_t>(h.numel()) * sizeof(double)) == 0);
        }
        host_adam.step(kRef, host.params(), 1e-2);
        dev_adam.step(kDev, dev.params(), 1e-2);
    }
    REQUIRE(same_bits(dev.embedding().params().items, host.embedding().params().items));
    Matrix<double> scores(Shape<2>{{2, cfg.num_items + 1}});
    Matrix<double, GuardedMemory> dev_scores(scores.shape(), memory_of(kDev));
    host.score_all(kRef, ThreadPool::global(), batch.ids.cview(), scores.view());
    dev.score_all(kDev, ThreadPool::global(), batch.ids.cview(), dev_scores.view());
    REQUIRE(same_bits(dev_scores, scores));
}

}  // namespace

TEST_CASE("device models: SASRec trains and serves on a device backend with the host's bits", "[models][device]") {
    models::SASRecConfig cfg;
    cfg.num_items = 12;
    cfg.max_len = 6;
    cfg.d_model = 8;
    cfg.heads = 2;
    cfg.dropout = 0.3;
    SECTION("query norm, timeline mask, l2") {
        cfg.l2_emb = 0.01;
        check_sasrec_on_device<policies::QueryNorm>(cfg);
    }
    SECTION("pre-norm, padded keys masked, Matryoshka widths") {
        cfg.mask_padding_keys = true;
        cfg.positions = blocks::PositionRows::per_slot;
        cfg.matryoshka_widths = {2, 4, 8};
        check_sasrec_on_device<policies::PreNorm>(cfg);
    }
    SECTION("post-norm") { check_sasrec_on_device<policies::PostNorm>(cfg); }
}
