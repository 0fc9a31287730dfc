// Memory spaces and tensors that belong to a backend (core/memory.hpp,
// backend/memory.hpp): allocation only when the size changes, deep copies that
// stay in their space, explicit copies between spaces, and host-only element
// access. A counting space that the host may not dereference stands in for a
// device, so the non-host paths run on every machine (the CUDA tests repeat
// the round trip on a GPU).
#include <catch2/catch.hpp>

#include <cstring>

#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/params/parameter_list.hpp"

using namespace recblocks;

namespace {

struct Counts {
    int allocations = 0, deallocations = 0, uploads = 0, downloads = 0, copies = 0;
    long long live_bytes = 0;
};

/// Host-backed memory that counts every call and forbids host element access.
struct CountingMemory {
    static constexpr bool host_accessible = false;
    Counts* counts = nullptr;

    [[nodiscard]] void* allocate(std::size_t bytes) const {
        ++counts->allocations;
        counts->live_bytes += static_cast<long long>(bytes);
        return HostMemory{}.allocate(bytes);
    }
    void deallocate(void* p, std::size_t bytes) const noexcept {
        ++counts->deallocations;
        counts->live_bytes -= static_cast<long long>(bytes);
        HostMemory{}.deallocate(p, bytes);
    }
    void zero(void* p, std::size_t bytes) const { std::memset(p, 0, bytes); }
    void copy(void* dst, const void* src, std::size_t bytes) const {
        ++counts->copies;
        std::memcpy(dst, src, bytes);
    }
    void upload(void* dst, const void* host, std::size_t bytes) const {
        ++counts->uploads;
        std::memcpy(dst, host, bytes);
    }
    void download(void* host, const void* src, std::size_t bytes) const {
        ++counts->downloads;
        std::memcpy(host, src, bytes);
    }
};
static_assert(MemorySpace<CountingMemory>);

template <class M>
concept HostIndexable = requires(Tensor<float, 2, M> t) { t(0, 0); };
static_assert(HostIndexable<HostMemory>);
static_assert(!HostIndexable<CountingMemory>, "elements of a non-host space are not reachable from the host");

static_assert(std::is_same_v<TensorOn<float, 2, backend::Reference>, Matrix<float>>);
static_assert(std::is_same_v<TensorOn<double, 3, backend::Cpu<isa::Auto>>, Tensor<double, 3>>);
static_assert(host_memory_v<backend::Cpu<isa::Dispatch>>);

Matrix<float> counting_matrix(index_t rows, index_t cols) {
    Matrix<float> m(Shape<2>{{rows, cols}});
    for (index_t i = 0; i < m.numel(); ++i) m.data()[i] = 0.5f * static_cast<float>(i) - 3.0f;
    return m;
}

}  // namespace

TEST_CASE("a tensor allocates in its space only when its size changes", "[backend][memory]") {
    Counts counts;
    {
        Tensor<float, 2, CountingMemory> t(Shape<2>{{3, 5}}, CountingMemory{&counts});
        REQUIRE(counts.allocations == 1);
        REQUIRE(counts.live_bytes == 15 * 4);
        t.resize(Shape<2>{{5, 3}});  // same element count: zeroed in place
        t.resize(Shape<2>{{3, 5}});
        REQUIRE(counts.allocations == 1);
        t.resize(Shape<2>{{4, 5}});
        REQUIRE(counts.allocations == 2);
        REQUIRE(counts.deallocations == 1);
        REQUIRE(t.memory().counts == &counts);
        Tensor<float, 2, CountingMemory> deep = t;  // a copy stays in the space
        REQUIRE(counts.allocations == 3);
        REQUIRE(counts.copies == 1);
        REQUIRE(deep.data() != t.data());
    }
    REQUIRE(counts.live_bytes == 0);
    REQUIRE(counts.allocations == counts.deallocations);
}

TEST_CASE("explicit copies move tensors between spaces and back unchanged", "[backend][memory]") {
    Counts counts;
    const Matrix<float> host = counting_matrix(7, 9);
    auto device = copy_to(host, CountingMemory{&counts});
    REQUIRE(device.shape() == host.shape());
    REQUIRE(counts.uploads == 1);
    const Matrix<float> back = to_host(device);
    REQUIRE(counts.downloads == 1);
    REQUIRE(std::memcmp(back.data(), host.data(), sizeof(float) * 63) == 0);

    // Refreshing a device tensor of the same shape allocates nothing.
    const int allocations = counts.allocations;
    copy_tensor(host, device);
    REQUIRE(counts.allocations == allocations);
    REQUIRE(counts.uploads == 2);

    // Host backends: to() is a plain copy into host memory.
    const auto on_ref = to(backend::Reference{}, host);
    REQUIRE(on_ref.data() != host.data());
    REQUIRE(std::memcmp(on_ref.data(), host.data(), sizeof(float) * 63) == 0);
}

TEST_CASE("tensors made for a backend run that backend's ops", "[backend][memory]") {
    ThreadPool pool(2);
    const backend::Cpu<isa::Auto> cpu{&pool};
    auto a = make_tensor<float>(cpu, Shape<2>{{4, 6}});
    auto b = make_tensor<float>(cpu, Shape<2>{{4, 6}});
    for (index_t i = 0; i < 24; ++i) {
        a.data()[i] = float(i);
        b.data()[i] = float(2 * i);
    }
    ops::add(cpu, a.cview(), b.cview(), a.view());
    for (index_t i = 0; i < 24; ++i) REQUIRE(a.data()[i] == float(3 * i));
}

TEST_CASE("a parameter list remembers where its tensors live", "[backend][memory]") {
    Counts counts;
    const CountingMemory memory{&counts};
    Tensor<float, 2, CountingMemory> w(Shape<2>{{3, 4}}, memory), gw(Shape<2>{{3, 4}}, memory);
    ParamList<float, CountingMemory> list;
    append_param(list, "block.", "w", w, gw, ParamKind::weight);
    REQUIRE(list.size() == 1);
    REQUIRE(list[0].memory.counts == &counts);
    REQUIRE(list[0].name == "block.w");
    REQUIRE(list[0].numel() == 12);
    for (index_t i = 0; i < 12; ++i) gw.data()[i] = 1.0f;  // host-backed in this test, so the test may write
    zero_grads(list);                                        // through the space's own zero()
    for (index_t i = 0; i < 12; ++i) REQUIRE(gw.data()[i] == 0.0f);
    static_assert(std::is_same_v<ParamList<float>, std::vector<ParamRef<float, HostMemory>>>);
}
