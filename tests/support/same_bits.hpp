#pragma once
// Bit-for-bit comparisons between a device-memory run and the host Reference's:
// the device tests (tests/*/device_*_test.cpp) require the exact bits, since
// rbtest::GuardedDevice computes with the Reference's arithmetic.
#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "guarded_device.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/params/parameter_list.hpp"

namespace rbtest {

/// n values at `device` (in `memory`) equal n values at `host`, bit for bit.
template <class T, recblocks::MemorySpace M>
bool same_bits(const T* device, const T* host, recblocks::index_t n, const M& memory) {
    std::vector<T> back(static_cast<std::size_t>(n));
    memory.download(back.data(), device, back.size() * sizeof(T));
    return std::memcmp(back.data(), host, back.size() * sizeof(T)) == 0;
}

/// A device tensor equals a host tensor: same shape, same bits.
template <class T, std::size_t R, recblocks::MemorySpace M>
bool same_bits(const recblocks::Tensor<T, R, M>& device, const recblocks::Tensor<T, R>& host) {
    const recblocks::Tensor<T, R> back = recblocks::to_host(device);
    return back.shape() == host.shape() &&
           std::memcmp(back.data(), host.data(), static_cast<std::size_t>(host.numel()) * sizeof(T)) == 0;
}

/// Every value (grads = false) or gradient (true) of a device list equals the
/// host list's, bit for bit; names the first tensor that differs.
template <class T, recblocks::MemorySpace M>
bool same_params(const recblocks::ParamList<T, M>& dev, const recblocks::ParamList<T>& host, bool grads) {
    if (dev.size() != host.size()) return false;
    for (std::size_t i = 0; i < host.size(); ++i) {
        const auto& h = host[i];
        const auto& d = dev[i];
        if (d.name != h.name || d.numel() != h.numel()) return false;
        if (!same_bits(grads ? d.grad : d.value, grads ? h.grad : h.value, h.numel(), d.memory)) {
            UNSCOPED_INFO("first difference in " << h.name << (grads ? " (gradient)" : " (value)"));
            return false;
        }
    }
    return true;
}

}  // namespace rbtest
