// The blocks instantiated for a device memory space and run on
// rbtest::GuardedDevice (tests/support/guarded_device.hpp: the Reference's
// arithmetic, memory the host cannot touch outside a primitive). Each must
// give exactly the bits of the same block in host memory on the Reference
// backend — forward, backward with dropout, parameter gradients — which shows
// the block is a sequence of backend calls with no host access to its tensors:
// the code path backend::Cuda runs.
#include <catch2/catch.hpp>

#include <cstring>

#include "../support/compare.hpp"
#include "../support/guarded_device.hpp"
#include "recblocks/blocks/feed_forward.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/blocks/multi_head_self_attention.hpp"

using namespace recblocks;
using rbtest::GuardedDevice;
using rbtest::GuardedMemory;

namespace {

const backend::Reference kRef{};

template <class X>
concept host_indexable = requires(X& x) { x(0); };
const GuardedDevice kDev{};

template <class T, std::size_t R>
void require_same_bits(const Tensor<T, R, GuardedMemory>& device, const Tensor<T, R>& host, const char* what) {
    const Tensor<T, R> back = to_host(device);
    INFO(what);
    REQUIRE(back.shape() == host.shape());
    REQUIRE(std::memcmp(back.data(), host.data(), static_cast<std::size_t>(host.numel()) * sizeof(T)) == 0);
}

template <class T, std::size_t R>
Tensor<T, R> random(Shape<R> shape, std::uint64_t seed) {
    Tensor<T, R> t(shape);
    rbtest::fill_uniform(t, seed);
    return t;
}

}  // namespace

TEST_CASE("device blocks: the guard really keeps the host out", "[blocks][device]") {
    const auto before = rbtest::GuardRegistry::get().live_blocks();
    {
        auto t = to(kDev, random<double, 1>(Shape<1>{{10}}, 1));
        REQUIRE(rbtest::GuardRegistry::get().live_blocks() == before + 1);
        static_assert(!HostBackend<GuardedDevice>);
        // Element access from the host does not compile for this space:
        static_assert(!host_indexable<Tensor<double, 1, GuardedMemory>> && host_indexable<Tensor<double, 1>>);
    }
    REQUIRE(rbtest::GuardRegistry::get().live_blocks() == before);
}

TEST_CASE("device blocks: FeedForward on a device backend gives the host's bits", "[blocks][device]") {
    const index_t rows = 13, d = 8;
    for (const Activation act : {Activation::relu, Activation::gelu}) {
        blocks::FeedForward<double> host({.d_model = d, .inner = 2 * d, .activation = act, .dropout = 0.3}, Rng(5));
        blocks::FeedForward<double, GuardedMemory> dev({.d_model = d, .inner = 2 * d, .activation = act, .dropout = 0.3}, Rng(5),
                                                    memory_of(kDev));
        const auto x = random<double, 2>(Shape<2>{{rows, d}}, 6), dy = random<double, 2>(Shape<2>{{rows, d}}, 7);
        Matrix<double> y(x.shape()), dx(x.shape()), dy_h = dy;
        auto gx = to(kDev, x), gdy = to(kDev, dy);
        Matrix<double, GuardedMemory> gy(x.shape(), memory_of(kDev)), gdx(x.shape(), memory_of(kDev));
        host.zero_grads();
        dev.zero_grads();
        host.forward(kRef, ThreadPool::global(), x.cview(), y.view(), 4, true);
        dev.forward(kDev, ThreadPool::global(), gx.cview(), gy.view(), 4, true);
        require_same_bits(gy, y, "y");
        host.backward(kRef, ThreadPool::global(), dy_h.view(), dx.view());
        dev.backward(kDev, ThreadPool::global(), gdy.view(), gdx.view());
        require_same_bits(gdx, dx, "dx");
        require_same_bits(dev.grads().w1, host.grads().w1, "dw1");
        require_same_bits(dev.grads().b2, host.grads().b2, "db2");
        host.forward_inference(kRef, x.cview(), y.view());
        dev.forward_inference(kDev, gx.cview(), gy.view());
        require_same_bits(gy, y, "inference y");
    }
}

template <class Mask>
void check_attention_on_device(Mask mask, double dropout) {
    const index_t bsz = 3, len = 37, d = 12;
    using Host = blocks::MultiHeadSelfAttention<double, Mask>;
    using Dev = blocks::MultiHeadSelfAttention<double, Mask, GuardedMemory>;
    Host host({d, 3, dropout}, mask, Rng(9));
    Dev dev({d, 3, dropout}, mask, Rng(9), memory_of(kDev));
    const auto x = random<double, 3>(Shape<3>{{bsz, len, d}}, 10), dy = random<double, 3>(Shape<3>{{bsz, len, d}}, 11);
    Matrix<std::uint8_t> keep(Shape<2>{{bsz, len}});
    for (index_t b = 0; b < bsz; ++b)
        for (index_t t = 0; t < len; ++t) keep(b, t) = static_cast<std::uint8_t>(b == 2 || t >= 5 * b + 3);
    auto gx = to(kDev, x), gdy = to(kDev, dy);
    const auto gkeep = to(kDev, keep);
    Tensor<double, 3> y(x.shape()), dx(x.shape());
    Tensor<double, 3, GuardedMemory> gy(x.shape(), memory_of(kDev)), gdx(x.shape(), memory_of(kDev));
    host.set_step(7, true);
    dev.set_step(7, true);
    host.forward(kRef, x.cview(), y.view(), keep.cview());
    dev.forward(kDev, gx.cview(), gy.view(), gkeep.cview());
    require_same_bits(gy, y, "y");
    host.backward(kRef, dy.cview(), dx.view());
    dev.backward(kDev, gdy.cview(), gdx.view());
    require_same_bits(gdx, dx, "dx");
    require_same_bits(dev.grads().in_proj_weight, host.grads().in_proj_weight, "d in_proj_weight");
    require_same_bits(dev.grads().out_proj_bias, host.grads().out_proj_bias, "d out_proj_bias");
    // Serving the last position.
    Matrix<double> last(Shape<2>{{bsz, d}}), y_last(Shape<2>{{bsz, d}});
    for (index_t b = 0; b < bsz; ++b)
        for (index_t c = 0; c < d; ++c) last(b, c) = x(b, len - 1, c);
    const auto glast = to(kDev, last);
    Matrix<double, GuardedMemory> gy_last(Shape<2>{{bsz, d}}, memory_of(kDev));
    host.forward_last(kRef, last.cview(), x.cview(), y_last.view(), keep.cview());
    dev.forward_last(kDev, glast.cview(), gx.cview(), gy_last.view(), gkeep.cview());
    require_same_bits(gy_last, y_last, "y_last");
}

TEST_CASE("device blocks: attention on a device backend gives the host's bits", "[blocks][device][attention]") {
    SECTION("causal, dropout") { check_attention_on_device(policies::CausalMask{}, 0.25); }
    SECTION("block-causal") { check_attention_on_device(policies::BlockCausalMask(4), 0.0); }
    SECTION("bidirectional, dropout") { check_attention_on_device(policies::BidirectionalMask{}, 0.1); }
}

TEST_CASE("device blocks: LayerNorm on a device backend gives the host's bits", "[blocks][device]") {
    const index_t rows = 9, d = 16;
    blocks::LayerNorm<double> host({d, 1e-5});
    blocks::LayerNorm<double, GuardedMemory> dev({d, 1e-5}, memory_of(kDev));
    const auto x = random<double, 2>(Shape<2>{{rows, d}}, 21), dy = random<double, 2>(Shape<2>{{rows, d}}, 22);
    Matrix<double> y(x.shape()), dx(x.shape());
    auto gx = to(kDev, x), gdy = to(kDev, dy);
    Matrix<double, GuardedMemory> gy(x.shape(), memory_of(kDev)), gdx(x.shape(), memory_of(kDev));
    host.forward(kRef, x.cview(), y.view());
    dev.forward(kDev, gx.cview(), gy.view());
    host.backward(kRef, dy.cview(), dx.view());
    dev.backward(kDev, gdy.cview(), gdx.view());
    require_same_bits(gy, y, "y");
    require_same_bits(gdx, dx, "dx");
    require_same_bits(dev.grads().weight, host.grads().weight, "d weight");
}
