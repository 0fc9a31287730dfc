// SASRec models trained in PyTorch (tests/golden/make_trained_sasrec.py:
// ml-latest-small, 20 epochs, hidden 32, maxlen 50, 2 blocks, 1 head), saved
// with safetensors.torch.save_file(model.state_dict()), loaded into the float
// C++ model through io::load_pytorch_state and a name map, exactly as a user
// would (docs/interop.md):
//   * sasrec_trained_query_conv1d: the authors' query-norm block, nn.Conv1d
//     feed-forward ([D, D, 1] weights): the default io::sasrec_pmixer_names();
//   * sasrec_trained_pre_linear: pre-norm block, nn.Linear feed-forward: the
//     default map with one rule added.
// The all-item scores of eight real users must equal PyTorch's to 1e-4
// (relative to max(1, |score|)) and the top-10 must agree; the C++ evaluator
// must reproduce PyTorch's test metrics. A wrong map fails with a FormatError
// naming the missing tensor and the parameter, and leaves the model untouched.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/data/leave_one_out.hpp"
#include "recblocks/data/sequence_dataset.hpp"
#include "recblocks/eval/next_item_evaluation.hpp"
#include "recblocks/io/pytorch_import.hpp"
#include "recblocks/models/sasrec.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {

std::string trained_file(const std::string& variant) {
    return std::string(RECBLOCKS_SOURCE_DIR) + "/tests/golden/sasrec_trained_" + variant + ".safetensors";
}

/// The model configuration from the file's metadata (one JSON value per key).
models::SASRecConfig config_of(const io::SafetensorsReader& r) {
    const auto& meta = r.metadata();
    models::SASRecConfig cfg;
    cfg.num_items = std::stoll(meta.at("num_items"));
    cfg.max_len = std::stoll(meta.at("maxlen"));
    cfg.d_model = std::stoll(meta.at("hidden"));
    cfg.num_blocks = std::stoll(meta.at("num_blocks"));
    cfg.heads = std::stoll(meta.at("num_heads"));
    cfg.ln_eps = std::stod(meta.at("ln_eps"));
    cfg.mask_padding_keys = meta.at("mask_padding_keys") == "true";
    REQUIRE(meta.at("positions") == "\"from_one\"");
    cfg.positions = blocks::PositionRows::from_one;
    cfg.dropout = 0.2;  // as trained; inference applies none
    return cfg;
}

/// The linear-FFN map: pmixer's names with one rule in front, because
/// nn.Linear's names (forward_layers.i.linear1/linear2) are recblocks' own
/// below the block prefix. This is the edit docs/interop.md shows.
io::NameMap linear_ffn_names() {
    io::NameMap map = io::sasrec_pmixer_names();
    map.insert(map.begin(), {"blocks.{i}.ffn.", "forward_layers.{i}."});  // the one-line edit
    return map;
}

/// The k items 1..n with the highest score(item), best first (ties: lower id first).
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

template <class Norm>
void check_trained(const std::string& variant, const io::NameMap& map, const std::string& norm) {
    INFO(variant);
    const std::string path = trained_file(variant);
    const auto r = io::SafetensorsReader::open(path);
    REQUIRE(r.metadata().at("norm") == "\"" + norm + "\"");
    const auto cfg = config_of(r);
    models::SASRec<float, Norm> model(cfg, Rng(7));
    const auto unused = io::load_pytorch_state(path, model.params(), map);
    // Every state_dict tensor was used: only the test inputs and outputs remain.
    CHECK(unused == std::vector<std::string>{"test.scores", "test.seq"});

    const auto seq = r.load<row_id_t, 2>("test.seq");
    const auto want = r.load<float, 2>("test.scores");  // [B, N], column j = item j + 1
    const index_t bsz = seq.extent(0), n = cfg.num_items;
    REQUIRE(want.extent(0) == bsz);
    REQUIRE(want.extent(1) == n);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    Matrix<float> got(Shape<2>{{bsz, n + 1}});
    model.score_all(be, pool, seq.cview(), got.view());

    double worst = 0, worst_abs = 0;
    index_t wb = 0, wi = 0;
    for (index_t b = 0; b < bsz; ++b)
        for (index_t i = 1; i <= n; ++i) {
            const double w = want(b, i - 1), g = got(b, i);
            const double err = std::fabs(g - w) / std::max(1.0, std::fabs(w));
            worst_abs = std::max(worst_abs, std::fabs(g - w));
            if (!(err <= worst)) {  // NaN is the worst
                worst = err;
                wb = b;
                wi = i;
            }
        }
    INFO("max |C++ - PyTorch| / max(1, |score|) = " << worst << " (absolute " << worst_abs << ") at user row " << wb
                                                    << ", item " << wi << ": C++ " << got(wb, wi) << ", PyTorch "
                                                    << want(wb, wi - 1));
    REQUIRE(worst <= 1e-4);

    // Top-10 (history items included): the same items in the same order, except
    // that two items whose PyTorch scores are within the tolerance may swap.
    const index_t k = 10;
    for (index_t b = 0; b < bsz; ++b) {
        const auto ours = top_k([&](index_t i) { return double(got(b, i)); }, n, k);
        const auto theirs = top_k([&](index_t i) { return double(want(b, i - 1)); }, n, k);
        for (index_t j = 0; j < k; ++j) {
            const double s_ours = want(b, ours[j] - 1), s_theirs = want(b, theirs[j] - 1);
            INFO("row " << b << ", rank " << j + 1 << ": C++ item " << ours[j] << " (PyTorch score " << s_ours
                        << "), PyTorch item " << theirs[j] << " (" << s_theirs << ")");
            CHECK((ours[j] == theirs[j] || std::fabs(s_ours - s_theirs) <= 1e-4 * std::max(1.0, std::fabs(s_theirs))));
        }
    }
}

}  // namespace

TEST_CASE("interop: PyTorch-trained SASRec (query norm, Conv1d FFN) scores match PyTorch",
          "[golden][pytorch][interop]") {
    check_trained<policies::QueryNorm>("query_conv1d", io::sasrec_pmixer_names(), "query");
}

TEST_CASE("interop: PyTorch-trained SASRec (pre-norm, nn.Linear FFN) scores match PyTorch with an edited map",
          "[golden][pytorch][interop]") {
    const io::NameMap map = linear_ffn_names();
    CHECK(io::map_name(map, "blocks.1.ffn.linear2.weight") == "forward_layers.1.linear2.weight");
    CHECK(io::map_name(map, "blocks.0.attention.in_proj_weight") == "attention_layers.0.in_proj_weight");
    CHECK(io::map_name(map, "item_emb.weight") == "item_emb.weight");
    check_trained<policies::PreNorm>("pre_linear", map, "pre");
}

TEST_CASE("interop: the C++ evaluator reproduces PyTorch's test metrics of the trained model",
          "[golden][pytorch][interop]") {
    const std::string path = trained_file("query_conv1d");
    const auto r = io::SafetensorsReader::open(path);
    const auto cfg = config_of(r);
    models::SASRec<float, policies::QueryNorm> model(cfg, Rng(7));
    io::load_pytorch_state(path, model.params(), io::sasrec_pmixer_names());
    const auto dataset = data::read_movielens_csv(std::string(RECBLOCKS_SOURCE_DIR) + "/data/ml-latest-small/ratings.csv");
    REQUIRE(dataset.num_items() == cfg.num_items);
    const auto split = data::leave_one_out(dataset);
    ThreadPool pool(2);
    const backend::Cpu<isa::Dispatch> be{&pool};
    eval::NextItemEvalOptions opt;
    opt.protocol = eval::Protocol::sampled;
    opt.seed = std::stoull(r.metadata().at("seed"));  // the same 100 negatives per user as PyTorch's evaluator
    const auto m = eval::evaluate_next_item(model, be, pool, split, cfg.num_items, cfg.max_len, opt);
    const double hr = std::stod(r.metadata().at("test_sampled_HR@10"));
    const double ndcg = std::stod(r.metadata().at("test_sampled_NDCG@10"));
    INFO("C++ HR@10 " << m.hit_rate(10) << " NDCG@10 " << m.ndcg(10) << "; PyTorch " << hr << ", " << ndcg << " ("
                      << m.count() << " users)");
    // One user's rank may move by a near-tie (scores equal to ~1e-6); allow one user's worth.
    CHECK(std::fabs(m.hit_rate(10) - hr) <= 1.0 / double(m.count()) + 1e-6);
    CHECK(std::fabs(m.ndcg(10) - ndcg) <= 1.0 / double(m.count()) + 1e-6);
}

TEST_CASE("interop: a wrong name map fails naming the tensor and the parameter, and writes nothing",
          "[golden][pytorch][interop]") {
    const std::string path = trained_file("pre_linear");
    const auto cfg = config_of(io::SafetensorsReader::open(path));
    models::SASRec<float, policies::PreNorm> model(cfg, Rng(7));
    const auto& params = model.params();
    std::vector<std::vector<float>> before;
    for (const auto& p : params) before.emplace_back(p.value, p.value + p.numel());
    auto untouched = [&] {
        for (std::size_t i = 0; i < params.size(); ++i)
            if (!std::equal(before[i].begin(), before[i].end(), params[i].value)) return false;
        return true;
    };

    SECTION("the Conv1d map on an nn.Linear state_dict") {
        REQUIRE_THROWS_AS(io::load_pytorch_state(path, params, io::sasrec_pmixer_names()), FormatError);
        REQUIRE_THROWS_WITH(io::load_pytorch_state(path, params, io::sasrec_pmixer_names()),
                            Contains("no tensor \"forward_layers.0.conv1.weight\"") &&
                                Contains("for parameter \"blocks.0.ffn.linear1.weight\"") && Contains("NameMap"));
    }
    SECTION("a misspelt prefix") {
        io::NameMap map = linear_ffn_names();
        for (auto& rule : map)
            if (rule.theirs == "last_layernorm.") rule.theirs = "final_layernorm.";
        REQUIRE_THROWS_AS(io::load_pytorch_state(path, params, map), FormatError);
        REQUIRE_THROWS_WITH(io::load_pytorch_state(path, params, map),
                            Contains("no tensor \"final_layernorm.weight\"") &&
                                Contains("for parameter \"final_norm.weight\""));
    }
    SECTION("a model built with the wrong maxlen") {
        auto wrong = cfg;
        wrong.max_len = 40;
        models::SASRec<float, policies::PreNorm> other(wrong, Rng(7));
        REQUIRE_THROWS_AS(io::load_pytorch_state(path, other.params(), linear_ffn_names()), ShapeError);
        REQUIRE_THROWS_WITH(io::load_pytorch_state(path, other.params(), linear_ffn_names()),
                            Contains("\"pos_emb.weight\" is [51, 32]") && Contains("is [41, 32]"));
    }
    CHECK(untouched());
}
