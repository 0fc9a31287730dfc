// The nearest-centroid primitives on backend::Cuda against the Reference
// backend through ops::, with duplicated centroids (ties must go to the lower
// index), padded leading dimensions and sizes that hit warp tails. Runs only
// where a GPU exists (tests/cuda/require_gpu.cpp).
#include <catch2/catch.hpp>

#include <cstring>

#include "recblocks/backend/cuda/primitives.hpp"
#include "recblocks/backend/memory.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/ops/gemm.hpp"
#include "recblocks/ops/nearest_centroid.hpp"
#include "support/compare.hpp"

using namespace recblocks;

TEMPLATE_TEST_CASE("cuda nearest centroid matches the Reference", "[cuda][nearest_centroid]", float, double) {
    using T = TestType;
    const backend::Cuda gpu{};
    const backend::Reference ref{};
    for (const index_t n : {index_t{1}, index_t{33}, index_t{1000}})
        for (const index_t k : {index_t{1}, index_t{31}, index_t{256}}) {
            const index_t d = 50;
            Matrix<T> x(Shape<2>{{n, d}}), c(Shape<2>{{k, d}});
            rbtest::fill_uniform(x, 1);
            rbtest::fill_uniform(c, 2);
            if (k > 2) std::memcpy(c.data() + (k - 1) * d, c.data() + d, sizeof(T) * std::size_t(d));  // a tie: 1 and k-1
            Vector<T> norms(Shape<1>{{k}}), xn(Shape<1>{{n}}), dist(Shape<1>{{n}});
            ops::squared_distances(ref, c.cview(), VectorView<const T>{}, norms.view());
            ops::squared_distances(ref, x.cview(), VectorView<const T>(c.data(), Shape<1>{{d}}), dist.view());
            // g = x c^T on the host, then the shifted argmin on both sides (g padded: ld k + 3).
            Matrix<T> g(Shape<2>{{n, k + 3}});
            const auto gv = MatrixView<T>(g.data(), Shape<2>{{n, k}}, {k + 3, 1});
            ops::gemm(ref, Trans::no, Trans::yes, T(1), x.cview(), c.cview(), T(0), gv);
            auto dg = to(gpu, g);
            const auto dn = to(gpu, norms);
            Vector<index_t> arg(Shape<1>{{n}});
            Vector<T> best(Shape<1>{{n}});
            auto darg = to(gpu, arg);
            auto dbest = to(gpu, best);
            ops::shifted_argmin_rows(ref, gv, norms.cview(), arg.view(), best.view());
            ops::shifted_argmin_rows(gpu, MatrixView<T>(dg.data(), Shape<2>{{n, k}}, {k + 3, 1}), dn.cview(), darg.view(),
                                     dbest.view());
            const auto garg = to_host(darg);
            const auto gbest = to_host(dbest);
            for (index_t i = 0; i < n; ++i) {
                INFO("n " << n << " k " << k << " row " << i);
                REQUIRE(garg(i) == arg(i));
                REQUIRE(gbest(i) == Approx(best(i)).epsilon(std::is_same_v<T, float> ? 1e-5 : 1e-12));
            }
            // Distances: to the first centroid, and squared norms.
            const auto dx = to(gpu, x), dc = to(gpu, c);
            auto ddist = to(gpu, dist), dxn = to(gpu, xn);
            ops::squared_distances(gpu, dx.cview(), VectorView<const T>(dc.data(), Shape<1>{{d}}), ddist.view());
            ops::squared_distances(gpu, dx.cview(), VectorView<const T>{}, dxn.view());
            ops::squared_distances(ref, x.cview(), VectorView<const T>{}, xn.view());
            const Vector<T> got_dist = to_host(ddist), got_xn = to_host(dxn);
            RBTEST_REQUIRE_CLOSE(got_dist.cview(), dist.cview(), (rbtest::Tolerance{1e-5, 1e-5}));
            RBTEST_REQUIRE_CLOSE(got_xn.cview(), xn.cview(), (rbtest::Tolerance{1e-5, 1e-5}));
        }
}
