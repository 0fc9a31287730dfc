// retrieval::Index: every index meets one contract (search, search_batch,
// exclusion), so one generic function serves them all, on the CPU backends
// and on the Reference oracle.
#include <catch2/catch.hpp>

#include <algorithm>
#include <vector>

#include "backend/backends.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/funnel_index.hpp"
#include "recblocks/retrieval/index.hpp"
#include "retrieval/device_helpers.hpp"

using namespace recblocks;

namespace rt = recblocks::retrieval;

static_assert(rt::Index<rt::ExactIndex<float>, backend::Cpu<isa::Auto>>);
static_assert(rt::Index<rt::ExactIndex<bf16>, backend::Cpu<isa::Dispatch>>);
static_assert(rt::Index<rt::ExactIndex<std::int8_t>, backend::Cpu<isa::Avx2>>);
static_assert(rt::Index<rt::FunnelIndex<>, backend::Cpu<isa::Auto>>);
static_assert(rt::Index<rt::ExactIndex<float>, backend::Reference>);
static_assert(rt::Index<rt::FunnelIndex<>, backend::Reference>);
static_assert(!rt::Index<std::vector<float>, backend::Reference>);
// A device backend: the indexes in its memory space meet the contract; a host
// index does not accept it (its table is not where the backend computes).
static_assert(rt::IndexBackend<rbtest::GuardedDevice>);
static_assert(rt::Index<rt::ExactIndex<float, rbtest::GuardedMemory>, rbtest::GuardedDevice>);
static_assert(rt::Index<rt::FunnelIndex<rbtest::GuardedMemory>, rbtest::GuardedDevice>);
static_assert(!rt::Index<rt::ExactIndex<float>, rbtest::GuardedDevice>);
static_assert(!rt::Index<rt::ExactIndex<float, rbtest::GuardedMemory>, backend::Reference>);

namespace {

/// Written once for every index: the top k of each query with its seen ids
/// excluded, one query at a time and as a batch; requires both to agree.
template <class I, class Be>
    requires rt::Index<I, Be>
std::vector<row_id_t> top_k_unseen(const I& index, const Be& be, const std::vector<float>& queries, index_t k,
                                   const std::vector<index_t>& offsets, const std::vector<row_id_t>& seen) {
    const index_t nq = index_t(offsets.size()) - 1, d = index.dim();
    std::vector<row_id_t> ids(std::size_t(nq * k)), one(static_cast<std::size_t>(k));
    std::vector<float> scores(std::size_t(nq * k)), one_scores(static_cast<std::size_t>(k));
    index.search_batch(be, matrix_view(queries.data(), nq, d), k, matrix_view(ids.data(), nq, k),
                       matrix_view(scores.data(), nq, k), rt::ExcludedIds{offsets, seen});
    for (index_t b = 0; b < nq; ++b) {
        const auto ex = std::span<const row_id_t>(seen).subspan(std::size_t(offsets[std::size_t(b)]),
                                                                std::size_t(offsets[std::size_t(b + 1)] -
                                                                            offsets[std::size_t(b)]));
        index.search(be, vector_view(queries.data() + b * d, d), k, vector_view(one.data(), k),
                     vector_view(one_scores.data(), k), ex);
        REQUIRE(std::equal(one.begin(), one.end(), ids.begin() + b * k));
    }
    return ids;
}

}  // namespace

TEST_CASE("ExactIndex and FunnelIndex meet retrieval::Index with the same results", "[retrieval][index]") {
    // Small integers: every score exact, ties broken by id, so every index,
    // backend and path must return the same ids.
    const index_t n = 300, d = 24, nq = 6, k = 10;
    std::vector<float> items(std::size_t(n * d)), queries(std::size_t(nq * d));
    const Rng r(17);
    for (std::size_t i = 0; i < items.size(); ++i) items[i] = float(int(r.below(i, 7)) - 3);
    for (std::size_t i = 0; i < queries.size(); ++i) queries[i] = float(int(r.below(100000 + i, 9)) - 4);
    const auto view = matrix_view<const float>(items.data(), n, d);
    const std::vector<index_t> offsets{0, 2, 2, 3, 5, 5, 6};
    const std::vector<row_id_t> seen{4, 99, 7, 0, 299, 150};

    const rt::ExactIndex<float> exact(view);
    const rt::FunnelIndex funnel(view, /*prefix_dim=*/d, /*shortlist=*/n);  // full shortlist: exact
    const auto want = top_k_unseen(exact, backend::Reference{}, queries, k, offsets, seen);
    REQUIRE(top_k_unseen(funnel, backend::Reference{}, queries, k, offsets, seen) == want);
    rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
        INFO(name);
        REQUIRE(top_k_unseen(exact, be, queries, k, offsets, seen) == want);
        REQUIRE(top_k_unseen(funnel, be, queries, k, offsets, seen) == want);
    });
    // The same generic code on indexes in device memory (views and exclusions there too).
    using rbtest::kDevice;
    const rt::ExactIndex<float, rbtest::GuardedMemory> dev_exact(view, memory_of(kDevice));
    const rt::FunnelIndex<rbtest::GuardedMemory> dev_funnel(view, d, n, memory_of(kDevice));
    const auto dq = rbtest::upload(queries);
    const rbtest::DeviceExclusions dev_ex(offsets, seen);
    auto dev_ids = make_tensor<row_id_t>(kDevice, Shape<2>{{nq, k}});
    auto dev_scores = make_tensor<float>(kDevice, Shape<2>{{nq, k}});
    const auto dqv = matrix_view(static_cast<const float*>(dq.data()), nq, d);
    dev_exact.search_batch(kDevice, dqv, k, dev_ids.view(), dev_scores.view(), dev_ex.view());
    REQUIRE(rbtest::download(dev_ids) == want);
    dev_funnel.search_batch(kDevice, dqv, k, dev_ids.view(), dev_scores.view(), dev_ex.view());
    REQUIRE(rbtest::download(dev_ids) == want);
}
