// The parts of a server that know no model: the LRU cache, a user's history
// window, the request-line parser (every error named), the answer lines, and
// the micro-batcher (every job answered once, batches bounded, order kept).
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "recblocks/io/json_header.hpp"
#include "recblocks/serving/lru_cache.hpp"
#include "recblocks/serving/micro_batcher.hpp"
#include "recblocks/serving/request_lines.hpp"
#include "recblocks/serving/user_history.hpp"

using namespace recblocks;
using Catch::Matchers::Contains;

TEST_CASE("LruCache forgets the least recently used entry and reuses its node", "[serving][lru]") {
    serving::LruCache<std::string, int> c(3);
    int made = 0, reused = 0;
    auto get = [&](const std::string& k) -> int& {
        return c.get_or_insert(k, [&] { return ++made; }, [&](int& old) { old = -(++reused); });
    };
    get("a");
    get("b");
    get("c");
    CHECK(c.size() == 3);
    REQUIRE(c.find("a") != nullptr);  // a is now the most recent: b is the oldest
    bool inserted = false;
    c.get_or_insert("d", [&] { return ++made; }, [&](int& old) { old = -(++reused); }, &inserted);
    CHECK(inserted);
    CHECK(c.size() == 3);
    CHECK(c.evictions() == 1);
    CHECK_FALSE(c.contains("b"));
    CHECK(c.contains("a"));
    CHECK(*c.find("d") == -1);  // the evicted node's value, reset by `reuse`
    CHECK(made == 3);
    std::vector<std::string> order;
    c.for_each([&](const std::string& k, int) { order.push_back(k); });
    CHECK(order == std::vector<std::string>{"d", "a", "c"});
    c.get_or_insert("c", [&] { return ++made; }, [&](int&) {}, &inserted);
    CHECK_FALSE(inserted);
    CHECK(c.erase("c"));
    CHECK_FALSE(c.erase("c"));
    CHECK(c.size() == 2);
    CHECK_THROWS_WITH((serving::LruCache<int, int>(0)), Contains("capacity must be >= 1"));
}

TEST_CASE("UserHistory keeps the newest max_len items and writes a left-padded window", "[serving][history]") {
    serving::UserHistory h(4);
    CHECK(h.empty());
    const std::vector<row_id_t> a{1, 2, 3};
    h.append(a);
    const std::vector<row_id_t> b{4, 5};
    h.append(b);
    CHECK(std::vector<row_id_t>(h.items().begin(), h.items().end()) == std::vector<row_id_t>{2, 3, 4, 5});
    const std::vector<row_id_t> longer{9, 8, 7, 6, 5, 4};
    h.assign(longer);
    CHECK(std::vector<row_id_t>(h.items().begin(), h.items().end()) == std::vector<row_id_t>{7, 6, 5, 4});
    const std::vector<row_id_t> one{3};
    h.assign(one);
    std::vector<row_id_t> row(4, -1);
    h.write_window(row);
    CHECK(row == std::vector<row_id_t>{0, 0, 0, 3});
    std::vector<row_id_t> wrong(5);
    CHECK_THROWS_AS(h.write_window(wrong), ShapeError);
    h.clear();
    CHECK(h.empty());
    CHECK(serving::UserHistory::bytes_per_user(200) == 900);
}

TEST_CASE("request lines parse into requests", "[serving][requests]") {
    auto r = serving::parse_request(R"({"user": "u1", "events": [5, 7], "k": 3, "exclude_seen": false})", 100);
    CHECK(r.user == "u1");
    CHECK_FALSE(r.user_is_number);
    CHECK(r.kind == serving::Request::Items::events);
    CHECK(r.items == std::vector<std::int64_t>{5, 7});
    CHECK(r.k == 3);
    CHECK_FALSE(r.exclude_seen);
    r = serving::parse_request(R"({"history": [9007199254740993], "user": 42})", 100);
    CHECK(r.user == "42");
    CHECK(r.user_is_number);
    CHECK(r.kind == serving::Request::Items::history);
    CHECK(r.items == std::vector<std::int64_t>{9007199254740993LL});  // beyond 2^53: exact
    CHECK(r.k == 10);
    CHECK(r.exclude_seen);
    r = serving::parse_request(R"({"user": "\u00e9l\u00e8ve"})", 100);
    CHECK(r.user == "\xc3\xa9l\xc3\xa8ve");
    CHECK(r.kind == serving::Request::Items::none);
}

TEST_CASE("malformed request lines are errors naming the problem", "[serving][requests]") {
    const struct {
        const char* line;
        const char* message;
    } cases[] = {
        {R"({"user": "u1", "events": [5, 7)", "request: line is not valid JSON: expected ',' or ']' in an array"},
        {"", "request: line is not valid JSON: unexpected end of the line at byte 0 of the line"},
        {"[1, 2]", "request: expected a JSON object, found an array"},
        {R"({"events": [1]})", "request: \"user\" is missing"},
        {R"({"user": 1.5})", "\"user\" must be a string or an integer, found the number 1.5"},
        {R"({"user": [1]})", "\"user\" must be a string or an integer, found an array"},
        {R"({"user": "a", "user": "b"})", "\"user\" appears twice"},
        {R"({"user": "a", "events": 5})", "\"events\" must be an array of item ids, found a number"},
        {R"({"user": "a", "history": [1, "2"]})", "\"history\"[1] must be an integer item id, found a string"},
        {R"({"user": "a", "history": [1, 2.0]})", "\"history\"[1] must be an integer item id, found the number 2.0"},
        {R"({"user": "a", "history": [1], "events": [2]})", "give \"events\" or \"history\", not both"},
        {R"({"user": "a", "k": 0})", "\"k\" must be an integer in [1, 100], got 0"},
        {R"({"user": "a", "k": 1000000000000})", "\"k\" must be an integer in [1, 100], got 1000000000000"},
        {R"({"user": "a", "k": "10"})", "\"k\" must be an integer in [1, 100], got a string"},
        {R"({"user": "a", "exclude_seen": 1})", "\"exclude_seen\" must be true or false, found a number"},
        {R"({"user": "a", "exlude_seen": true})", "request: unknown key \"exlude_seen\""},
        {"{\"user\": \"a\xff\"}", "invalid UTF-8"},
    };
    for (const auto& c : cases) {
        INFO(c.line);
        CHECK_THROWS_WITH(serving::parse_request(c.line, 100), Contains(c.message));
    }
    CHECK_THROWS_WITH(serving::parse_request(R"({"user": "a"})", 5), Contains("\"k\" must be an integer in [1, 5], got 10"));
    std::string user;
    bool number = false;
    CHECK(serving::find_user(R"({"user": 7, "k": 0})", user, number));
    CHECK((user == "7" && number));
    CHECK(serving::find_user(R"({"k": 0, "user": "x"})", user, number));
    CHECK((user == "x" && !number));
    CHECK_FALSE(serving::find_user(R"({"user": 7.5})", user, number));
    CHECK_FALSE(serving::find_user("{\"user\": ", user, number));
    const std::string huge = "{\"user\": \"" + std::string(serving::kMaxRequestBytes, 'x') + "\"}";
    CHECK_THROWS_WITH(serving::parse_request(huge, 100), Contains("more than the 1048576 a request may have"));
}

TEST_CASE("answer and error lines are JSON that reads back", "[serving][requests]") {
    const std::vector<std::int64_t> items{31, -2, 7};
    const std::vector<float> scores{1.5f, 0.1f, -std::numeric_limits<float>::infinity()};
    const std::string line = serving::response_line("u\"1", false, items, scores);
    CHECK(line == R"({"user": "u\"1", "items": [31, -2, 7], "scores": [1.5, 0.100000001, null]})");
    const auto v = io::json::parse(line, "answer");
    REQUIRE(v.is_object());
    CHECK(v.items[0].text == "u\"1");
    CHECK(std::stof(v.items[2].items[1].text) == 0.1f);  // 9 digits: the float comes back exactly
    CHECK(serving::response_line("42", true, {}, {}) == R"({"user": 42, "items": [], "scores": []})");
    CHECK(serving::error_line("", false, "bad \"k\"\n") == R"({"user": null, "error": "bad \"k\"\n"})");
    CHECK(serving::error_line("7", true, "x") == R"({"user": 7, "error": "x"})");
}

namespace {
struct Job {
    int id = 0;
    int batch = -1;
    int processed = 0;
};
}  // namespace

TEST_CASE("MicroBatcher answers every job once, in batches of at most max_batch", "[serving][batcher]") {
    std::atomic<int> calls{0};
    std::size_t largest = 0;
    std::vector<int> order;
    serving::MicroBatcher<Job> b({.max_batch = 4, .max_wait = std::chrono::microseconds(2000)},
                                 [&](std::span<Job* const> jobs) {
                                     const int n = calls++;
                                     largest = std::max(largest, jobs.size());
                                     for (Job* j : jobs) {
                                         j->batch = n;
                                         ++j->processed;
                                         order.push_back(j->id);
                                     }
                                 });
    // Many threads at once.
    std::vector<Job> jobs(64);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 8; ++i) {
                Job& j = jobs[static_cast<std::size_t>(t * 8 + i)];
                j.id = t * 8 + i;
                b.run(j);
                CHECK(j.processed == 1);  // answered before run() returns
            }
        });
    for (auto& t : threads) t.join();
    for (const Job& j : jobs) CHECK(j.processed == 1);
    CHECK(largest <= 4);
    CHECK(b.jobs() == 64);
    CHECK(std::set<int>(order.begin(), order.end()).size() == 64);

    // One thread submitting without waiting: arrival order is kept, and a full batch goes without the wait.
    order.clear();
    std::vector<Job> seq(10);
    for (int i = 0; i < 10; ++i) {
        seq[static_cast<std::size_t>(i)].id = 100 + i;
        b.submit(seq[static_cast<std::size_t>(i)]);
    }
    for (const Job& j : seq) b.wait(j);
    std::vector<int> want;
    for (int i = 0; i < 10; ++i) want.push_back(100 + i);
    CHECK(order == want);
    CHECK(seq[0].batch == seq[3].batch);  // the first four arrived together: one batch
    CHECK(seq[3].batch != seq[4].batch);
}

TEST_CASE("MicroBatcher waits at most max_wait for company, and stop() finishes queued jobs", "[serving][batcher]") {
    std::vector<std::size_t> sizes;
    auto b = std::make_unique<serving::MicroBatcher<Job>>(
        serving::MicroBatchOptions{.max_batch = 8, .max_wait = std::chrono::microseconds(1000)},
        [&](std::span<Job* const> jobs) {
            sizes.push_back(jobs.size());
            for (Job* j : jobs) ++j->processed;
        });
    Job lone;
    const auto t0 = std::chrono::steady_clock::now();
    b->run(lone);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    CHECK(lone.processed == 1);
    CHECK(ms >= 0.9);  // it waited for company ...
    CHECK(ms < 500);   // ... but not for long
    std::vector<Job> queued(3);
    for (Job& j : queued) b->submit(j);
    b->stop();
    for (const Job& j : queued) CHECK(j.processed == 1);
    CHECK_THROWS_WITH(b->submit(lone), Contains("submit after stop"));
    CHECK_THROWS_WITH((serving::MicroBatcher<Job>({.max_batch = 0}, [](std::span<Job* const>) {})),
                      Contains("max_batch must be >= 1"));
}
