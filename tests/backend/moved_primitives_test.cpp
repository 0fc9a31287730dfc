// The primitives that kernels once reached around the backend contract
// (dropout, gathered_dot, ...): CPU against the Reference backend, on every
// ISA level this CPU has, on 1 and 3 threads, with sizes that hit SIMD tails.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "../support/compare.hpp"
#include "backends.hpp"
#include "recblocks/core/dtype.hpp"
#include "recblocks/ops/dropout.hpp"
#include "recblocks/ops/gathered_dot.hpp"
#include "recblocks/ops/nearest_centroid.hpp"
#include "recblocks/ops/panel_scores.hpp"
#include "recblocks/ops/top_k_selection.hpp"

using namespace recblocks;
using rbtest::fill_uniform;

namespace {
const backend::Reference ref{};
const index_t kSizes[] = {1, 7, 8, 9, 63, 64, 65, 1000};
}  // namespace

TEMPLATE_TEST_CASE("cpu dropout matches reference bit for bit, from any first element", "[backend][dropout]", float,
                   double) {
    using T = TestType;
    const DropoutMask mask{0x1234u, 0xBEEFu, 77, 0x400000u};  // keeps 3/4
    for (index_t n : kSizes)
        for (index_t first : {index_t{0}, index_t{1}, index_t{3}, index_t{64}, index_t{70001}}) {
            Vector<T> x(Shape<1>{{n}});
            fill_uniform(x, 4);
            Vector<T> want(x.shape());
            ops::dropout(ref, x.cview(), want.view(), first, mask, T(4) / T(3));
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                Vector<T> got(x.shape()), inplace = x;
                ops::dropout(be, x.cview(), got.view(), first, mask, T(4) / T(3));
                ops::dropout(be, inplace.cview(), inplace.view(), first, mask, T(4) / T(3));
                INFO(name << " n=" << n << " first=" << first);
                REQUIRE(std::equal(got.begin(), got.end(), want.begin()));
                REQUIRE(std::equal(inplace.begin(), inplace.end(), want.begin()));
            });
        }
}

TEMPLATE_TEST_CASE("cpu gathered_dot matches reference", "[backend][gathered_dot]", float, double) {
    using T = TestType;
    const index_t items = 97;
    for (index_t d : kSizes)
        for (index_t n : kSizes) {
            Matrix<T> table(Shape<2>{{items, d}});
            Vector<T> x(Shape<1>{{d}});
            fill_uniform(table, 5);
            fill_uniform(x, 6);
            std::vector<row_id_t> ids(static_cast<std::size_t>(n));
            for (index_t i = 0; i < n; ++i) ids[std::size_t(i)] = static_cast<row_id_t>((i * 37 + 11) % items);
            const auto idv = vector_view<const row_id_t>(ids.data(), n);
            Vector<T> want(Shape<1>{{n}});
            ops::gathered_dot(ref, table.cview(), idv, x.cview(), T(0.5), want.view());
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                Vector<T> got(Shape<1>{{n}});
                ops::gathered_dot(be, table.cview(), idv, x.cview(), T(0.5), got.view());
                INFO(name << " d=" << d << " n=" << n);
                RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), (rbtest::Tolerance{1e-5 * double(d), 1e-5}));
            });
        }
}

TEST_CASE("ops::gathered_dot and ops::dropout name a bad id or shape", "[backend][gathered_dot][dropout]") {
    Matrix<float> table(Shape<2>{{4, 3}});
    Vector<float> x(Shape<1>{{3}}), y(Shape<1>{{2}});
    const std::vector<row_id_t> bad{1, 4};
    REQUIRE_THROWS_WITH(ops::gathered_dot(ref, table.cview(), vector_view<const row_id_t>(bad.data(), 2), x.cview(),
                                          1.0f, y.view()),
                        Catch::Contains("[recblocks.index]") && Catch::Contains("ids[1] = 4"));
    REQUIRE_THROWS_WITH(ops::gathered_dot(ref, table.cview(), vector_view<const row_id_t>(bad.data(), 1), x.cview(),
                                          1.0f, y.view()),
                        Catch::Contains("[recblocks.shape]") && Catch::Contains("ops::gathered_dot: y"));
    REQUIRE_THROWS_WITH(ops::dropout(ref, x.cview(), y.view(), 0, DropoutMask{}, 1.0f),
                        Catch::Contains("[recblocks.shape]") && Catch::Contains("ops::dropout: y"));
}

namespace {

/// A panelled table of small integers (every score exact in float, whatever
/// the order of summation): f32, bf16 bits or int8 codes (scale 1).
template <class E>
struct IntegerPanels {
    std::vector<E> data;
    std::vector<float> scales;
    index_t rows, dim;

    IntegerPanels(index_t n, index_t d, std::uint64_t seed) : rows(n), dim(d) {
        const index_t padded = (n + kPanelRows - 1) / kPanelRows * kPanelRows;
        data.assign(std::size_t(padded * panel_cols<E>(d)), E(0));
        const Rng r(seed);
        for (index_t i = 0; i < n; ++i)
            for (index_t c = 0; c < d; ++c) {
                const int v = int(r.below(std::uint64_t(i * d + c), 9)) - 4;
                E e;
                if constexpr (std::is_same_v<E, std::uint16_t>) e = bf16(float(v)).bits;
                else e = static_cast<E>(v);
                data[std::size_t(panel_offset<E>(i, c, d))] = e;
            }
        if constexpr (std::is_same_v<E, std::int8_t>) scales.assign(std::size_t(padded), 1.0f);
    }
    [[nodiscard]] PanelView<E> view() const { return {data.data(), rows, dim, scales.empty() ? nullptr : scales.data()}; }
};

std::vector<float> integer_query(index_t d, std::uint64_t seed) {
    std::vector<float> x(static_cast<std::size_t>(d));
    const Rng r(seed);
    for (index_t c = 0; c < d; ++c) x[std::size_t(c)] = float(int(r.below(std::uint64_t(c), 7)) - 3);
    return x;
}

}  // namespace

TEMPLATE_TEST_CASE("cpu panel scans match reference exactly, every storage type", "[backend][retrieval]", float,
                   std::uint16_t, std::int8_t) {
    using E = TestType;
    for (index_t d : {1, 7, 8, 9, 63, 64, 65})
        for (index_t n : kSizes) {
            const IntegerPanels<E> t(n, d, std::uint64_t(n * 131 + d));
            const auto xs = integer_query(d, std::uint64_t(d));
            const auto x = vector_view<const float>(xs.data(), d);
            std::vector<float> want(static_cast<std::size_t>(n)), want_above(static_cast<std::size_t>(n + 16));
            std::vector<row_id_t> want_ids(static_cast<std::size_t>(n + 16));
            ops::panel_scores(ref, t.view(), x, vector_view(want.data(), n));
            const index_t want_count = ops::panel_scores_above(ref, t.view(), x, 0.5f, 1000,
                                                               vector_view(want_above.data(), n + 16),
                                                               vector_view(want_ids.data(), n + 16));
            std::vector<row_id_t> ids(static_cast<std::size_t>(n));
            for (index_t j = 0; j < n; ++j) ids[std::size_t(j)] = static_cast<row_id_t>((j * 29 + 5) % n);
            const auto idv = vector_view<const row_id_t>(ids.data(), n);
            std::vector<float> want_of_ids(static_cast<std::size_t>(n));
            ops::panel_scores_of_ids(ref, t.view(), idv, x, vector_view(want_of_ids.data(), n));
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " d=" << d << " n=" << n);
                std::vector<float> got(static_cast<std::size_t>(n)), above(static_cast<std::size_t>(n + 16)), of_ids(static_cast<std::size_t>(n));
                std::vector<row_id_t> got_ids(static_cast<std::size_t>(n + 16));
                ops::panel_scores(be, t.view(), x, vector_view(got.data(), n));
                REQUIRE(got == want);
                const index_t count = ops::panel_scores_above(be, t.view(), x, 0.5f, 1000,
                                                              vector_view(above.data(), n + 16),
                                                              vector_view(got_ids.data(), n + 16));
                REQUIRE(count == want_count);
                for (index_t j = 0; j < count; ++j) {
                    REQUIRE(above[std::size_t(j)] == want_above[std::size_t(j)]);
                    REQUIRE(got_ids[std::size_t(j)] == want_ids[std::size_t(j)]);
                }
                ops::panel_scores_of_ids(be, t.view(), idv, x, vector_view(of_ids.data(), n));
                REQUIRE(of_ids == want_of_ids);
            });
        }
}

TEST_CASE("cpu score_ids (row-major re-rank) matches reference exactly", "[backend][retrieval]") {
    for (index_t d : kSizes)
        for (index_t n : kSizes) {
            const index_t items = 70;
            Matrix<float> rows(Shape<2>{{items, d}});
            const Rng r{std::uint64_t(d * 7 + n)};
            for (index_t i = 0; i < rows.numel(); ++i) rows.data()[i] = float(int(r.below(std::uint64_t(i), 9)) - 4);
            const auto xs = integer_query(d, 3);
            std::vector<row_id_t> ids(static_cast<std::size_t>(n));
            for (index_t j = 0; j < n; ++j) ids[std::size_t(j)] = static_cast<row_id_t>((j * 13 + 2) % items);
            const auto idv = vector_view<const row_id_t>(ids.data(), n);
            std::vector<float> want(static_cast<std::size_t>(n));
            ops::score_ids(ref, rows.cview(), idv, vector_view<const float>(xs.data(), d), vector_view(want.data(), n));
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                std::vector<float> got(static_cast<std::size_t>(n));
                ops::score_ids(be, rows.cview(), idv, vector_view<const float>(xs.data(), d), vector_view(got.data(), n));
                INFO(name << " d=" << d << " n=" << n);
                REQUIRE(got == want);
            });
        }
}

TEST_CASE("cpu selection primitives match reference: collect_above, offer_top_k, kth_largest_key",
          "[backend][retrieval]") {
    for (index_t n : kSizes) {
        std::vector<float> s(static_cast<std::size_t>(n));
        const Rng r{std::uint64_t(n)};
        for (index_t j = 0; j < n; ++j) s[std::size_t(j)] = float(int(r.below(std::uint64_t(j), 50)));  // ties
        const auto sv = vector_view<const float>(s.data(), n);
        std::vector<float> want_v(static_cast<std::size_t>(n + 16));
        std::vector<row_id_t> want_id(static_cast<std::size_t>(n + 16));
        const index_t want_count = ops::collect_above(ref, sv, 24.5f, 7, vector_view(want_v.data(), n + 16),
                                                      vector_view(want_id.data(), n + 16));
        std::vector<std::uint32_t> keys(static_cast<std::size_t>(n));
        for (index_t j = 0; j < n; ++j) keys[std::size_t(j)] = std::uint32_t(r.below(std::uint64_t(n + j), 1000));
        const auto kv = vector_view<const std::uint32_t>(keys.data(), n);
        const std::vector<row_id_t> excluded{2, 3, 40};
        const auto exv = vector_view<const row_id_t>(excluded.data(), 3);
        // The heap after offering s in blocks of 37, as a sorted list of (score, id).
        auto heap_of = [&](const auto& be, index_t k) {
            std::vector<float> hv(static_cast<std::size_t>(k));
            std::vector<row_id_t> hid(static_cast<std::size_t>(k));
            index_t size = 0;
            for (index_t j0 = 0; j0 < n; j0 += 37) {
                const index_t len = std::min<index_t>(37, n - j0);
                size = ops::offer_top_k(be, vector_view<const float>(s.data() + j0, len), static_cast<row_id_t>(j0),
                                        k, vector_view(hv.data(), k), vector_view(hid.data(), k), size, exv);
            }
            std::vector<std::pair<float, row_id_t>> out;
            for (index_t i = 0; i < size; ++i) out.emplace_back(hv[std::size_t(i)], hid[std::size_t(i)]);
            std::sort(out.begin(), out.end());
            return out;
        };
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            INFO(name << " n=" << n);
            std::vector<float> v(static_cast<std::size_t>(n + 16));
            std::vector<row_id_t> id(static_cast<std::size_t>(n + 16));
            const index_t count = ops::collect_above(be, sv, 24.5f, 7, vector_view(v.data(), n + 16),
                                                     vector_view(id.data(), n + 16));
            REQUIRE(count == want_count);
            REQUIRE(std::equal(v.begin(), v.begin() + count, want_v.begin()));
            REQUIRE(std::equal(id.begin(), id.begin() + count, want_id.begin()));
            for (index_t k : {index_t{1}, std::min<index_t>(7, n), n}) {
                // The contract, not one value: the CPU bisection may stop on a
                // threshold between two keys, the Reference returns a key.
                for (index_t slack : {index_t{0}, k / 4}) {
                    const std::uint32_t t = ops::kth_largest_key(be, kv, k, slack);
                    const auto at_least = std::count_if(keys.begin(), keys.end(), [&](std::uint32_t u) { return u >= t; });
                    const auto above_t = std::count_if(keys.begin(), keys.end(), [&](std::uint32_t u) { return u > t; });
                    INFO("k=" << k << " slack=" << slack << " t=" << t);
                    REQUIRE(at_least >= k);
                    REQUIRE(above_t <= k + slack);
                }
                REQUIRE(heap_of(be, k) == heap_of(ref, k));
            }
        });
    }
}

TEST_CASE("retrieval ops name a bad shape or id", "[backend][retrieval]") {
    const IntegerPanels<float> t(10, 4, 1);
    const auto xs = integer_query(4, 1);
    std::vector<float> y(10);
    const std::vector<row_id_t> bad{0, 10};
    REQUIRE_THROWS_WITH(ops::panel_scores(ref, t.view(), vector_view<const float>(xs.data(), 3), vector_view(y.data(), 10)),
                        Catch::Contains("[recblocks.shape]") && Catch::Contains("x has 3 entries"));
    REQUIRE_THROWS_WITH(ops::panel_scores_of_ids(ref, t.view(), vector_view<const row_id_t>(bad.data(), 2),
                                                 vector_view<const float>(xs.data(), 4), vector_view(y.data(), 2)),
                        Catch::Contains("[recblocks.index]") && Catch::Contains("ids[1] = 10"));
    REQUIRE_THROWS_WITH(ops::collect_above(ref, vector_view<const float>(y.data(), 10), 0.0f, 0,
                                           vector_view(y.data(), 10), vector_view(std::vector<row_id_t>(26).data(), 26)),
                        Catch::Contains("[recblocks.shape]") && Catch::Contains("need n + 16 = 26"));
    std::vector<std::uint32_t> keys(5);
    REQUIRE_THROWS_WITH(ops::kth_largest_key(ref, vector_view<const std::uint32_t>(keys.data(), 5), 6),
                        Catch::Contains("k = 6"));
}

TEMPLATE_TEST_CASE("cpu nearest-centroid primitives match reference", "[backend][nearest_centroid]", float, double) {
    using T = TestType;
    for (index_t d : kSizes) {
        const index_t rows = 9;
        Matrix<T> x(Shape<2>{{rows, d}});
        Vector<T> y(Shape<1>{{d}});
        fill_uniform(x, 7);
        fill_uniform(y, 8);
        Vector<T> want(Shape<1>{{rows}}), want_norms(Shape<1>{{rows}});
        ops::squared_distances(ref, x.cview(), y.cview(), want.view());
        ops::squared_distances(ref, x.cview(), VectorView<const T>{}, want_norms.view());
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            Vector<T> got(Shape<1>{{rows}}), got_norms(Shape<1>{{rows}});
            ops::squared_distances(be, x.cview(), y.cview(), got.view());
            ops::squared_distances(be, x.cview(), VectorView<const T>{}, got_norms.view());
            INFO(name << " d=" << d);
            RBTEST_REQUIRE_CLOSE(got.cview(), want.cview(), (rbtest::Tolerance{1e-5 * double(d), 1e-5}));
            RBTEST_REQUIRE_CLOSE(got_norms.cview(), want_norms.cview(), (rbtest::Tolerance{1e-5 * double(d), 1e-5}));
        });
    }
    for (index_t k : kSizes) {
        // Small integers: many ties, exact arithmetic, so the first argmin must match.
        const index_t rows = 5;
        Matrix<T> g(Shape<2>{{rows, k}});
        Vector<T> norms(Shape<1>{{k}});
        const Rng r{std::uint64_t(k)};
        for (index_t i = 0; i < g.numel(); ++i) g.data()[i] = T(int(r.below(std::uint64_t(i), 5)));
        for (index_t j = 0; j < k; ++j) norms(j) = T(int(r.below(std::uint64_t(100000 + j), 9)));
        Matrix<T> want_g = g;
        Vector<T> want_best(Shape<1>{{rows}});
        std::vector<index_t> want_arg(static_cast<std::size_t>(rows));
        ops::shifted_argmin_rows(ref, want_g.view(), norms.cview(), vector_view(want_arg.data(), rows), want_best.view());
        for (index_t cap : {index_t{1}, index_t{3}, index_t{8}}) {
            // Two rows offered in turn to one list (a beam step's two beams).
            auto smallest = [&](const auto& be) {
                Matrix<T> scratch = g;
                std::vector<T> s(static_cast<std::size_t>(cap));
                std::vector<index_t> id(static_cast<std::size_t>(cap));
                index_t filled = 0;
                for (index_t b = 0; b < 2; ++b)
                    filled = ops::offer_smallest(be, vector_view(scratch.data() + b * k, k), norms.cview(), T(b + 1),
                                                 b * k, vector_view(s.data(), cap), vector_view(id.data(), cap), filled);
                s.resize(static_cast<std::size_t>(filled));
                id.resize(static_cast<std::size_t>(filled));
                return std::make_pair(s, id);
            };
            const auto want_smallest = smallest(ref);
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " k=" << k << " cap=" << cap);
                REQUIRE(smallest(be) == want_smallest);
            });
        }
        rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
            Matrix<T> got_g = g;
            Vector<T> got_best(Shape<1>{{rows}});
            std::vector<index_t> got_arg(static_cast<std::size_t>(rows));
            ops::shifted_argmin_rows(be, got_g.view(), norms.cview(), vector_view(got_arg.data(), rows), got_best.view());
            INFO(name << " k=" << k);
            REQUIRE(got_arg == want_arg);
            REQUIRE(std::equal(got_best.begin(), got_best.end(), want_best.begin()));
            REQUIRE(std::equal(got_g.begin(), got_g.end(), want_g.begin()));
        });
    }
}
