// NextItemService with incremental per-user states answers as the same service
// recomputing every window (itself checked against a literal reference in
// next_item_service_test.cpp): a random stream of "history", "events" (one,
// a few, many) and bare requests for many users, one user twice in a batch,
// evictions, histories past max_len, for each norm placement. A model whose
// states would not be exact falls back to recomputation and says why.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/io/json_header.hpp"
#include "recblocks/serving/described_model.hpp"
#include "recblocks/serving/next_item_service.hpp"
#include "support/temp_dir.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

namespace {

using Be = backend::Cpu<isa::Dispatch>;
using Scorer = serving::ModelScorer<models::AnySASRec<float>, Be>;

models::SASRecConfig cacheable_sasrec() {
    models::SASRecConfig c;
    c.num_items = 30;
    c.max_len = 6;
    c.d_model = 8;
    c.num_blocks = 2;
    c.heads = 2;
    c.positions = blocks::PositionRows::from_oldest;
    c.mask_padding_keys = true;
    return c;
}

io::ItemIdMap toy_items(index_t n) {  // dense i <-> 1000 + 7 i
    std::vector<std::int64_t> ids{0};
    for (index_t i = 1; i <= n; ++i) ids.push_back(1000 + 7 * i);
    return io::ItemIdMap(ids);
}

/// Every weight moved off its initial value (norms away from 1, biases away from 0).
void perturb(const ParamList<float>& params, std::uint64_t seed) {
    const Rng rng(seed);
    std::uint64_t k = 0;
    for (const auto& p : params)
        for (index_t i = 0; i < p.numel(); ++i) p.value[i] += static_cast<float>(0.3 * rng.normal(k++));
}

std::string item_list(std::mt19937& gen, std::size_t n, index_t num_items) {
    std::string s = "[";
    for (std::size_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += std::to_string(1000 + 7 * (1 + static_cast<std::int64_t>(gen() % static_cast<unsigned>(num_items))));
    }
    return s + "]";
}

/// A random request line for one of `users` users.
std::string random_request(std::mt19937& gen, int users, index_t num_items, index_t max_len) {
    std::string line = "{\"user\": \"u" + std::to_string(gen() % static_cast<unsigned>(users)) + "\"";
    const unsigned kind = gen() % 10;
    if (kind < 2) {  // a history: empty, shorter than the window, or longer
        line += ", \"history\": " + item_list(gen, gen() % static_cast<unsigned>(2 * max_len + 1), num_items);
    } else if (kind < 8) {  // events: mostly one; some a few, some more than the window
        const unsigned r = gen() % 8;
        const std::size_t n = r < 5 ? 1 : r < 7 ? 2 + gen() % 3 : static_cast<std::size_t>(max_len) + gen() % 8;
        line += ", \"events\": " + item_list(gen, n, num_items);
    }
    if (gen() % 2) line += ", \"k\": " + std::to_string(1 + gen() % static_cast<unsigned>(num_items));
    if (gen() % 3 == 0) line += ", \"exclude_seen\": false";
    return line + "}";
}

/// The same answer: both errors with the same text, or the same items and scores within 1e-5.
void require_same_answer(const serving::ServiceJob& got, const serving::ServiceJob& want) {
    INFO("incremental: " << got.response << "\nrecompute:   " << want.response);
    REQUIRE(got.failed == want.failed);
    if (want.failed) {
        REQUIRE(got.response == want.response);
        return;
    }
    const auto g = io::json::parse(got.response, "incremental answer"), w = io::json::parse(want.response, "answer");
    REQUIRE(g.items[0].text == w.items[0].text);
    const auto &gi = g.items[1].items, &wi = w.items[1].items, &gs = g.items[2].items, &ws = w.items[2].items;
    REQUIRE(gi.size() == wi.size());
    for (std::size_t j = 0; j < wi.size(); ++j) {
        REQUIRE(*gi[j].as_int64() == *wi[j].as_int64());
        REQUIRE(std::fabs(std::stod(gs[j].text) - std::stod(ws[j].text)) <= 1e-5);
    }
}

}  // namespace

TEST_CASE("NextItemService with incremental states answers as the recomputing service", "[serving][service][incremental]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const auto cfg = cacheable_sasrec();
    const io::ItemIdMap items = toy_items(cfg.num_items);
    for (const auto norm : {models::NormKind::query, models::NormKind::pre, models::NormKind::post}) {
        INFO("norm placement " << static_cast<int>(norm));
        Scorer scorer(be, pool, cfg, norm);
        perturb(scorer.model().params(), 7);
        REQUIRE(scorer.incremental() != nullptr);
        CHECK(scorer.incremental_note().empty());
        const serving::NextItemServiceOptions opt{.cache_capacity = 5, .max_batch = 8};
        serving::NextItemService inc(scorer, items, opt);
        serving::NextItemService full(scorer, items, {.cache_capacity = 5, .max_batch = 8, .incremental = false});
        REQUIRE(inc.incremental());
        REQUIRE_FALSE(full.incremental());
        CHECK(inc.bytes_per_user() == scorer.incremental()->state_bytes() + 100);
        CHECK(inc.bytes_per_user() > full.bytes_per_user());

        std::mt19937 gen(100 + static_cast<unsigned>(norm));
        std::vector<serving::ServiceJob> a(8), b(8);
        std::vector<serving::ServiceJob*> pa, pb;
        std::size_t answered = 0, errors = 0;
        for (int round = 0; round < 150; ++round) {
            const std::size_t n = 1 + gen() % 8;
            pa.clear();
            pb.clear();
            for (std::size_t i = 0; i < n; ++i) {
                const std::string line = random_request(gen, 12, cfg.num_items, cfg.max_len);
                REQUIRE(inc.prepare(line, a[i]) == full.prepare(line, b[i]));
                pa.push_back(&a[i]);
                pb.push_back(&b[i]);
            }
            inc.answer(pa);
            full.answer(pb);
            for (std::size_t i = 0; i < n; ++i) {
                require_same_answer(a[i], b[i]);
                (b[i].failed ? errors : answered) += 1;
            }
        }
        CHECK(inc.cache().evictions() == full.cache().evictions());
        CHECK(inc.cache().evictions() > 50);  // 12 users through a cache of 5
        CHECK(answered > 300);
        CHECK(errors > 20);  // users evicted before a bare request, empty histories
    }
}

TEST_CASE("NextItemService: one user's requests in a batch, and a user evicted inside a batch",
          "[serving][service][incremental]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const auto cfg = cacheable_sasrec();
    const io::ItemIdMap items = toy_items(cfg.num_items);
    Scorer scorer(be, pool, cfg, models::NormKind::query);
    perturb(scorer.model().params(), 3);
    // Capacity 2: "c" evicts "a" while a's event waits to be appended with b's.
    serving::NextItemService inc(scorer, items, {.cache_capacity = 2, .max_batch = 8});
    serving::NextItemService full(scorer, items, {.cache_capacity = 2, .max_batch = 8, .incremental = false});
    const std::vector<std::vector<std::string>> batches = {
        {R"({"user": "a", "history": [1007, 1014, 1021]})", R"({"user": "b", "history": [1035]})"},
        {R"({"user": "a", "events": [1049]})", R"({"user": "a", "events": [1056], "exclude_seen": false})",
         R"({"user": "b", "events": [1063]})", R"({"user": "a", "k": 3})", R"({"user": "c", "events": [1070]})",
         R"({"user": "a", "events": [1077, 1084]})", R"({"user": "b", "k": 2})"},
        {R"({"user": "a", "events": [1091, 1098, 1105, 1112, 1119, 1126, 1133]})", R"({"user": "a", "history": []})",
         R"({"user": "a"})"},
    };
    for (const auto& lines : batches) {
        std::vector<serving::ServiceJob> a(lines.size()), b(lines.size());
        std::vector<serving::ServiceJob*> pa, pb;
        for (std::size_t i = 0; i < lines.size(); ++i) {
            REQUIRE(inc.prepare(lines[i], a[i]));
            REQUIRE(full.prepare(lines[i], b[i]));
            pa.push_back(&a[i]);
            pb.push_back(&b[i]);
        }
        inc.answer(pa);
        full.answer(pb);
        for (std::size_t i = 0; i < lines.size(); ++i) require_same_answer(a[i], b[i]);
    }
    CHECK(inc.cache().evictions() == full.cache().evictions());
}

TEST_CASE("A model whose states would not be exact is served by recomputation, and says why",
          "[serving][service][incremental]") {
    ThreadPool pool(2);
    const Be be{&pool};
    const io::ItemIdMap items = toy_items(30);
    SECTION("SASRec with slot positions, unmasked padded keys, or RecBole's embedding norm") {
        struct Case {
            blocks::PositionRows positions;
            bool mask, embedding_norm;
            const char* named;
        };
        for (const Case c : {Case{blocks::PositionRows::per_slot, true, false, "positions = per_slot"},
                             Case{blocks::PositionRows::from_oldest, false, false, "mask_padding_keys = false"},
                             Case{blocks::PositionRows::from_oldest, true, true, "embedding_norm = true"}}) {
            auto cfg = cacheable_sasrec();
            cfg.positions = c.positions;
            cfg.mask_padding_keys = c.mask;
            cfg.embedding_norm = c.embedding_norm;
            Scorer scorer(be, pool, cfg, models::NormKind::pre);
            CHECK(scorer.incremental() == nullptr);
            CHECK_THAT(scorer.incremental_note(), Contains(c.named) && Contains("from_oldest"));
            serving::NextItemService s(scorer, items, {.cache_capacity = 4, .max_batch = 2});
            CHECK_FALSE(s.incremental());
            CHECK(s.bytes_per_user() == serving::UserHistory::bytes_per_user(cfg.max_len));
            serving::ServiceJob j;
            REQUIRE(s.prepare(R"({"user": "a", "history": [1007, 1014]})", j));
            serving::ServiceJob* one[] = {&j};
            s.answer(one);
            CHECK_FALSE(j.failed);
        }
    }
    SECTION("BERT4Rec") {
        models::BERT4RecConfig bc;
        bc.num_items = 30;
        bc.max_len = 6;
        bc.d_model = 8;
        bc.heads = 2;
        serving::ModelScorer<models::BERT4Rec<float>, Be> scorer(be, pool, bc);
        CHECK(scorer.incremental() == nullptr);
        CHECK_THAT(scorer.incremental_note(), Contains("both directions"));
        serving::NextItemService s(scorer, items, {.cache_capacity = 4, .max_batch = 2});
        CHECK_FALSE(s.incremental());
    }
    SECTION("a checkpoint of a cacheable SASRec is served incrementally once loaded") {
        rbtest::TempDir dir;
        const auto cfg = cacheable_sasrec();
        models::SASRec<float, policies::PostNorm> m(cfg, Rng(2));
        train::save_checkpoint<float>(dir.path / "m.safetensors", m.params(), nullptr, 1,
                                      models::model_metadata(models::ModelDescription::of(cfg, models::NormKind::post)),
                                      [&](io::SafetensorsWriter& w) { items.add_to(w); });
        auto d = serving::load_described_model(dir.path / "m.safetensors", be, pool);
        REQUIRE(d.scorer->incremental() != nullptr);
        serving::NextItemService s(*d.scorer, d.items);
        CHECK(s.incremental());
    }
}
