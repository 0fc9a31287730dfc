#pragma once
// Inverted dropout with counter-based randomness: element i of the call with
// step s is kept iff rng.substream(s).uniform(i) >= p, and kept values
// are scaled by 1 / (1 - p). The mask is a pure function of (rng, step, i),
// so it is the same whatever the thread count, it never needs storing (the
// backward pass recomputes it), and a resumed run draws the same masks.
// The mask is applied by the backend's dropout primitive (ops/dropout.hpp),
// so it is also the same on every backend and ISA.
#include <cmath>

#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor_view.hpp"
#include "recblocks/ops/dropout.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace blocks {

class Dropout {
public:
    /// p in [0, 1): the probability of zeroing an element; masks come from `rng`.
    Dropout(double p, const Rng& rng) : p_(p), rng_(rng) {
        RECBLOCKS_CHECK_VALUE(p >= 0.0 && p < 1.0, "Dropout: p must be in [0, 1), got ", p);
    }
    [[nodiscard]] double p() const { return p_; }

    /// y = dropout(x) for training step `step` (y may alias x), on backend `be`.
    template <class T, class Be>
        requires ops::has_dropout<Be, T>
    void forward(const Be& be, std::uint64_t step, TensorView<const T, 1> x, TensorView<T, 1> y) const {
        apply(be, rng_.substream(step), x, y);
    }
    /// dx = dy * mask / (1 - p) with the same mask as forward(step); dx may alias dy.
    template <class T, class Be>
        requires ops::has_dropout<Be, T>
    void backward(const Be& be, std::uint64_t step, TensorView<const T, 1> dy, TensorView<T, 1> dx) const {
        apply(be, rng_.substream(step), dy, dx);
    }
    /// As forward(step), for one of many independent pieces of a step (`lane`,
    /// e.g. one attention matrix per sequence and head): its own mask.
    template <class T, class Be>
        requires ops::has_dropout<Be, T>
    void forward(const Be& be, std::uint64_t step, std::uint64_t lane, TensorView<const T, 1> x,
                 TensorView<T, 1> y) const {
        apply(be, rng_.substream(step).substream(lane), x, y);
    }
    template <class T, class Be>
        requires ops::has_dropout<Be, T>
    void backward(const Be& be, std::uint64_t step, std::uint64_t lane, TensorView<const T, 1> dy,
                  TensorView<T, 1> dx) const {
        apply(be, rng_.substream(step).substream(lane), dy, dx);
    }
    /// The masks of forward(step, lane) for every lane of a batched attention
    /// call (lane = sequence * heads + head; backend/primitives.hpp).
    template <class T>
    [[nodiscard]] AttentionDropout<T> attention_masks(std::uint64_t step) const {
        if (p_ == 0.0) return {};
        const Rng r = rng_.substream(step);
        const auto key = r.key();
        return {key[0], key[1], r.stream(), threshold(), scale<T>()};
    }
    /// Whether element i is kept at `step`.
    [[nodiscard]] bool kept(std::uint64_t step, std::uint64_t i) const {
        return rng_.substream(step).uniform(i) >= static_cast<float>(p_);
    }

    /// dst[i] = dropout(src[i]) for i in [begin, end) of buffers that
    /// forward(step, lane) would process whole (same mask). Within a parallel
    /// region the backend runs it on the calling thread (nested work is serial).
    template <class T, class Be>
        requires ops::has_dropout<Be, T>
    void forward_range(const Be& be, std::uint64_t step, std::uint64_t lane, index_t begin, index_t end, const T* src,
                       T* dst) const {
        range(be, rng_.substream(step).substream(lane), begin, end, src, dst);
    }

    /// In place on elements [begin, end) of a buffer that backward(step, lane)
    /// would process whole: the same mask for those elements (for callers that
    /// touch only part of a matrix).
    template <class T, class Be>
        requires ops::has_dropout<Be, T>
    void backward_range(const Be& be, std::uint64_t step, std::uint64_t lane, index_t begin, index_t end,
                        T* data) const {
        range(be, rng_.substream(step).substream(lane), begin, end, data, data);
    }

private:
    /// Keep iff uniform(i) >= p, compared on the integer: (word >> 8) * 2^-24 >= p.
    [[nodiscard]] std::uint32_t threshold() const {
        return static_cast<std::uint32_t>(std::ceil(double(static_cast<float>(p_)) * 0x1.0p24));
    }

    /// The mask of stream r.
    [[nodiscard]] DropoutMask mask(const Rng& r) const {
        const auto key = r.key();
        return {key[0], key[1], r.stream(), threshold()};
    }
    template <class T>
    [[nodiscard]] T scale() const {
        return static_cast<T>(1.0 / (1.0 - p_));
    }

    template <class T, class Be>
    void apply(const Be& be, const Rng& r, TensorView<const T, 1> in, TensorView<T, 1> out) const {
        RECBLOCKS_CHECK_SHAPE(in.size() == out.size(), "Dropout: output has ", out.size(), " entries but input has ",
                              in.size());
        ops::dropout<Be, T>(be, in, out, 0, mask(r), scale<T>());
    }

    template <class T, class Be>
    void range(const Be& be, const Rng& r, index_t begin, index_t end, const T* src, T* dst) const {
        ops::dropout<Be, T>(be, vector_view(src + begin, end - begin), vector_view(dst + begin, end - begin), begin,
                            mask(r), scale<T>());
    }

    double p_;
    Rng rng_;
};

}  // namespace blocks
RECBLOCKS_NAMESPACE_END
