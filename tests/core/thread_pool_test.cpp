// Tests for core/thread_pool.hpp.
#include <catch2/catch.hpp>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "recblocks/core/error.hpp"
#include "recblocks/core/thread_pool.hpp"

using namespace recblocks;

TEST_CASE("thread_pool: size and construction errors", "[core][thread_pool]") {
    CHECK(ThreadPool(1).size() == 1);
    CHECK(ThreadPool(3).size() == 3);
    CHECK_THROWS_AS(ThreadPool(0), ValueError);
    CHECK_THROWS_AS(ThreadPool(-2), ValueError);
    CHECK_THROWS_WITH(ThreadPool(0), Catch::Matchers::StartsWith("[recblocks.value]") &&
                                         Catch::Matchers::Contains("got 0"));
    CHECK(ThreadPool::default_thread_count() >= 1);
    CHECK(&ThreadPool::global() == &ThreadPool::global());
    CHECK(ThreadPool::global().size() >= 1);
}

TEST_CASE("thread_pool: chunk_count", "[core][thread_pool]") {
    CHECK(chunk_count(0, 0, 4) == 0);
    CHECK(chunk_count(5, 3, 4) == 0);
    CHECK(chunk_count(0, 1, 4) == 1);
    CHECK(chunk_count(0, 8, 4) == 2);
    CHECK(chunk_count(0, 9, 4) == 3);
    CHECK(chunk_count(3, 10, 100) == 1);
}

TEST_CASE("thread_pool: parallel_for covers every index exactly once", "[core][thread_pool]") {
    for (int threads : {1, 2, 4}) {
        ThreadPool pool(threads);
        for (index_t n : {0, 1, 2, 7, 64, 1000, 4099}) {
            for (index_t grain : {1, 3, 64, 5000}) {
                for (index_t begin : {0, 5}) {
                    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(begin + n));
                    std::atomic<int> calls{0};
                    std::atomic<bool> bad_chunk{false};
                    parallel_for(pool, begin, begin + n, grain, [&](index_t b, index_t e) {
                        calls.fetch_add(1);
                        // Chunks start on the grain grid and are at most `grain` long.
                        if (b < begin || e > begin + n || b >= e || e - b > grain || (b - begin) % grain != 0)
                            bad_chunk = true;
                        for (index_t i = b; i < e; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
                    });
                    int wrong = 0;
                    for (index_t i = 0; i < begin + n; ++i)
                        wrong += hits[static_cast<std::size_t>(i)].load() != (i >= begin ? 1 : 0);
                    INFO("threads " << threads << " n " << n << " grain " << grain << " begin " << begin);
                    CHECK(wrong == 0);
                    CHECK_FALSE(bad_chunk.load());
                    CHECK(calls.load() == chunk_count(begin, begin + n, grain));
                }
            }
        }
    }
}

TEST_CASE("thread_pool: work is actually spread over the pool's threads", "[core][thread_pool]") {
    ThreadPool pool(2);
    std::mutex m;
    std::vector<std::thread::id> ids;
    std::atomic<int> arrived{0};
    // Two chunks that each wait (bounded) for the other to start: with two
    // threads both run at once.
    parallel_for(pool, 0, 2, 1, [&](index_t, index_t) {
        {
            std::lock_guard lock(m);
            ids.push_back(std::this_thread::get_id());
        }
        arrived.fetch_add(1);
        for (int spin = 0; spin < 5000 && arrived.load() < 2; ++spin)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    REQUIRE(ids.size() == 2);
    CHECK(ids[0] != ids[1]);
}

TEST_CASE("thread_pool: parallel_reduce is bit-identical for 1, 2 and 4 threads", "[core][thread_pool]") {
    const index_t n = 1'000'000;
    std::vector<float> v(static_cast<std::size_t>(n));
    std::uint64_t s = 0x1234;
    for (auto& x : v) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const int e = static_cast<int>((s >> 33) % 40) - 20;  // magnitudes 2^-20 .. 2^19
        const float m = static_cast<float>(s >> 40) * 0x1.0p-24f;
        x = std::ldexp((s & 1) ? m : -m, e);
    }
    auto sum = [&](int threads) {
        ThreadPool pool(threads);
        return parallel_reduce(
            pool, 0, n, 4096, 0.0f,
            [&](index_t b, index_t e) {
                float acc = 0.0f;
                for (index_t i = b; i < e; ++i) acc += v[static_cast<std::size_t>(i)];
                return acc;
            },
            [](float a, float b) { return a + b; });
    };
    const float r1 = sum(1), r2 = sum(2), r4 = sum(4);
    CHECK(std::bit_cast<std::uint32_t>(r1) == std::bit_cast<std::uint32_t>(r2));
    CHECK(std::bit_cast<std::uint32_t>(r1) == std::bit_cast<std::uint32_t>(r4));
    // Run again on the same pool: still identical.
    ThreadPool pool(4);
    for (int rep = 0; rep < 3; ++rep) {
        const float again = parallel_reduce(
            pool, 0, n, 4096, 0.0f,
            [&](index_t b, index_t e) {
                float acc = 0.0f;
                for (index_t i = b; i < e; ++i) acc += v[static_cast<std::size_t>(i)];
                return acc;
            },
            [](float a, float b) { return a + b; });
        CHECK(std::bit_cast<std::uint32_t>(again) == std::bit_cast<std::uint32_t>(r1));
    }
    // The sum is right (to float accuracy of a chunked sum).
    double exact = 0.0;
    for (float x : v) exact += x;
    double abs_sum = 0.0;
    for (float x : v) abs_sum += std::fabs(x);
    CHECK(std::fabs(static_cast<double>(r1) - exact) < abs_sum * 1e-5);
}

TEST_CASE("thread_pool: parallel_reduce folds partials in chunk order from init", "[core][thread_pool]") {
    ThreadPool pool(3);
    // A non-commutative combine (string concatenation) exposes the order.
    const auto s = parallel_reduce(
        pool, 0, 10, 3, std::string("<"),
        [](index_t b, index_t e) { return std::to_string(b) + "-" + std::to_string(e) + ";"; },
        [](std::string a, std::string b) { return a + b; });
    CHECK(s == "<0-3;3-6;6-9;9-10;");
    const int empty = parallel_reduce(
        pool, 4, 4, 2, 17, [](index_t, index_t) { return 1; }, [](int a, int b) { return a + b; });
    CHECK(empty == 17);
    CHECK_THROWS_AS(parallel_reduce(
                        pool, 0, 10, 0, 0, [](index_t, index_t) { return 1; }, [](int a, int b) { return a + b; }),
                    ValueError);
}

TEST_CASE("thread_pool: an exception in a chunk reaches the caller (lowest failing chunk)", "[core][thread_pool]") {
    for (int threads : {1, 2, 4}) {
        ThreadPool pool(threads);
        INFO("threads " << threads);
        // Chunks 3, 7 and 12 throw; the caller sees chunk 3's exception.
        std::atomic<int> ran{0};
        try {
            parallel_for(pool, 0, 16, 1, [&](index_t b, index_t) {
                ran.fetch_add(1);
                if (b == 3 || b == 7 || b == 12) throw std::runtime_error("chunk " + std::to_string(b));
            });
            FAIL("no exception");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "chunk 3");
        }
        CHECK(ran.load() >= 4);
        // Exceptions of the library's own types keep their type.
        CHECK_THROWS_AS(parallel_for(pool, 0, 100, 10,
                                     [](index_t b, index_t) {
                                         if (b == 50) throw IndexError("bad id");
                                     }),
                        IndexError);
        // The pool still works afterwards.
        std::atomic<index_t> total{0};
        parallel_for(pool, 0, 1000, 7, [&](index_t b, index_t e) { total.fetch_add(e - b); });
        CHECK(total.load() == 1000);
    }
}

TEST_CASE("thread_pool: nested parallel_for runs serially inside a task without deadlock", "[core][thread_pool]") {
    ThreadPool pool(3);
    std::vector<std::atomic<int>> hits(20 * 50);
    std::atomic<int> wrong_thread{0};
    parallel_for(pool, 0, 20, 1, [&](index_t ob, index_t) {
        const auto outer_thread = std::this_thread::get_id();
        parallel_for(pool, 0, 50, 4, [&](index_t b, index_t e) {
            if (std::this_thread::get_id() != outer_thread) wrong_thread.fetch_add(1);
            for (index_t i = b; i < e; ++i) hits[static_cast<std::size_t>(ob * 50 + i)].fetch_add(1);
        });
        // Nested reduce too.
        const int cnt = parallel_reduce(
            pool, 0, 50, 4, 0, [](index_t b, index_t e) { return static_cast<int>(e - b); },
            [](int a, int b) { return a + b; });
        if (cnt != 50) wrong_thread.fetch_add(1000);
    });
    int wrong = 0;
    for (auto& h : hits) wrong += h.load() != 1;
    CHECK(wrong == 0);
    CHECK(wrong_thread.load() == 0);

    // A second pool used from inside a task of the first also runs (serially).
    ThreadPool other(2);
    std::atomic<int> inner{0};
    parallel_for(pool, 0, 6, 1, [&](index_t, index_t) {
        parallel_for(other, 0, 10, 1, [&](index_t, index_t) { inner.fetch_add(1); });
    });
    CHECK(inner.load() == 60);
}

TEST_CASE("thread_pool: a pool is reused for 1000 small jobs", "[core][thread_pool]") {
    ThreadPool pool(4);
    std::int64_t grand = 0;
    bool all_ok = true;
    for (int job = 0; job < 1000; ++job) {
        const index_t n = job % 37 + 1;
        std::atomic<std::int64_t> sum{0};
        parallel_for(pool, 0, n, 2, [&](index_t b, index_t e) {
            for (index_t i = b; i < e; ++i) sum.fetch_add(i + job);
        });
        const std::int64_t want = n * (n - 1) / 2 + n * job;
        all_ok = all_ok && sum.load() == want;
        grand += sum.load();
    }
    CHECK(all_ok);
    CHECK(grand > 0);
}

TEST_CASE("thread_pool: grain 0 is a ValueError", "[core][thread_pool]") {
    ThreadPool pool(2);
    bool called = false;
    CHECK_THROWS_AS(parallel_for(pool, 0, 10, 0, [&](index_t, index_t) { called = true; }), ValueError);
    CHECK_THROWS_WITH(parallel_for(pool, 0, 10, -3, [&](index_t, index_t) { called = true; }),
                      Catch::Matchers::Contains("grain must be >= 1, got -3"));
    CHECK_FALSE(called);
}

TEST_CASE("thread_pool: back-to-back jobs while workers spin, and after they fall asleep", "[core][thread_pool]") {
    // Jobs arriving faster than the spin time are taken by spinning workers; a pause longer
    // than the spin time sends them to sleep and the next job must wake them.
    ThreadPool pool(3);
    std::atomic<long> sum{0};
    for (int round = 0; round < 3; ++round) {
        for (int j = 0; j < 2000; ++j)
            parallel_for(pool, 0, 8, 1, [&](index_t b, index_t e) { sum += e - b; });
        std::this_thread::sleep_for(std::chrono::milliseconds(3));  // > the default 100 us spin
    }
    CHECK(sum.load() == 3L * 2000 * 8);
    CHECK(ThreadPool::spin_us().count() >= 0);
}
