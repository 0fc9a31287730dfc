// A model rebuilt from a self-describing checkpoint scores exactly as the
// model that was saved; the service's answers (state across requests, the
// LRU cache, exclusion, k, batches with one user twice) equal a reference
// written literally here: the window kept by hand, one row scored at a time,
// excluded items set aside, the rest sorted.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/io/json_header.hpp"
#include "recblocks/serving/described_model.hpp"
#include "recblocks/serving/next_item_service.hpp"
#include "support/temp_dir.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

using Be = backend::Cpu<isa::Dispatch>;

models::SASRecConfig small_sasrec() {
    models::SASRecConfig c;
    c.num_items = 30;
    c.max_len = 6;
    c.d_model = 8;
    c.num_blocks = 2;
    c.heads = 2;
    c.positions = blocks::PositionRows::per_slot;
    c.mask_padding_keys = true;
    return c;
}

/// Source ids of the toy catalogue: dense i <-> 1000 + 7 i.
io::ItemIdMap toy_items(index_t n) {
    std::vector<std::int64_t> ids{0};
    for (index_t i = 1; i <= n; ++i) ids.push_back(1000 + 7 * i);
    return io::ItemIdMap(ids);
}

template <class Model>
void save_described(const std::filesystem::path& path, Model& m, const models::ModelDescription& d,
                    const io::ItemIdMap& items) {
    train::save_checkpoint<float>(path, m.params(), nullptr, 3, models::model_metadata(d),
                                  [&](io::SafetensorsWriter& w) { items.add_to(w); });
}

/// Rows of histories, left-padded by hand.
Matrix<row_id_t> padded(const std::vector<std::vector<row_id_t>>& rows, index_t len) {
    Matrix<row_id_t> ids(Shape<2>{{static_cast<index_t>(rows.size()), len}});
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const auto& h = rows[r];
        const std::size_t start = h.size() > static_cast<std::size_t>(len) ? h.size() - static_cast<std::size_t>(len) : 0;
        const index_t pad = len - static_cast<index_t>(h.size() - start);
        for (index_t t = 0; t < len; ++t)
            ids(static_cast<index_t>(r), t) = t < pad ? 0 : h[start + static_cast<std::size_t>(t - pad)];
    }
    return ids;
}

}  // namespace

TEST_CASE("a model rebuilt from its checkpoint alone scores as the saved one", "[serving][checkpoint]") {
    ThreadPool pool(2);
    const Be be{&pool};
    rbtest::TempDir dir;
    const std::vector<std::vector<row_id_t>> hist{{1, 2, 3}, {30, 29, 28, 27, 26, 25, 24, 23}, {7}};
    const auto cfg = small_sasrec();
    const auto ids = padded(hist, cfg.max_len);

    SECTION("SASRec, pre-norm, per-slot positions, key-padding mask") {
        models::SASRec<float, policies::PreNorm> m(cfg, Rng(11));
        save_described(dir.path / "s.safetensors", m, models::ModelDescription::of(cfg, models::NormKind::pre),
                       toy_items(cfg.num_items));
        auto d = serving::load_described_model(dir.path / "s.safetensors", be, pool);
        CHECK(d.items_from_file);
        CHECK(d.items.original(4) == 1028);
        CHECK(d.description.norm == models::NormKind::pre);
        Matrix<float> want(Shape<2>{{3, cfg.num_items + 1}}), got(want.shape());
        m.score_all(be, pool, ids.cview(), want.view());
        d.scorer->score_all(ids.cview(), got.view());
        for (index_t r = 0; r < 3; ++r)
            for (index_t i = 0; i <= cfg.num_items; ++i) REQUIRE(got(r, i) == want(r, i));
    }
    SECTION("SASRec with another norm placement gives other scores (the norm is read, not assumed)") {
        models::SASRec<float, policies::PreNorm> m(cfg, Rng(11));
        save_described(dir.path / "q.safetensors", m, models::ModelDescription::of(cfg, models::NormKind::query),
                       toy_items(cfg.num_items));
        auto d = serving::load_described_model(dir.path / "q.safetensors", be, pool);
        Matrix<float> want(Shape<2>{{3, cfg.num_items + 1}}), got(want.shape());
        m.score_all(be, pool, ids.cview(), want.view());
        d.scorer->score_all(ids.cview(), got.view());
        float diff = 0;
        for (index_t i = 1; i <= cfg.num_items; ++i) diff = std::max(diff, std::abs(got(0, i) - want(0, i)));
        CHECK(diff > 1e-3f);
    }
    SECTION("BERT4Rec") {
        models::BERT4RecConfig bc;
        bc.num_items = 30;
        bc.max_len = 6;
        bc.d_model = 8;
        bc.heads = 2;
        bc.inner = 12;
        models::BERT4Rec<float> m(bc, Rng(5));
        save_described(dir.path / "b.safetensors", m, models::ModelDescription::of(bc), toy_items(bc.num_items));
        auto d = serving::load_described_model(dir.path / "b.safetensors", be, pool);
        CHECK(d.description.kind == models::ModelKind::bert4rec);
        CHECK(d.description.bert4rec.inner == 12);
        Matrix<float> want(Shape<2>{{3, bc.num_items + 1}}), got(want.shape());
        m.score_all(be, pool, ids.cview(), want.view());
        d.scorer->score_all(ids.cview(), got.view());
        for (index_t r = 0; r < 3; ++r)
            for (index_t i = 0; i <= bc.num_items; ++i) REQUIRE(got(r, i) == want(r, i));
    }
    SECTION("a checkpoint without a description, or one that lies about the weights, is refused by name") {
        models::SASRec<float> m(cfg, Rng(1));
        train::save_checkpoint<float>(dir.path / "old.safetensors", m.params(), nullptr, 1, {{"model", "sasrec"}});
        CHECK_THROWS_WITH(serving::load_described_model(dir.path / "old.safetensors", be, pool),
                          Contains("old.safetensors: the file does not describe its model"));
        CHECK_FALSE(serving::read_description(dir.path / "old.safetensors").has_value());
        auto lie = cfg;
        lie.d_model = 4;
        save_described(dir.path / "lie.safetensors", m, models::ModelDescription::of(lie, models::NormKind::query),
                       toy_items(cfg.num_items));
        CHECK_THROWS_AS(serving::load_described_model(dir.path / "lie.safetensors", be, pool), ShapeError);
        save_described(dir.path / "few.safetensors", m, models::ModelDescription::of(cfg, models::NormKind::query),
                       toy_items(cfg.num_items - 1));
        CHECK_THROWS_WITH(serving::load_described_model(dir.path / "few.safetensors", be, pool),
                          Contains("tensor \"item_ids\" must be integers of shape [31]"));
    }
}

TEST_CASE("NextItemService answers as the reference over a session of requests", "[serving][service]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const auto cfg = small_sasrec();
    models::SASRec<float, policies::PreNorm> model(cfg, Rng(4));
    serving::ModelScorer<models::SASRec<float, policies::PreNorm>, Be> scorer(be, pool, cfg);
    for (std::size_t i = 0; i < model.params().size(); ++i)
        std::copy(model.params()[i].value, model.params()[i].value + model.params()[i].numel(), scorer.model().params()[i].value);
    const io::ItemIdMap items = toy_items(cfg.num_items);
    serving::NextItemService service(scorer, items, {.cache_capacity = 2, .max_batch = 4});

    // The reference: windows kept by hand; each request scored alone.
    std::map<std::string, std::vector<row_id_t>> kept;
    auto dense = [&](std::int64_t source) { return static_cast<row_id_t>((source - 1000) / 7); };
    auto reference = [&](const std::string& user, const std::vector<row_id_t>& window, std::int64_t k, bool exclude) {
        const auto ids = padded({window}, cfg.max_len);
        Matrix<float> s(Shape<2>{{1, cfg.num_items + 1}});
        model.score_all(be, pool, ids.cview(), s.view());
        std::vector<row_id_t> order;
        for (row_id_t i = 1; i <= cfg.num_items; ++i)
            if (!exclude || std::find(window.begin(), window.end(), i) == window.end()) order.push_back(i);
        std::stable_sort(order.begin(), order.end(), [&](row_id_t a, row_id_t b) { return s(0, a) > s(0, b); });
        order.resize(std::min<std::size_t>(order.size(), static_cast<std::size_t>(k)));
        std::vector<std::pair<std::int64_t, float>> out;
        for (const row_id_t i : order) out.emplace_back(1000 + 7 * std::int64_t{i}, s(0, i));
        (void)user;
        return out;
    };
    auto check_answer = [&](const serving::ServiceJob& job, const std::vector<std::pair<std::int64_t, float>>& want) {
        INFO(job.response);
        REQUIRE_FALSE(job.failed);
        const auto v = io::json::parse(job.response, "answer");
        REQUIRE(v.keys.size() == 3);
        const auto& got_items = v.items[1].items;
        const auto& got_scores = v.items[2].items;
        REQUIRE(got_items.size() == want.size());
        for (std::size_t i = 0; i < want.size(); ++i) {
            CHECK(*got_items[i].as_int64() == want[i].first);
            CHECK(std::stof(got_scores[i].text) == Approx(want[i].second).margin(1e-5));
        }
    };
    // A batch: a history, events for the same user behind it, another user, and a malformed line.
    std::vector<serving::ServiceJob> jobs(4);
    REQUIRE(service.prepare(R"({"user": "a", "history": [1007, 1014, 1021, 1028, 1035, 1042, 1049], "k": 5})", jobs[0]));
    REQUIRE(service.prepare(R"({"user": "a", "events": [1210], "k": 30})", jobs[1]));
    REQUIRE(service.prepare(R"({"user": 9, "events": [1070, 1077], "exclude_seen": false, "k": 4})", jobs[2]));
    CHECK_FALSE(service.prepare(R"({"user": "c", "events": [1001]})", jobs[3]));
    CHECK(jobs[3].response == R"({"user": "c", "error": "request: \"events\"[0]: item 1001 is not in the model's catalogue"})");
    std::vector<serving::ServiceJob*> batch{&jobs[0], &jobs[1], &jobs[2], &jobs[3]};
    service.answer(batch);
    kept["a"] = {1, 2, 3, 4, 5, 6, 7};
    kept["a"].erase(kept["a"].begin());  // the window: the newest 6
    check_answer(jobs[0], reference("a", kept["a"], 5, true));
    kept["a"].erase(kept["a"].begin());
    kept["a"].push_back(dense(1210));
    check_answer(jobs[1], reference("a", kept["a"], 30, true));  // k beyond what exclusion leaves: 24 items
    kept["9"] = {10, 11};
    check_answer(jobs[2], reference("9", kept["9"], 4, false));
    CHECK(jobs[3].failed);

    // The cache holds 2 users: a third evicts the least recently used ("a"), whose next events start over.
    serving::ServiceJob j;
    REQUIRE(service.prepare(R"({"user": "z", "history": [1140]})", j));
    std::vector<serving::ServiceJob*> one{&j};
    service.answer(one);
    check_answer(j, reference("z", {20}, 10, true));
    CHECK(service.cache().evictions() == 1);
    REQUIRE(service.prepare(R"({"user": "a"})", j));
    service.answer(one);
    CHECK(j.failed);
    CHECK_THAT(j.response, Contains("user a is not in the cache (new, or evicted)"));
    REQUIRE(service.prepare(R"({"user": "a", "events": [1014]})", j));
    service.answer(one);
    check_answer(j, reference("a", {2}, 10, true));
    REQUIRE(service.prepare(R"({"user": 9, "k": 3})", j));  // evicted by "a" just now
    service.answer(one);
    CHECK(j.failed);
    CHECK_THAT(j.response, StartsWith(R"({"user": 9, "error": )"));
}
