// Initialisations: the statistics each reference prescribes (xavier-normal as
// pmixer/SASRec.pytorch applies it, BERT's truncated normal 0.02), checked on
// the tensors of real models.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "recblocks/models/bert4rec.hpp"
#include "recblocks/models/sasrec.hpp"
#include "recblocks/params/initialization.hpp"

using namespace recblocks;

namespace {
struct Stats {
    double mean = 0, std = 0, max_abs = 0;
};
Stats stats_of(const float* v, index_t n) {
    double s = 0, s2 = 0, m = 0;
    for (index_t i = 0; i < n; ++i) {
        s += v[i];
        s2 += double(v[i]) * v[i];
        m = std::max(m, std::fabs(double(v[i])));
    }
    const double mean = s / double(n);
    return {mean, std::sqrt(s2 / double(n) - mean * mean), m};
}
template <class Model>
const ParamRef<float>& param(const Model& m, const std::string& name) {
    for (const auto& p : m.params())
        if (p.name == name) return p;
    FAIL("no parameter " << name);
    return m.params()[0];
}
bool all_zero(const float* v, index_t n) {
    for (index_t i = 0; i < n; ++i)
        if (v[i] != 0.0f) return false;
    return true;
}
}  // namespace

TEST_CASE("init: xavier_normal_std is torch.nn.init.xavier_normal_'s formula", "[init]") {
    REQUIRE(xavier_normal_std({1001, 50}) == Approx(std::sqrt(2.0 / 1051.0)));
    REQUIRE(xavier_normal_std({150, 50}) == Approx(std::sqrt(2.0 / 200.0)));       // fused in_proj [3D, D]
    REQUIRE(xavier_normal_std({50, 50, 1}) == Approx(std::sqrt(2.0 / 100.0)));     // Conv1d [out, in, k = 1]
    REQUIRE(xavier_normal_std({8, 4, 3}) == Approx(std::sqrt(2.0 / (12.0 + 24.0))));  // k = 3 scales both fans
    REQUIRE(xavier_normal_std({50}) == 0.0);                                        // 1-D: left alone
    REQUIRE(xavier_normal_std({10, 20}, 2.0) == Approx(2.0 * std::sqrt(2.0 / 30.0)));
}

TEST_CASE("init: SASRec starts as pmixer/SASRec.pytorch's trainer starts it", "[init][sasrec]") {
    models::SASRecConfig cfg;
    cfg.num_items = 1000;
    cfg.d_model = 50;
    cfg.max_len = 200;
    const models::SASRec<float> model(cfg, Rng(7));
    // Every tensor with >= 2 dimensions: std within 4 standard errors of xavier's (1 / sqrt(2n) relative).
    int checked = 0;
    for (const auto& p : model.params()) {
        if (p.shape.size() < 2) continue;
        const Stats s = stats_of(p.value, p.numel());
        INFO(p.name);
        // The padding rows are zeroed after the draw: measure the rows that were drawn.
        const bool padded = p.name == "item_emb.weight" || p.name == "pos_emb.weight";
        const index_t skip = padded ? cfg.d_model : 0;
        const Stats drawn = padded ? stats_of(p.value + skip, p.numel() - skip) : s;
        const double rel = 4.0 / std::sqrt(2.0 * double(p.numel() - skip));
        CHECK(drawn.std == Approx(xavier_normal_std(p.shape)).epsilon(rel));
        CHECK(std::fabs(drawn.mean) < 4 * xavier_normal_std(p.shape) / std::sqrt(double(p.numel() - skip)));
        if (padded) CHECK(all_zero(p.value, cfg.d_model));
        ++checked;
    }
    CHECK(checked == 2 + 2 * 4);  // two tables; per block: in_proj, out_proj, and the two feed-forward weights
    // The item table of a 1000 x 50 catalogue: xavier's sqrt(2 / (1001 + 50)) = 0.0436, not 1 / sqrt(50) = 0.141.
    const auto& items = param(model, "item_emb.weight");
    CHECK(stats_of(items.value + 50, items.numel() - 50).std == Approx(0.0436).epsilon(0.02));
    // 1-D tensors keep nn's defaults: norms 1 and 0, attention biases 0.
    const auto& ln = param(model, "final_norm.weight");
    for (index_t i = 0; i < ln.numel(); ++i) REQUIRE(ln.value[i] == 1.0f);
    const auto& bias = param(model, "blocks.0.attention.in_proj_bias");
    CHECK(all_zero(bias.value, bias.numel()));
}

TEST_CASE("init: SASRec's scaled_normal keeps the 0.1.0 tables N(0, 1/D)", "[init][sasrec]") {
    models::SASRecConfig cfg;
    cfg.num_items = 1000;
    cfg.d_model = 50;
    cfg.max_len = 20;
    cfg.init = models::SASRecInit::scaled_normal;
    const models::SASRec<float> model(cfg, Rng(7));
    const auto& items = param(model, "item_emb.weight");
    CHECK(stats_of(items.value + 50, items.numel() - 50).std == Approx(1.0 / std::sqrt(50.0)).epsilon(0.02));
    CHECK(all_zero(items.value, 50));
}

TEST_CASE("init: BERT4Rec draws a truncated normal of std 0.02 (BERT's initializer_range)", "[init][bert4rec]") {
    models::BERT4RecConfig cfg;
    cfg.num_items = 1000;
    cfg.d_model = 64;
    cfg.max_len = 50;
    const models::BERT4Rec<float> model(cfg, Rng(3));
    // N(0, 0.02²) redrawn beyond 2 std has std 0.02 · 0.8796 and nothing beyond 0.04.
    const auto& items = param(model, "item_emb.weight");
    const Stats s = stats_of(items.value + 64, items.numel() - 64);
    CHECK(s.std == Approx(0.02 * 0.8796).epsilon(0.02));
    CHECK(s.max_abs <= 0.04 + 1e-7);
    CHECK(all_zero(items.value, 64));
    const auto& w = param(model, "head_dense.weight");
    CHECK(stats_of(w.value, w.numel()).max_abs <= 0.04 + 1e-7);
    const auto& b = param(model, "head_dense.bias");
    CHECK(all_zero(b.value, b.numel()));
}
