// Tests for core/error.hpp and core/check.hpp.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <type_traits>

// The RECBLOCKS_CHECK_* macros must stay active in Release builds. Force
// NDEBUG for the check macros in this file whatever the build type (catch.hpp
// above was included with the build's own setting; <cassert> may be
// re-included and re-reads NDEBUG), so the tests below prove it.
#ifndef NDEBUG
#define NDEBUG
#endif
#include <cassert>

#include "recblocks/core/check.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/shape.hpp"

using namespace recblocks;
using Catch::Matchers::Equals;

// The check macros are statements; Catch's *_THROWS_* want an expression.
#define AS_EXPR(...) [&] { __VA_ARGS__; }()

namespace {
template <class E>
void check_error_class(const std::string& expected_id) {
    static_assert(std::is_base_of_v<Error, E>);
    static_assert(std::is_base_of_v<std::runtime_error, E>);
    const E e("something went wrong");
    CHECK(e.id() == expected_id);
    CHECK(std::string(E::kId) == expected_id);
    CHECK(std::string(e.what()) == "[" + expected_id + "] something went wrong");
    // Catchable as the base class, id preserved.
    try {
        throw E("x");
    } catch (const Error& base) {
        CHECK(base.id() == expected_id);
        CHECK(std::string(base.what()) == "[" + expected_id + "] x");
    }
}

int g_calls = 0;
int count_call() {
    ++g_calls;
    return 42;
}
}  // namespace

TEST_CASE("Error: every class has its stable id and message prefix", "[core][error]") {
    check_error_class<ShapeError>("recblocks.shape");
    check_error_class<IndexError>("recblocks.index");
    check_error_class<ValueError>("recblocks.value");
    check_error_class<FormatError>("recblocks.format");
    check_error_class<IoError>("recblocks.io");
    check_error_class<BackendError>("recblocks.backend");

    const Error generic("custom.id", "msg");
    CHECK(generic.id() == "custom.id");
    CHECK(std::string(generic.what()) == "[custom.id] msg");

    // Classes are distinct: a ShapeError is not an IndexError.
    CHECK_THROWS_AS(
        [] {
            try {
                throw ShapeError("s");
            } catch (const IndexError&) {
                FAIL("ShapeError caught as IndexError");
            }
        }(),
        ShapeError);
}

TEST_CASE("Error: detail::concat streams every part", "[core][error]") {
    CHECK(detail::concat("a", 1, '-', 2.5, std::string(" z")) == "a1-2.5 z");
    CHECK(detail::concat("shape ", Shape<3>{{4, 50, 64}}) == "shape [4, 50, 64]");
}

TEST_CASE("Check macros: throw the named error with the concatenated message", "[core][error][check]") {
    const Shape<2> s{{2, 3}};
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK_SHAPE(false, "x")), ShapeError);
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK_INDEX(false, "x")), IndexError);
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK_VALUE(false, "x")), ValueError);
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK_FORMAT(false, "x")), FormatError);
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK(IoError, false, "x")), IoError);
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK(BackendError, 1 == 2, "x")), BackendError);

    CHECK_THROWS_WITH(AS_EXPR(RECBLOCKS_CHECK_SHAPE(s[0] == 3, "op: x is ", s, " but expected ", 3, " rows")),
                      Equals("[recblocks.shape] op: x is [2, 3] but expected 3 rows"));
    CHECK_THROWS_WITH(AS_EXPR(RECBLOCKS_CHECK_INDEX(false, "id ", -1, " out of [0, ", 10, ")")),
                      Equals("[recblocks.index] id -1 out of [0, 10)"));
    CHECK_THROWS_WITH(AS_EXPR(RECBLOCKS_CHECK_VALUE(false, "bad ", 0.5)), Equals("[recblocks.value] bad 0.5"));
    CHECK_THROWS_WITH(AS_EXPR(RECBLOCKS_CHECK_FORMAT(false, "truncated at byte ", 17u)),
                      Equals("[recblocks.format] truncated at byte 17"));

    try {
        RECBLOCKS_CHECK_VALUE(false, "v");
        FAIL("no exception");
    } catch (const ValueError& e) {
        CHECK(e.id() == "recblocks.value");
    }
}

TEST_CASE("Check macros: a passing check throws nothing and builds no message", "[core][error][check]") {
    g_calls = 0;
    CHECK_NOTHROW(AS_EXPR(RECBLOCKS_CHECK_SHAPE(true, "never ", count_call())));
    CHECK_NOTHROW(AS_EXPR(RECBLOCKS_CHECK_VALUE(2 > 1, count_call())));
    CHECK(g_calls == 0);
    // The condition is evaluated exactly once.
    int evaluated = 0;
    CHECK_NOTHROW(AS_EXPR(RECBLOCKS_CHECK_INDEX(++evaluated > 0, "x")));
    CHECK(evaluated == 1);
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK_INDEX(++evaluated < 0, "n=", count_call())), IndexError);
    CHECK(evaluated == 2);
    CHECK(g_calls == 1);

    // The macro is a single statement (usable in an unbraced if/else).
    bool reached_else = false;
    if (false)
        RECBLOCKS_CHECK_VALUE(false, "unreachable");
    else
        reached_else = true;
    CHECK(reached_else);
}

TEST_CASE("Check macros: stay active with NDEBUG; RECBLOCKS_DEBUG_ASSERT compiles away", "[core][error][check]") {
#ifndef NDEBUG
    FAIL("NDEBUG should be defined in this translation unit");
#endif
    CHECK_THROWS_AS(AS_EXPR(RECBLOCKS_CHECK_SHAPE(false, "release")), ShapeError);
    CHECK_THROWS_WITH(AS_EXPR(RECBLOCKS_CHECK_VALUE(false, "still on")), Equals("[recblocks.value] still on"));
    int evaluated = 0;
    RECBLOCKS_DEBUG_ASSERT(++evaluated < 0);  // would abort if assert were active
    CHECK(evaluated == 0);
}
