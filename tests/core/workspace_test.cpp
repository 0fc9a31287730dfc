// Tests for core/workspace.hpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>

#include "recblocks/core/error.hpp"
#include "recblocks/core/workspace.hpp"

using namespace recblocks;

namespace {
bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }
}  // namespace

TEST_CASE("workspace: take() returns 64-byte aligned, non-overlapping blocks", "[core][workspace]") {
    Workspace ws(4096);
    CHECK(ws.capacity() >= 4096);
    CHECK(ws.growth_count() == 1);
    CHECK(ws.used() == 0);
    auto* a = ws.take<float>(3);         // 12 bytes -> one 64-byte slot
    auto* b = ws.take<double>(17);       // 136 bytes -> 192
    auto* c = ws.take<std::int8_t>(1);
    auto* d = ws.take<float>(100);
    for (const void* p : {static_cast<const void*>(a), static_cast<const void*>(b), static_cast<const void*>(c),
                          static_cast<const void*>(d)})
        CHECK(aligned64(p));
    CHECK(reinterpret_cast<std::byte*>(b) - reinterpret_cast<std::byte*>(a) == 64);
    CHECK(reinterpret_cast<std::byte*>(c) - reinterpret_cast<std::byte*>(b) == 192);
    CHECK(ws.used() == 64 + 192 + 64 + 448);
    // The blocks are usable and independent.
    for (int i = 0; i < 3; ++i) a[i] = 1.0f;
    for (int i = 0; i < 17; ++i) b[i] = 2.0;
    c[0] = 7;
    for (int i = 0; i < 100; ++i) d[i] = 3.0f;
    CHECK(a[2] == 1.0f);
    CHECK(b[16] == 2.0);
    CHECK(c[0] == 7);
    CHECK(ws.growth_count() == 1);  // all fit in the reserved arena
    CHECK_THROWS_AS(ws.take<float>(-1), ValueError);
}

TEST_CASE("workspace: reuse after reset does not grow once warmed up", "[core][workspace]") {
    Workspace ws;
    CHECK(ws.capacity() == 0);
    CHECK(ws.growth_count() == 0);
    auto round = [&](int salt) {
        ws.reset();
        float* x = ws.take<float>(1000);
        double* y = ws.take<double>(333);
        std::int32_t* z = ws.take<std::int32_t>(5000);
        x[999] = static_cast<float>(salt);
        y[332] = salt;
        z[4999] = salt;
        CHECK(aligned64(x));
        CHECK(aligned64(y));
        CHECK(aligned64(z));
        return x[999] + static_cast<float>(y[332]) + static_cast<float>(z[4999]);
    };
    CHECK(round(1) == 3.0f);  // warm-up: served from overflow blocks
    const std::size_t after_warmup = ws.growth_count();
    CHECK(after_warmup > 0);
    CHECK(ws.used() >= 1000 * 4 + 333 * 8 + 5000 * 4);
    for (int i = 2; i < 50; ++i) CHECK(round(i) == 3.0f * static_cast<float>(i));
    CHECK(ws.growth_count() == after_warmup);
    CHECK(ws.capacity() >= 1000 * 4 + 333 * 8 + 5000 * 4);
    // The second round was served from the arena: pointers repeat round to round.
    ws.reset();
    float* p1 = ws.take<float>(1000);
    ws.reset();
    float* p2 = ws.take<float>(1000);
    CHECK(p1 == p2);
    CHECK(ws.growth_count() == after_warmup);
}

TEST_CASE("workspace: overflow then reset grows the arena to fit", "[core][workspace]") {
    Workspace ws(256);
    const std::size_t g0 = ws.growth_count();
    CHECK(ws.capacity() == 256);
    float* in_arena = ws.take<float>(64);  // exactly 256 bytes
    CHECK(ws.used() == 256);
    CHECK(ws.growth_count() == g0);
    float* over1 = ws.take<float>(100);  // overflow
    float* over2 = ws.take<float>(1);    // overflow
    CHECK(aligned64(over1));
    CHECK(aligned64(over2));
    CHECK(over1 != in_arena);
    CHECK(ws.growth_count() == g0 + 2);
    CHECK(ws.used() == 256 + 448 + 64);
    // Overflow blocks stay valid while more are taken (no reallocation moves them).
    for (int i = 0; i < 100; ++i) over1[i] = static_cast<float>(i);
    for (int k = 0; k < 20; ++k) (void)ws.take<float>(16);
    CHECK(over1[99] == 99.0f);
    CHECK(over2 != over1);

    ws.reset();
    CHECK(ws.used() == 0);
    CHECK(ws.capacity() >= 256 + 448 + 64 + 20 * 64);
    const std::size_t g1 = ws.growth_count();
    // The same requests now fit without growth.
    (void)ws.take<float>(64);
    (void)ws.take<float>(100);
    (void)ws.take<float>(1);
    for (int k = 0; k < 20; ++k) (void)ws.take<float>(16);
    CHECK(ws.growth_count() == g1);
    CHECK(ws.used() <= ws.capacity());
}

TEST_CASE("workspace: reserve", "[core][workspace]") {
    Workspace ws;
    ws.reserve(100);
    CHECK(ws.capacity() == 128);  // rounded up to the alignment
    CHECK(ws.growth_count() == 1);
    ws.reserve(50);  // smaller: no change
    CHECK(ws.capacity() == 128);
    CHECK(ws.growth_count() == 1);

    (void)ws.take<char>(10);
    CHECK_THROWS_AS(ws.reserve(1000), ValueError);
    CHECK_THROWS_WITH(ws.reserve(1000), Catch::Matchers::StartsWith("[recblocks.value]") &&
                                            Catch::Matchers::Contains("64 bytes are taken"));
    ws.reset();
    CHECK_NOTHROW(ws.reserve(1000));
    CHECK(ws.capacity() >= 1000);

    // Also refused while only overflow blocks are outstanding.
    Workspace empty;
    (void)empty.take<char>(10);  // overflow: capacity 0
    CHECK_THROWS_AS(empty.reserve(10), ValueError);
    empty.reset();
    CHECK_NOTHROW(empty.reserve(10));
}
