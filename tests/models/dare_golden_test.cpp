// DARE against PyTorch (tests/golden/dare.safetensors, written by
// tests/golden/make_dare_golden.py in float64 from benchmarks/peers/torch_dare.py):
// logits, loss and every parameter gradient, both policies.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/models/dare.hpp"

using namespace recblocks;

TEST_CASE("DareModel matches PyTorch: logits, loss and gradients, coupled and decoupled", "[dare][golden]") {
    const auto r =
        io::SafetensorsReader::open(std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/dare.safetensors");
    const auto targets = r.load<row_id_t, 1>("targets");
    const auto offsets = r.load<index_t, 1>("offsets");
    const auto history = r.load<row_id_t, 1>("history");
    const auto labels = r.load<double, 1>("labels");
    for (auto policy : {models::EmbeddingPolicy::decoupled, models::EmbeddingPolicy::coupled}) {
        const std::string prefix = policy == models::EmbeddingPolicy::decoupled ? "decoupled." : "coupled.";
        models::DareModel<double>::Config cfg;
        cfg.num_items = 12;
        cfg.attention_dim = 3;
        cfg.representation_dim = 4;
        cfg.top_k = 3;
        cfg.hidden = {5, 4};
        cfg.policy = policy;
        models::DareModel<double> model(cfg, Rng(0));
        for (const auto& p : model.params()) {
            INFO(prefix + p.name);
            const auto& rec = r.record(prefix + p.name);
            REQUIRE(rec.numel() == p.numel());
            if (p.shape.size() == 2) r.load_into<double, 2>(prefix + p.name, MatrixView<double>(p.value, Shape<2>{{p.shape[0], p.shape[1]}}));
            else r.load_into<double, 1>(prefix + p.name, vector_view(p.value, p.numel()));
        }
        const backend::Cpu<isa::Dispatch> be{};
        const models::DareModel<double>::Batch batch{
            std::span<const row_id_t>(targets.data(), std::size_t(targets.numel())),
            std::span<const index_t>(offsets.data(), std::size_t(offsets.numel())),
            std::span<const row_id_t>(history.data(), std::size_t(history.numel()))};
        std::vector<double> logits(3);
        const std::span<const double> y(labels.data(), 3);
        model.zero_grads();
        model.forward(be, batch, logits);
        const auto want_logits = r.load<double, 1>(prefix + "logits");
        for (index_t i = 0; i < 3; ++i) REQUIRE(logits[std::size_t(i)] == Approx(want_logits(i)).epsilon(1e-12).margin(1e-13));
        REQUIRE(model.loss(be, y) == Approx(r.load_scalar<double>(prefix + "loss")).epsilon(1e-12));
        model.backward(be, y);
        for (const auto& p : model.params()) {
            std::vector<double> want(static_cast<std::size_t>(p.numel()));
            if (p.shape.size() == 2) {
                const auto t = r.load<double, 2>(prefix + "grad." + p.name);
                std::copy(t.data(), t.data() + t.numel(), want.begin());
            } else {
                const auto t = r.load<double, 1>(prefix + "grad." + p.name);
                std::copy(t.data(), t.data() + t.numel(), want.begin());
            }
            for (index_t i = 0; i < p.numel(); ++i) {
                INFO(prefix << p.name << "[" << i << "]");
                REQUIRE(p.grad[i] == Approx(want[std::size_t(i)]).epsilon(1e-10).margin(1e-12));
            }
        }
    }
}
