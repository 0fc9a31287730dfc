// BERT4Rec model: the PyTorch reference's loss, encoder output, logits and
// every gradient (tests/golden/bert4rec.safetensors, loaded through
// bert4rec_reference_names()) in double and float; every parameter's
// gradient of the full training loss against finite differences with dropout
// active; inference appends [mask]; CPU vs Reference; bad inputs.
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/gradcheck.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/models/bert4rec.hpp"

using namespace recblocks;

namespace {

const std::string kGolden = std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/bert4rec.safetensors";

/// got (as many values as the tensor has) against tensor `name` of the file:
/// max |got - want| / (1 + |want|) <= tol.
void require_close(const io::SafetensorsReader& r, const std::string& name, const std::vector<double>& got, double tol) {
    const auto& rec = r.record(name);
    std::vector<double> want(static_cast<std::size_t>(rec.numel()));
    if (rec.shape.empty()) {
        want[0] = r.load_scalar<double>(name);
    } else {
        ParamRef<double> tmp{name, want.data(), nullptr, {}, ParamKind::weight};
        for (auto e : rec.shape) tmp.shape.push_back(static_cast<index_t>(e));
        io::load_param(r, name, tmp);
    }
    REQUIRE(got.size() == want.size());
    double worst = 0;
    std::size_t at = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double err = std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i]));
        if (!(err <= worst)) {
            worst = err;
            at = i;
        }
    }
    INFO(name << "[" << at << "] got " << got[at] << " want " << want[at] << " (" << want.size() << " values, tol "
              << tol << ")");
    REQUIRE(worst <= tol);
}

template <class T>
void check_bert4rec_golden(double tol) {
    INFO("bert4rec golden as " << (std::is_same_v<T, float> ? "float" : "double"));
    const auto r = io::SafetensorsReader::open(kGolden);
    const auto& meta = r.metadata();
    models::BERT4RecConfig cfg;
    cfg.num_items = std::stoll(meta.at("num_items"));
    cfg.max_len = std::stoll(meta.at("maxlen"));
    cfg.d_model = std::stoll(meta.at("hidden"));
    cfg.num_blocks = std::stoll(meta.at("num_blocks"));
    cfg.heads = std::stoll(meta.at("num_heads"));
    cfg.inner = std::stoll(meta.at("inner"));
    cfg.dropout = 0.0;
    cfg.ln_eps = std::stod(meta.at("ln_eps"));
    models::BERT4Rec<T> model(cfg, Rng(1));
    REQUIRE(model.mask_token() == std::stoll(meta.at("mask_token")));
    const auto unused = io::load_pytorch_state(kGolden, model.params(), models::bert4rec_reference_names());
    for (const auto& n : unused)  // only the inputs, outputs and gradients remain
        CHECK((n == "seq" || n == "labels" || n == "feats" || n == "target_rows" || n == "logits" || n == "loss" ||
               n.rfind("grad.", 0) == 0));
    const auto seq = r.load<row_id_t, 2>("seq"), labels = r.load<row_id_t, 2>("labels");
    const auto target_rows = r.load<index_t, 1>("target_rows");
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};

    const auto loss = model.train_step_ce(be, pool, seq.cview(), labels.cview(), 0);
    CHECK(loss.count == target_rows.numel());
    require_close(r, "loss", {loss.loss}, tol);
    // Gradients before anything else runs the model again.
    for (const auto& p : model.params())
        require_close(r, "grad." + io::map_name(models::bert4rec_reference_names(), p.name),
                      std::vector<double>(p.grad, p.grad + p.numel()), tol * 10);

    // Encoder output at the real slots (padded slots are never read; ours are LN(0), the reference's LN(P[t])).
    const auto feats = r.load<double, 3>("feats");
    const auto h = model.hidden();
    const index_t d = cfg.d_model;
    double worst = 0;
    for (index_t i = 0; i < seq.numel(); ++i) {
        if (seq.data()[i] == 0) continue;
        for (index_t c = 0; c < d; ++c) {
            const double want = feats.data()[i * d + c];
            worst = std::max(worst, std::fabs(double(h.data()[i * d + c]) - want) / (1.0 + std::fabs(want)));
        }
    }
    CHECK(worst <= tol);

    // Logits at the target slots, through the inference path.
    std::vector<index_t> rows(target_rows.data(), target_rows.data() + target_rows.numel());
    Matrix<T> scores(Shape<2>{{target_rows.numel(), cfg.num_items + 1}});
    model.score_positions(be, pool, seq.cview(), rows, scores.view());
    std::vector<double> logits;
    for (index_t i = 0; i < scores.extent(0); ++i) {
        CHECK(std::isinf(scores(i, 0)));
        for (index_t j = 1; j <= cfg.num_items; ++j) logits.push_back(double(scores(i, j)));
    }
    require_close(r, "logits", logits, tol);
}

models::BERT4RecConfig tiny_config() {
    models::BERT4RecConfig c;
    c.num_items = 12;
    c.max_len = 6;
    c.d_model = 8;
    c.num_blocks = 2;
    c.heads = 2;
    c.inner = 0;  // 4D = 32
    c.dropout = 0.2;
    c.attention_dropout = 0.1;
    return c;
}

/// Random values everywhere (as the golden files), so no gradient term hides behind a 1 or a 0.
template <class T>
void randomize(const ParamList<T>& params, std::uint64_t seed) {
    const Rng rng(seed);
    for (std::size_t k = 0; k < params.size(); ++k) {
        const auto& p = params[k];
        const Rng r = rng.substream(k);
        for (index_t i = 0; i < p.numel(); ++i) {
            const double z = r.normal(std::uint64_t(i));
            if (p.kind == ParamKind::norm && p.name.ends_with("weight")) p.value[i] = T(1.0 + 0.2 * z);
            else if (p.shape.size() == 1) p.value[i] = T(0.1 * z);
            else p.value[i] = T(z / std::sqrt(double(p.shape[1])));
        }
    }
}

struct TinyBatch {
    // 13 = [mask]; labels at the masked slots (and one label on an unmasked item: allowed).
    Matrix<row_id_t> ids{Shape<2>{{3, 6}}}, labels{Shape<2>{{3, 6}}};
    TinyBatch() {
        const row_id_t s[3][6] = {{0, 0, 3, 13, 7, 2}, {4, 13, 9, 9, 12, 13}, {0, 0, 0, 0, 5, 13}};
        const row_id_t l[3][6] = {{0, 0, 0, 5, 0, 0}, {0, 1, 0, 0, 12, 6}, {0, 0, 0, 0, 0, 11}};
        for (index_t b = 0; b < 3; ++b)
            for (index_t t = 0; t < 6; ++t) {
                ids(b, t) = s[b][t];
                labels(b, t) = l[b][t];
            }
    }
};

}  // namespace

TEST_CASE("golden: BERT4Rec matches the PyTorch reference (loss, logits, every gradient)",
          "[golden][pytorch][models][bert4rec]") {
    check_bert4rec_golden<double>(1e-10);
    check_bert4rec_golden<float>(1e-4);
}

TEST_CASE("BERT4Rec training gradients match finite differences (dropout active)", "[models][bert4rec][gradcheck]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    models::BERT4Rec<double> model(tiny_config(), Rng(17));
    randomize(model.params(), 23);
    const auto& items = model.params()[0];
    REQUIRE(items.name == "item_emb.weight");
    std::fill(items.value, items.value + 8, 0.0);  // the padding row
    TinyBatch batch;
    auto loss = [&] { return model.train_step_ce(ref, pool, batch.ids.cview(), batch.labels.cview(), 7).loss; };
    const double l0 = loss();
    CHECK(std::isfinite(l0));
    // With dropout on, a different step gives a different loss (the masks are live).
    CHECK(model.train_step_ce(ref, pool, batch.ids.cview(), batch.labels.cview(), 8).loss != l0);
    CHECK(loss() == l0);
    std::vector<std::vector<double>> saved;
    for (const auto& p : model.params()) saved.emplace_back(p.grad, p.grad + p.numel());
    // The padding row never gets a gradient; the [mask] row does (it is an input).
    for (index_t c = 0; c < 8; ++c) CHECK(items.grad[c] == 0.0);
    double mask_grad = 0;
    for (index_t c = 0; c < 8; ++c) mask_grad += std::fabs(items.grad[13 * 8 + c]);
    CHECK(mask_grad > 0);
    for (std::size_t i = 0; i < model.params().size(); ++i) {
        const auto& p = model.params()[i];
        const index_t stride = p.numel() > 150 ? p.numel() / 150 + 1 : 1;
        rbtest::check_fd(p.name, p.value, saved[i].data(), p.numel(), loss, 1e-5, stride);
    }
}

TEST_CASE("BERT4Rec training gradients with RecBole's options (no head, no bias, from_oldest positions)",
          "[models][bert4rec][gradcheck]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    auto cfg = tiny_config();
    cfg.output_head = false;
    cfg.output_bias = false;
    cfg.positions = blocks::PositionRows::from_oldest;
    models::BERT4Rec<double> model(cfg, Rng(17));
    for (const auto& p : model.params())  // what the options remove is not a parameter
        CHECK((p.name.rfind("head_", 0) != 0 && p.name != "out_bias"));
    randomize(model.params(), 29);
    std::fill(model.params()[0].value, model.params()[0].value + 8, 0.0);  // the padding row
    TinyBatch batch;
    auto loss = [&] { return model.train_step_ce(ref, pool, batch.ids.cview(), batch.labels.cview(), 7).loss; };
    CHECK(std::isfinite(loss()));
    std::vector<std::vector<double>> saved;
    for (const auto& p : model.params()) saved.emplace_back(p.grad, p.grad + p.numel());
    for (std::size_t i = 0; i < model.params().size(); ++i) {
        const auto& p = model.params()[i];
        const index_t stride = p.numel() > 150 ? p.numel() / 150 + 1 : 1;
        rbtest::check_fd(p.name, p.value, saved[i].data(), p.numel(), loss, 1e-5, stride);
    }
}

TEST_CASE("BERT4Rec l2_emb adds l2/2 ||E||^2 to the loss and l2 E to the item table's gradient",
          "[models][bert4rec][gradcheck][l2_emb]") {
    const backend::Reference ref{};
    ThreadPool pool(1);
    auto with = tiny_config();
    with.l2_emb = 0.3;
    models::BERT4Rec<double> plain(tiny_config(), Rng(17)), reg(with, Rng(17));
    randomize(plain.params(), 31);
    randomize(reg.params(), 31);
    TinyBatch batch;
    const double l_plain = plain.train_step_ce(ref, pool, batch.ids.cview(), batch.labels.cview(), 7).loss;
    auto loss = [&] { return reg.train_step_ce(ref, pool, batch.ids.cview(), batch.labels.cview(), 7).loss; };
    const double l_reg = loss();
    const auto& e = reg.params()[0];
    REQUIRE(e.name == "item_emb.weight");
    double sq = 0;
    for (index_t i = 0; i < e.numel(); ++i) sq += e.value[i] * e.value[i];
    CHECK(l_reg == Approx(l_plain + 0.5 * 0.3 * sq).epsilon(1e-12));
    for (std::size_t i = 0; i < reg.params().size(); ++i) {  // only the item table's gradient changes
        const auto& p = reg.params()[i];
        const auto& q = plain.params()[i];
        const double scale = i == 0 ? 0.3 : 0.0;
        for (index_t j = 0; j < p.numel(); ++j) REQUIRE(p.grad[j] == Approx(q.grad[j] + scale * p.value[j]).margin(1e-12));
    }
    std::vector<double> saved(e.grad, e.grad + e.numel());
    rbtest::check_fd(e.name, e.value, saved.data(), e.numel(), loss, 1e-5, 1);
    auto bad = tiny_config();
    bad.l2_emb = -0.1;
    CHECK_THROWS_WITH((models::BERT4Rec<double>(bad, Rng(1))), Catch::Contains("l2_emb must be finite and >= 0"));
}

TEST_CASE("BERT4Rec parameters: names, shapes, the reference name map", "[models][bert4rec]") {
    auto cfg = tiny_config();
    models::BERT4Rec<float> m(cfg, Rng(3));
    std::map<std::string, std::vector<index_t>> shapes;
    for (const auto& p : m.params()) shapes[p.name] = p.shape;
    CHECK(shapes.at("item_emb.weight") == std::vector<index_t>{14, 8});
    CHECK(shapes.at("pos_emb.weight") == std::vector<index_t>{6, 8});
    CHECK(shapes.at("emb_norm.weight") == std::vector<index_t>{8});
    CHECK(shapes.at("blocks.1.ffn.linear1.weight") == std::vector<index_t>{32, 8});
    CHECK(shapes.at("blocks.0.attention.in_proj_weight") == std::vector<index_t>{24, 8});
    CHECK(shapes.at("head_dense.weight") == std::vector<index_t>{8, 8});
    CHECK(shapes.at("head_norm.bias") == std::vector<index_t>{8});
    CHECK(shapes.at("out_bias") == std::vector<index_t>{12});
    CHECK(shapes.count("final_norm.weight") == 0);
    CHECK(m.params().size() == 2 + 2 + 2 * 12 + 4 + 1);
    const auto map = models::bert4rec_reference_names();
    CHECK(io::map_name(map, "blocks.1.ffn.linear2.bias") == "forward_layers.1.linear2.bias");
    CHECK(io::map_name(map, "blocks.0.norm_attention.weight") == "attention_layernorms.0.weight");
    CHECK(io::map_name(map, "emb_norm.bias") == "emb_layernorm.bias");
    CHECK(io::map_name(map, "head_norm.weight") == "head_layernorm.weight");
    CHECK(io::map_name(map, "out_bias") == "out_bias");
    // BERT's initialisation: truncated normal (|w| <= 2 sigma), zero linear biases, padding row zero.
    for (const auto& p : m.params()) {
        if (p.kind == ParamKind::bias)
            for (index_t i = 0; i < p.numel(); ++i) REQUIRE(p.value[i] == 0.0f);
        if (p.kind == ParamKind::weight || p.kind == ParamKind::embedding)
            for (index_t i = 0; i < p.numel(); ++i) REQUIRE(std::fabs(p.value[i]) <= 0.04f + 1e-7f);
    }
    for (index_t c = 0; c < 8; ++c) CHECK(m.item_table()(0, c) == 0.0f);
}

TEST_CASE("BERT4Rec inference: [mask] appended, CPU vs Reference, deterministic, padding-invariant",
          "[models][bert4rec]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    const backend::Reference ref{};
    auto cfg = tiny_config();
    cfg.init_std = 0.0;
    models::BERT4Rec<float> a(cfg, Rng(5)), b(cfg, Rng(5));
    randomize(a.params(), 9);
    randomize(b.params(), 9);
    Matrix<row_id_t> hist(Shape<2>{{2, 6}});
    const row_id_t h[2][6] = {{0, 0, 0, 3, 5, 7}, {4, 1, 9, 9, 12, 6}};
    for (index_t r = 0; r < 2; ++r)
        for (index_t t = 0; t < 6; ++t) hist(r, t) = h[r][t];
    Matrix<float> sa(Shape<2>{{2, 13}}), sb(sa.shape()), again(sa.shape());
    a.score_all(ref, pool, hist.cview(), sa.view());
    b.score_all(cpu, pool, hist.cview(), sb.view());
    for (index_t r = 0; r < 2; ++r) {
        CHECK(std::isinf(sb(r, 0)));
        for (index_t i = 1; i < 13; ++i) CHECK(sb(r, i) == Approx(sa(r, i)).margin(2e-5));
    }
    b.score_all(cpu, pool, hist.cview(), again.view());
    CHECK(std::equal(sb.begin(), sb.end(), again.begin()));
    // score_all = score_positions at the last slot of the history shifted left with [mask] appended.
    Matrix<row_id_t> shifted(Shape<2>{{2, 6}});
    const row_id_t s[2][6] = {{0, 0, 3, 5, 7, 13}, {1, 9, 9, 12, 6, 13}};  // row 1 drops its oldest item
    for (index_t r = 0; r < 2; ++r)
        for (index_t t = 0; t < 6; ++t) shifted(r, t) = s[r][t];
    const std::vector<index_t> last{5, 11};
    Matrix<float> sp(sa.shape());
    b.score_positions(cpu, pool, shifted.cview(), last, sp.view());
    for (index_t r = 0; r < 2; ++r)
        for (index_t i = 1; i < 13; ++i) CHECK(sp(r, i) == Approx(sb(r, i)).margin(1e-5));
    // Padded keys are masked: a row alone scores as in a batch.
    Matrix<row_id_t> one(Shape<2>{{1, 6}});
    std::copy(hist.view().row(0), hist.view().row(0) + 6, one.data());
    Matrix<float> s1(Shape<2>{{1, 13}});
    b.score_all(cpu, pool, one.cview(), s1.view());
    for (index_t i = 1; i < 13; ++i) CHECK(s1(0, i) == Approx(sb(0, i)).margin(1e-5));
    // Scores = h · E[i] + out_bias[i]: moving out_bias of item 4 moves only its score.
    REQUIRE(b.params().back().name == "out_bias");
    b.params().back().value[3] += 1.5f;  // item 4
    b.score_all(cpu, pool, hist.cview(), again.view());
    for (index_t i = 1; i < 13; ++i) CHECK(again(0, i) == Approx(sb(0, i) + (i == 4 ? 1.5f : 0.f)).margin(1e-5));
}

TEST_CASE("BERT4Rec rejects bad inputs with clear errors", "[models][bert4rec]") {
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> cpu{&pool};
    models::BERT4Rec<float> m(tiny_config(), Rng(1));
    TinyBatch batch;
    Matrix<float> scores(Shape<2>{{3, 13}});
    // Wrong sequence length.
    Matrix<row_id_t> short_ids(Shape<2>{{3, 5}});
    REQUIRE_THROWS_WITH(m.score_all(cpu, pool, short_ids.cview(), scores.view()), Catch::Contains("max_len = 6"));
    REQUIRE_THROWS_AS(m.train_step_ce(cpu, pool, short_ids.cview(), short_ids.cview(), 0), ShapeError);
    // ids and labels of different shapes.
    Matrix<row_id_t> two(Shape<2>{{2, 6}});
    REQUIRE_THROWS_WITH(m.train_step_ce(cpu, pool, batch.ids.cview(), two.cview(), 0), Catch::Contains("equal"));
    // Wrong scores shape.
    Matrix<float> bad_scores(Shape<2>{{3, 12}});
    REQUIRE_THROWS_WITH(m.score_all(cpu, pool, batch.labels.cview(), bad_scores.view()), Catch::Contains("[3, 13]"));
    // The history may not hold [mask] or ids past it.
    REQUIRE_THROWS_WITH(m.score_all(cpu, pool, batch.ids.cview(), scores.view()),
                        Catch::Contains("ids[0, 3] = 13 is outside [0, 12]"));
    auto ids = batch.ids;
    ids(1, 0) = 14;
    REQUIRE_THROWS_WITH(m.train_step_ce(cpu, pool, ids.cview(), batch.labels.cview(), 0),
                        Catch::Contains("ids[1, 0] = 14 is outside [0, 13]"));
    ids(1, 0) = -1;
    REQUIRE_THROWS_AS(m.train_step_ce(cpu, pool, ids.cview(), batch.labels.cview(), 0), IndexError);
    // Labels out of range, or on a padded slot.
    auto labels = batch.labels;
    labels(0, 3) = 13;  // [mask] is not a class
    REQUIRE_THROWS_WITH(m.train_step_ce(cpu, pool, batch.ids.cview(), labels.cview(), 0),
                        Catch::Contains("labels[0, 3] = 13 is outside [0, 12]"));
    labels = batch.labels;
    labels(2, 0) = 4;
    REQUIRE_THROWS_WITH(m.train_step_ce(cpu, pool, batch.ids.cview(), labels.cview(), 0), Catch::Contains("padded slot"));
    // No target: zero loss, zero gradients.
    Matrix<row_id_t> none(batch.labels.shape());
    const auto l = m.train_step_ce(cpu, pool, batch.ids.cview(), none.cview(), 0);
    CHECK(l.count == 0);
    CHECK(l.loss == 0.0);
    // Configurations.
    REQUIRE_THROWS_AS((models::BERT4Rec<float>({0}, Rng(1))), ValueError);
    auto c = tiny_config();
    c.heads = 3;  // does not divide 8
    REQUIRE_THROWS_AS((models::BERT4Rec<float>(c, Rng(1))), ValueError);
    c = tiny_config();
    c.dropout = 1.0;
    REQUIRE_THROWS_AS((models::BERT4Rec<float>(c, Rng(1))), ValueError);
    // A PyTorch file with another catalogue size is refused, naming the tensor.
    c = tiny_config();
    models::BERT4Rec<float> other(c, Rng(1));
    REQUIRE_THROWS_WITH(io::load_pytorch_state(kGolden, other.params(), models::bert4rec_reference_names()),
                        Catch::Contains("item_emb.weight"));
}
