// ExactIndex<f32 / bf16 / int8> (search, search_unordered, search_batch)
// against a full sort in double, on every CPU
// backend (each ISA level, 1 and 3 threads). Small-integer data makes every
// score exact in float whatever the summation order, so ids and scores must
// match the reference bit for bit, ties included.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/backends.hpp"
#include "recblocks/core/rng.hpp"
#include "retrieval/device_helpers.hpp"
#include "recblocks/retrieval/exact_index.hpp"

using namespace recblocks;

namespace {

struct Data {
    index_t n, d;
    std::vector<float> items;  // [n, d]
};

/// Small integers in [-3, 3] (many ties); column 0 is 127 so that the int8
/// scale of every row is exactly 1 and the codes equal the values.
Data integer_items(index_t n, index_t d, std::uint64_t seed) {
    Data t{n, d, std::vector<float>(std::size_t(n * d))};
    const Rng rng(seed);
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < d; ++c)
            t.items[std::size_t(r * d + c)] = c == 0 ? 127.0f : float(int(rng.uniform(std::uint64_t(r * d + c)) * 7.0f) - 3);
    return t;
}

std::vector<float> integer_queries(index_t b, index_t d, std::uint64_t seed) {
    std::vector<float> q(std::size_t(b * d));
    const Rng rng(seed);
    std::uint64_t i = 0;
    for (auto& v : q) v = float(int(rng.uniform(i++) * 9.0f) - 4);
    return q;
}

/// Reference: every score in double, full sort (score desc, id asc), excluded ids skipped.
void reference_top_k(const Data& t, const float* q, index_t k, const std::vector<row_id_t>& ex,
                     std::vector<row_id_t>& ids, std::vector<double>& scores) {
    std::vector<std::pair<double, row_id_t>> all;
    for (index_t r = 0; r < t.n; ++r) {
        if (std::binary_search(ex.begin(), ex.end(), row_id_t(r))) continue;
        double s = 0;
        for (index_t c = 0; c < t.d; ++c) s += double(t.items[std::size_t(r * t.d + c)]) * q[c];
        all.push_back({s, row_id_t(r)});
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    ids.clear();
    scores.clear();
    for (index_t i = 0; i < k; ++i) {
        ids.push_back(all[std::size_t(i)].second);
        scores.push_back(all[std::size_t(i)].first);
    }
}

template <class T, class B>
void check_exact(const B& be, const std::string& name, const Data& t, index_t nq, index_t k, bool with_exclusion) {
    INFO(name << " n=" << t.n << " d=" << t.d << " nq=" << nq << " k=" << k << " exclusion=" << with_exclusion);
    const retrieval::ExactIndex<T> index(matrix_view(static_cast<const float*>(t.items.data()), t.n, t.d));
    const auto q = integer_queries(nq, t.d, 7 + nq);
    // Exclusion lists: query b excludes every (b + 3)-th id.
    std::vector<index_t> offsets{0};
    std::vector<row_id_t> ex_ids;
    std::vector<std::vector<row_id_t>> ex(static_cast<std::size_t>(nq));
    for (index_t b = 0; b < nq; ++b) {
        if (with_exclusion)
            for (index_t r = b % 5; r < t.n; r += b + 3) ex[std::size_t(b)].push_back(row_id_t(r));
        ex_ids.insert(ex_ids.end(), ex[std::size_t(b)].begin(), ex[std::size_t(b)].end());
        offsets.push_back(index_t(ex_ids.size()));
    }
    std::vector<row_id_t> ids(std::size_t(nq * k));
    std::vector<float> scores(std::size_t(nq * k));
    index.search_batch(be, matrix_view(q.data(), nq, t.d), k, matrix_view(ids.data(), nq, k),
                       matrix_view(scores.data(), nq, k),
                       with_exclusion ? retrieval::ExcludedIds{offsets, ex_ids} : retrieval::ExcludedIds{});
    std::vector<row_id_t> one_ids(static_cast<std::size_t>(k)), ref_ids;
    std::vector<float> one_scores(static_cast<std::size_t>(k));
    std::vector<double> ref_scores;
    for (index_t b = 0; b < nq; ++b) {
        reference_top_k(t, q.data() + b * t.d, k, ex[std::size_t(b)], ref_ids, ref_scores);
        index.search(be, vector_view(q.data() + b * t.d, t.d), k, vector_view(one_ids.data(), k),
                     vector_view(one_scores.data(), k), ex[std::size_t(b)]);
        // search_unordered: the same k items, in any order.
        std::vector<row_id_t> set_ids(static_cast<std::size_t>(k));
        index.search_unordered(be, vector_view(q.data() + b * t.d, t.d), k, vector_view(set_ids.data(), k),
                               ex[std::size_t(b)]);
        std::sort(set_ids.begin(), set_ids.end());
        std::vector<row_id_t> sorted_ref = ref_ids;
        std::sort(sorted_ref.begin(), sorted_ref.end());
        REQUIRE(set_ids == sorted_ref);
        for (index_t i = 0; i < k; ++i) {
            INFO("query " << b << " rank " << i);
            REQUIRE(one_ids[std::size_t(i)] == ref_ids[std::size_t(i)]);
            REQUIRE(double(one_scores[std::size_t(i)]) == ref_scores[std::size_t(i)]);
            REQUIRE(ids[std::size_t(b * k + i)] == ref_ids[std::size_t(i)]);
            REQUIRE(double(scores[std::size_t(b * k + i)]) == ref_scores[std::size_t(i)]);
        }
    }
}

/// One query on a host index (Reference backend) and on its device twin: ids and scores.
template <class T>
void same_one_query_on_device(MatrixView<const float> items, const std::vector<float>& q, index_t k) {
    const retrieval::ExactIndex<T> host(items);
    const retrieval::ExactIndex<T, rbtest::GuardedMemory> dev(items, memory_of(rbtest::kDevice));
    const index_t d = items.cols();
    std::vector<row_id_t> ids(static_cast<std::size_t>(k));
    std::vector<float> scores(static_cast<std::size_t>(k));
    host.search(backend::Reference{}, vector_view(q.data(), d), k, vector_view(ids.data(), k),
                vector_view(scores.data(), k));
    const auto dq = rbtest::upload(q);
    auto did = make_tensor<row_id_t>(rbtest::kDevice, Shape<1>{{k}});
    auto ds = make_tensor<float>(rbtest::kDevice, Shape<1>{{k}});
    dev.search(rbtest::kDevice, dq.cview(), k, did.view(), ds.view());
    REQUIRE(rbtest::download(did) == ids);
    REQUIRE(rbtest::download(ds) == scores);
}

/// The same searches on an index in device memory (rbtest::GuardedDevice)
/// and on the host index with the Reference backend: the same bits.
template <class T>
void check_device(const Data& t, index_t nq, index_t k, bool with_exclusion) {
    INFO("guarded device n=" << t.n << " d=" << t.d << " nq=" << nq << " k=" << k << " exclusion=" << with_exclusion);
    using rbtest::kDevice;
    const backend::Reference ref;
    const auto items = matrix_view(static_cast<const float*>(t.items.data()), t.n, t.d);
    const retrieval::ExactIndex<T> host(items);
    const retrieval::ExactIndex<T, rbtest::GuardedMemory> dev(items, memory_of(kDevice));
    const auto q = integer_queries(nq, t.d, 7 + nq);
    std::vector<index_t> offsets{0};
    std::vector<row_id_t> ex_ids;
    for (index_t b = 0; b < nq; ++b) {
        if (with_exclusion)
            for (index_t r = b % 5; r < t.n; r += b + 3) ex_ids.push_back(row_id_t(r));
        offsets.push_back(index_t(ex_ids.size()));
    }
    const retrieval::ExcludedIds host_ex =
        with_exclusion ? retrieval::ExcludedIds{offsets, ex_ids} : retrieval::ExcludedIds{};
    const rbtest::DeviceExclusions dev_ex(with_exclusion ? offsets : std::vector<index_t>{}, ex_ids);
    const auto dq = rbtest::upload(q);
    std::vector<row_id_t> ids(std::size_t(nq * k));
    std::vector<float> scores(std::size_t(nq * k));
    auto did = make_tensor<row_id_t>(kDevice, Shape<2>{{nq, k}});
    auto ds = make_tensor<float>(kDevice, Shape<2>{{nq, k}});
    host.search_batch(ref, matrix_view(q.data(), nq, t.d), k, matrix_view(ids.data(), nq, k),
                      matrix_view(scores.data(), nq, k), host_ex);
    dev.search_batch(kDevice, matrix_view(static_cast<const float*>(dq.data()), nq, t.d), k, did.view(), ds.view(),
                     dev_ex.view());
    REQUIRE(rbtest::download(did) == ids);
    REQUIRE(rbtest::download(ds) == scores);
    for (index_t b = 0; b < nq; ++b) {
        INFO("query " << b);
        const auto from = std::size_t(offsets[std::size_t(b)]), len = std::size_t(offsets[std::size_t(b + 1)]) - from;
        const auto ex_host = std::span<const row_id_t>(ex_ids).subspan(from, len);
        const auto ex_dev = rbtest::span_of(dev_ex.ids).subspan(from, len);
        const auto qh = vector_view(q.data() + b * t.d, t.d);
        const auto qd = vector_view(static_cast<const float*>(dq.data()) + b * t.d, t.d);
        host.search(ref, qh, k, vector_view(ids.data(), k), vector_view(scores.data(), k), ex_host);
        dev.search(kDevice, qd, k, vector_view(did.data(), k), vector_view(ds.data(), k), ex_dev);
        const auto got_ids = rbtest::download(did);
        const auto got_scores = rbtest::download(ds);
        REQUIRE(std::equal(ids.begin(), ids.begin() + k, got_ids.begin()));
        REQUIRE(std::equal(scores.begin(), scores.begin() + k, got_scores.begin()));
        host.search_unordered(ref, qh, k, vector_view(ids.data(), k), ex_host);
        dev.search_unordered(kDevice, qd, k, vector_view(did.data(), k), ex_dev);
        auto set = rbtest::download(did);
        set.resize(std::size_t(k));
        std::sort(set.begin(), set.end());
        std::sort(ids.begin(), ids.begin() + k);
        REQUIRE(std::equal(ids.begin(), ids.begin() + k, set.begin()));
    }
}

}  // namespace

TEST_CASE("ExactIndex: exact top-k with ties, every storage and backend", "[retrieval]") {
    const Data small = integer_items(1037, 64, 1);
    const Data odd = integer_items(300, 7, 2);
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        for (bool ex : {false, true}) {
            check_exact<float>(be, name, small, 5, 10, ex);
            check_exact<bf16>(be, name, small, 5, 10, ex);
            check_exact<std::int8_t>(be, name, small, 5, 10, ex);
            check_exact<float>(be, name, odd, 3, 1, ex);
            check_exact<std::int8_t>(be, name, odd, 6, 40, ex);
            check_exact<bf16>(be, name, odd, 4, 100, ex);
        }
        check_exact<float>(be, name, small, 70, 7, false);  // GEMM path over five item tiles
    });
    for (bool ex : {false, true}) {
        check_device<float>(small, 5, 10, ex);
        check_device<bf16>(small, 5, 10, ex);
        check_device<std::int8_t>(small, 5, 10, ex);
        check_device<float>(odd, 3, 1, ex);
        check_device<std::int8_t>(odd, 6, 40, ex);
        check_device<bf16>(odd, 4, 100, ex);
    }
}

TEST_CASE("ExactIndex: large k (the collector compacts many times) keeps ties exact", "[retrieval]") {
    const Data mid = integer_items(5003, 24, 5);  // a partial last panel; scores tie by the hundred
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        for (bool ex : {false, true}) {
            check_exact<float>(be, name, mid, 2, 300, ex);
            check_exact<bf16>(be, name, mid, 1, 700, ex);
            check_exact<std::int8_t>(be, name, mid, 1, 1, ex);
        }
    });
    for (bool ex : {false, true}) {
        check_device<float>(mid, 2, 300, ex);
        check_device<bf16>(mid, 1, 700, ex);
        check_device<std::int8_t>(mid, 1, 1, ex);
    }
}

TEST_CASE("ExactIndex: thread split of a large table gives the reference", "[retrieval]") {
    const Data big = integer_items(70001, 5, 3);  // 2 parts on 3 threads; d = 5 is all tail
    using rbtest::pool1;
    using rbtest::pool3;
    check_exact<float>(backend::Cpu<isa::Dispatch>{&pool3()}, "dispatch 3 threads", big, 2, 12, true);
    check_exact<std::int8_t>(backend::Cpu<isa::Dispatch>{&pool3()}, "dispatch 3 threads", big, 1, 5, false);
    check_exact<bf16>(backend::Cpu<isa::Dispatch>{&pool1()}, "dispatch 1 thread", big, 1, 5, false);
}

TEST_CASE("ExactIndex: random float tables match the double reference within rounding", "[retrieval]") {
    const index_t n = 2000, d = 64, k = 10;
    const Rng rng(11);
    std::uint64_t i = 0;
    Data t{n, d, std::vector<float>(std::size_t(n * d))};
    for (auto& v : t.items) v = float(rng.normal(i++));
    std::vector<float> q(static_cast<std::size_t>(d));
    for (auto& v : q) v = float(rng.normal(i++));
    std::vector<row_id_t> ref_ids;
    std::vector<double> ref_scores;
    reference_top_k(t, q.data(), k, {}, ref_ids, ref_scores);
    const retrieval::ExactIndex<float> index(matrix_view(static_cast<const float*>(t.items.data()), n, d));
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        std::vector<row_id_t> ids(k);
        std::vector<float> scores(k);
        index.search(be, vector_view(q.data(), d), k, vector_view(ids.data(), k), vector_view(scores.data(), k));
        for (index_t i = 0; i < k; ++i) {
            REQUIRE(std::abs(double(scores[std::size_t(i)]) - ref_scores[std::size_t(i)]) < 1e-4);
            REQUIRE(ids[std::size_t(i)] == ref_ids[std::size_t(i)]);  // no near-ties at this seed
        }
    });
    same_one_query_on_device<float>(matrix_view(static_cast<const float*>(t.items.data()), n, d), q, k);
}

TEST_CASE("ExactIndex<int8>: scores follow the dequantized table; score_ids gives the scan's bits", "[retrieval]") {
    // D = 301: odd (a zero pad column) and over 128 column pairs (two int32 chunks).
    const index_t n = 300, d = 301, k = 20;
    const Rng rng(13);
    std::uint64_t i = 0;
    std::vector<float> items(static_cast<std::size_t>(n * d)), q(static_cast<std::size_t>(d));
    for (auto& v : items) v = float(rng.normal(i++));
    for (auto& v : q) v = float(rng.normal(i++)) * 3.0f;
    const retrieval::ExactIndex<std::int8_t> index(matrix_view(static_cast<const float*>(items.data()), n, d));
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        std::vector<row_id_t> ids(k);
        std::vector<float> scores(k), again(k);
        index.search(be, vector_view(q.data(), d), k, vector_view(ids.data(), k), vector_view(scores.data(), k));
        for (index_t j = 0; j < k; ++j) {
            double exact = 0, size = 0;  // the dequantized table times the float query
            for (index_t c = 0; c < d; ++c) {
                exact += double(index.value(ids[std::size_t(j)], c)) * q[std::size_t(c)];
                size += std::abs(double(index.value(ids[std::size_t(j)], c)) * q[std::size_t(c)]);
            }
            REQUIRE(std::abs(double(scores[std::size_t(j)]) - exact) <= 1e-4 * size);  // int16 query rounding
        }
        index.score_ids(be, q.data(), ids.data(), k, again.data());
        REQUIRE(again == scores);
    });
    same_one_query_on_device<std::int8_t>(matrix_view(static_cast<const float*>(items.data()), n, d), q, k);
}

TEST_CASE("ExactIndex: bad input raises clear errors", "[retrieval]") {
    const Data t = integer_items(50, 8, 4);
    const retrieval::ExactIndex<float> index(matrix_view(static_cast<const float*>(t.items.data()), t.n, t.d));
    const backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    std::vector<float> q(8, 1.0f), scores(60);
    std::vector<row_id_t> ids(60);
    auto search = [&](index_t k, std::span<const row_id_t> ex = {}) {
        index.search(be, vector_view(static_cast<const float*>(q.data()), 8), k, vector_view(ids.data(), k),
                     vector_view(scores.data(), k), ex);
    };
    REQUIRE_NOTHROW(search(50));
    REQUIRE_THROWS_WITH(search(51), Catch::Contains("k = 51") && Catch::Contains("need 1 <= k <= N"));
    REQUIRE_THROWS_AS(search(0), ValueError);
    const std::vector<row_id_t> unsorted{3, 2}, out_of_range{4, 50}, two{1, 2};
    REQUIRE_THROWS_WITH(search(5, unsorted), Catch::Contains("sorted ascending"));
    REQUIRE_THROWS_AS(search(5, out_of_range), IndexError);
    REQUIRE_THROWS_WITH(search(49, two), Catch::Contains("only 48 items remain"));
    q[3] = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(search(5), Catch::Contains("query 0 has nan at dimension 3"));
    q[3] = 1.0f;
    REQUIRE_THROWS_AS(index.search(be, vector_view(static_cast<const float*>(q.data()), 7), 5,
                                   vector_view(ids.data(), 5), vector_view(scores.data(), 5)),
                      ShapeError);
    REQUIRE_THROWS_AS(index.search_batch(be, matrix_view(static_cast<const float*>(q.data()), 1, 8), 5,
                                         matrix_view(ids.data(), 1, 4), matrix_view(scores.data(), 1, 5)),
                      ShapeError);
    std::vector<float> bad = t.items;
    bad[17] = std::numeric_limits<float>::infinity();
    REQUIRE_THROWS_WITH(retrieval::ExactIndex<bf16>(matrix_view(static_cast<const float*>(bad.data()), 50, 8)),
                        Catch::Contains("items[2, 1] is inf"));
    const std::vector<float> wide(4097, 1.0f);
    REQUIRE_THROWS_WITH(retrieval::ExactIndex<std::int8_t>(matrix_view(wide.data(), 1, 4097)),
                        Catch::Contains("at most 4096"));
    const retrieval::ExactIndex<float> empty;
    REQUIRE_THROWS_WITH(empty.search(be, vector_view(static_cast<const float*>(q.data()), 8), 1,
                                     vector_view(ids.data(), 1), vector_view(scores.data(), 1)),
                        Catch::Contains("empty"));
}

TEST_CASE("ops::exact_top_k: bad input names what was wrong, on host and device memory", "[retrieval]") {
    const Data t = integer_items(50, 8, 4);
    const auto items = matrix_view(static_cast<const float*>(t.items.data()), t.n, t.d);
    const retrieval::ExactIndex<float> host(items);
    const retrieval::ExactIndex<float, rbtest::GuardedMemory> dev(items, memory_of(rbtest::kDevice));
    const backend::Cpu<isa::Dispatch> cpu{&rbtest::pool1()};
    const std::vector<float> q(16, 1.0f);  // two queries
    std::vector<row_id_t> ids(100);
    std::vector<float> scores(100);
    const std::vector<index_t> offsets{0, 2, 4};
    // Shapes (checked before any backend call, the same for every backend).
    auto call = [&](const auto& be, const auto& panels, const float* qd, row_id_t* id, float* sc, index_t nq,
                    index_t k, index_t id_cols, std::span<const index_t> off, std::span<const row_id_t> ex) {
        ops::exact_top_k(be, panels, matrix_view(qd, nq, 8), k, retrieval::detail::as_view(off),
                         retrieval::detail::as_view(ex), matrix_view(id, nq, id_cols), matrix_view(sc, nq, k));
    };
    const auto dq = rbtest::upload(q);
    auto did = make_tensor<row_id_t>(rbtest::kDevice, Shape<1>{{100}});
    auto ds = make_tensor<float>(rbtest::kDevice, Shape<1>{{100}});
    REQUIRE_THROWS_WITH(call(cpu, host.panels(), q.data(), ids.data(), scores.data(), 2, 5, 4, {}, {}),
                        Catch::Contains("ops::exact_top_k: ids is [2, 4] but expected [2, 5]"));
    REQUIRE_THROWS_WITH(ops::exact_top_k(cpu, host.panels(), matrix_view(q.data(), 2, 7), 5, {}, {},
                                         matrix_view(ids.data(), 2, 5), matrix_view(scores.data(), 2, 5)),
                        Catch::Contains("x has 7 entries but items have 8 columns"));
    REQUIRE_THROWS_WITH(call(cpu, host.panels(), q.data(), ids.data(), scores.data(), 2, 5, 5,
                             std::span<const index_t>(offsets).first(2), std::vector<row_id_t>{1, 2}),
                        Catch::Contains("exclude offsets have 2 entries but expected 3"));
    REQUIRE_THROWS_AS(call(rbtest::kDevice, dev.panels(), dq.data(), did.data(), ds.data(), 2, 51, 51, {}, {}), ValueError);
    // Data (host memory: checked by ops; device memory: by the backend, with the same messages).
    const std::vector<row_id_t> unsorted{1, 2, 7, 3}, out_of_range{1, 2, 3, 50}, many{0, 1, 2, 3};
    const auto d_unsorted = rbtest::upload(unsorted), d_out = rbtest::upload(out_of_range), d_many = rbtest::upload(many);
    const auto d_offsets = rbtest::upload(offsets);
    for (int on_device = 0; on_device < 2; ++on_device) {
        INFO((on_device ? "device" : "host"));
        auto run = [&](index_t k, const std::vector<row_id_t>& ex, const Vector<row_id_t, rbtest::GuardedMemory>& dex,
                       bool shared) {
            const std::span<const index_t> off = shared ? std::span<const index_t>{} : std::span<const index_t>(offsets);
            if (on_device)
                call(rbtest::kDevice, dev.panels(), dq.data(), did.data(), ds.data(), 2, k, k,
                     shared ? std::span<const index_t>{} : rbtest::span_of(d_offsets), rbtest::span_of(dex));
            else
                call(cpu, host.panels(), q.data(), ids.data(), scores.data(), 2, k, k, off, ex);
        };
        REQUIRE_THROWS_WITH(run(5, unsorted, d_unsorted, false),
                            Catch::Contains("excluded ids of query 1 must be sorted ascending without repeats; got 7 then 3"));
        REQUIRE_THROWS_AS(run(5, out_of_range, d_out, false), IndexError);
        REQUIRE_THROWS_WITH(run(5, out_of_range, d_out, false),
                            Catch::Contains("excluded id 50 of query 1 is out of range for 50 items"));
        REQUIRE_THROWS_WITH(run(47, many, d_many, true),
                            Catch::Contains("k = 47 but only 46 items remain after excluding 4 of query 0"));
        REQUIRE_NOTHROW(run(46, many, d_many, true));
        REQUIRE_NOTHROW(run(48, many, d_many, false));
    }
}
