// Tests for core/shape.hpp, core/tensor_view.hpp, core/tensor.hpp and
// core/aligned_buffer.hpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "recblocks/core/aligned_buffer.hpp"
#include "recblocks/core/error.hpp"
#include "recblocks/core/shape.hpp"
#include "recblocks/core/tensor.hpp"
#include "recblocks/core/tensor_view.hpp"

using namespace recblocks;

namespace {
bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }
}  // namespace

TEST_CASE("Shape: numel, equality and to_string", "[core][shape]") {
    const Shape<3> s{{4, 50, 64}};
    CHECK(s.numel() == 4 * 50 * 64);
    CHECK(s[0] == 4);
    CHECK(s[1] == 50);
    CHECK(s[2] == 64);
    CHECK(to_string(s) == "[4, 50, 64]");

    CHECK(Shape<1>{{7}}.numel() == 7);
    CHECK(Shape<2>{{3, 0}}.numel() == 0);
    CHECK(Shape<0>{}.numel() == 1);
    CHECK(to_string(Shape<1>{{7}}) == "[7]");
    CHECK(to_string(Shape<2>{{0, 5}}) == "[0, 5]");

    CHECK(s == Shape<3>{{4, 50, 64}});
    CHECK_FALSE(s == Shape<3>{{4, 64, 50}});
    CHECK(s != Shape<3>{{4, 50, 63}});

    Shape<2> m{{2, 3}};
    m[1] = 9;
    CHECK(m == Shape<2>{{2, 9}});

    // CTAD from extents.
    constexpr Shape deduced{index_t{2}, index_t{3}, index_t{5}};
    static_assert(std::is_same_v<std::remove_const_t<decltype(deduced)>, Shape<3>>);
    static_assert(deduced.numel() == 30);
}

TEST_CASE("TensorView: contiguous views have row-major strides", "[core][tensor_view]") {
    std::vector<float> buf(2 * 3 * 4);
    std::iota(buf.begin(), buf.end(), 0.0f);
    TensorView<float, 3> v(buf.data(), Shape<3>{{2, 3, 4}});
    CHECK(v.strides() == std::array<index_t, 3>{12, 4, 1});
    CHECK(v.numel() == 24);
    CHECK(v.extent(1) == 3);
    CHECK(v.rank() == 3);
    CHECK_FALSE(v.empty());
    CHECK(v.is_contiguous());
    CHECK(v.data() == buf.data());
    CHECK(v(0, 0, 0) == 0.0f);
    CHECK(v(1, 2, 3) == 23.0f);
    CHECK(v(1, 0, 2) == 14.0f);
    v(0, 1, 1) = -5.0f;
    CHECK(buf[5] == -5.0f);

    auto vec = vector_view(buf.data(), 5);
    CHECK(vec.size() == 5);
    CHECK(vec.span().size() == 5);
    CHECK(vec.span().data() == buf.data());
    CHECK(vec(4) == 4.0f);

    auto m = matrix_view(buf.data(), 4, 6);
    CHECK(m.rows() == 4);
    CHECK(m.cols() == 6);
    CHECK(m.ld() == 6);
    CHECK(m.is_contiguous());
    CHECK(m(2, 3) == 15.0f);

    TensorView<float, 2> empty(buf.data(), Shape<2>{{0, 6}});
    CHECK(empty.empty());
    CHECK(TensorView<float, 1>().data() == nullptr);
}

TEST_CASE("TensorView: strided matrix_view with leading dimension", "[core][tensor_view]") {
    // A 5 x 8 matrix; view the 3 x 4 block starting at (1, 2).
    std::vector<int> big(5 * 8);
    std::iota(big.begin(), big.end(), 0);
    auto block = matrix_view(big.data() + 1 * 8 + 2, 3, 4, 8);
    CHECK(block.rows() == 3);
    CHECK(block.cols() == 4);
    CHECK(block.ld() == 8);
    CHECK(block.strides() == std::array<index_t, 2>{8, 1});
    CHECK_FALSE(block.is_contiguous());
    CHECK(block.numel() == 12);
    for (index_t r = 0; r < 3; ++r)
        for (index_t c = 0; c < 4; ++c) CHECK(block(r, c) == (r + 1) * 8 + (c + 2));

    // row(r) points to the first element of row r.
    CHECK(block.row(0) == &big[10]);
    CHECK(block.row(2) == &big[26]);
    CHECK(block.row(2)[3] == 29);

    // operator[] gives a rank-1 sub-view of one row.
    auto r1 = block[1];
    static_assert(std::is_same_v<decltype(r1), TensorView<int, 1>>);
    CHECK(r1.size() == 4);
    CHECK(r1.data() == &big[18]);
    CHECK(r1(3) == 21);
    CHECK(r1.is_contiguous());

    // slice_rows keeps ld.
    auto s = block.slice_rows(1, 3);
    CHECK(s.rows() == 2);
    CHECK(s.cols() == 4);
    CHECK(s.ld() == 8);
    CHECK(s(0, 0) == 18);
    CHECK(s(1, 3) == 29);
    auto none = block.slice_rows(2, 2);
    CHECK(none.rows() == 0);
    CHECK(none.empty());

    // A single row of a strided block is contiguous; ld == cols is contiguous.
    CHECK(block.slice_rows(0, 1).is_contiguous());
    CHECK(matrix_view(big.data(), 5, 8, 8).is_contiguous());
    // Writes go through to the underlying storage.
    block(2, 0) = -1;
    CHECK(big[26] == -1);
}

TEST_CASE("TensorView: operator[] on rank 3 and slice_rows of a contiguous tensor", "[core][tensor_view]") {
    std::vector<float> buf(2 * 3 * 4);
    std::iota(buf.begin(), buf.end(), 0.0f);
    TensorView<float, 3> v(buf.data(), Shape<3>{{2, 3, 4}});
    auto m = v[1];
    static_assert(std::is_same_v<decltype(m), TensorView<float, 2>>);
    CHECK(m.shape() == Shape<2>{{3, 4}});
    CHECK(m.ld() == 4);
    CHECK(m(2, 1) == 21.0f);
    CHECK(m[2](1) == 21.0f);

    auto s = v.slice_rows(1, 2);
    CHECK(s.shape() == Shape<3>{{1, 3, 4}});
    CHECK(s.data() == buf.data() + 12);
    CHECK(s.is_contiguous());
    CHECK(s(0, 0, 0) == 12.0f);

    // A rank-3 view with padded rows is not contiguous but its sub-views keep strides.
    std::vector<float> padded(2 * 3 * 6);
    std::iota(padded.begin(), padded.end(), 0.0f);
    TensorView<float, 3> p(padded.data(), Shape<3>{{2, 3, 4}}, {18, 6, 1});
    CHECK_FALSE(p.is_contiguous());
    CHECK(p(1, 2, 3) == 18.0f + 12.0f + 3.0f);
    CHECK(p[1].ld() == 6);
    CHECK(p[1](2, 3) == 33.0f);
}

TEST_CASE("TensorView: mutable converts to const", "[core][tensor_view]") {
    std::vector<double> buf(6, 1.5);
    MatrixView<double> m = matrix_view(buf.data(), 2, 3);
    MatrixView<const double> c = m;
    CHECK(c.data() == buf.data());
    CHECK(c.shape() == m.shape());
    CHECK(c.strides() == m.strides());
    CHECK(c(1, 2) == 1.5);
    static_assert(std::is_convertible_v<MatrixView<double>, MatrixView<const double>>);
    static_assert(!std::is_convertible_v<MatrixView<const double>, MatrixView<double>>);
    static_assert(!std::is_convertible_v<MatrixView<float>, MatrixView<const double>>);
    static_assert(std::is_trivially_copyable_v<MatrixView<float>>);
    static_assert(std::is_same_v<MatrixView<const double>::value_type, double>);
}

TEST_CASE("TensorView: a non-unit last stride is a ShapeError", "[core][tensor_view]") {
    std::vector<float> buf(16);
    CHECK_THROWS_AS((TensorView<float, 2>(buf.data(), Shape<2>{{2, 2}}, {4, 2})), ShapeError);
    CHECK_THROWS_WITH((TensorView<float, 2>(buf.data(), Shape<2>{{2, 2}}, {4, 2})),
                      Catch::Matchers::StartsWith("[recblocks.shape]") &&
                          Catch::Matchers::Contains("got stride 2"));
    CHECK_THROWS_AS((TensorView<float, 1>(buf.data(), Shape<1>{{4}}, {0})), ShapeError);
    CHECK_NOTHROW(TensorView<float, 2>(buf.data(), Shape<2>{{2, 2}}, {4, 1}));
}

TEST_CASE("Tensor: zero-filled, aligned, resizable", "[core][tensor]") {
    Tensor<float, 2> t(Shape<2>{{3, 5}});
    CHECK(t.shape() == Shape<2>{{3, 5}});
    CHECK(t.numel() == 15);
    CHECK(t.extent(0) == 3);
    CHECK(aligned64(t.data()));
    for (float x : t) CHECK(x == 0.0f);
    CHECK(t.end() - t.begin() == 15);

    t(2, 4) = 7.0f;
    t(0, 1) = 3.0f;
    CHECK(t.data()[14] == 7.0f);
    CHECK(t.view()(2, 4) == 7.0f);
    CHECK(t.view().is_contiguous());
    const auto& ct = t;
    CHECK(ct(0, 1) == 3.0f);
    CHECK(ct.cview().data() == t.data());
    MatrixView<const float> cv = ct;
    CHECK(cv(2, 4) == 7.0f);
    MatrixView<float> mv = t;
    mv(1, 1) = 2.0f;
    CHECK(t(1, 1) == 2.0f);

    // resize to another shape: zero-filled, aligned.
    t.resize(Shape<2>{{7, 9}});
    CHECK(t.shape() == Shape<2>{{7, 9}});
    CHECK(aligned64(t.data()));
    for (float x : t) CHECK(x == 0.0f);
    // resize to the same shape also zero-fills.
    t(6, 8) = 1.0f;
    t.resize(Shape<2>{{7, 9}});
    CHECK(t(6, 8) == 0.0f);
    // resize to empty.
    t.resize(Shape<2>{{0, 9}});
    CHECK(t.numel() == 0);
    CHECK(t.begin() == t.end());

    CHECK_THROWS_AS(t.resize(Shape<2>{{-1, 3}}), ShapeError);
    CHECK_THROWS_WITH((Tensor<float, 2>(Shape<2>{{2, -3}})), Catch::Matchers::Contains("[2, -3]"));

    Tensor<std::int8_t, 1> odd(Shape<1>{{3}});  // size not a multiple of 64 bytes
    CHECK(aligned64(odd.data()));
    Tensor<double, 3> d;
    CHECK(d.numel() == 0);
}

TEST_CASE("AlignedBuffer: copy, move, resize", "[core][aligned_buffer]") {
    AlignedBuffer<int> a(10);
    CHECK(a.size() == 10);
    CHECK(aligned64(a.data()));
    for (int x : a) CHECK(x == 0);
    for (index_t i = 0; i < 10; ++i) a[i] = static_cast<int>(i * i);

    AlignedBuffer<int> b(a);  // copy: deep
    CHECK(b.size() == 10);
    CHECK(b.data() != a.data());
    CHECK(aligned64(b.data()));
    b[3] = -1;
    CHECK(a[3] == 9);
    CHECK(b[9] == 81);

    AlignedBuffer<int> c;
    c = a;  // copy assignment
    CHECK(c.size() == 10);
    CHECK(c.data() != a.data());
    CHECK(c[4] == 16);

    int* const pa = a.data();
    AlignedBuffer<int> d(std::move(a));  // move: steals the pointer
    CHECK(d.data() == pa);
    CHECK(d.size() == 10);
    CHECK(a.size() == 0);       // NOLINT(bugprone-use-after-move)
    CHECK(a.data() == nullptr);  // NOLINT(bugprone-use-after-move)

    AlignedBuffer<int> e(3);
    e = std::move(d);  // move assignment
    CHECK(e.data() == pa);
    CHECK(e[5] == 25);

    const AlignedBuffer<int>& alias = e;
    e = alias;  // self-assignment keeps contents
    CHECK(e.size() == 10);
    CHECK(e[7] == 49);

    AlignedBuffer<int> empty;
    AlignedBuffer<int> empty_copy(empty);
    CHECK(empty_copy.size() == 0);
    CHECK(empty_copy.data() == nullptr);

    e.resize(0);
    CHECK(e.size() == 0);
    CHECK(e.data() == nullptr);
    CHECK_THROWS_AS(e.resize(-2), ValueError);
    static_assert(std::is_nothrow_move_constructible_v<AlignedBuffer<float>>);
}

TEST_CASE("AlignedBuffer: the allocation only grows; a smaller or equal size reuses it, zeroed", "[core][aligned_buffer]") {
    AlignedBuffer<float> b(100);
    float* const first = b.data();
    for (auto& v : b) v = 1.0f;
    b.resize(50);  // a smaller batch: same memory, zeroed, size 50
    CHECK(b.data() == first);
    CHECK(b.size() == 50);
    CHECK(b.capacity() == 100);
    for (float v : b) CHECK(v == 0.0f);
    for (auto& v : b) v = 2.0f;
    b.resize(100);  // back up to the largest size so far: still no new allocation, all zero
    CHECK(b.data() == first);
    for (float v : b) CHECK(v == 0.0f);
    b.resize(300);  // beyond it: a new allocation
    CHECK(b.size() == 300);
    CHECK(b.capacity() == 300);
    for (float v : b) CHECK(v == 0.0f);
    AlignedBuffer<float> moved(std::move(b));
    CHECK(moved.capacity() == 300);
    CHECK(b.capacity() == 0);
    moved.resize(0);  // frees
    CHECK(moved.data() == nullptr);
    CHECK(moved.capacity() == 0);
    // A tensor whose batch dimension changes back and forth keeps one allocation.
    Matrix<float> m(Shape<2>{{16, 8}});
    float* const p = m.data();
    m.resize(Shape<2>{{15, 8}});
    m.resize(Shape<2>{{16, 8}});
    CHECK(m.data() == p);
}
