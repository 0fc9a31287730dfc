// FunnelIndex (prefix shortlist + full-width re-rank) and MaxSim (forward,
// top-k, backward) against double references and finite differences, on
// every CPU backend.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/backends.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/retrieval/funnel_index.hpp"
#include "recblocks/retrieval/max_sim.hpp"
#include "retrieval/device_helpers.hpp"

using namespace recblocks;

namespace {

std::vector<float> normals(std::size_t n, std::uint64_t seed) {
    const Rng rng(seed);
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = float(rng.normal(i));
    return v;
}

/// Top-k of rows [0, n) by double score over columns [0, width), among `among` (all if empty).
std::vector<row_id_t> reference_top(const std::vector<float>& items, index_t d, index_t width, const float* q,
                                    index_t k, std::vector<row_id_t> among) {
    if (among.empty())
        for (index_t r = 0; r < index_t(items.size()) / d; ++r) among.push_back(row_id_t(r));
    std::vector<std::pair<double, row_id_t>> all;
    for (row_id_t r : among) {
        double s = 0;
        for (index_t c = 0; c < width; ++c) s += double(items[std::size_t(r * d + c)]) * q[c];
        all.push_back({s, r});
    }
    std::sort(all.begin(), all.end(),
              [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    std::vector<row_id_t> ids;
    for (index_t i = 0; i < k; ++i) ids.push_back(all[std::size_t(i)].second);
    return ids;
}

/// A funnel search on a host index (Reference backend) and on its twin in
/// device memory: the same ids and scores.
void same_funnel_on_device(const retrieval::FunnelIndex<>& host,
                           const retrieval::FunnelIndex<rbtest::GuardedMemory>& dev, const std::vector<float>& q,
                           index_t k, index_t shortlist, const std::vector<row_id_t>& exclude) {
    const index_t d = host.dim();
    std::vector<row_id_t> ids(static_cast<std::size_t>(k));
    std::vector<float> scores(static_cast<std::size_t>(k));
    host.search(backend::Reference{}, vector_view(q.data(), d), k, shortlist, vector_view(ids.data(), k),
                vector_view(scores.data(), k), exclude);
    const auto dq = rbtest::upload(q);
    const auto dex = rbtest::upload(exclude);
    auto did = make_tensor<row_id_t>(rbtest::kDevice, Shape<1>{{k}});
    auto ds = make_tensor<float>(rbtest::kDevice, Shape<1>{{k}});
    dev.search(rbtest::kDevice, dq.cview(), k, shortlist, did.view(), ds.view(), rbtest::span_of(dex));
    REQUIRE(rbtest::download(did) == ids);
    REQUIRE(rbtest::download(ds) == scores);
}

}  // namespace

TEST_CASE("FunnelIndex: prefix shortlist then full-width re-rank", "[retrieval]") {
    const index_t n = 900, d = 24, d1 = 6, k = 5, shortlist = 40;
    const auto items = normals(std::size_t(n * d), 21);
    const auto q = normals(std::size_t(d), 22);
    const retrieval::FunnelIndex funnel(matrix_view(items.data(), n, d), d1);
    const auto short_ref = reference_top(items, d, d1, q.data(), shortlist, {});
    const auto ref = reference_top(items, d, d, q.data(), k, short_ref);
    const auto exact_ref = reference_top(items, d, d, q.data(), k, {});
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        std::vector<row_id_t> ids(static_cast<std::size_t>(k));
        std::vector<float> scores(static_cast<std::size_t>(k));
        funnel.search(be, vector_view(q.data(), d), k, shortlist, vector_view(ids.data(), k),
                      vector_view(scores.data(), k));
        REQUIRE(ids == ref);
        // The whole catalogue as shortlist is exact search.
        funnel.search(be, vector_view(q.data(), d), k, n, vector_view(ids.data(), k), vector_view(scores.data(), k));
        REQUIRE(ids == exact_ref);
        // Excluded ids never come back.
        const std::vector<row_id_t> ex{exact_ref[0], exact_ref[2]};
        std::vector<row_id_t> sorted_ex = ex;
        std::sort(sorted_ex.begin(), sorted_ex.end());
        funnel.search(be, vector_view(q.data(), d), k, n - 2, vector_view(ids.data(), k),
                      vector_view(scores.data(), k), sorted_ex);
        for (row_id_t id : ids) REQUIRE(std::find(ex.begin(), ex.end(), id) == ex.end());
        REQUIRE(ids[0] == exact_ref[1]);
    });
    {
        const retrieval::FunnelIndex<rbtest::GuardedMemory> dev(matrix_view(items.data(), n, d), d1, 200,
                                                                memory_of(rbtest::kDevice));
        same_funnel_on_device(funnel, dev, q, k, shortlist, {});
        same_funnel_on_device(funnel, dev, q, k, n, {});
        std::vector<row_id_t> ex{exact_ref[0], exact_ref[2]};
        std::sort(ex.begin(), ex.end());
        same_funnel_on_device(funnel, dev, q, k, n - 2, ex);
    }
    const backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    std::vector<row_id_t> ids(8);
    std::vector<float> scores(8);
    REQUIRE_THROWS_WITH(funnel.search(be, vector_view(q.data(), d), 8, 4, vector_view(ids.data(), 8),
                                      vector_view(scores.data(), 8)),
                        Catch::Contains("need 1 <= k <= shortlist"));
    REQUIRE_THROWS_WITH(funnel.search(be, vector_view(q.data(), d), 5, n + 1, vector_view(ids.data(), 5),
                                      vector_view(scores.data(), 5)),
                        Catch::Contains("shortlist = 901 but the index has 900 items"));
    REQUIRE_THROWS_AS(retrieval::FunnelIndex(matrix_view(items.data(), n, d), d + 1), ValueError);
}

TEST_CASE("FunnelIndex: the shortlist is the exact prefix top-k (ties, exclusion, retries)", "[retrieval]") {
    // Small integers: every score is exact in float and prefix scores tie by
    // the hundred, so the shortlist must break ties by id exactly.
    const index_t n = 5003, d = 16, d1 = 4, k = 5;
    std::vector<float> items(static_cast<std::size_t>(n * d)), q(static_cast<std::size_t>(d));
    const Rng rng(31);
    for (std::size_t i = 0; i < items.size(); ++i) items[i] = float(int(rng.uniform(i) * 7.0f) - 3);
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = float(int(rng.uniform(items.size() + i) * 9.0f) - 4);
    const retrieval::FunnelIndex funnel(matrix_view(items.data(), n, d), d1);
    // Excluding the 600 best prefix items leaves the sampled threshold far too
    // high: the selection must retry with lower ones.
    auto prefix_best = reference_top(items, d, d1, q.data(), 600, {});
    std::sort(prefix_best.begin(), prefix_best.end());
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        for (const index_t shortlist : {index_t(5), index_t(37), index_t(500), n - 600}) {
            for (bool with_ex : {false, true}) {
                INFO(name << " shortlist " << shortlist << " exclusion " << with_ex);
                if (!with_ex && shortlist == n - 600) continue;
                std::vector<row_id_t> among;
                if (with_ex) {
                    for (row_id_t r = 0; r < row_id_t(n); ++r)
                        if (!std::binary_search(prefix_best.begin(), prefix_best.end(), r)) among.push_back(r);
                }
                const auto short_ref = reference_top(items, d, d1, q.data(), shortlist, among);
                const auto ref = reference_top(items, d, d, q.data(), k, short_ref);
                std::vector<row_id_t> ids(static_cast<std::size_t>(k));
                std::vector<float> scores(static_cast<std::size_t>(k));
                funnel.search(be, vector_view(q.data(), d), k, shortlist, vector_view(ids.data(), k),
                              vector_view(scores.data(), k),
                              with_ex ? std::span<const row_id_t>(prefix_best) : std::span<const row_id_t>{});
                REQUIRE(ids == ref);
            }
        }
    });
    const retrieval::FunnelIndex<rbtest::GuardedMemory> dev(matrix_view(items.data(), n, d), d1, 200,
                                                            memory_of(rbtest::kDevice));
    for (const index_t shortlist : {index_t(5), index_t(37), n - 600}) {
        INFO("guarded device, shortlist " << shortlist);
        same_funnel_on_device(funnel, dev, q, k, shortlist, shortlist == n - 600 ? prefix_best : std::vector<row_id_t>{});
    }
}

TEST_CASE("rerank_top_k: a shortlist re-scored from an ExactIndex<float>", "[retrieval]") {
    const index_t n = 700, d = 20, k = 4;
    const auto items = normals(std::size_t(n * d), 41);
    const auto q = normals(std::size_t(d), 42);
    const retrieval::ExactIndex<float> full(matrix_view(items.data(), n, d));
    std::vector<row_id_t> candidates;
    for (row_id_t r = 3; r < row_id_t(n); r += 7) candidates.push_back(r);
    const auto ref = reference_top(items, d, d, q.data(), k, candidates);
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        std::vector<row_id_t> ids(static_cast<std::size_t>(k));
        std::vector<float> scores(static_cast<std::size_t>(k));
        retrieval::rerank_top_k(be, full, q.data(), candidates, k, ids.data(), scores.data());
        REQUIRE(ids == ref);
        for (index_t i = 0; i < k; ++i) {
            double s = 0;
            for (index_t c = 0; c < d; ++c) s += double(items[std::size_t(ids[std::size_t(i)] * d + c)]) * q[std::size_t(c)];
            REQUIRE(std::abs(double(scores[std::size_t(i)]) - s) < 1e-4);
        }
    });
    const backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    std::vector<row_id_t> ids(2), bad{1, n};
    std::vector<float> scores(2);
    REQUIRE_THROWS_AS(retrieval::rerank_top_k(be, full, q.data(), bad, 2, ids.data(), scores.data()), IndexError);
}

TEST_CASE("ops::rerank_top_k: a batch of shortlists re-ranked, host and device memory", "[retrieval]") {
    const index_t n = 300, d = 12, nq = 3, s = 40, k = 7;
    const auto rows = normals(std::size_t(n * d), 51);
    const auto queries = normals(std::size_t(nq * d), 52);
    std::vector<row_id_t> cand(static_cast<std::size_t>(nq * s));
    for (index_t b = 0; b < nq; ++b)
        for (index_t j = 0; j < s; ++j) cand[std::size_t(b * s + j)] = row_id_t((j * 7 + b * 13) % n);
    std::vector<row_id_t> want;
    for (index_t b = 0; b < nq; ++b) {
        const std::vector<row_id_t> among(cand.begin() + b * s, cand.begin() + (b + 1) * s);
        const auto top = reference_top(rows, d, d, queries.data() + b * d, k, among);
        want.insert(want.end(), top.begin(), top.end());
    }
    const auto rv = matrix_view(rows.data(), n, d);
    const auto qv = matrix_view(queries.data(), nq, d);
    const auto cv = matrix_view(static_cast<const row_id_t*>(cand.data()), nq, s);
    std::vector<row_id_t> ids(static_cast<std::size_t>(nq * k));
    std::vector<float> scores(static_cast<std::size_t>(nq * k)), ref_scores(static_cast<std::size_t>(nq * k));
    ops::rerank_top_k(backend::Reference{}, rv, qv, cv, k, matrix_view(ids.data(), nq, k),
                      matrix_view(ref_scores.data(), nq, k));
    REQUIRE(ids == want);
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        ops::rerank_top_k(be, rv, qv, cv, k, matrix_view(ids.data(), nq, k), matrix_view(scores.data(), nq, k));
        REQUIRE(ids == want);
        for (std::size_t i = 0; i < scores.size(); ++i) REQUIRE(std::abs(scores[i] - ref_scores[i]) < 1e-4);
    });
    using rbtest::kDevice;
    const auto drows = rbtest::upload(rows), dq = rbtest::upload(queries);
    auto dcand = rbtest::upload(cand);
    auto did = make_tensor<row_id_t>(kDevice, Shape<2>{{nq, k}});
    auto ds = make_tensor<float>(kDevice, Shape<2>{{nq, k}});
    auto run = [&](const Vector<row_id_t, rbtest::GuardedMemory>& c) {
        ops::rerank_top_k(kDevice, matrix_view(static_cast<const float*>(drows.data()), n, d),
                          matrix_view(static_cast<const float*>(dq.data()), nq, d),
                          matrix_view(static_cast<const row_id_t*>(c.data()), nq, s), k, did.view(), ds.view());
    };
    run(dcand);
    REQUIRE(rbtest::download(did) == want);
    REQUIRE(rbtest::download(ds) == ref_scores);
    // Errors: k past the shortlist (shape), an id out of range (data: ops on the host, the backend on a device).
    REQUIRE_THROWS_WITH(ops::rerank_top_k(backend::Reference{}, rv, qv, cv, s + 1, matrix_view(ids.data(), nq, 1),
                                          matrix_view(scores.data(), nq, 1)),
                        Catch::Contains("k = 41 but there are 40 candidates per query"));
    auto bad = cand;
    bad[std::size_t(s + 3)] = row_id_t(n);
    REQUIRE_THROWS_WITH(ops::rerank_top_k(backend::Reference{}, rv, qv, matrix_view(static_cast<const row_id_t*>(bad.data()), nq, s), k,
                                          matrix_view(ids.data(), nq, k), matrix_view(scores.data(), nq, k)),
                        Catch::Contains("candidate 3 of query 1 = 300 is out of range for 300 items"));
    const auto dbad = rbtest::upload(bad);
    REQUIRE_THROWS_WITH(run(dbad), Catch::Contains("candidate 3 of query 1 = 300 is out of range for 300 items"));
}

TEST_CASE("MaxSim: scores, argmax, top-k and gradients", "[retrieval]") {
    const index_t q = 3, d = 16, n = 150;
    std::vector<index_t> offsets{0};
    for (index_t i = 0; i < n; ++i) offsets.push_back(offsets.back() + 1 + (i * 7) % 6);
    const index_t total = offsets.back();
    const auto vectors = normals(std::size_t(total * d), 31);
    const auto query = normals(std::size_t(q * d), 32);
    const auto qv = matrix_view(query.data(), q, d);
    const auto vv = matrix_view(vectors.data(), total, d);
    // Reference in double.
    std::vector<double> ref(static_cast<std::size_t>(n));
    std::vector<index_t> ref_arg(static_cast<std::size_t>(n * q));
    for (index_t i = 0; i < n; ++i)
        for (index_t r = 0; r < q; ++r) {
            double best = -1e300;
            for (index_t j = offsets[std::size_t(i)]; j < offsets[std::size_t(i + 1)]; ++j) {
                double s = 0;
                for (index_t c = 0; c < d; ++c) s += double(query[std::size_t(r * d + c)]) * vectors[std::size_t(j * d + c)];
                if (s > best) {
                    best = s;
                    ref_arg[std::size_t(i * q + r)] = j;
                }
            }
            ref[std::size_t(i)] += best;
        }
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        std::vector<float> scores(static_cast<std::size_t>(n));
        std::vector<index_t> arg(static_cast<std::size_t>(n * q));
        retrieval::max_sim_scores(be, qv, vv, offsets, vector_view(scores.data(), n), matrix_view(arg.data(), n, q));
        for (index_t i = 0; i < n; ++i) REQUIRE(std::abs(scores[std::size_t(i)] - ref[std::size_t(i)]) < 1e-4);
        REQUIRE(arg == ref_arg);
        std::vector<row_id_t> ids(5);
        std::vector<float> top(5);
        retrieval::max_sim_top_k(be, qv, vv, offsets, 5, vector_view(ids.data(), 5), vector_view(top.data(), 5));
        std::vector<index_t> order(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) order[std::size_t(i)] = i;
        std::sort(order.begin(), order.end(), [&](index_t a, index_t b) { return ref[std::size_t(a)] > ref[std::size_t(b)]; });
        for (index_t i = 0; i < 5; ++i) REQUIRE(ids[std::size_t(i)] == order[std::size_t(i)]);
    });
    {  // The same scores, argmax and top-k from device memory as from the host on the Reference backend.
        using rbtest::kDevice;
        std::vector<float> scores(static_cast<std::size_t>(n)), top(5);
        std::vector<index_t> arg(static_cast<std::size_t>(n * q));
        std::vector<row_id_t> ids(5);
        retrieval::max_sim_scores(backend::Reference{}, qv, vv, offsets, vector_view(scores.data(), n),
                                  matrix_view(arg.data(), n, q));
        retrieval::max_sim_top_k(backend::Reference{}, qv, vv, offsets, 5, vector_view(ids.data(), 5),
                                 vector_view(top.data(), 5));
        const auto dq = rbtest::upload(query), dv = rbtest::upload(vectors);
        const auto doff = rbtest::upload(offsets);
        auto ds = make_tensor<float>(kDevice, Shape<1>{{n}});
        auto darg = make_tensor<index_t>(kDevice, Shape<2>{{n, q}});
        auto did = make_tensor<row_id_t>(kDevice, Shape<1>{{5}});
        auto dtop = make_tensor<float>(kDevice, Shape<1>{{5}});
        const auto dqv = matrix_view(static_cast<const float*>(dq.data()), q, d);
        const auto dvv = matrix_view(static_cast<const float*>(dv.data()), total, d);
        retrieval::max_sim_scores(kDevice, dqv, dvv, rbtest::span_of(doff), ds.view(), darg.view());
        retrieval::max_sim_top_k(kDevice, dqv, dvv, rbtest::span_of(doff), 5, did.view(), dtop.view());
        REQUIRE(rbtest::download(ds) == scores);
        REQUIRE(rbtest::download(darg) == arg);
        REQUIRE(rbtest::download(did) == ids);
        REQUIRE(rbtest::download(dtop) == top);
        const auto bad = rbtest::upload(std::vector<index_t>{0, 2, 2, total});
        auto ds3 = make_tensor<float>(kDevice, Shape<1>{{3}});
        REQUIRE_THROWS_WITH(retrieval::max_sim_scores(kDevice, dqv, dvv, rbtest::span_of(bad), ds3.view()),
                            Catch::Contains("item 1 has offsets 2 .. 2"));
    }
    // Backward against central finite differences of L = sum_i g_i score_i.
    const backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    const auto g = normals(std::size_t(n), 33);
    std::vector<float> scores(static_cast<std::size_t>(n)), dq(static_cast<std::size_t>(q * d)),
        dv(static_cast<std::size_t>(total * d));
    std::vector<index_t> arg(static_cast<std::size_t>(n * q));
    retrieval::max_sim_scores(be, qv, vv, offsets, vector_view(scores.data(), n), matrix_view(arg.data(), n, q));
    retrieval::max_sim_backward(qv, vv, offsets, matrix_view(static_cast<const index_t*>(arg.data()), n, q),
                                vector_view(g.data(), n), matrix_view(dq.data(), q, d), matrix_view(dv.data(), total, d));
    auto loss = [&](const std::vector<float>& qq, const std::vector<float>& vvec) {
        std::vector<float> s(static_cast<std::size_t>(n));
        retrieval::max_sim_scores(be, matrix_view(qq.data(), q, d), matrix_view(vvec.data(), total, d), offsets,
                                  vector_view(s.data(), n));
        double l = 0;
        for (index_t i = 0; i < n; ++i) l += double(g[std::size_t(i)]) * s[std::size_t(i)];
        return l;
    };
    const float eps = 1e-2f;
    for (std::size_t e : {std::size_t(0), std::size_t(17), std::size_t(q * d - 1)}) {
        auto qp = query, qm = query;
        qp[e] += eps;
        qm[e] -= eps;
        REQUIRE(std::abs((loss(qp, vectors) - loss(qm, vectors)) / (2 * eps) - dq[e]) < 2e-2);
    }
    for (index_t j : {index_t(0), index_t(5), total - 1}) {
        const std::size_t e = std::size_t(j * d + 3);
        auto vp = vectors, vm = vectors;
        vp[e] += eps;
        vm[e] -= eps;
        REQUIRE(std::abs((loss(query, vp) - loss(query, vm)) / (2 * eps) - dv[e]) < 2e-2);
    }
    // Errors.
    std::vector<index_t> bad_offsets{0, 2, 2, total};
    std::vector<float> s3(3);
    REQUIRE_THROWS_WITH(retrieval::max_sim_scores(be, qv, vv, bad_offsets, vector_view(s3.data(), 3)),
                        Catch::Contains("item 1 has offsets 2 .. 2"));
    std::vector<index_t> short_offsets{0, 2};
    REQUIRE_THROWS_AS(retrieval::max_sim_scores(be, qv, vv, short_offsets, vector_view(s3.data(), 1)), ShapeError);
    auto nan_query = query;
    nan_query[4] = std::nanf("");
    REQUIRE_THROWS_WITH(retrieval::max_sim_scores(be, matrix_view(nan_query.data(), q, d), vv, offsets,
                                                  vector_view(scores.data(), n)),
                        Catch::Contains("query[0, 4] is nan"));
}
