#pragma once
// Retrieval on rbtest::GuardedDevice (tests/support/guarded_device.hpp): an
// index instantiated for device memory, searched through the backend calls
// alone, must give exactly what the same index in host memory gives on the
// Reference backend (the guarded device computes with the Reference's
// primitives, so the bits agree). These helpers move test data in and out.
#include <algorithm>
#include <span>
#include <vector>

#include "../support/guarded_device.hpp"
#include "recblocks/retrieval/index.hpp"

namespace rbtest {

inline const GuardedDevice kDevice{};

/// A host vector's copy in device memory.
template <class T>
recblocks::Vector<T, GuardedMemory> upload(const std::vector<T>& v) {
    recblocks::Vector<T> host(recblocks::Shape<1>{{recblocks::index_t(v.size())}});
    std::copy(v.begin(), v.end(), host.begin());
    return recblocks::to(kDevice, host);
}

/// A device tensor's elements, in order.
template <class T, std::size_t R>
std::vector<T> download(const recblocks::Tensor<T, R, GuardedMemory>& t) {
    const auto host = recblocks::to_host(t);
    return std::vector<T>(host.begin(), host.end());
}

template <class T>
std::span<const T> span_of(const recblocks::Vector<T, GuardedMemory>& v) {
    return {v.data(), std::size_t(v.numel())};
}

/// Exclusion lists (CSR) in device memory, kept alive with their view.
struct DeviceExclusions {
    recblocks::Vector<recblocks::index_t, GuardedMemory> offsets;
    recblocks::Vector<recblocks::row_id_t, GuardedMemory> ids;
    DeviceExclusions(const std::vector<recblocks::index_t>& o, const std::vector<recblocks::row_id_t>& i)
        : offsets(upload(o)), ids(upload(i)) {}
    [[nodiscard]] recblocks::retrieval::ExcludedIds view() const { return {span_of(offsets), span_of(ids)}; }
};

}  // namespace rbtest
