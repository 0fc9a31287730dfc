// Checkpoint layouts (models/checkpoint_layout.hpp, layouts/*.json) against the
// public implementations' own model code (benchmarks/peers/reference_models/,
// golden files by tests/golden/make_layout_goldens.py): each layout loads its
// reference's random-weight state_dict, exactly as saved by PyTorch, and the
// float model's scores of every item equal the reference's (float64) within
// 1e-5 relative to max(1, |score|), with the same top-10, on full-length and
// short padded histories. Wrong checkpoints (missing, extra, wrong-shape
// tensor) fail naming the tensor; bad layout files fail naming the key.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../support/temp_dir.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/models/checkpoint_layout.hpp"
#include "recblocks/models/any_sasrec.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {

std::string golden(const std::string& variant, const std::string& suffix = ".safetensors") {
    return std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/layout_" + variant + suffix;
}
std::string layout_file(const std::string& name) { return std::string(RECBLOCKS_SOURCE_DIR) + "/layouts/" + name; }

/// The items 1..n by descending score (ties: lower id first), the first k.
template <class Get>
std::vector<index_t> top_k(Get score, index_t n, index_t k) {
    std::vector<index_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), index_t(1));
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](index_t a, index_t c) {
        const double sa = score(a), sc = score(c);
        return sa > sc || (sa == sc && a < c);
    });
    idx.resize(static_cast<std::size_t>(k));
    return idx;
}

/// Histories in recblocks' convention (left-padded, newest item in the last slot) from
/// the reference's: left-padded already; right-padded with seq_len real items (RecBole);
/// or left-padded with [mask] in the last slot (torch_models.BERT4Rec's caller appends it;
/// recblocks' BERT4Rec::score_all appends it itself).
Matrix<row_id_t> left_padded(const io::SafetensorsReader& r) {
    const auto seq = r.load<row_id_t, 2>("seq");
    const auto len = r.load<row_id_t, 1>("seq_len");
    const index_t bsz = seq.extent(0), l = seq.extent(1);
    Matrix<row_id_t> out(Shape<2>{{bsz, l}});
    out.zero();
    const std::string padding = r.metadata().at("padding");
    const bool right = padding == "right", mask_last = padding == "left_mask_appended";
    REQUIRE((right || mask_last || padding == "left"));
    for (index_t b = 0; b < bsz; ++b) {
        const index_t n = len(b), first = right ? 0 : l - n - (mask_last ? 1 : 0);  // the first item's slot in seq
        for (index_t t = 0; t < n; ++t) out(b, l - n + t) = seq(b, first + t);
        for (index_t t = 0; t < l - n - (mask_last ? 1 : 0); ++t)  // the convention holds: padding is 0
            REQUIRE(seq(b, right ? n + t : t) == 0);
    }
    return out;
}

models::SASRecConfig sizes_of(const io::SafetensorsReader& r) {
    const auto& m = r.metadata();
    models::SASRecConfig cfg;
    cfg.num_items = std::stoll(m.at("num_items"));
    cfg.max_len = std::stoll(m.at("max_len"));
    cfg.d_model = std::stoll(m.at("d_model"));
    cfg.num_blocks = std::stoll(m.at("num_blocks"));
    cfg.heads = std::stoll(m.at("heads"));
    cfg.ffn_inner = std::stoll(m.at("ffn_inner"));
    cfg.dropout = 0.2;  // as trained; inference applies none
    return cfg;
}

models::BERT4RecConfig bert_sizes_of(const io::SafetensorsReader& r) {
    const auto& m = r.metadata();
    models::BERT4RecConfig cfg;
    cfg.num_items = std::stoll(m.at("num_items"));
    cfg.max_len = std::stoll(m.at("max_len"));
    cfg.d_model = std::stoll(m.at("d_model"));
    cfg.num_blocks = std::stoll(m.at("num_blocks"));
    cfg.heads = std::stoll(m.at("heads"));
    cfg.inner = std::stoll(m.at("ffn_inner"));
    return cfg;
}

/// Worst relative error of got [B, N + 1] (column i = item i) against want [B, N]; top-10 equal per row.
double compare(const Matrix<float>& got, const Tensor<double, 2>& want) {
    const index_t bsz = want.extent(0), n = want.extent(1);
    double worst = 0;
    for (index_t b = 0; b < bsz; ++b) {
        for (index_t i = 1; i <= n; ++i) {
            const double w = want(b, i - 1), g = got(b, i);
            worst = std::max(worst, std::abs(g - w) / std::max(1.0, std::abs(w)));
        }
        INFO("history " << b);
        REQUIRE(top_k([&](index_t i) { return double(got(b, i)); }, n, 10) ==
                top_k([&](index_t i) { return want(b, i - 1); }, n, 10));
    }
    return worst;
}

/// Loads variant's state_dict through `layout` into an AnySASRec and returns its scores' worst error.
double sasrec_error(const std::string& variant, const models::CheckpointLayout& layout, models::SASRecConfig* out_cfg = nullptr) {
    const auto io_file = io::SafetensorsReader::open(golden(variant, ".io.safetensors"));
    auto cfg = sizes_of(io_file);
    layout.apply(cfg);
    if (out_cfg) *out_cfg = cfg;
    models::AnySASRec<float> model(cfg, layout.norm(), Rng(7));
    models::load_state(golden(variant), model.params(), layout);
    const auto ids = left_padded(io_file);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    Matrix<float> got(Shape<2>{{ids.extent(0), cfg.num_items + 1}});
    model.score_all(be, pool, ids.cview(), got.view());
    return compare(got, io_file.load<double, 2>("scores"));
}

}  // namespace

TEST_CASE("each SASRec layout reproduces its reference on full and short histories", "[layouts]") {
    for (const auto& [variant, file] :
         std::vector<std::pair<std::string, std::string>>{{"pmixer_current", "pmixer_current.json"},
                                                          {"pmixer_current_norm_first", "pmixer_current_norm_first.json"},
                                                          {"pmixer_2023", "pmixer_2023.json"},
                                                          {"recblocks_sasrec", "recblocks_sasrec.json"},
                                                          {"recbole_sasrec", "recbole_sasrec.json"}}) {
        INFO(variant);
        const auto io_file = io::SafetensorsReader::open(golden(variant, ".io.safetensors"));
        REQUIRE(io_file.metadata().at("layout") == file);
        const auto layout = models::CheckpointLayout::load(layout_file(file));
        const double err = sasrec_error(variant, layout);
        CHECK(err <= 1e-5);
        WARN(variant << ": worst |C++ - PyTorch| / max(1, |score|) = " << err);
    }
}

TEST_CASE("each BERT4Rec layout reproduces its reference on full and short histories", "[layouts]") {
    for (const auto& [variant, file] :
         std::vector<std::pair<std::string, std::string>>{{"recbole_bert4rec", "recbole_bert4rec.json"},
                                                          {"recbole_bert4rec_no_head", "recbole_bert4rec_no_head.json"},
                                                          {"recblocks_bert4rec", "recblocks_bert4rec.json"}}) {
        INFO(variant);
        const auto io_file = io::SafetensorsReader::open(golden(variant, ".io.safetensors"));
        REQUIRE(io_file.metadata().at("layout") == file);
        const auto layout = models::CheckpointLayout::load(layout_file(file));
        auto cfg = bert_sizes_of(io_file);
        layout.apply(cfg);
        models::BERT4Rec<float> model(cfg, Rng(7));
        models::load_state(golden(variant), model.params(), layout);
        const auto ids = left_padded(io_file);
        ThreadPool pool(2);
        const backend::Cpu<isa::Dispatch> be{&pool};
        Matrix<float> got(Shape<2>{{ids.extent(0), cfg.num_items + 1}});
        model.score_all(be, pool, ids.cview(), got.view());
        const double err = compare(got, io_file.load<double, 2>("scores"));
        CHECK(err <= 1e-5);
        WARN(variant << ": worst |C++ - PyTorch| / max(1, |score|) = " << err);
    }
}

TEST_CASE("read_sizes finds every size but the heads in each reference checkpoint", "[layouts]") {
    for (const auto& v : {"pmixer_current", "pmixer_current_norm_first", "pmixer_2023", "recblocks_sasrec",
                          "recbole_sasrec", "recbole_bert4rec", "recbole_bert4rec_no_head", "recblocks_bert4rec"}) {
        const std::string variant = v;
        INFO(variant);
        const auto io_file = io::SafetensorsReader::open(golden(variant, ".io.safetensors"));
        const auto layout = models::CheckpointLayout::load(layout_file(io_file.metadata().at("layout")));
        if (io_file.metadata().at("model") == "sasrec") {
            const auto want = sizes_of(io_file);
            models::SASRecConfig got;
            got.heads = 99;
            models::read_sizes(golden(variant), layout, got);
            CHECK(got.num_items == want.num_items);
            CHECK(got.max_len == want.max_len);
            CHECK(got.d_model == want.d_model);
            CHECK(got.num_blocks == want.num_blocks);
            CHECK(got.ffn_inner == want.ffn_inner);
            CHECK(got.heads == 99);
        } else {
            const auto want = bert_sizes_of(io_file);
            models::BERT4RecConfig got;
            models::read_sizes(golden(variant), layout, got);
            CHECK(got.num_items == want.num_items);
            CHECK(got.max_len == want.max_len);
            CHECK(got.d_model == want.d_model);
            CHECK(got.num_blocks == want.num_blocks);
            CHECK(got.inner == want.inner);
        }
    }
    models::SASRecConfig cfg;
    REQUIRE_THROWS_WITH(models::read_sizes(golden("recbole_sasrec"),
                                       models::CheckpointLayout::load(layout_file("pmixer_current.json")), cfg),
                        Contains("no 2-d item and position tables (\"item_emb.weight\", \"pos_emb.weight\")"));
}

TEST_CASE("the timeline mask decides short histories: pmixer's current code read with it scores them wrong",
          "[layouts]") {
    // The bug the layouts fix: a current-pmixer checkpoint loads without error under the
    // pre-2024 assumptions (timeline mask on), and scores every padded history differently.
    auto layout = models::CheckpointLayout::load(layout_file("pmixer_current.json"));
    const auto io_file = io::SafetensorsReader::open(golden("pmixer_current", ".io.safetensors"));
    auto cfg = sizes_of(io_file);
    layout.apply(cfg);
    cfg.timeline_mask = true;
    models::AnySASRec<float> wrong(cfg, layout.norm(), Rng(7));
    models::load_state(golden("pmixer_current"), wrong.params(), layout);
    const auto ids = left_padded(io_file);
    const auto want = io_file.load<double, 2>("scores");
    ThreadPool pool(1);
    const backend::Cpu<isa::Dispatch> be{&pool};
    Matrix<float> got(Shape<2>{{ids.extent(0), cfg.num_items + 1}});
    wrong.score_all(be, pool, ids.cview(), got.view());
    const auto len = io_file.load<row_id_t, 1>("seq_len");
    for (index_t b = 0; b < ids.extent(0); ++b) {
        double worst = 0;
        for (index_t i = 1; i <= cfg.num_items; ++i) worst = std::max(worst, std::abs(got(b, i) - want(b, i - 1)));
        INFO("history " << b << " of " << len(b) << " items");
        if (len(b) == cfg.max_len)
            CHECK(worst <= 1e-4);  // nothing padded: the mask changes nothing
        else
            CHECK(worst > 1e-2);
    }
}

TEST_CASE("a checkpoint that does not fit the layout fails naming the tensor, model unchanged", "[layouts]") {
    const auto layout = models::CheckpointLayout::load(layout_file("pmixer_current.json"));
    const auto io_file = io::SafetensorsReader::open(golden("pmixer_current", ".io.safetensors"));
    auto cfg = sizes_of(io_file);
    layout.apply(cfg);
    models::AnySASRec<float> model(cfg, layout.norm(), Rng(7));
    const auto& params = model.params();
    std::vector<float> before;
    for (const auto& p : params) before.insert(before.end(), p.value, p.value + p.numel());
    const auto unchanged = [&] {
        std::vector<float> now;
        for (const auto& p : params) now.insert(now.end(), p.value, p.value + p.numel());
        return now == before;
    };
    // Rewrite the reference state_dict with one tensor removed, one added, or one reshaped.
    const auto src = io::SafetensorsReader::open(golden("pmixer_current"));
    const rbtest::TempDir dir;  // per process: ctest runs the three ISA passes at once
    const auto tmp = dir.path / "layout_test.safetensors";
    const auto write = [&](const std::string& drop, const std::string& extra, const std::string& reshape) {
        io::SafetensorsWriter w;
        for (const auto& n : src.names()) {
            if (n == drop) continue;
            switch (src.record(n).shape.size()) {
                case 1: w.add(n, src.load<float, 1>(n)); break;
                case 2: {
                    const auto t = src.load<float, 2>(n);
                    const index_t rows = t.extent(0) - (n == reshape ? 1 : 0);
                    w.add(n, TensorView<const float, 2>(t.data(), Shape<2>{{rows, t.extent(1)}}));
                    break;
                }
                default: w.add(n, src.load<float, 3>(n));  // Conv1d weights [D, D, 1]
            }
        }
        Tensor<float, 1> e(Shape<1>{{3}});
        e.zero();
        if (!extra.empty()) w.add(extra, e.cview());
        w.write(tmp);
    };
    SECTION("missing") {
        write("attention_layers.1.out_proj.weight", "", "");
        REQUIRE_THROWS_AS(models::load_state(tmp, params, layout), FormatError);
        REQUIRE_THROWS_WITH(models::load_state(tmp, params, layout),
                            Contains("no tensor \"attention_layers.1.out_proj.weight\"") &&
                                Contains("blocks.1.attention.out_proj.weight") && Contains("pmixer-current"));
    }
    SECTION("extra") {
        write("", "user_emb.weight", "");
        REQUIRE_THROWS_AS(models::load_state(tmp, params, layout), FormatError);
        REQUIRE_THROWS_WITH(models::load_state(tmp, params, layout),
                            Contains("tensor \"user_emb.weight\" of the checkpoint is used by no parameter"));
    }
    SECTION("wrong shape") {
        write("", "", "item_emb.weight");
        REQUIRE_THROWS_AS(models::load_state(tmp, params, layout), ShapeError);
        REQUIRE_THROWS_WITH(models::load_state(tmp, params, layout),
                            Contains("tensor \"item_emb.weight\" has 50 rows") && Contains("[51, 32]"));
    }
    SECTION("another layout's checkpoint: pmixer-2023 has [maxlen, D] positions") {
        const auto old = models::CheckpointLayout::load(layout_file("pmixer_2023.json"));
        REQUIRE_THROWS_AS(models::load_state(golden("pmixer_2023"), params, layout), ShapeError);
        REQUIRE_THROWS_WITH(models::load_state(golden("pmixer_2023"), params, layout),
                            Contains("tensor \"pos_emb.weight\" has 16 rows") && Contains("[17, 32]"));
        (void)old;
    }
    CHECK(unchanged());
}

TEST_CASE("a layout file with an unknown key, a missing option or a bad value fails naming it", "[layouts]") {
    const std::string opts =
        R"("norm": "post", "timeline_mask": false, "mask_padding_keys": false, "positions": "from_one",
           "ln_eps": 1e-8, "activation": "relu", "scale_embedding": true, "embedding_norm": false, "final_norm": true)";
    const auto doc = [&](const std::string& options, const std::string& more = "") {
        return R"({"layout": "recblocks-checkpoint-layout/1", "name": "t", "model": "sasrec", "options": {)" +
               options + "}" + more + "}";
    };
    const auto parse = [](const std::string& text) { return models::CheckpointLayout::parse(text, "my_layout.json"); };
    const auto ok = parse(doc(opts));
    CHECK(ok.norm() == policies::NormKind::post);
    models::SASRecConfig cfg;
    ok.apply(cfg);
    CHECK_FALSE(cfg.timeline_mask);

    REQUIRE_THROWS_AS(parse(doc(opts + R"(, "timeline_masks": true)")), ValueError);
    REQUIRE_THROWS_WITH(parse(doc(opts + R"(, "timeline_masks": true)")),
                        Contains("my_layout.json") && Contains("unknown key \"timeline_masks\""));
    REQUIRE_THROWS_WITH(parse(doc(opts, R"(, "nmaes": [])")), Contains("unknown key \"nmaes\" in the top level"));
    std::string no_eps = opts;
    no_eps.replace(no_eps.find("\"ln_eps\": 1e-8,"), 15, "");
    REQUIRE_THROWS_WITH(parse(doc(no_eps)), Contains("option \"ln_eps\" is missing"));
    std::string bad_norm = opts;
    bad_norm.replace(bad_norm.find("\"post\""), 6, "\"middle\"");
    REQUIRE_THROWS_WITH(parse(doc(bad_norm)),
                        Contains("option \"norm\" must be one of \"query\", \"pre\", \"post\", got \"middle\""));
    std::string bad_bool = opts;
    bad_bool.replace(bad_bool.find("\"timeline_mask\": false"), 22, "\"timeline_mask\": \"no\"");
    REQUIRE_THROWS_WITH(parse(doc(bad_bool)), Contains("option \"timeline_mask\" must be true or false, got a string"));
    REQUIRE_THROWS_WITH(parse(doc(opts, R"(, "names": [{"ours": "a."}])")), Contains("missing key \"theirs\""));
    REQUIRE_THROWS_WITH(parse(R"({"layout": "v2", "name": "t", "model": "sasrec", "options": {}})"),
                        Contains("\"layout\" must be \"recblocks-checkpoint-layout/1\""));
    REQUIRE_THROWS_WITH(parse(doc(opts) + "x"), Contains("my_layout.json"));
    REQUIRE_THROWS_AS(models::CheckpointLayout::load(layout_file("no_such_layout.json")), IoError);
    models::BERT4RecConfig bcfg;
    REQUIRE_THROWS_WITH(ok.apply(bcfg), Contains("is for a SASRec model, not BERT4Rec"));
}

TEST_CASE("every shipped layout parses", "[layouts]") {
    for (const auto& entry : std::filesystem::directory_iterator(std::string(RECBLOCKS_SOURCE_DIR) + "/layouts")) {
        if (entry.path().extension() != ".json") continue;
        INFO(entry.path().string());
        const auto l = models::CheckpointLayout::load(entry.path());
        CHECK_FALSE(l.name().empty());
        CHECK_FALSE(l.description().empty());
    }
}
