// Whole models instantiated for a device memory space and run on
// rbtest::GuardedDevice (tests/support/guarded_device.hpp: the Reference's
// arithmetic, memory the host cannot touch outside a primitive). A training
// step (forward, loss, backward, Adam) and serving must give exactly the bits
// of the same model in host memory on the Reference backend: the model is a
// sequence of backend calls, the code path backend::Cuda runs.
#include <catch2/catch.hpp>

#include <cstring>

#include "../support/guarded_device.hpp"
#include "../support/same_bits.hpp"
#include "../support/temp_dir.hpp"
#include "../support/tiny_sasrec_batch.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/train/checkpoint.hpp"
#include "recblocks/train/next_item_trainer.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;
using rbtest::same_bits;
using rbtest::same_params;

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};

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

TEST_CASE("device models: the SASRec training loop and its checkpoints work from device memory", "[models][device][train]") {
    models::SASRecConfig cfg;
    cfg.num_items = 30;
    cfg.max_len = 8;
    cfg.d_model = 8;
    cfg.heads = 2;
    cfg.dropout = 0.2;
    std::vector<std::vector<row_id_t>> seqs;
    for (index_t u = 0; u < 12; ++u) {
        std::vector<row_id_t> s;
        for (index_t t = 0; t < 9 - u % 4; ++t) s.push_back(static_cast<row_id_t>(1 + (u * 7 + t) % 30));
        seqs.push_back(s);
    }
    train::NextItemTrainingOptions opt;
    opt.batch_size = 5;
    opt.lr = 1e-2;
    opt.clip_norm = 0.5;  // exercises the global norm and the scaling on the device
    models::SASRec<double> host(cfg, Rng(4));
    models::SASRec<double, policies::QueryNorm, GuardedMemory> dev(cfg, Rng(4), memory_of(kDev));
    train::NextItemTrainer<double, decltype(host)> th(host, seqs, cfg.num_items, cfg.max_len, opt);
    train::NextItemTrainer<double, decltype(dev)> td(dev, seqs, cfg.num_items, cfg.max_len, opt);
    for (int s = 0; s < 3; ++s) REQUIRE(td.train_step(kDev, ThreadPool::global()) == th.train_step(kRef, ThreadPool::global()));
    REQUIRE(same_bits(dev.embedding().params().items, host.embedding().params().items));

    // Saved from device memory, loaded into host memory and into a fresh device model.
    rbtest::TempDir dir;
    const auto path = dir.path / "device.safetensors";
    train::save_checkpoint<double>(path, dev.params(), &td.optimizer(), td.step(), {{"model", "sasrec"}});
    models::SASRec<double> loaded_host(cfg, Rng(99));
    // (the same seed as the saved run: dropout masks come from the model's seed, the weights from the file)
    models::SASRec<double, policies::QueryNorm, GuardedMemory> loaded_dev(cfg, Rng(4), memory_of(kDev));
    REQUIRE_FALSE(same_bits(loaded_dev.embedding().params().items, host.embedding().params().items));
    train::NextItemTrainer<double, decltype(loaded_dev)> tl(loaded_dev, seqs, cfg.num_items, cfg.max_len, opt);
    REQUIRE(train::load_checkpoint<double>(path, loaded_host.params(), nullptr).step == 3);
    REQUIRE(train::load_checkpoint<double>(path, loaded_dev.params(), &tl.optimizer()).step == 3);
    REQUIRE(same_bits(loaded_dev.embedding().params().items, host.embedding().params().items));
    REQUIRE(std::memcmp(loaded_host.embedding().params().items.data(), host.embedding().params().items.data(),
                        sizeof(double) * std::size_t(host.embedding().params().items.numel())) == 0);
    // Resumed on the device, the next step matches the uninterrupted host run.
    tl.set_step(3);
    REQUIRE(tl.train_step(kDev, ThreadPool::global()) == th.train_step(kRef, ThreadPool::global()));
    REQUIRE(same_bits(loaded_dev.embedding().params().items, host.embedding().params().items));
}
