// Retrieval on backend::Cuda: indexes in device memory (ExactIndex<T,
// CudaMemory>, FunnelIndex<CudaMemory>, MaxSim) against the same host indexes
// on the Reference backend. Small-integer tables make every score exact in
// float whatever the summation order, so ids and scores must match bit for bit,
// ties included (int8 rows carry a 127, so their scale is exactly 1 and the
// codes equal the values). Shapes hit the kernels' edges: N not a multiple of a
// panel or of a warp's slice, k = 1 and k = N, query tiles of 1, 2, 4 and 8
// plus a partial one, k past the fused path (k + 32 > 512), exclusions per
// query (CSR) and shared, bad input. Runs only where a GPU exists.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/funnel_index.hpp"
#include "recblocks/retrieval/max_sim.hpp"

namespace {

using namespace recblocks;
namespace rt = recblocks::retrieval;

static_assert(rt::IndexBackend<backend::Cuda>);
static_assert(rt::Index<rt::ExactIndex<float, CudaMemory>, backend::Cuda>);
static_assert(rt::Index<rt::ExactIndex<std::int8_t, CudaMemory>, backend::Cuda>);
static_assert(rt::Index<rt::FunnelIndex<CudaMemory>, backend::Cuda>);
static_assert(!rt::Index<rt::ExactIndex<float>, backend::Cuda>);  // a host table is not where the GPU computes
static_assert(ops::has_max_sim<backend::Cuda>);

const backend::Reference kRef{};
const backend::Cuda kGpu{};

template <class T>
Vector<T, CudaMemory> upload(const std::vector<T>& v) {
    Vector<T> h(Shape<1>{{index_t(v.size())}});
    std::copy(v.begin(), v.end(), h.begin());
    return to(kGpu, h);
}

template <class T, std::size_t R>
std::vector<T> download(const Tensor<T, R, CudaMemory>& t) {
    const auto h = to_host(t);
    return std::vector<T>(h.begin(), h.end());
}

template <class T>
std::span<const T> span_of(const Vector<T, CudaMemory>& v) {
    return {v.data(), std::size_t(v.numel())};
}

/// Small integers in [-3, 3] (many ties); column 0 is 127 (int8 scale exactly 1).
std::vector<float> integer_items(index_t n, index_t d, std::uint64_t seed) {
    std::vector<float> t(std::size_t(n * d));
    const Rng rng(seed);
    for (index_t r = 0; r < n; ++r)
        for (index_t c = 0; c < d; ++c)
            t[std::size_t(r * d + c)] = c == 0 ? 127.0f : float(int(rng.uniform(std::uint64_t(r * d + c)) * 7.0f) - 3);
    return t;
}

std::vector<float> integer_queries(index_t b, index_t d, std::uint64_t seed) {
    std::vector<float> q(std::size_t(b * d));
    const Rng rng(seed);
    std::uint64_t i = 0;
    for (auto& v : q) v = float(int(rng.uniform(i++) * 9.0f) - 4);
    return q;
}

/// Query b excludes every (b + 3)-th id from b % 5 (CSR), or all queries the
/// ids r % 7 == 2 (shared).
struct Exclusions {
    std::vector<index_t> offsets{0};
    std::vector<row_id_t> ids;
};
Exclusions make_exclusions(index_t n, index_t nq, int mode) {
    Exclusions e;
    if (mode == 1) {
        for (index_t b = 0; b < nq; ++b) {
            for (index_t r = b % 5; r < n; r += b + 3) e.ids.push_back(row_id_t(r));
            e.offsets.push_back(index_t(e.ids.size()));
        }
    } else {
        e.offsets.clear();
        if (mode == 2)
            for (index_t r = 2; r < n; r += 7) e.ids.push_back(row_id_t(r));
    }
    return e;
}

template <class T>
void check_exact(index_t n, index_t d, index_t nq, index_t k, int mode) {
    INFO("n=" << n << " d=" << d << " nq=" << nq << " k=" << k << " exclusion mode=" << mode);
    const auto items = integer_items(n, d, 1 + n + d);
    const auto view = matrix_view(static_cast<const float*>(items.data()), n, d);
    const rt::ExactIndex<T> host(view);
    const rt::ExactIndex<T, CudaMemory> gpu(view, memory_of(kGpu));
    const auto q = integer_queries(nq, d, 7 + nq);
    const Exclusions ex = make_exclusions(n, nq, mode);
    std::vector<row_id_t> ids(std::size_t(nq * k));
    std::vector<float> scores(std::size_t(nq * k));
    // The batch, ordered, against the Reference's ordered batch.
    ops::exact_top_k(kRef, host.panels(), matrix_view(q.data(), nq, d), k, vector_view(ex.offsets.data(), index_t(ex.offsets.size())),
                     vector_view(ex.ids.data(), index_t(ex.ids.size())), matrix_view(ids.data(), nq, k),
                     matrix_view(scores.data(), nq, k));
    const auto dq = upload(q);
    const auto doff = upload(ex.offsets);
    const auto dex = upload(ex.ids);
    auto did = make_tensor<row_id_t>(kGpu, Shape<2>{{nq, k}});
    auto ds = make_tensor<float>(kGpu, Shape<2>{{nq, k}});
    const auto dqv = matrix_view(static_cast<const float*>(dq.data()), nq, d);
    gpu.search_batch(kGpu, dqv, k, did.view(), ds.view(), rt::ExcludedIds{span_of(doff), span_of(dex)});
    REQUIRE(download(did) == ids);
    REQUIRE(download(ds) == scores);
    // Unordered shortlists: the same sets.
    auto dsl = make_tensor<row_id_t>(kGpu, Shape<2>{{nq, k}});
    gpu.search_batch_unordered(kGpu, dqv, k, dsl.view(), rt::ExcludedIds{span_of(doff), span_of(dex)});
    auto sets = download(dsl);
    for (index_t b = 0; b < nq; ++b) {
        std::sort(sets.begin() + b * k, sets.begin() + (b + 1) * k);
        std::vector<row_id_t> want(ids.begin() + b * k, ids.begin() + (b + 1) * k);
        std::sort(want.begin(), want.end());
        REQUIRE(std::equal(want.begin(), want.end(), sets.begin() + b * k));
    }
}

}  // namespace

TEST_CASE("cuda exact_top_k: every storage, ties, exclusions, query tiles", "[cuda][retrieval]") {
    for (int mode : {0, 1, 2}) {
        check_exact<float>(1037, 64, 1, 10, mode);    // one query, a partial last panel
        check_exact<bf16>(1037, 64, 5, 10, mode);     // a tile of 4 and one of 1
        check_exact<std::int8_t>(1037, 64, 9, 10, mode);  // a tile of 8 and a partial one
        check_exact<float>(300, 7, 3, 1, mode);       // k = 1, D = 7 (odd: int8 pads a column)
        check_exact<std::int8_t>(300, 7, 2, 40, mode);
        check_exact<bf16>(5003, 24, 2, 300, mode);    // k near the fused path's limit (k + 32 <= 512)
        check_exact<float>(5003, 24, 2, 700, mode);   // past it: every row's key, then the merge
    }
    check_exact<float>(200, 16, 3, 200, 0);  // k = N
    check_exact<std::int8_t>(65, 3, 1, 65, 0);
    check_exact<float>(70001, 5, 20, 12, 1);      // many slices
}

TEST_CASE("cuda exact_top_k: random floats match the double reference within rounding", "[cuda][retrieval]") {
    const index_t n = 100003, d = 64, nq = 6, k = 10;
    const Rng rng(11);
    std::uint64_t i = 0;
    std::vector<float> items(std::size_t(n * d)), q(std::size_t(nq * d));
    for (auto& v : items) v = float(rng.normal(i++));
    for (auto& v : q) v = float(rng.normal(i++));
    const auto view = matrix_view(static_cast<const float*>(items.data()), n, d);
    const rt::ExactIndex<float> host(view);
    const rt::ExactIndex<float, CudaMemory> gpu(view, memory_of(kGpu));
    std::vector<row_id_t> ids(std::size_t(nq * k));
    std::vector<float> scores(std::size_t(nq * k));
    host.search_batch(kRef, matrix_view(q.data(), nq, d), k, matrix_view(ids.data(), nq, k),
                      matrix_view(scores.data(), nq, k));
    const auto dq = upload(q);
    auto did = make_tensor<row_id_t>(kGpu, Shape<2>{{nq, k}});
    auto ds = make_tensor<float>(kGpu, Shape<2>{{nq, k}});
    gpu.search_batch(kGpu, matrix_view(static_cast<const float*>(dq.data()), nq, d), k, did.view(), ds.view());
    const auto got = download(did);
    const auto got_s = download(ds);
    REQUIRE(got == ids);  // no near-ties at this seed
    for (std::size_t j = 0; j < got_s.size(); ++j) REQUIRE(std::abs(got_s[j] - scores[j]) < 1e-4f);
}

TEST_CASE("cuda exact_top_k: bad input raises the host's errors", "[cuda][retrieval]") {
    const index_t n = 50, d = 8;
    const auto items = integer_items(n, d, 4);
    const rt::ExactIndex<float, CudaMemory> gpu(matrix_view(static_cast<const float*>(items.data()), n, d),
                                                memory_of(kGpu));
    std::vector<float> q(2 * d, 1.0f);
    auto did = make_tensor<row_id_t>(kGpu, Shape<2>{{2, 48}});
    auto ds = make_tensor<float>(kGpu, Shape<2>{{2, 48}});
    auto run = [&](const std::vector<float>& qh, index_t k, const std::vector<index_t>& off,
                   const std::vector<row_id_t>& ex) {
        const auto dq = upload(qh);
        const auto doff = upload(off);
        const auto dex = upload(ex);
        auto ids = make_tensor<row_id_t>(kGpu, Shape<2>{{2, k}});
        auto sc = make_tensor<float>(kGpu, Shape<2>{{2, k}});
        gpu.search_batch(kGpu, matrix_view(static_cast<const float*>(dq.data()), 2, d), k, ids.view(), sc.view(),
                         rt::ExcludedIds{span_of(doff), span_of(dex)});
    };
    REQUIRE_NOTHROW(run(q, 5, {0, 2, 4}, {1, 2, 3, 7}));
    REQUIRE_THROWS_WITH(run(q, 5, {0, 2, 4}, {1, 2, 7, 3}),
                        Catch::Contains("excluded ids of query 1 must be sorted ascending without repeats; got 7 then 3"));
    REQUIRE_THROWS_AS(run(q, 5, {0, 2, 4}, {1, 2, 3, 50}), IndexError);
    REQUIRE_THROWS_WITH(run(q, 47, {}, {0, 1, 2, 3}),
                        Catch::Contains("k = 47 but only 46 items remain after excluding 4 of query 0"));
    REQUIRE_THROWS_WITH(run(q, 48, {0, 0, 3}, {0, 1, 2}),
                        Catch::Contains("k = 48 but only 47 items remain after excluding 3 of query 1"));
    auto bad = q;
    bad[d + 3] = std::numeric_limits<float>::quiet_NaN();
    REQUIRE_THROWS_WITH(run(bad, 5, {}, {}), Catch::Contains("query 1 has nan at dimension 3"));
}

TEST_CASE("cuda funnel and rerank_top_k match the Reference", "[cuda][retrieval]") {
    const index_t n = 5003, d = 16, d1 = 4, nq = 5, k = 5;
    const auto items = integer_items(n, d, 31);
    const auto q = integer_queries(nq, d, 32);
    const auto view = matrix_view(static_cast<const float*>(items.data()), n, d);
    const rt::FunnelIndex host(view, d1, 37);
    const rt::FunnelIndex<CudaMemory> gpu(view, d1, 37, memory_of(kGpu));
    const Exclusions ex = make_exclusions(n, nq, 1);
    std::vector<row_id_t> ids(std::size_t(nq * k));
    std::vector<float> scores(std::size_t(nq * k));
    for (index_t shortlist : {index_t(5), index_t(37), index_t(1000)}) {
        INFO("shortlist " << shortlist);
        host.search_batch(kRef, matrix_view(q.data(), nq, d), k, shortlist, matrix_view(ids.data(), nq, k),
                          matrix_view(scores.data(), nq, k), rt::ExcludedIds{ex.offsets, ex.ids});
        const auto dq = upload(q);
        const auto doff = upload(ex.offsets);
        const auto dex = upload(ex.ids);
        auto did = make_tensor<row_id_t>(kGpu, Shape<2>{{nq, k}});
        auto ds = make_tensor<float>(kGpu, Shape<2>{{nq, k}});
        gpu.search_batch(kGpu, matrix_view(static_cast<const float*>(dq.data()), nq, d), k, shortlist, did.view(),
                         ds.view(), rt::ExcludedIds{span_of(doff), span_of(dex)});
        REQUIRE(download(did) == ids);
        REQUIRE(download(ds) == scores);
    }
    // A candidate out of range: the host's message.
    std::vector<row_id_t> cand(std::size_t(nq * 8), 3);
    cand[std::size_t(8 + 2)] = row_id_t(n);
    const auto drows = upload(items), dq = upload(q);
    const auto dcand = upload(cand);
    auto did = make_tensor<row_id_t>(kGpu, Shape<2>{{nq, 2}});
    auto ds = make_tensor<float>(kGpu, Shape<2>{{nq, 2}});
    REQUIRE_THROWS_WITH(ops::rerank_top_k(kGpu, matrix_view(static_cast<const float*>(drows.data()), n, d),
                                          matrix_view(static_cast<const float*>(dq.data()), nq, d),
                                          matrix_view(static_cast<const row_id_t*>(dcand.data()), nq, 8), 2,
                                          did.view(), ds.view()),
                        Catch::Contains("candidate 2 of query 1 = 5003 is out of range for 5003 items"));
}

TEST_CASE("cuda max_sim_scores matches the Reference", "[cuda][retrieval]") {
    const index_t q = 3, d = 40, n = 150;
    std::vector<index_t> offsets{0};
    for (index_t i = 0; i < n; ++i) offsets.push_back(offsets.back() + 1 + (i * 7) % 6);
    const index_t total = offsets.back();
    const auto vectors = integer_items(total, d, 41);
    const auto query = integer_queries(q, d, 42);
    std::vector<float> scores(static_cast<std::size_t>(n));
    std::vector<index_t> arg(static_cast<std::size_t>(n * q));
    rt::max_sim_scores(kRef, matrix_view(query.data(), q, d), matrix_view(vectors.data(), total, d), offsets,
                       vector_view(scores.data(), n), matrix_view(arg.data(), n, q));
    const auto dq = upload(query), dv = upload(vectors);
    const auto doff = upload(offsets);
    auto ds = make_tensor<float>(kGpu, Shape<1>{{n}});
    auto darg = make_tensor<index_t>(kGpu, Shape<2>{{n, q}});
    const auto dqv = matrix_view(static_cast<const float*>(dq.data()), q, d);
    const auto dvv = matrix_view(static_cast<const float*>(dv.data()), total, d);
    rt::max_sim_scores(kGpu, dqv, dvv, span_of(doff), ds.view(), darg.view());
    REQUIRE(download(ds) == scores);
    REQUIRE(download(darg) == arg);
    const auto bad = upload(std::vector<index_t>{0, 2, 2, total});
    auto ds3 = make_tensor<float>(kGpu, Shape<1>{{3}});
    REQUIRE_THROWS_WITH(rt::max_sim_scores(kGpu, dqv, dvv, span_of(bad), ds3.view()),
                        Catch::Contains("item 1 has offsets 2 .. 2"));
}
