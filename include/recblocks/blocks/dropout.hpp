#pragma once
// Inverted dropout with counter-based randomness: element i of the call with
// step s is kept iff rng.substream(s).uniform(i) >= p, and kept values
// are scaled by 1 / (1 - p). The mask is a pure function of (rng, step, i),
// so it is the same whatever the thread count, it never needs storing (the
// backward pass recomputes it), and a resumed run draws the same masks.
#include <cmath>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/core/thread_pool.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

class Dropout {
public:
    /// p in [0, 1): the probability of zeroing an element; masks come from `rng`.
    Dropout(double p, const Rng& rng) : p_(p), rng_(rng) {
        RECBLOCKS_CHECK_VALUE(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
    }
    [[nodiscard]] double p() const { return p_; }

    /// y = dropout(x) for training step `step` (y may alias x); identity when p == 0.
    template <class T>
    void forward(ThreadPool& pool, std::uint64_t step, TensorView<const T, 1> x, TensorView<T, 1> y) const {
        apply(pool, rng_.substream(step), x, y);
    }
    /// dx = dy * mask / (1 - p) with the same mask as forward(step); dx may alias dy.
    template <class T>
    void backward(ThreadPool& pool, std::uint64_t step, TensorView<const T, 1> dy, TensorView<T, 1> dx) const {
        apply(pool, rng_.substream(step), dy, dx);
    }
    /// As forward(step), for one of many independent pieces of a step (`lane`,
    /// e.g. one attention matrix per sequence and head): its own mask.
    template <class T>
    void forward(ThreadPool& pool, std::uint64_t step, std::uint64_t lane, TensorView<const T, 1> x,
                 TensorView<T, 1> y) const {
        apply(pool, rng_.substream(step).substream(lane), x, y);
    }
    template <class T>
    void backward(ThreadPool& pool, std::uint64_t step, std::uint64_t lane, TensorView<const T, 1> dy,
                  TensorView<T, 1> dx) const {
        apply(pool, rng_.substream(step).substream(lane), dy, dx);
    }
    /// Whether element i is kept at `step`.
    [[nodiscard]] bool kept(std::uint64_t step, std::uint64_t i) const {
        return rng_.substream(step).uniform(i) >= static_cast<float>(p_);
    }

    /// dst[i] = dropout(src[i]) for i in [begin, end) of buffers that
    /// forward(step, lane) would process whole (same mask), single-threaded.
    template <class T>
    void forward_range(std::uint64_t step, std::uint64_t lane, index_t begin, index_t end, const T* src, T* dst) const {
        const Rng r = rng_.substream(step).substream(lane);
        const auto key = r.key();
        mask_kernel<T>()(src, dst, begin, end, key[0], key[1], r.stream(), threshold(),
                         static_cast<T>(1.0 / (1.0 - p_)));
    }

    /// In place on elements [begin, end) of a buffer that backward(step, lane)
    /// would process whole: the same mask for those elements, single-threaded
    /// (for callers that already run in parallel and touch only part of a matrix).
    template <class T>
    void backward_range(std::uint64_t step, std::uint64_t lane, index_t begin, index_t end, T* data) const {
        const Rng r = rng_.substream(step).substream(lane);
        const auto key = r.key();
        mask_kernel<T>()(data, data, begin, end, key[0], key[1], r.stream(), threshold(),
                         static_cast<T>(1.0 / (1.0 - p_)));
    }

private:
    /// Keep iff uniform(i) >= p, compared on the integer: (word >> 8) * 2^-24 >= p.
    [[nodiscard]] std::uint32_t threshold() const {
        return static_cast<std::uint32_t>(std::ceil(double(static_cast<float>(p_)) * 0x1.0p24));
    }

    template <class T>
    void apply(ThreadPool& pool, const Rng& r, TensorView<const T, 1> in, TensorView<T, 1> out) const {
        RECBLOCKS_CHECK_SHAPE(in.size() == out.size(), "Dropout: output has ", out.size(), " entries but input has ",
                              in.size());
        const T scale = static_cast<T>(1.0 / (1.0 - p_));
        const std::uint32_t threshold = this->threshold();
        const auto kernel = mask_kernel<T>();
        const auto key = r.key();
        const T* src = in.data();
        T* dst = out.data();
        // Chunks start at multiples of 64 elements: the kernel's vector groups.
        parallel_for(pool, 0, in.size(), 1 << 14, [&](index_t b, index_t e) {
            kernel(src, dst, b, e, key[0], key[1], r.stream(), threshold, scale);
        });
    }

    /// The CPU's best mask kernel: the runtime-dispatch table's when the
    /// program links it, else the one compiled for this translation unit.
    template <class T>
    static auto mask_kernel() {
#ifdef RECBLOCKS_HAS_RUNTIME_DISPATCH
        return cpu::KernelsFor<isa::Dispatch, T>::get().dropout;
#else
        return cpu::KernelsFor<isa::Auto, T>::get().dropout;
#endif
    }

    double p_;
    Rng rng_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
