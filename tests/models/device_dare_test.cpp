// DARE and the Matryoshka blocks instantiated for a device memory space and run
// on rbtest::GuardedDevice (tests/support/guarded_device.hpp: the Reference's
// arithmetic, memory the host cannot touch outside a primitive). Forward,
// backward, training steps with Adam (and clipping) and serving must give
// exactly the bits of the same component in host memory on the Reference
// backend: the component is a sequence of backend calls, the code path
// backend::Cuda runs.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "../support/compare.hpp"
#include "../support/guarded_device.hpp"
#include "../support/same_bits.hpp"
#include "recblocks/blocks/matryoshka_embedding.hpp"
#include "recblocks/blocks/matryoshka_linear.hpp"
#include "recblocks/losses/matryoshka_loss.hpp"
#include "recblocks/models/dare.hpp"
#include "recblocks/optim/adam.hpp"
#include "recblocks/train/ctr_trainer.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;
using rbtest::same_bits;
using rbtest::same_params;

namespace {

const backend::Reference kRef{};
const GuardedDevice kDev{};

struct ToyDare {
    std::vector<row_id_t> targets{3, 7, 0, 11};
    std::vector<index_t> offsets{0, 5, 13, 17, 23};
    std::vector<row_id_t> history{1, 2, 3, 4, 5, 11, 10, 9, 8, 7, 7, 7, 2, 0, 1, 6, 6, 4, 4, 4, 9, 1, 0};
    std::vector<double> labels{1.0, 0.0, 0.75, 1.0};
    [[nodiscard]] models::DareModel<double>::Batch batch() const { return {targets, offsets, history}; }
};

}  // namespace

TEST_CASE("device DARE: forward, loss, backward, Adam steps and serving with the host's bits", "[dare][device]") {
    for (auto policy : {models::EmbeddingPolicy::decoupled, models::EmbeddingPolicy::coupled}) {
        INFO((policy == models::EmbeddingPolicy::decoupled ? "decoupled" : "coupled"));
        models::DareModel<double>::Config cfg;
        cfg.num_items = 12;
        cfg.attention_dim = 3;
        cfg.representation_dim = 5;
        cfg.top_k = 3;
        cfg.hidden = {6, 4};
        cfg.policy = policy;
        cfg.init_std = 0.6;
        models::DareModel<double> host(cfg, Rng(8));
        models::DareModel<double, GuardedMemory> dev(cfg, Rng(8), memory_of(kDev));
        REQUIRE(same_params(dev.params(), host.params(), false));
        const ToyDare data;
        const models::DareModel<double>::Batch batch = data.batch();
        // One forward/backward by hand.
        std::vector<double> lh(4), ld(4);
        host.zero_grads();
        dev.zero_grads();
        host.forward(kRef, batch, lh);
        dev.forward(kDev, batch, ld);
        REQUIRE(std::memcmp(lh.data(), ld.data(), sizeof(double) * 4) == 0);
        REQUIRE(dev.loss(kDev, data.labels) == host.loss(kRef, data.labels));
        host.backward(kRef, data.labels);
        dev.backward(kDev, data.labels);
        REQUIRE(same_params(dev.params(), host.params(), true));
        REQUIRE(same_bits(dev.kept_positions().data(), host.kept_positions().data(), 12, GuardedMemory{}));
        REQUIRE(same_bits(dev.kept_behaviours().data(), host.kept_behaviours().data(), 12, GuardedMemory{}));
        // Training steps through the trainer: loss guard, finite checks, clipping, Adam, all on the backend.
        train::CtrTrainingOptions opt;
        opt.lr = 0.05;
        opt.clip_norm = 0.1;
        train::CtrTrainer<double, models::DareModel<double>> th(host, opt);
        train::CtrTrainer<double, models::DareModel<double, GuardedMemory>> td(dev, opt);
        for (int s = 0; s < 3; ++s) REQUIRE(td.train_step(kDev, batch, data.labels) == th.train_step(kRef, batch, data.labels));
        REQUIRE(same_params(dev.params(), host.params(), false));
        // Serving: logits in device memory, the same bits.
        host.forward(kRef, batch);
        dev.forward(kDev, batch);
        REQUIRE(same_bits(dev.logits().data(), host.logits().data(), 4, GuardedMemory{}));
        // Errors are found on the host before any device work.
        std::vector<row_id_t> bad = data.history;
        bad[7] = 12;
        REQUIRE_THROWS_WITH(dev.forward(kDev, models::DareModel<double>::Batch{data.targets, data.offsets, bad}),
                            Catch::Contains("id 12 at position 7"));
        std::vector<double> bad_labels{1.0, 0.0, 1.5, 1.0};
        REQUIRE_THROWS_AS(dev.backward(kDev, bad_labels), ValueError);
    }
}

TEST_CASE("device Matryoshka blocks and MRL-E loss: the host's bits", "[matryoshka][device]") {
    const MatryoshkaWidths widths({2, 4, 8}, 8);
    SECTION("nested linear: forward and backward at every width, then Adam") {
        blocks::MatryoshkaLinear<double> host(widths, Rng(2));
        blocks::MatryoshkaLinear<double, GuardedMemory> dev(widths, Rng(2), memory_of(kDev));
        ParamList<double> ph;
        ParamList<double, GuardedMemory> pd;
        host.append_params("lin.", ph);
        dev.append_params("lin.", pd);
        optim::Adam<double> ah({}, ph);
        optim::Adam<double, GuardedMemory> ad({}, pd);
        for (index_t m : {2, 4, 8}) {
            Matrix<double> x(Shape<2>{{5, m}}), dy(x.shape()), y(x.shape()), dx(x.shape());
            rbtest::fill_uniform(x, 10 + std::uint64_t(m));
            rbtest::fill_uniform(dy, 20 + std::uint64_t(m));
            const auto xd = to(kDev, x), dyd = to(kDev, dy);
            auto yd = make_tensor<double>(kDev, x.shape()), dxd = make_tensor<double>(kDev, x.shape());
            host.zero_grads();
            dev.zero_grads();
            host.forward(kRef, x.cview(), y.view());
            dev.forward(kDev, xd.cview(), yd.view());
            host.backward(kRef, x.cview(), dy.cview(), dx.view());
            dev.backward(kDev, xd.cview(), dyd.cview(), dxd.view());
            INFO("width " << m);
            REQUIRE(same_bits(yd.data(), y.data(), y.numel(), GuardedMemory{}));
            REQUIRE(same_bits(dxd.data(), dx.data(), dx.numel(), GuardedMemory{}));
            REQUIRE(same_params(pd, ph, true));
            ah.step(kRef, ph, 1e-2);
            ad.step(kDev, pd, 1e-2);
            REQUIRE(same_params(pd, ph, false));
        }
    }
    SECTION("embedding: gather and scatter-add at a prefix width; the MRL-E BCE loss") {
        blocks::MatryoshkaEmbedding<double> host(9, widths, Rng(4));
        blocks::MatryoshkaEmbedding<double, GuardedMemory> dev(9, widths, Rng(4), memory_of(kDev));
        REQUIRE(same_bits(dev.table().data(), host.table().data(), host.table().numel(), GuardedMemory{}));
        const std::vector<row_id_t> ids{5, 1, 5, 8};
        const auto iv = vector_view<const row_id_t>(ids.data(), 4);
        Matrix<double> out(Shape<2>{{4, 4}});
        auto outd = make_tensor<double>(kDev, out.shape());
        host.gather(kRef, iv, out.view());
        dev.gather(kDev, iv, outd.view());
        REQUIRE(same_bits(outd.data(), out.data(), out.numel(), GuardedMemory{}));
        host.zero_grad();
        dev.zero_grad();
        host.backward(kRef, iv, out.cview());
        dev.backward(kDev, iv, outd.cview());
        REQUIRE(same_bits(dev.grad().data(), host.grad().data(), host.grad().numel(), GuardedMemory{}));
        const std::vector<row_id_t> bad{5, 9};
        REQUIRE_THROWS_AS(dev.gather(kDev, vector_view<const row_id_t>(bad.data(), 2), outd.view().slice_rows(0, 2)),
                          IndexError);

        Matrix<double> hidden(Shape<2>{{4, 8}}), dh(hidden.shape());
        rbtest::fill_uniform(hidden, 7);
        const auto hd = to(kDev, hidden);
        auto dhd = make_tensor<double>(kDev, hidden.shape());
        Vector<row_id_t> pos(Shape<1>{{4}});
        Matrix<row_id_t> neg(Shape<2>{{4, 2}});
        for (index_t r = 0; r < 4; ++r) {
            pos(r) = r == 2 ? 0 : static_cast<row_id_t>(1 + r);
            neg(r, 0) = static_cast<row_id_t>(8 - r);
            neg(r, 1) = static_cast<row_id_t>(3 + r);
        }
        losses::MatryoshkaBceWithNegatives<double> lh;
        losses::MatryoshkaBceWithNegatives<double, GuardedMemory> ld(memory_of(kDev));
        const auto vh = lh.shared(kRef, widths, hidden.cview(), host.table().cview(), pos.cview(), neg.cview(), dh.view(),
                                  host.grad().view());
        const auto vd = ld.shared(kDev, widths, hd.cview(), dev.table().cview(), pos.cview(), neg.cview(), dhd.view(),
                                  dev.grad().view());
        REQUIRE(vd.loss == vh.loss);
        REQUIRE(vd.count == vh.count);
        REQUIRE(std::equal(vd.per_width.begin(), vd.per_width.end(), vh.per_width.begin()));
        REQUIRE(same_bits(dhd.data(), dh.data(), dh.numel(), GuardedMemory{}));
        REQUIRE(same_bits(dev.grad().data(), host.grad().data(), host.grad().numel(), GuardedMemory{}));
    }
}

TEST_CASE("device Matryoshka losses: softmax CE (MRL-E with bias, MRL) and the BCE's MRL form give the host's bits",
          "[matryoshka][device]") {
    const MatryoshkaWidths widths({2, 4, 8}, 8, {1.0, 0.5, 2.0});
    const index_t rows = 5, n = 9, d = 8;
    const Rng rng(13);
    auto fill = [&](auto& t, std::uint64_t stream) {
        for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.5 * rng.substream(stream).normal(std::uint64_t(i));
    };
    Matrix<double> hidden(Shape<2>{{rows, d}}), table(Shape<2>{{n + 1, d}});
    Vector<double> bias(Shape<1>{{n + 1}});
    fill(hidden, 0);
    fill(table, 1);
    fill(bias, 2);
    std::vector<Matrix<double>> seps;
    for (index_t i = 0; i < 3; ++i) {
        seps.emplace_back(Shape<2>{{n + 1, widths.width(i)}});
        fill(seps.back(), 3 + std::uint64_t(i));
    }
    Vector<row_id_t> targets(Shape<1>{{rows}}), pos(Shape<1>{{rows}});
    Matrix<row_id_t> neg(Shape<2>{{rows, 2}});
    for (index_t r = 0; r < rows; ++r) {
        targets(r) = r == 3 ? 0 : static_cast<row_id_t>(1 + (4 * r) % n);
        pos(r) = r == 1 ? 0 : static_cast<row_id_t>(n - r);
        neg(r, 0) = static_cast<row_id_t>(1 + r);
        neg(r, 1) = static_cast<row_id_t>(2 + 2 * r % 7);
    }
    const auto hd = to(kDev, hidden), td = to(kDev, table);
    const auto bd = to(kDev, bias);
    std::vector<Matrix<double, GuardedMemory>> seps_d;
    for (const auto& t : seps) seps_d.push_back(to(kDev, t));
    auto views = [](const auto& ts) {
        std::vector<MatrixView<const double>> v;
        for (const auto& t : ts) v.push_back(t.cview());
        return v;
    };
    for (index_t chunk : {2, 128}) {
        // Host side, and device side from zeroed gradients.
        Matrix<double> dh(hidden.shape()), dt(table.shape());
        Vector<double> db(bias.shape());
        auto dhd = make_tensor<double>(kDev, hidden.shape());
        auto dtd = make_tensor<double>(kDev, table.shape());
        auto dbd = make_tensor<double>(kDev, bias.shape());
        losses::MatryoshkaSoftmaxCrossEntropy<double> ch(chunk);
        losses::MatryoshkaSoftmaxCrossEntropy<double, GuardedMemory> cd(chunk, memory_of(kDev));
        const auto vh = ch.shared(kRef, widths, hidden.cview(), table.cview(), bias.cview(), targets.cview(), dh.view(),
                                  dt.view(), db.view());
        const auto vd = cd.shared(kDev, widths, hd.cview(), td.cview(), bd.cview(), targets.cview(), dhd.view(),
                                  dtd.view(), dbd.view());
        REQUIRE(vh.count == 4);
        REQUIRE(vd.loss == vh.loss);
        REQUIRE(same_bits(dhd, dh));
        REQUIRE(same_bits(dtd, dt));
        REQUIRE(same_bits(dbd, db));

        std::vector<Matrix<double>> dseps;
        std::vector<Matrix<double, GuardedMemory>> dseps_d;
        for (const auto& t : seps) {
            dseps.emplace_back(t.shape());
            dseps_d.push_back(make_tensor<double>(kDev, t.shape()));
        }
        auto mviews = [](auto& ts) {
            std::vector<MatrixView<double>> v;
            for (auto& t : ts) v.push_back(t.view());
            return v;
        };
        const auto sh = ch.separate(kRef, widths, hidden.cview(), views(seps), targets.cview(), dh.view(), mviews(dseps));
        const auto sd = cd.separate(kDev, widths, hd.cview(), views(seps_d), targets.cview(), dhd.view(),
                                    mviews(dseps_d));
        REQUIRE(sd.loss == sh.loss);
        REQUIRE(same_bits(dhd, dh));
        for (std::size_t i = 0; i < seps.size(); ++i) REQUIRE(same_bits(dseps_d[i], dseps[i]));

        // The BCE's MRL form (one table per width).
        losses::MatryoshkaBceWithNegatives<double> bh;
        losses::MatryoshkaBceWithNegatives<double, GuardedMemory> bd2(memory_of(kDev));
        const auto bvh = bh.separate(kRef, widths, hidden.cview(), views(seps), pos.cview(), neg.cview(), dh.view(),
                                     mviews(dseps));
        const auto bvd = bd2.separate(kDev, widths, hd.cview(), views(seps_d), pos.cview(), neg.cview(), dhd.view(),
                                      mviews(dseps_d));
        REQUIRE(bvh.count == 4);
        REQUIRE(bvd.loss == bvh.loss);
        REQUIRE(std::equal(bvd.per_width.begin(), bvd.per_width.end(), bvh.per_width.begin()));
        REQUIRE(same_bits(dhd, dh));
        for (std::size_t i = 0; i < seps.size(); ++i) REQUIRE(same_bits(dseps_d[i], dseps[i]));
    }
}
