// Primitives<backend::Cuda> against Primitives<backend::Reference>, through the
// ops:: wrappers, on seeded random inputs whose sizes hit warp/block tails
// (1, 7, 32, 33, 65, 1000) and with padded leading dimensions. Discrete
// outputs (top-k, integer-valued gemm, scatter-add) must match exactly.
// Runs only where a GPU exists (tests/cuda/require_gpu.cpp exits 77 otherwise).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/memory.hpp"
#include "recblocks/blocks/feed_forward.hpp"
#include "recblocks/blocks/layer_norm.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/ops/activation.hpp"
#include "recblocks/ops/adam_update.hpp"
#include "recblocks/ops/blas1.hpp"
#include "recblocks/ops/dropout.hpp"
#include "recblocks/ops/elementwise.hpp"
#include "recblocks/ops/embedding.hpp"
#include "recblocks/ops/gathered_dot.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/layer_norm.hpp"
#include "recblocks/ops/nearest_centroid.hpp"
#include "recblocks/ops/reduce.hpp"
#include "recblocks/ops/softmax.hpp"
#include "recblocks/ops/top_k.hpp"
#include "recblocks/retrieval/index.hpp"
#include "support/compare.hpp"

namespace {

using namespace recblocks;

// The optional families the Cuda backend provides, and those it does not provide
// yet (docs/backends.md): code that needs a missing one does not compile with it.
static_assert(ops::has_gathered_dot<backend::Cuda, float> && ops::has_gathered_dot<backend::Cuda, double>);
static_assert(ops::has_dropout<backend::Cuda, float> && ops::has_dropout<backend::Cuda, double>);
// A block keeps its tensors in one memory space: in host memory it refuses a device backend at compile time.
static_assert(!HostBackend<backend::Cuda> && HostBackend<backend::Reference>);
template <class Block>
concept serves_on_cuda = requires(Block& b, MatrixView<const float> x, MatrixView<float> y) {
    b.forward_inference(backend::Cuda{}, x, y);
};
static_assert(!serves_on_cuda<blocks::FeedForward<float>> && serves_on_cuda<blocks::FeedForward<float, CudaMemory>>);
static_assert(!ops::has_panel_scores<backend::Cuda, float> && !ops::has_top_k_selection<backend::Cuda>);
static_assert(ops::has_nearest_centroid<backend::Cuda, float> && !ops::has_beam_selection<backend::Cuda, float>);

using rbtest::Tolerance;

const backend::Reference kRef{};
const backend::Cuda kCuda{};

constexpr index_t kSizes[] = {1, 7, 32, 33, 65, 1000};

// ---- host / device matrices with padding -----------------------------------

/// Row-major host matrix with ld = cols + pad; the padding holds a sentinel so
/// writes outside the view are detected.
template <class T>
struct HostMat {
    index_t rows = 0, cols = 0, ld = 0;
    std::vector<T> buf;

    HostMat(index_t r, index_t c, index_t pad = 0, T fill = T(-777))
        : rows(r), cols(c), ld(c + pad), buf(static_cast<std::size_t>(std::max<index_t>(1, r * (c + pad))), fill) {}
    MatrixView<T> view() { return matrix_view(buf.data(), rows, cols, ld); }
    [[nodiscard]] MatrixView<const T> cview() const { return matrix_view<const T>(buf.data(), rows, cols, ld); }
    T& operator()(index_t r, index_t c) { return buf[static_cast<std::size_t>(r * ld + c)]; }
};

/// Fills the view part with uniform values in [lo, hi), or integers in
/// [lo, hi] when `integers`.
template <class T>
void fill(HostMat<T>& m, std::uint64_t seed, double lo = -1.0, double hi = 1.0, bool integers = false) {
    const Rng rng(seed);
    for (index_t r = 0; r < m.rows; ++r)
        for (index_t c = 0; c < m.cols; ++c) {
            const double u = rng.uniform_double(static_cast<std::uint64_t>(r * m.cols + c));
            m(r, c) = integers ? static_cast<T>(std::floor(lo + (hi - lo + 1) * u)) : static_cast<T>(lo + (hi - lo) * u);
        }
}

/// Device copy of a HostMat (same ld, padding included).
template <class T>
struct DevMat {
    index_t rows, cols, ld;
    DeviceBuffer<T> buf;
    explicit DevMat(const HostMat<T>& h)
        : rows(h.rows), cols(h.cols), ld(h.ld), buf(DeviceBuffer<T>::from_host(std::span<const T>(h.buf))) {}
    MatrixView<T> view() { return matrix_view(buf.data(), rows, cols, ld); }
    [[nodiscard]] MatrixView<const T> cview() const { return matrix_view<const T>(buf.data(), rows, cols, ld); }
    [[nodiscard]] HostMat<T> download() const {
        HostMat<T> h(rows, cols, ld - cols);
        buf.copy_to_host(std::span<T>(h.buf));
        return h;
    }
};

/// Contiguous copy of a (possibly padded) view, for rbtest::compare.
template <class T>
Tensor<T, 2> pack(MatrixView<const T> v) {
    Tensor<T, 2> t(Shape<2>{{v.rows(), v.cols()}});
    for (index_t r = 0; r < v.rows(); ++r)
        for (index_t c = 0; c < v.cols(); ++c) t(r, c) = v(r, c);
    return t;
}

/// got == ref element-wise within tol (views only).
template <class T>
void require_close_values(const HostMat<T>& got, const HostMat<T>& ref, Tolerance tol) {
    const Tensor<T, 2> g = pack(got.cview()), r = pack(ref.cview());
    RBTEST_REQUIRE_CLOSE(g.cview(), r.cview(), tol);
}

/// got == ref element-wise within tol, and the padding of `got` untouched
/// (equal to that of `ref`, which the reference never writes either).
template <class T>
void require_close(const HostMat<T>& got, const HostMat<T>& ref, Tolerance tol) {
    require_close_values(got, ref, tol);
    REQUIRE(got.buf.size() == ref.buf.size());
    for (index_t row = 0; row < got.rows; ++row)
        for (index_t c = got.cols; c < got.ld; ++c) {
            const std::size_t i = static_cast<std::size_t>(row * got.ld + c);
            INFO("padding at row " << row << ", column " << c);
            REQUIRE(std::memcmp(&got.buf[i], &ref.buf[i], sizeof(T)) == 0);
        }
}

template <class T>
Tolerance tol() {
    return rbtest::default_tolerance<T>();
}
constexpr Tolerance kExact{0.0, 0.0};

// ---- gemm ------------------------------------------------------------------

struct GemmShape {
    index_t m, n, k;
};
constexpr GemmShape kGemmShapes[] = {{1, 1, 1},    {7, 33, 65},  {33, 7, 1},   {65, 1000, 7},
                                     {1000, 32, 33}, {32, 65, 1000}, {1, 65, 33}, {5, 6, 0}};

template <class T>
void check_gemm(GemmShape s, Trans ta, Trans tb, T alpha, T beta, bool integers, std::uint64_t seed,
                Tolerance tolerance) {
    INFO("M=" << s.m << " N=" << s.n << " K=" << s.k << " ta=" << (ta == Trans::yes) << " tb=" << (tb == Trans::yes)
              << " alpha=" << alpha << " beta=" << beta);
    HostMat<T> a(ta == Trans::yes ? s.k : s.m, ta == Trans::yes ? s.m : s.k, 1);
    HostMat<T> b(tb == Trans::yes ? s.n : s.k, tb == Trans::yes ? s.k : s.n, 2);
    HostMat<T> c(s.m, s.n, 3);
    fill(a, seed, -2, 2, integers);
    fill(b, seed + 1, -2, 2, integers);
    if (beta == T(0)) {  // beta == 0 must not read C: fill it with NaN on both sides
        for (index_t r = 0; r < c.rows; ++r)
            for (index_t j = 0; j < c.cols; ++j) c(r, j) = std::numeric_limits<T>::quiet_NaN();
    } else {
        fill(c, seed + 2, -2, 2, integers);
    }
    const DevMat<T> da(a), db(b);
    DevMat<T> dc(c);
    ops::gemm<backend::Reference, T>(kRef, ta, tb, alpha, a.cview(), b.cview(), beta, c.view());
    ops::gemm<backend::Cuda, T>(kCuda, ta, tb, alpha, da.cview(), db.cview(), beta, dc.view());
    require_close(dc.download(), c, tolerance);
}

TEMPLATE_TEST_CASE("cuda gemm matches the reference exactly on integer inputs", "[cuda][gemm]", float, double) {
    using T = TestType;
    std::uint64_t seed = 100;
    for (const GemmShape& s : kGemmShapes)
        for (Trans ta : {Trans::no, Trans::yes})
            for (Trans tb : {Trans::no, Trans::yes})
                for (T beta : {T(0), T(-1)}) check_gemm<T>(s, ta, tb, T(2), beta, true, seed++, kExact);
}

TEMPLATE_TEST_CASE("cuda gemm matches the reference on random inputs", "[cuda][gemm]", float, double) {
    using T = TestType;
    const Tolerance t = std::is_same_v<T, float> ? Tolerance{1e-3, 1e-4} : Tolerance{1e-11, 1e-11};
    std::uint64_t seed = 300;
    for (const GemmShape& s : kGemmShapes)
        for (Trans ta : {Trans::no, Trans::yes})
            for (Trans tb : {Trans::no, Trans::yes}) check_gemm<T>(s, ta, tb, T(0.75), T(0.5), false, seed++, t);
}

TEMPLATE_TEST_CASE("cuda gemm_batched matches the reference exactly on integer inputs", "[cuda][gemm]", float,
                   double) {
    using T = TestType;
    const index_t batch = 3;
    std::uint64_t seed = 500;
    for (const GemmShape& s : {GemmShape{1, 1, 1}, GemmShape{7, 33, 65}, GemmShape{33, 1, 7}, GemmShape{4, 5, 0}})
        for (Trans ta : {Trans::no, Trans::yes})
            for (Trans tb : {Trans::no, Trans::yes}) {
                INFO("M=" << s.m << " N=" << s.n << " K=" << s.k << " ta=" << (ta == Trans::yes)
                          << " tb=" << (tb == Trans::yes));
                // Each operand: `batch` matrices [rows, cols] with ld = cols + 1, one
                // gap row between consecutive matrices (batch stride (rows + 1) * ld)
                // and one after the last: gaps must stay untouched.
                const auto make = [&](index_t rows, index_t cols, std::uint64_t sd) {
                    HostMat<T> h(batch * (rows + 1) + 1, cols, 1);
                    fill(h, sd, -2, 2, true);
                    return h;
                };
                const index_t ar = ta == Trans::yes ? s.k : s.m, ac = ta == Trans::yes ? s.m : s.k;
                const index_t br = tb == Trans::yes ? s.n : s.k, bc = tb == Trans::yes ? s.k : s.n;
                HostMat<T> a = make(ar, ac, seed++), b = make(br, bc, seed++), c = make(s.m, s.n, seed++);
                const auto view3 = [&](auto* data, index_t rows, index_t cols, index_t ld) {
                    using E = std::remove_pointer_t<decltype(data)>;
                    return TensorView<E, 3>(data, Shape<3>{{batch, rows, cols}}, {(rows + 1) * ld, ld, 1});
                };
                DevMat<T> da(a), db(b), dc(c);
                ops::gemm_batched<backend::Reference, T>(kRef, ta, tb, T(1),
                                                         view3(static_cast<const T*>(a.buf.data()), ar, ac, a.ld),
                                                         view3(static_cast<const T*>(b.buf.data()), br, bc, b.ld),
                                                         T(-1), view3(c.buf.data(), s.m, s.n, c.ld));
                ops::gemm_batched<backend::Cuda, T>(kCuda, ta, tb, T(1),
                                                    view3(static_cast<const T*>(da.buf.data()), ar, ac, da.ld),
                                                    view3(static_cast<const T*>(db.buf.data()), br, bc, db.ld), T(-1),
                                                    view3(dc.buf.data(), s.m, s.n, dc.ld));
                const HostMat<T> got = dc.download();
                REQUIRE(got.buf == c.buf);  // exact, padding and gap rows included
            }
}

// ---- blas1 -----------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda dot and axpy match the reference", "[cuda][blas1]", float, double) {
    using T = TestType;
    for (index_t n : {index_t{1}, index_t{7}, index_t{32}, index_t{33}, index_t{65}, index_t{1000}, index_t{100003}}) {
        INFO("n = " << n);
        HostMat<T> x(1, n), y(1, n);
        fill(x, 11 + static_cast<std::uint64_t>(n));
        fill(y, 12 + static_cast<std::uint64_t>(n));
        const DevMat<T> dx(x);
        DevMat<T> dy(y);
        const VectorView<const T> hx = vector_view<const T>(x.buf.data(), n), hy = vector_view<const T>(y.buf.data(), n);
        const VectorView<const T> gx = vector_view<const T>(dx.buf.data(), n),
                                  gy = vector_view<const T>(dy.buf.data(), n);
        const T ref = ops::dot(kRef, hx, hy);
        const T got = ops::dot(kCuda, gx, gy);
        const Tolerance t = tol<T>();
        REQUIRE(std::fabs(double(got) - double(ref)) <= t.atol * double(n) + t.rtol * std::fabs(double(ref)));

        ops::axpy<backend::Reference, T>(kRef, T(-0.375), hx, vector_view(y.buf.data(), n));
        ops::axpy<backend::Cuda, T>(kCuda, T(-0.375), gx, vector_view(dy.buf.data(), n));
        require_close(dy.download(), y, tol<T>());
    }
}

// ---- element-wise glue -------------------------------------------------------

TEMPLATE_TEST_CASE("cuda add and copy match the reference on padded rows, in place and apart", "[cuda][elementwise]",
                   float, double) {
    using T = TestType;
    for (index_t rows : kSizes)
        for (index_t cols : kSizes) {
            INFO("rows = " << rows << " cols = " << cols);
            HostMat<T> a(rows, cols, 1), b(rows, cols, 2), out(rows, cols, 3), dst(rows, cols, 1);
            fill(a, 31);
            fill(b, 32);
            const DevMat<T> da(a), db(b);
            DevMat<T> dout(out), ddst(dst), dacc(a);
            ops::add<backend::Reference, T>(kRef, a.cview(), b.cview(), out.view());
            ops::add<backend::Cuda, T>(kCuda, da.cview(), db.cview(), dout.view());
            require_close(dout.download(), out, kExact);
            ops::add<backend::Cuda, T>(kCuda, dacc.cview(), db.cview(), dacc.view());  // in place: a += b
            require_close_values(dacc.download(), out, kExact);
            ops::copy<backend::Reference, T>(kRef, a.cview(), dst.view());
            ops::copy<backend::Cuda, T>(kCuda, da.cview(), ddst.view());
            require_close(ddst.download(), dst, kExact);
        }
}

TEMPLATE_TEST_CASE("cuda fused adam_update matches the reference", "[cuda][optim]", float, double) {
    using T = TestType;
    for (index_t n : {index_t{1}, index_t{33}, index_t{1000}, index_t{100003}}) {
        INFO("n = " << n);
        HostMat<T> w(1, n), g(1, n), m(1, n), v(1, n);
        fill(w, 41);
        fill(g, 42);
        fill(m, 43, -0.01, 0.01);
        fill(v, 44, 0.0, 1e-4);
        const DevMat<T> dg(g);
        DevMat<T> dw(w), dm(m), dv(v);
        AdamUpdate<T> u{T(0.003), T(0.9), T(0.98), T(1e-8), T(1.25)};
        u.l2 = T(0.1);
        const auto vec = [n](auto& mat) { return vector_view(mat.buf.data(), n); };
        ops::adam_update<backend::Reference, T>(kRef, u, vec(w), vector_view<const T>(g.buf.data(), n), vec(m), vec(v));
        ops::adam_update<backend::Cuda, T>(kCuda, u, vec(dw), vector_view<const T>(dg.buf.data(), n), vec(dm), vec(dv));
        require_close(dw.download(), w, tol<T>());
        require_close(dm.download(), m, tol<T>());
        require_close(dv.download(), v, tol<T>());
    }
}

TEMPLATE_TEST_CASE("cuda dropout drops exactly the elements the reference drops", "[cuda][dropout]", float, double) {
    using T = TestType;
    for (index_t n : {index_t{1}, index_t{3}, index_t{33}, index_t{1000}, index_t{100003}})
        for (index_t first : {index_t{0}, index_t{1}, index_t{6}, index_t{1} << 33}) {  // past 2^32 elements too
            INFO("n = " << n << " first = " << first);
            HostMat<T> x(1, n), want(1, n);
            fill(x, 51);
            DropoutMask mask;
            mask.key0 = 0x1234u;
            mask.key1 = 0xBEEFu;
            mask.stream = (std::uint64_t{7} << 32) | 3u;
            mask.threshold = 1u << 22;  // p = 0.25 of the 24-bit range
            const T scale = T(1) / T(0.75);
            ops::dropout<backend::Reference, T>(kRef, vector_view<const T>(x.buf.data(), n),
                                                vector_view(want.buf.data(), n), first, mask, scale);
            DevMat<T> dx(x), dy(x);
            ops::dropout<backend::Cuda, T>(kCuda, vector_view<const T>(dx.buf.data(), n), vector_view(dy.buf.data(), n),
                                           first, mask, scale);
            require_close(dy.download(), want, kExact);
            ops::dropout<backend::Cuda, T>(kCuda, vector_view<const T>(dx.buf.data(), n), vector_view(dx.buf.data(), n),
                                           first, mask, scale);  // in place
            require_close(dx.download(), want, kExact);
        }
}

TEST_CASE("cuda LayerNorm block keeps its parameters on the GPU and matches the host block", "[cuda][blocks]") {
    constexpr index_t rows = 65, d = 50;
    blocks::LayerNorm<double> host({d, 1e-5});
    blocks::LayerNorm<double, CudaMemory> gpu({d, 1e-5}, memory_of(kCuda));
    cudaPointerAttributes attributes{};
    REQUIRE(cudaPointerGetAttributes(&attributes, gpu.params().weight.data()) == cudaSuccess);
    REQUIRE(attributes.type == cudaMemoryTypeDevice);
    HostMat<double> x(rows, d), dy(rows, d), y(rows, d), dx(rows, d);
    fill(x, 61, -2, 2);
    fill(dy, 62);
    const DevMat<double> gx(x), gdy(dy);
    DevMat<double> gy(y), gdx(dx);
    host.forward(kRef, x.cview(), y.view());
    host.backward(kRef, dy.cview(), dx.view());
    gpu.forward(kCuda, gx.cview(), gy.view());
    gpu.backward(kCuda, gdy.cview(), gdx.view());
    require_close(gy.download(), y, tol<double>());
    require_close(gdx.download(), dx, tol<double>());
    const Vector<double> dgamma = to_host(gpu.grads().weight);
    for (index_t c = 0; c < d; ++c) REQUIRE(dgamma(c) == Approx(host.grads().weight(c)).epsilon(1e-12));
    ParamList<double, CudaMemory> params;
    gpu.append_params("ln.", params);
    zero_grads(params);  // in device memory
    const Vector<double> cleared = to_host(gpu.grads().bias);
    for (index_t c = 0; c < d; ++c) REQUIRE(cleared(c) == 0.0);
}

TEST_CASE("cuda tensors live in pooled device memory and copy to and from the host", "[cuda][memory]") {
    Matrix<float> host(Shape<2>{{33, 65}});
    for (index_t i = 0; i < host.numel(); ++i) host.data()[i] = 0.25f * static_cast<float>(i % 97) - 7.0f;
    auto device = to(kCuda, host);
    static_assert(std::is_same_v<decltype(device), Tensor<float, 2, CudaMemory>>);
    cudaPointerAttributes attributes{};
    REQUIRE(cudaPointerGetAttributes(&attributes, device.data()) == cudaSuccess);
    REQUIRE(attributes.type == cudaMemoryTypeDevice);
    auto twice = make_tensor<float>(kCuda, host.shape());
    ops::add<backend::Cuda, float>(kCuda, device.cview(), device.cview(), twice.view());
    const Matrix<float> back = to_host(twice);
    for (index_t i = 0; i < host.numel(); ++i) REQUIRE(back.data()[i] == 2.0f * host.data()[i]);
    Tensor<float, 2, CudaMemory> copy = device;  // device-to-device, deep
    REQUIRE(copy.data() != device.data());
    const Matrix<float> copied = to_host(copy);
    REQUIRE(std::memcmp(copied.data(), host.data(), sizeof(float) * static_cast<std::size_t>(host.numel())) == 0);
}

// ---- softmax -----------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda softmax_rows matches the reference, with and without mask", "[cuda][softmax]", float,
                   double) {
    using T = TestType;
    for (index_t rows : {index_t{1}, index_t{7}, index_t{65}})
        for (index_t cols : kSizes)
            for (bool masked : {false, true})
                for (bool in_place : {false, true}) {
                    INFO("rows=" << rows << " cols=" << cols << " masked=" << masked << " in_place=" << in_place);
                    const auto seed = static_cast<std::uint64_t>(rows * 10000 + cols);
                    HostMat<T> x(rows, cols, 3);
                    fill(x, seed, -8, 8);
                    HostMat<std::uint8_t> mask(rows, cols, 1, std::uint8_t{7});
                    if (masked) {
                        fill(mask, seed + 1, 0, 2, true);  // {0, 1, 2}: about a third dropped
                        for (index_t c = 0; c < cols; ++c) mask(0, c) = 0;  // row 0 fully masked -> zeros
                    }
                    const MatrixView<const std::uint8_t> hm = masked ? mask.cview() : MatrixView<const std::uint8_t>{};
                    const DevMat<std::uint8_t> dmask(mask);
                    const MatrixView<const std::uint8_t> gm =
                        masked ? dmask.cview() : MatrixView<const std::uint8_t>{};

                    HostMat<T> y = in_place ? x : HostMat<T>(rows, cols, 2);
                    DevMat<T> dx(x), dy(y);
                    ops::softmax_rows<backend::Reference, T>(kRef, x.cview(), in_place ? x.view() : y.view(), hm);
                    if (in_place) {
                        ops::softmax_rows<backend::Cuda, T>(kCuda, dx.cview(), dx.view(), gm);
                        require_close(dx.download(), x, tol<T>());
                    } else {
                        ops::softmax_rows<backend::Cuda, T>(kCuda, dx.cview(), dy.view(), gm);
                        require_close(dy.download(), y, tol<T>());
                    }
                }
}

TEMPLATE_TEST_CASE("cuda softmax_rows_backward matches the reference", "[cuda][softmax]", float, double) {
    using T = TestType;
    for (index_t rows : {index_t{1}, index_t{33}})
        for (index_t cols : kSizes) {
            INFO("rows=" << rows << " cols=" << cols);
            HostMat<T> x(rows, cols), y(rows, cols, 1), g(rows, cols, 2), dx(rows, cols, 1);
            fill(x, 21, -4, 4);
            fill(g, 22);
            ops::softmax_rows<backend::Reference, T>(kRef, x.cview(), y.view());
            const DevMat<T> dy(y), dg(g);
            DevMat<T> ddx(dx);
            ops::softmax_rows_backward<backend::Reference, T>(kRef, y.cview(), g.cview(), dx.view());
            ops::softmax_rows_backward<backend::Cuda, T>(kCuda, dy.cview(), dg.cview(), ddx.view());
            require_close(ddx.download(), dx, tol<T>());
        }
}

// Row widths on both sides of every warp-kernel class (32 * {2, 4, 8, 16, 32}
// columns) and past the last (block kernel), with masks, -inf, fully masked
// rows and in-place calls.
constexpr index_t kRowWidths[] = {2, 63, 64, 129, 200, 256, 257, 511, 513, 1024, 1025, 3001};

TEMPLATE_TEST_CASE("cuda softmax_rows and backward on every row-width class (warp and block kernels)",
                   "[cuda][softmax]", float, double) {
    using T = TestType;
    for (index_t cols : kRowWidths)
        for (index_t rows : {index_t{1}, index_t{9}, index_t{300}}) {
            const auto seed = static_cast<std::uint64_t>(rows * 100003 + cols);
            HostMat<T> x(rows, cols, 5);
            fill(x, seed, -8, 8);
            x(0, 1) = -std::numeric_limits<T>::infinity();
            HostMat<std::uint8_t> mask(rows, cols, 2, std::uint8_t{7});
            fill(mask, seed + 1, 0, 2, true);
            for (index_t c = 0; c < cols; ++c) mask(rows - 1, c) = 0;  // last row fully masked -> zeros
            const DevMat<T> dx(x);
            const DevMat<std::uint8_t> dmask(mask);
            for (bool masked : {false, true}) {
                INFO("rows=" << rows << " cols=" << cols << " masked=" << masked);
                HostMat<T> y(rows, cols, 1);
                DevMat<T> dy(y);
                if (masked) {
                    ops::softmax_rows<backend::Reference, T>(kRef, x.cview(), y.view(), mask.cview());
                    ops::softmax_rows<backend::Cuda, T>(kCuda, dx.cview(), dy.view(), dmask.cview());
                } else {
                    ops::softmax_rows<backend::Reference, T>(kRef, x.cview(), y.view());
                    ops::softmax_rows<backend::Cuda, T>(kCuda, dx.cview(), dy.view());
                }
                require_close(dy.download(), y, tol<T>());
            }
            {  // in place
                INFO("rows=" << rows << " cols=" << cols << " in place");
                HostMat<T> y = x;
                DevMat<T> dxy(x);
                ops::softmax_rows<backend::Reference, T>(kRef, y.cview(), y.view());
                ops::softmax_rows<backend::Cuda, T>(kCuda, dxy.cview(), dxy.view());
                require_close(dxy.download(), y, tol<T>());
            }
            {  // backward, out of place and in place (dx aliases dy)
                INFO("rows=" << rows << " cols=" << cols << " backward");
                HostMat<T> y(rows, cols, 1), g(rows, cols, 3), gx(rows, cols, 1);
                fill(g, seed + 2);
                ops::softmax_rows<backend::Reference, T>(kRef, x.cview(), y.view());
                ops::softmax_rows_backward<backend::Reference, T>(kRef, y.cview(), g.cview(), gx.view());
                const DevMat<T> dyv(y), dg(g);
                DevMat<T> dgx(HostMat<T>(rows, cols, 1));
                ops::softmax_rows_backward<backend::Cuda, T>(kCuda, dyv.cview(), dg.cview(), dgx.view());
                require_close(dgx.download(), gx, tol<T>());
                DevMat<T> dg2(g);
                ops::softmax_rows_backward<backend::Cuda, T>(kCuda, dyv.cview(), dg2.cview(), dg2.view());
                require_close_values(dg2.download(), gx, tol<T>());
            }
        }
}

// ---- layer norm --------------------------------------------------------------

/// Forward (with and without saved statistics) and backward (accumulating
/// dgamma/dbeta; then again with dx aliasing dy) against the reference.
template <class T>
void check_layer_norm(index_t rows, index_t d) {
    INFO("rows=" << rows << " D=" << d);
    const auto seed = static_cast<std::uint64_t>(rows * 7919 + d);
    HostMat<T> x(rows, d, 1), gamma(1, d), beta(1, d), y(rows, d, 2), mean(1, rows), rstd(1, rows);
    fill(x, seed, -3, 5);
    fill(gamma, seed + 1, 0.5, 1.5);
    fill(beta, seed + 2);
    const DevMat<T> dxin(x), dgamma_in(gamma), dbeta_in(beta);
    DevMat<T> dy(y), dmean(mean), drstd(rstd);
    const auto vec = [](auto& m) { return vector_view(m.buf.data(), m.cols); };
    const auto dvec = [](auto& m) { return vector_view(m.buf.data(), m.cols); };
    const T eps = T(1e-5);
    ops::layer_norm_forward<backend::Reference, T>(kRef, x.cview(), vec(gamma), vec(beta), eps, y.view(),
                                                   vec(mean), vec(rstd));
    ops::layer_norm_forward<backend::Cuda, T>(
        kCuda, dxin.cview(), vector_view<const T>(dgamma_in.buf.data(), d),
        vector_view<const T>(dbeta_in.buf.data(), d), eps, dy.view(), dvec(dmean), dvec(drstd));
    require_close(dy.download(), y, tol<T>());
    require_close(dmean.download(), mean, tol<T>());
    require_close(drstd.download(), rstd, tol<T>());

    // Without saved statistics (empty views).
    DevMat<T> dy2(HostMat<T>(rows, d, 2));
    ops::layer_norm_forward<backend::Cuda, T>(kCuda, dxin.cview(), vector_view<const T>(dgamma_in.buf.data(), d),
                                              vector_view<const T>(dbeta_in.buf.data(), d), eps, dy2.view());
    require_close(dy2.download(), y, tol<T>());

    // Backward: dgamma/dbeta start non-zero (they accumulate).
    HostMat<T> up(rows, d, 3), dx(rows, d, 1), dgamma(1, d), dbeta(1, d);
    fill(up, seed + 3);
    fill(dgamma, seed + 4);
    fill(dbeta, seed + 5);
    const DevMat<T> dup(up);
    DevMat<T> ddx(dx), ddgamma(dgamma), ddbeta(dbeta);
    ops::layer_norm_backward<backend::Reference, T>(kRef, x.cview(), vec(gamma), vec(mean), vec(rstd),
                                                    up.cview(), dx.view(), vec(dgamma), vec(dbeta));
    ops::layer_norm_backward<backend::Cuda, T>(
        kCuda, dxin.cview(), vector_view<const T>(dgamma_in.buf.data(), d),
        vector_view<const T>(dmean.buf.data(), rows), vector_view<const T>(drstd.buf.data(), rows),
        dup.cview(), ddx.view(), dvec(ddgamma), dvec(ddbeta));
    // The CUDA side used its own mean/rstd (equal within tolerance): loosen a little.
    const Tolerance t = std::is_same_v<T, float> ? Tolerance{2e-5, 1e-4} : tol<T>();
    require_close(ddx.download(), dx, t);
    // dgamma/dbeta add `rows` terms of size ~1 in another order than the reference:
    // in double the absolute rounding difference grows with rows (as for sum_rows).
    const Tolerance tp = std::is_same_v<T, float> ? t : Tolerance{t.atol * double(rows), t.rtol};
    require_close(ddgamma.download(), dgamma, tp);
    require_close(ddbeta.download(), dbeta, tp);

    // dx aliasing dy (in place): the same dx.
    DevMat<T> dio(up);
    DevMat<T> ddgamma2(dgamma), ddbeta2(dbeta);
    ops::layer_norm_backward<backend::Cuda, T>(
        kCuda, dxin.cview(), vector_view<const T>(dgamma_in.buf.data(), d),
        vector_view<const T>(dmean.buf.data(), rows), vector_view<const T>(drstd.buf.data(), rows),
        dio.cview(), dio.view(), dvec(ddgamma2), dvec(ddbeta2));
    require_close_values(dio.download(), dx, t);
}

TEMPLATE_TEST_CASE("cuda layer_norm forward and backward match the reference", "[cuda][layer_norm]", float, double) {
    for (index_t rows : {index_t{1}, index_t{7}, index_t{1000}})
        for (index_t d : kSizes) check_layer_norm<TestType>(rows, d);
}

TEMPLATE_TEST_CASE("cuda layer_norm on every row-width class (warp and block kernels)", "[cuda][layer_norm]", float,
                   double) {
    for (index_t d : kRowWidths)
        for (index_t rows : {index_t{1}, index_t{33}, index_t{4099}}) check_layer_norm<TestType>(rows, d);
}

// ---- activations -------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda activations match the reference", "[cuda][activation]", float, double) {
    using T = TestType;
    for (Activation act : {Activation::relu, Activation::gelu})
        for (index_t rows : {index_t{1}, index_t{65}})
            for (index_t cols : kSizes) {
                INFO("act=" << int(act) << " rows=" << rows << " cols=" << cols);
                HostMat<T> x(rows, cols, 1), y(rows, cols, 2), g(rows, cols), dx(rows, cols, 3);
                fill(x, 31, -6, 6);
                x(0, 0) = T(0);
                fill(g, 32);
                const DevMat<T> dxin(x), dg(g);
                DevMat<T> dy(y), ddx(dx);
                ops::activation_forward<backend::Reference, T>(kRef, act, x.cview(), y.view());
                ops::activation_forward<backend::Cuda, T>(kCuda, act, dxin.cview(), dy.view());
                require_close(dy.download(), y, tol<T>());
                ops::activation_backward<backend::Reference, T>(kRef, act, x.cview(), g.cview(), dx.view());
                ops::activation_backward<backend::Cuda, T>(kCuda, act, dxin.cview(), dg.cview(), ddx.view());
                require_close(ddx.download(), dx, tol<T>());
            }
}

// ---- gather / scatter-add ------------------------------------------------------

std::vector<row_id_t> random_ids(index_t n, index_t range, std::uint64_t seed) {
    const Rng rng(seed);
    std::vector<row_id_t> ids(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i)
        ids[static_cast<std::size_t>(i)] =
            static_cast<row_id_t>(std::floor(rng.uniform_double(static_cast<std::uint64_t>(i)) * double(range)));
    return ids;
}

TEMPLATE_TEST_CASE("cuda gather_rows and scatter_add_rows match the reference", "[cuda][embedding]", float, double) {
    using T = TestType;
    for (index_t n_ids : kSizes)
        for (index_t d : {index_t{1}, index_t{2}, index_t{33}, index_t{64}, index_t{65}, index_t{129}, index_t{1000}})
            for (index_t table_rows : {index_t{1}, index_t{7}, index_t{1000}}) {
                INFO("ids=" << n_ids << " D=" << d << " table rows=" << table_rows);
                const auto seed = static_cast<std::uint64_t>(n_ids * 131 + d * 7 + table_rows);
                HostMat<T> table(table_rows, d, 1);
                fill(table, seed);
                const std::vector<row_id_t> ids = random_ids(n_ids, table_rows, seed + 1);
                const auto dids = DeviceBuffer<row_id_t>::from_host(std::span<const row_id_t>(ids));
                const VectorView<const row_id_t> hv = vector_view(ids.data(), n_ids);
                const VectorView<const row_id_t> gv = vector_view<const row_id_t>(dids.data(), n_ids);

                HostMat<T> out(n_ids, d, 2);
                const DevMat<T> dtable_in(table);
                DevMat<T> dout(out);
                ops::gather_rows<backend::Reference, T>(kRef, table.cview(), hv, out.view());
                ops::gather_rows<backend::Cuda, T>(kCuda, dtable_in.cview(), gv, dout.view());
                require_close(dout.download(), out, kExact);

                // Scatter-add: many repeated ids when table_rows is small; the
                // CUDA result is bit-identical (same additions in the same order).
                HostMat<T> src(n_ids, d, 3);
                fill(src, seed + 2);
                const DevMat<T> dsrc(src);
                DevMat<T> dtable(table);
                ops::scatter_add_rows<backend::Reference, T>(kRef, src.cview(), hv, table.view());
                ops::scatter_add_rows<backend::Cuda, T>(kCuda, dsrc.cview(), gv, dtable.view());
                require_close(dtable.download(), table, kExact);
            }
}

TEMPLATE_TEST_CASE("cuda gather_rows / scatter_add_rows reject bad ids and write nothing", "[cuda][embedding]", float,
                   double) {
    using T = TestType;
    const index_t n = 10, d = 33, rows = 50;
    HostMat<T> table(rows, d);
    fill(table, 41);
    for (row_id_t bad : {row_id_t{-1}, row_id_t{50}, std::numeric_limits<row_id_t>::max()}) {
        INFO("bad id " << bad);
        std::vector<row_id_t> ids = random_ids(n, rows, 42);
        ids[3] = bad;
        ids[7] = -5;  // a later bad id: the first one (index 3) is reported
        const auto dids = DeviceBuffer<row_id_t>::from_host(std::span<const row_id_t>(ids));
        const VectorView<const row_id_t> gv = vector_view<const row_id_t>(dids.data(), n);
        const std::string expected_gather =
            "ops::gather_rows: ids[3] = " + std::to_string(bad) + " is out of range for a table of 50 rows";
        const std::string expected_scatter =
            "ops::scatter_add_rows: ids[3] = " + std::to_string(bad) + " is out of range for a table of 50 rows";

        const DevMat<T> dtable_in(table);
        HostMat<T> out(n, d, 1, T(5));
        DevMat<T> dout(out);
        REQUIRE_THROWS_AS((ops::gather_rows<backend::Cuda, T>(kCuda, dtable_in.cview(), gv, dout.view())), IndexError);
        REQUIRE_THROWS_WITH((ops::gather_rows<backend::Cuda, T>(kCuda, dtable_in.cview(), gv, dout.view())),
                            Catch::Contains(expected_gather));
        REQUIRE(dout.download().buf == out.buf);  // untouched

        HostMat<T> src(n, d);
        fill(src, 43);
        const DevMat<T> dsrc(src);
        DevMat<T> dtable(table);
        REQUIRE_THROWS_AS((ops::scatter_add_rows<backend::Cuda, T>(kCuda, dsrc.cview(), gv, dtable.view())),
                          IndexError);
        REQUIRE_THROWS_WITH((ops::scatter_add_rows<backend::Cuda, T>(kCuda, dsrc.cview(), gv, dtable.view())),
                            Catch::Contains(expected_scatter));
        REQUIRE(dtable.download().buf == table.buf);  // untouched
    }
}

// ---- gathered dot --------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda gathered_dot matches the reference and rejects bad ids", "[cuda][gathered_dot]", float,
                   double) {
    using T = TestType;
    const Tolerance t = std::is_same_v<T, float> ? Tolerance{1e-5, 1e-5} : Tolerance{1e-13, 1e-12};
    for (index_t n_ids : kSizes)
        for (index_t d : {index_t{1}, index_t{33}, index_t{64}, index_t{1000}}) {
            INFO("ids=" << n_ids << " D=" << d);
            const auto seed = static_cast<std::uint64_t>(n_ids * 17 + d);
            HostMat<T> table(97, d, 1), x(1, d), y(1, n_ids), y2(1, n_ids);
            fill(table, seed);
            fill(x, seed + 1);
            const std::vector<row_id_t> ids = random_ids(n_ids, 97, seed + 2);
            const auto dids = DeviceBuffer<row_id_t>::from_host(std::span<const row_id_t>(ids));
            const DevMat<T> dtable(table), dx(x);
            DevMat<T> dy(y);
            ops::gathered_dot<backend::Reference, T>(kRef, table.cview(), vector_view(ids.data(), n_ids),
                                                     vector_view<const T>(x.buf.data(), d), T(0.5),
                                                     vector_view(y.buf.data(), n_ids));
            ops::gathered_dot<backend::Cuda, T>(kCuda, dtable.cview(), vector_view<const row_id_t>(dids.data(), n_ids),
                                                vector_view<const T>(dx.buf.data(), d), T(0.5),
                                                vector_view(dy.buf.data(), n_ids));
            const HostMat<T> got = dy.download();
            require_close(got, y, t);
            ops::gathered_dot<backend::Cuda, T>(kCuda, dtable.cview(), vector_view<const row_id_t>(dids.data(), n_ids),
                                                vector_view<const T>(dx.buf.data(), d), T(0.5),
                                                vector_view(dy.buf.data(), n_ids));
            REQUIRE(dy.download().buf == got.buf);  // the same bits
        }
    const index_t n = 10, d = 33;
    HostMat<T> table(50, d), x(1, d);
    fill(table, 44);
    fill(x, 45);
    std::vector<row_id_t> ids = random_ids(n, 50, 46);
    ids[3] = 50;
    ids[7] = -1;  // a later bad id: the first one (index 3) is reported
    const auto dids = DeviceBuffer<row_id_t>::from_host(std::span<const row_id_t>(ids));
    const DevMat<T> dtable(table), dx(x);
    HostMat<T> y(1, n, 0, T(5));
    DevMat<T> dy(y);
    REQUIRE_THROWS_WITH((ops::gathered_dot<backend::Cuda, T>(kCuda, dtable.cview(),
                                                             vector_view<const row_id_t>(dids.data(), n),
                                                             vector_view<const T>(dx.buf.data(), d), T(1),
                                                             vector_view(dy.buf.data(), n))),
                        Catch::Contains("ops::gathered_dot: ids[3] = 50 is out of range for a table of 50 rows"));
    REQUIRE(dy.download().buf == y.buf);  // untouched
}

// ---- top-k ---------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda top_k_rows matches the reference exactly, ties to the lower index", "[cuda][top_k]", float,
                   double) {
    using T = TestType;
    for (index_t rows : {index_t{1}, index_t{7}, index_t{33}})
        for (index_t n : kSizes)
            for (bool ties : {false, true}) {
                std::vector<index_t> ks{1, std::min<index_t>(n, 7), n};
                if (n == 1000) ks = {1, 10, 100};  // k = N = 1000 is O(k N): covered by n = 65
                for (index_t k : ks) {
                    INFO("rows=" << rows << " N=" << n << " k=" << k << " ties=" << ties);
                    HostMat<T> s(rows, n, 2);
                    // ties: integers in [-3, 3] (many equal values); else uniform.
                    fill(s, static_cast<std::uint64_t>(rows * 1000 + n), ties ? -3 : -1, ties ? 3 : 1, ties);
                    if (n >= 7) {
                        s(0, 2) = std::numeric_limits<T>::infinity();
                        s(0, 5) = -std::numeric_limits<T>::infinity();
                        s(rows - 1, n - 1) = -std::numeric_limits<T>::infinity();
                        s(rows - 1, 0) = T(-0.0);
                        s(rows - 1, 1) = T(0.0);
                    }
                    HostMat<row_id_t> ids(rows, k, 1, row_id_t{-9});
                    HostMat<T> vals(rows, k, 1);
                    const DevMat<T> ds(s);
                    DevMat<row_id_t> dids(ids);
                    DevMat<T> dvals(vals);
                    ops::top_k_rows<backend::Reference, T>(kRef, s.cview(), k, ids.view(), vals.view());
                    ops::top_k_rows<backend::Cuda, T>(kCuda, ds.cview(), k, dids.view(), dvals.view());
                    REQUIRE(dids.download().buf == ids.buf);
                    const HostMat<T> got = dvals.download();
                    REQUIRE(std::memcmp(got.buf.data(), vals.buf.data(), got.buf.size() * sizeof(T)) == 0);
                }
            }
}

TEMPLATE_TEST_CASE("cuda top_k_rows reports the first NaN row as ValueError", "[cuda][top_k]", float, double) {
    using T = TestType;
    HostMat<T> s(9, 40);
    fill(s, 51);
    s(6, 17) = std::numeric_limits<T>::quiet_NaN();
    s(3, 39) = std::numeric_limits<T>::quiet_NaN();
    const DevMat<T> ds(s);
    DevMat<row_id_t> dids(HostMat<row_id_t>(9, 5));
    DevMat<T> dvals(HostMat<T>(9, 5));
    REQUIRE_THROWS_AS((ops::top_k_rows<backend::Cuda, T>(kCuda, ds.cview(), 5, dids.view(), dvals.view())), ValueError);
    REQUIRE_THROWS_WITH((ops::top_k_rows<backend::Cuda, T>(kCuda, ds.cview(), 5, dids.view(), dvals.view())),
                        Catch::Contains("row 3 of scores contains NaN"));
}

/// top_k_rows on [rows, n] against the reference, exactly (ids and value bits).
template <class T>
void check_top_k(index_t rows, index_t n, index_t k, bool ties, std::uint64_t seed) {
    INFO("rows=" << rows << " N=" << n << " k=" << k << " ties=" << ties);
    HostMat<T> s(rows, n, 3);
    fill(s, seed, ties ? -3 : -1, ties ? 3 : 1, ties);
    s(0, n - 1) = std::numeric_limits<T>::infinity();  // the best, in the last segment
    s(rows - 1, n / 2) = -std::numeric_limits<T>::infinity();
    s(rows - 1, 0) = T(-0.0);
    HostMat<row_id_t> ids(rows, k, 1, row_id_t{-9});
    HostMat<T> vals(rows, k, 1);
    const DevMat<T> ds(s);
    DevMat<row_id_t> dids(ids);
    DevMat<T> dvals(vals);
    ops::top_k_rows<backend::Reference, T>(kRef, s.cview(), k, ids.view(), vals.view());
    ops::top_k_rows<backend::Cuda, T>(kCuda, ds.cview(), k, dids.view(), dvals.view());
    REQUIRE(dids.download().buf == ids.buf);
    const HostMat<T> got = dvals.download();
    REQUIRE(std::memcmp(got.buf.data(), vals.buf.data(), got.buf.size() * sizeof(T)) == 0);
}

// Rows longer than one 4096-score segment take the two-stage kernels (k <= 512);
// k = 513 keeps one block per row.
TEMPLATE_TEST_CASE("cuda top_k_rows on long rows (two stages) matches the reference exactly", "[cuda][top_k]", float,
                   double) {
    using T = TestType;
    std::uint64_t seed = 900;
    for (index_t n : {index_t{4097}, index_t{8192}, index_t{100003}})
        for (index_t rows : {index_t{1}, index_t{3}})
            for (index_t k : {index_t{1}, index_t{10}, index_t{300}, index_t{512}, index_t{513}})
                for (bool ties : {false, true}) check_top_k<T>(rows, n, k, ties, seed++);
    check_top_k<T>(1, 1000000, 10, false, seed++);
    check_top_k<T>(2, 1000000, 100, true, seed++);
}

TEST_CASE("cuda top_k_rows on long rows: batches of rows (two stages)", "[cuda][top_k][large]") {
    // 1e6 scores, k = 512: 245 segments * 512 candidates per row, 33 rows per batch.
    check_top_k<float>(34, 1000000, 512, true, 990);
}

TEMPLATE_TEST_CASE("cuda top_k_rows reports the first NaN row of long rows", "[cuda][top_k]", float, double) {
    using T = TestType;
    const index_t rows = 6, n = 20000;
    HostMat<T> s(rows, n);
    fill(s, 52);
    s(4, 3) = std::numeric_limits<T>::quiet_NaN();       // first segment
    s(2, 12345) = std::numeric_limits<T>::quiet_NaN();   // fourth segment
    s(5, n - 1) = std::numeric_limits<T>::quiet_NaN();   // last segment
    const DevMat<T> ds(s);
    DevMat<row_id_t> dids(HostMat<row_id_t>(rows, 10, 0, row_id_t{-9}));
    DevMat<T> dvals(HostMat<T>(rows, 10));
    REQUIRE_THROWS_WITH((ops::top_k_rows<backend::Cuda, T>(kCuda, ds.cview(), 10, dids.view(), dvals.view())),
                        Catch::Contains("row 2 of scores contains NaN"));
    // The rows without NaN were written, those with NaN were not.
    const HostMat<row_id_t> got = dids.download();
    HostMat<row_id_t> ref_ids(rows, 10);
    HostMat<T> ref_vals(rows, 10);
    for (index_t r : {index_t{0}, index_t{1}, index_t{3}}) {
        const auto one = matrix_view<const T>(s.buf.data() + r * s.ld, 1, n, s.ld);
        ops::top_k_rows<backend::Reference, T>(kRef, one, 10, matrix_view(ref_ids.buf.data() + r * 10, 1, 10, 10),
                                               matrix_view(ref_vals.buf.data() + r * 10, 1, 10, 10));
        for (index_t j = 0; j < 10; ++j) REQUIRE(got.buf[static_cast<std::size_t>(r * 10 + j)] == ref_ids(r, j));
    }
    for (index_t r : {index_t{2}, index_t{4}, index_t{5}})
        for (index_t j = 0; j < 10; ++j) REQUIRE(got.buf[static_cast<std::size_t>(r * 10 + j)] == row_id_t{-9});
}

// ---- reductions ------------------------------------------------------------------

TEMPLATE_TEST_CASE("cuda sum, max_value and sum_rows match the reference", "[cuda][reduce]", float, double) {
    using T = TestType;
    for (index_t rows : kSizes)
        for (index_t cols : {index_t{1}, index_t{7}, index_t{33}, index_t{1000}})
            for (index_t pad : {index_t{0}, index_t{3}}) {
                INFO("rows=" << rows << " cols=" << cols << " pad=" << pad);
                HostMat<T> x(rows, cols, pad);
                fill(x, static_cast<std::uint64_t>(rows * 17 + cols), -1, 3);
                const DevMat<T> dx(x);
                const T ref_sum = ops::sum(kRef, x.cview());
                const T got_sum = ops::sum(kCuda, dx.cview());
                const Tolerance t = tol<T>();
                REQUIRE(std::fabs(double(got_sum) - double(ref_sum)) <=
                        t.atol * double(rows * cols) + t.rtol * std::fabs(double(ref_sum)));
                REQUIRE(ops::max_value(kCuda, dx.cview()) == ops::max_value(kRef, x.cview()));

                HostMat<T> out(1, cols), got(1, cols);
                DevMat<T> dout(got);
                ops::sum_rows<backend::Reference, T>(kRef, x.cview(), vector_view(out.buf.data(), cols));
                ops::sum_rows<backend::Cuda, T>(kCuda, dx.cview(), vector_view(dout.buf.data(), cols));
                require_close(dout.download(), out, Tolerance{t.atol * double(rows), t.rtol});
            }
}

TEMPLATE_TEST_CASE("cuda sum, dot and max_value on large inputs (unrolled loads) match and repeat bit for bit",
                   "[cuda][reduce]", float, double) {
    using T = TestType;
    for (index_t rows : {index_t{1}, index_t{1500}})
        for (index_t cols : {index_t{3000007}, index_t{2001}})
            for (index_t pad : {index_t{0}, index_t{3}}) {
                if ((rows == 1) != (cols > 10000)) continue;  // [1, 3000007] and [1500, 2001]
                INFO("rows=" << rows << " cols=" << cols << " pad=" << pad);
                HostMat<T> x(rows, cols, pad);
                fill(x, static_cast<std::uint64_t>(rows + cols + pad), -1, 3);
                x(rows - 1, cols - 1) = T(7.5);  // the maximum, in the unrolled loop's tail
                const DevMat<T> dx(x);
                const double n = double(rows * cols);
                const T ref_sum = ops::sum(kRef, x.cview());
                const T got_sum = ops::sum(kCuda, dx.cview());
                const Tolerance t = tol<T>();
                REQUIRE(std::fabs(double(got_sum) - double(ref_sum)) <= t.atol * n + t.rtol * std::fabs(double(ref_sum)));
                const T again = ops::sum(kCuda, dx.cview());
                REQUIRE(std::memcmp(&again, &got_sum, sizeof(T)) == 0);
                REQUIRE(ops::max_value(kCuda, dx.cview()) == T(7.5));
                if (pad == 0) {
                    const index_t m = rows * cols;
                    const VectorView<const T> hv = vector_view<const T>(x.buf.data(), m);
                    const VectorView<const T> gv = vector_view<const T>(dx.buf.data(), m);
                    const T ref_dot = ops::dot(kRef, hv, hv);
                    const T got_dot = ops::dot(kCuda, gv, gv);
                    REQUIRE(std::fabs(double(got_dot) - double(ref_dot)) <=
                            t.atol * n + t.rtol * std::fabs(double(ref_dot)));
                }
            }
}

TEMPLATE_TEST_CASE("cuda max_value propagates NaN and handles -inf", "[cuda][reduce]", float, double) {
    using T = TestType;
    HostMat<T> x(65, 33, 1);
    fill(x, 61);
    x(40, 20) = std::numeric_limits<T>::quiet_NaN();
    const DevMat<T> dx(x);
    REQUIRE(std::isnan(ops::max_value(kCuda, dx.cview())));

    HostMat<T> m(7, 7, 0, -std::numeric_limits<T>::infinity());
    const DevMat<T> dm(m);
    REQUIRE(ops::max_value(kCuda, dm.cview()) == -std::numeric_limits<T>::infinity());
}

// ---- determinism ---------------------------------------------------------------

TEST_CASE("cuda reductions, layer-norm gradients and scatter-add are bit-reproducible", "[cuda][determinism]") {
    using T = float;
    const index_t rows = 4099, d = 65;
    HostMat<T> x(rows, d), up(rows, d), gamma(1, d, 0, T(1)), src(rows, d);
    fill(x, 81);
    fill(up, 82);
    fill(src, 83);
    const std::vector<row_id_t> ids = random_ids(rows, 5, 84);  // heavy repetition
    const auto dids = DeviceBuffer<row_id_t>::from_host(std::span<const row_id_t>(ids));
    const DevMat<T> dx(x), dup(up), dgamma_in(gamma), dsrc(src);
    const auto run = [&] {
        DevMat<T> y(HostMat<T>(rows, d)), mean(HostMat<T>(1, rows)), rstd(HostMat<T>(1, rows));
        DevMat<T> dxo(HostMat<T>(rows, d)), dg(HostMat<T>(1, d, 0, T(0))), db(HostMat<T>(1, d, 0, T(0)));
        DevMat<T> table(HostMat<T>(5, d, 0, T(0))), colsum(HostMat<T>(1, d));
        const auto v = [](DevMat<T>& m) { return vector_view(m.buf.data(), m.cols); };
        const VectorView<const T> g = vector_view<const T>(dgamma_in.buf.data(), d);
        ops::layer_norm_forward<backend::Cuda, T>(kCuda, dx.cview(), g, g, T(1e-5), y.view(), v(mean), v(rstd));
        ops::layer_norm_backward<backend::Cuda, T>(kCuda, dx.cview(), g, vector_view<const T>(mean.buf.data(), rows),
                                                   vector_view<const T>(rstd.buf.data(), rows), dup.cview(),
                                                   dxo.view(), v(dg), v(db));
        ops::scatter_add_rows<backend::Cuda, T>(kCuda, dsrc.cview(), vector_view<const row_id_t>(dids.data(), rows),
                                                table.view());
        ops::sum_rows<backend::Cuda, T>(kCuda, dx.cview(), v(colsum));
        std::vector<T> all;
        for (const DevMat<T>* m : {&dg, &db, &table, &colsum}) {
            const HostMat<T> h = m->download();
            all.insert(all.end(), h.buf.begin(), h.buf.end());
        }
        all.push_back(ops::sum(kCuda, dx.cview()));
        all.push_back(ops::dot(kCuda, vector_view<const T>(dx.buf.data(), rows * d),
                               vector_view<const T>(dup.buf.data(), rows * d)));
        return all;
    };
    const std::vector<T> first = run(), second = run();
    REQUIRE(first.size() == second.size());
    REQUIRE(std::memcmp(first.data(), second.data(), first.size() * sizeof(T)) == 0);
}

// ---- backend plumbing ------------------------------------------------------------

TEST_CASE("cuda backend: explicit stream and handle, DeviceBuffer copies, errors", "[cuda]") {
    cudaStream_t stream = nullptr;
    RECBLOCKS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cublasHandle_t handle = nullptr;
    RECBLOCKS_CUBLAS_CHECK(cublasCreate(&handle));
    const backend::Cuda be{stream, handle};

    HostMat<float> a(33, 7, 1), b(7, 65), c(33, 65);
    fill(a, 71, -2, 2, true);
    fill(b, 72, -2, 2, true);
    ops::gemm<backend::Reference, float>(kRef, Trans::no, Trans::no, 1.0f, a.cview(), b.cview(), 0.0f, c.view());

    // copy_to_device / copy_to_host with differing leading dimensions.
    DeviceBuffer<float> da(33 * 9), db(7 * 65), dc(33 * 65);
    copy_to_device<float>(a.cview(), da.matrix(33, 7, 9), stream);
    copy_to_device<float>(b.cview(), db.matrix(7, 65), stream);
    ops::gemm<backend::Cuda, float>(be, Trans::no, Trans::no, 1.0f, da.matrix(33, 7, 9), db.matrix(7, 65), 0.0f,
                                    dc.matrix(33, 65));
    HostMat<float> got(33, 65, 4);
    copy_to_host<float>(dc.matrix(33, 65), got.view(), stream);
    require_close_values(got, c, kExact);
    be.synchronize();

    // Errors become BackendError with the call text.
    const auto cuda_fail = [] { RECBLOCKS_CUDA_CHECK(cudaErrorInvalidValue); };
    const auto cublas_fail = [] { RECBLOCKS_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE); };
    REQUIRE_THROWS_AS(cuda_fail(), BackendError);
    REQUIRE_THROWS_WITH(cuda_fail(), Catch::Contains("cudaErrorInvalidValue") && Catch::Contains("cuda_primitives_test.cpp"));
    REQUIRE_THROWS_AS(cublas_fail(), BackendError);
    REQUIRE_THROWS_AS(DeviceBuffer<float>(4).copy_from_host(std::vector<float>(3)), ShapeError);

    RECBLOCKS_CUBLAS_CHECK(cublasDestroy(handle));
    RECBLOCKS_CUDA_CHECK(cudaStreamDestroy(stream));
    REQUIRE(cuda_device_count() > 0);
}

}  // namespace
