// DARE and the Matryoshka blocks on backend::Cuda: the target-attention
// primitives, multiply and bce_with_logits against the Reference backend (exact
// on integer-valued rows, float tolerance otherwise; device-side errors), the
// whole DareModel (training steps with Adam through train::CtrTrainer, then
// serving) against the same model in host memory on the Reference backend,
// and the same bits on two GPU runs. Runs only where a GPU exists
// (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/matryoshka_linear.hpp"
#include "recblocks/models/dare.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/logistic_loss.hpp"
#include "recblocks/ops/target_attention.hpp"
#include "recblocks/train/ctr_trainer.hpp"
#include "support/compare.hpp"

namespace {

using namespace recblocks;

template <class T>
std::vector<T> host_copy(const T* device, index_t n) {
    std::vector<T> out(static_cast<std::size_t>(n));
    CudaMemory{}.download(out.data(), device, out.size() * sizeof(T));
    return out;
}

struct Histories {
    std::vector<row_id_t> targets, history;
    std::vector<index_t> offsets{0};
    std::vector<float> labels;
    Histories(index_t batch, index_t items, std::uint64_t seed) {
        const Rng r(seed);
        std::uint64_t c = 0;
        for (index_t i = 0; i < batch; ++i) {
            targets.push_back(static_cast<row_id_t>(r.below(c++, std::uint32_t(items))));
            const index_t len = 8 + static_cast<index_t>(r.below(c++, 600));
            for (index_t j = 0; j < len; ++j) history.push_back(static_cast<row_id_t>(r.below(c++, std::uint32_t(items))));
            offsets.push_back(static_cast<index_t>(history.size()));
            labels.push_back(float(i % 3 == 0));
        }
    }
    [[nodiscard]] models::DareBatch batch() const { return {targets, offsets, history}; }
};

template <class Model, class Be>
std::vector<float> train_and_serve(Model& model, const Be& be, const Histories& h, int steps) {
    train::CtrTrainingOptions opt;
    opt.lr = 1e-2;
    opt.clip_norm = 1.0;
    train::CtrTrainer<float, Model> trainer(model, opt);
    for (int s = 0; s < steps; ++s) (void)trainer.train_step(be, h.batch(), h.labels);
    std::vector<float> logits(h.targets.size());
    model.forward(be, h.batch(), logits);
    return logits;
}

}  // namespace

TEST_CASE("cuda search_segments: scores and top k per segment equal the Reference's on integer rows", "[cuda][dare]") {
    const backend::Cuda gpu{};
    const index_t items = 300, dim = 24;
    const Rng r(5);
    Matrix<float> table(Shape<2>{{items, dim}});
    for (index_t i = 0; i < table.numel(); ++i) table.data()[i] = float(int(r.below(std::uint64_t(i), 5)) - 2);
    const Histories h(37, items, 9);
    const index_t segs = 37, k = 8, n = static_cast<index_t>(h.history.size());
    Matrix<float> queries(Shape<2>{{segs, dim}});
    for (index_t s = 0; s < segs; ++s)
        for (index_t c = 0; c < dim; ++c) queries(s, c) = table(h.targets[std::size_t(s)], c);
    std::vector<float> scores(static_cast<std::size_t>(n));
    Matrix<float> values(Shape<2>{{segs, k}});
    Matrix<row_id_t> pos(values.shape()), ids(values.shape());
    ops::search_segments(backend::Reference{}, table.cview(), vector_view<const row_id_t>(h.history.data(), n),
                         vector_view<const index_t>(h.offsets.data(), segs + 1), queries.cview(), 0.5f, k,
                         vector_view(scores.data(), n), values.view(), pos.view(), ids.view());
    const auto t = to(gpu, table), q = to(gpu, queries);
    Vector<row_id_t> hist_h(Shape<1>{{n}});
    std::copy(h.history.begin(), h.history.end(), hist_h.begin());
    Vector<index_t> off_h(Shape<1>{{segs + 1}});
    std::copy(h.offsets.begin(), h.offsets.end(), off_h.begin());
    const auto hist = to(gpu, hist_h);
    const auto off = to(gpu, off_h);
    auto d_scores = make_tensor<float>(gpu, Shape<1>{{n}});
    auto d_values = make_tensor<float>(gpu, values.shape());
    auto d_pos = make_tensor<row_id_t>(gpu, values.shape()), d_ids = make_tensor<row_id_t>(gpu, values.shape());
    for (int run = 0; run < 2; ++run) {
        ops::search_segments(gpu, t.cview(), hist.cview(), off.cview(), q.cview(), 0.5f, k, d_scores.view(),
                             d_values.view(), d_pos.view(), d_ids.view());
        REQUIRE(host_copy(d_scores.data(), n) == scores);
        REQUIRE(host_copy(d_values.data(), segs * k) == std::vector<float>(values.begin(), values.end()));
        REQUIRE(host_copy(d_pos.data(), segs * k) == std::vector<row_id_t>(pos.begin(), pos.end()));
        REQUIRE(host_copy(d_ids.data(), segs * k) == std::vector<row_id_t>(ids.begin(), ids.end()));
    }
    // Errors found on the device: a bad id, a segment shorter than k.
    hist_h(5) = static_cast<row_id_t>(items);
    const auto bad = to(gpu, hist_h);
    REQUIRE_THROWS_WITH(ops::search_segments(gpu, t.cview(), bad.cview(), off.cview(), q.cview(), 0.5f, k,
                                             d_scores.view(), d_values.view(), d_pos.view(), d_ids.view()),
                        Catch::Contains("ids[5] = 300"));
    const index_t big_k = 600;
    auto v2 = make_tensor<float>(gpu, Shape<2>{{segs, big_k}});
    auto p2 = make_tensor<row_id_t>(gpu, Shape<2>{{segs, big_k}});
    REQUIRE_THROWS_AS(ops::search_segments(gpu, t.cview(), hist.cview(), off.cview(), q.cview(), 0.5f, big_k,
                                           d_scores.view(), v2.view(), p2.view()),
                      ValueError);
}

TEST_CASE("cuda attend_rows, multiply, bce_with_logits against the Reference", "[cuda][dare]") {
    const backend::Cuda gpu{};
    const index_t S = 33, k = 7, d = 65;
    Matrix<float> w(Shape<2>{{S, k}}), rows(Shape<2>{{S * k, d}}), dout(Shape<2>{{S, d}});
    rbtest::fill_uniform(w, 1);
    rbtest::fill_uniform(rows, 2);
    rbtest::fill_uniform(dout, 3);
    const backend::Reference ref;
    Matrix<float> out(Shape<2>{{S, d}}), dw(w.shape()), dr(rows.shape()), prod(dout.shape());
    ops::attend_rows(ref, w.cview(), rows.cview(), out.view());
    ops::attend_rows_backward(ref, w.cview(), rows.cview(), dout.cview(), dw.view(), dr.view());
    ops::multiply(ref, out.cview(), dout.cview(), prod.view());
    const auto wd = to(gpu, w), rd = to(gpu, rows), dd = to(gpu, dout);
    auto outd = make_tensor<float>(gpu, out.shape()), dwd = make_tensor<float>(gpu, w.shape());
    auto drd = make_tensor<float>(gpu, rows.shape()), prodd = make_tensor<float>(gpu, dout.shape());
    ops::attend_rows(gpu, wd.cview(), rd.cview(), outd.view());
    ops::attend_rows_backward(gpu, wd.cview(), rd.cview(), dd.cview(), dwd.view(), drd.view());
    ops::multiply(gpu, MatrixView<const float>(outd.view()), dd.cview(), prodd.view());
    REQUIRE(rbtest::compare(to_host(outd).cview(), out.cview(), {1e-5, 1e-5}).ok);
    REQUIRE(rbtest::compare(to_host(dwd).cview(), dw.cview(), {1e-5, 1e-5}).ok);
    REQUIRE(rbtest::compare(to_host(drd).cview(), dr.cview(), {0, 0}).ok);
    REQUIRE(rbtest::compare(to_host(prodd).cview(), prod.cview(), {1e-5, 1e-5}).ok);
    Vector<float> z(Shape<1>{{1000}}), y(z.shape()), g(z.shape());
    rbtest::fill_uniform(z, 4, -20, 20);
    rbtest::fill_uniform(y, 5, 0, 1);
    const double want = ops::bce_with_logits(ref, z.cview(), y.cview(), 0.25f, g.view());
    const auto zd = to(gpu, z), yd = to(gpu, y);
    auto gd = make_tensor<float>(gpu, z.shape());
    const double got = ops::bce_with_logits(gpu, zd.cview(), yd.cview(), 0.25f, gd.view());
    REQUIRE(got == Approx(want).epsilon(1e-12));
    REQUIRE(rbtest::compare(to_host(gd).cview(), g.cview(), {1e-6, 1e-6}).ok);
    REQUIRE(ops::bce_with_logits(gpu, zd.cview(), yd.cview(), 0.25f, gd.view()) == got);  // same bits again
}

TEST_CASE("cuda DareModel trains and serves like the host model, the same bits twice", "[cuda][dare][models]") {
    for (auto policy : {models::EmbeddingPolicy::decoupled, models::EmbeddingPolicy::coupled}) {
        models::DareConfig cfg;
        cfg.num_items = 500;
        cfg.attention_dim = 8;
        cfg.representation_dim = 16;
        cfg.top_k = 6;
        cfg.hidden = {32, 8};
        cfg.policy = policy;
        cfg.init_std = 0.3;
        const Histories h(24, cfg.num_items, 3);
        const backend::Cuda gpu{};
        models::DareModel<float> host(cfg, Rng(2));
        const std::vector<float> want = train_and_serve(host, backend::Reference{}, h, 3);
        models::DareModel<float, CudaMemory> device(cfg, Rng(2), memory_of(gpu));
        const std::vector<float> got = train_and_serve(device, gpu, h, 3);
        for (std::size_t i = 0; i < want.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(2e-4).epsilon(2e-3));
        models::DareModel<float, CudaMemory> again(cfg, Rng(2), memory_of(gpu));
        REQUIRE(train_and_serve(again, gpu, h, 3) == got);
    }
}

TEST_CASE("cuda MatryoshkaLinear: forward and backward at every width like the host block", "[cuda][matryoshka]") {
    const backend::Cuda gpu{};
    const MatryoshkaWidths widths({8, 16, 32, 64}, 64);
    blocks::MatryoshkaLinear<float> host(widths, Rng(1));
    blocks::MatryoshkaLinear<float, CudaMemory> device(widths, Rng(1), memory_of(gpu));
    for (index_t m : {8, 32, 64}) {
        Matrix<float> x(Shape<2>{{45, m}}), dy(x.shape()), y(x.shape()), dx(x.shape());
        rbtest::fill_uniform(x, 7);
        rbtest::fill_uniform(dy, 8);
        host.zero_grads();
        host.forward(backend::Reference{}, x.cview(), y.view());
        host.backward(backend::Reference{}, x.cview(), dy.cview(), dx.view());
        const auto xd = to(gpu, x), dyd = to(gpu, dy);
        auto yd = make_tensor<float>(gpu, x.shape()), dxd = make_tensor<float>(gpu, x.shape());
        device.zero_grads();
        device.forward(gpu, xd.cview(), yd.view());
        device.backward(gpu, xd.cview(), dyd.cview(), dxd.view());
        INFO("width " << m);
        REQUIRE(rbtest::compare(to_host(yd).cview(), y.cview(), {1e-4, 1e-5}).ok);
        REQUIRE(rbtest::compare(to_host(dxd).cview(), dx.cview(), {1e-4, 1e-5}).ok);
        REQUIRE(rbtest::compare(to_host(device.grads().weight).cview(), host.grads().weight.cview(), {1e-4, 1e-4}).ok);
        REQUIRE(rbtest::compare(to_host(device.grads().bias).cview(), host.grads().bias.cview(), {1e-4, 1e-4}).ok);
    }
}
