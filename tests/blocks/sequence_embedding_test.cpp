// Dropout and SequenceEmbedding: reproducible masks, gradients against finite
// differences, padding handling, the three positional layouts, bad ids.
#include <catch2/catch.hpp>

#include <cmath>

#include "../support/compare.hpp"
#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/backend/reference/primitives.hpp"
#include "recblocks/blocks/dropout.hpp"
#include "recblocks/blocks/sequence_embedding.hpp"

using namespace recblocks;

TEST_CASE("dropout: same mask on any thread count, right keep rate, backward uses the same mask", "[blocks][dropout]") {
    ThreadPool pool1(1), pool3(3);
    const backend::Cpu<isa::Dispatch> one{&pool1}, three{&pool3};
    const blocks::Dropout drop(0.3, Rng(5));
    Vector<float> x(Shape<1>{{100000}}), y1(x.shape()), y3(x.shape()), g(x.shape());
    std::fill(x.begin(), x.end(), 1.0f);
    drop.forward<float>(one, 7, x.cview(), y1.view());
    drop.forward<float>(three, 7, x.cview(), y3.view());
    REQUIRE(std::equal(y1.begin(), y1.end(), y3.begin()));
    index_t kept = 0;
    for (index_t i = 0; i < x.numel(); ++i) {
        REQUIRE((y1(i) == 0.0f || std::fabs(y1(i) - 1.0f / 0.7f) < 1e-6f));
        REQUIRE((y1(i) != 0.0f) == drop.kept(7, std::uint64_t(i)));
        kept += y1(i) != 0.0f;
    }
    REQUIRE(std::fabs(double(kept) / double(x.numel()) - 0.7) < 0.01);
    drop.backward<float>(three, 7, x.cview(), g.view());
    REQUIRE(std::equal(g.begin(), g.end(), y1.begin()));
    drop.forward<float>(one, 8, x.cview(), y3.view());  // another step, another mask
    REQUIRE_FALSE(std::equal(y1.begin(), y1.end(), y3.begin()));
    REQUIRE_THROWS_AS(blocks::Dropout(1.0, Rng(1)), ValueError);
}

TEST_CASE("dropout: every size and any sub-range give the masks of Rng::u32, on every ISA", "[blocks][dropout]") {
    ThreadPool pool1(1);
    const backend::Cpu<isa::Dispatch> one{&pool1};  // RECBLOCKS_FORCE_ISA picks the ISA
    const blocks::Dropout drop(0.25, Rng(11));
    Vector<double> x(Shape<1>{{300}}), y(x.shape());
    std::fill(x.begin(), x.end(), 1.0);
    for (index_t n : {1, 3, 4, 5, 63, 64, 65, 127, 200, 300}) {
        drop.forward<double>(one, 2, vector_view<const double>(x.data(), n), vector_view(y.data(), n));
        for (index_t i = 0; i < n; ++i) REQUIRE((y(i) != 0.0) == drop.kept(2, std::uint64_t(i)));
    }
    // backward_range on [b, e) of a buffer equals the whole-buffer backward there (lane masks).
    Vector<double> whole(x.shape()), part(x.shape());
    std::fill(whole.begin(), whole.end(), 2.0);
    drop.backward<double>(one, 4, 9, whole.cview(), whole.view());
    for (index_t b : {0, 1, 3, 7, 64, 130})
        for (index_t e : {b + 1, b + 5, b + 64, b + 99, index_t{300}}) {
            if (e > 300) continue;
            std::fill(part.begin(), part.end(), 2.0);
            drop.backward_range<double>(one, 4, 9, b, e, part.data());
            for (index_t i = b; i < e; ++i) REQUIRE(part(i) == whole(i));
            if (b > 0) REQUIRE(part(b - 1) == 2.0);  // outside the range: untouched
        }
}

TEST_CASE("sequence embedding: values, padding and gradients", "[blocks][embedding]") {
    for (auto layout : {blocks::PositionRows::per_slot, blocks::PositionRows::from_one, blocks::PositionRows::from_oldest}) {
        const index_t n = 9, d = 4, len = 5, bsz = 2;
        blocks::SequenceEmbedding<double> emb({.num_items = n, .d_model = d, .max_len = len, .positions = layout}, Rng(3));
        Matrix<row_id_t> ids(Shape<2>{{bsz, len}});
        const row_id_t values[] = {0, 0, 3, 9, 3, 1, 2, 3, 4, 5};
        std::copy(std::begin(values), std::end(values), ids.begin());
        Tensor<double, 3> out(Shape<3>{{bsz, len, d}}), w(out.shape());
        rbtest::fill_uniform(w, 4);
        ThreadPool pool(1);
        const backend::Reference ref{};
        emb.forward(ref, pool, ids.cview(), out.view(), 0, true);
        // Slot 3 of row 0 (two padded slots first): row 3, 4, or 1 counted from the oldest real item.
        const index_t prow = layout == blocks::PositionRows::per_slot ? 3 : layout == blocks::PositionRows::from_one ? 4 : 1;
        for (index_t c = 0; c < d; ++c) {
            REQUIRE(out(0, 0, c) == 0.0);  // padded slot
            REQUIRE(std::fabs(out(0, 3, c) - (emb.params().items(9, c) * 2.0 + emb.params().positions(prow, c))) < 1e-12);
        }
        auto loss = [&] {
            Tensor<double, 3> o(out.shape());
            emb.forward(ref, pool, ids.cview(), o.view(), 0, true);
            double s = 0;
            for (index_t i = 0; i < o.numel(); ++i) s += o.data()[i] * w.data()[i];
            return s;
        };
        emb.zero_grads();
        Tensor<double, 3> g = w;
        emb.backward(ref, pool, ids.cview(), g.view());
        for (auto* pair : {&emb.params().items, &emb.params().positions}) {
            Matrix<double>& grad = pair == &emb.params().items ? emb.grads().items : emb.grads().positions;
            for (index_t i = 0; i < pair->numel(); ++i) {
                const double keep = pair->data()[i];
                pair->data()[i] = keep + 1e-6;
                const double up = loss();
                pair->data()[i] = keep - 1e-6;
                const double down = loss();
                pair->data()[i] = keep;
                const double num = (up - down) / 2e-6;
                // Row 0 of the item table is padding: it never gets a gradient.
                const double want = pair == &emb.params().items && i < d ? 0.0 : num;
                INFO("element " << i);
                REQUIRE(std::fabs(grad.data()[i] - want) < 1e-6);
            }
        }
    }
}

TEST_CASE("sequence embedding: dropout masks are reproducible and bad ids are named", "[blocks][embedding]") {
    blocks::SequenceEmbedding<float> a({.num_items = 100, .d_model = 16, .max_len = 8, .dropout = 0.5}, Rng(9));
    blocks::SequenceEmbedding<float> b({.num_items = 100, .d_model = 16, .max_len = 8, .dropout = 0.5}, Rng(9));
    Matrix<row_id_t> ids(Shape<2>{{3, 8}});
    for (index_t i = 0; i < ids.numel(); ++i) ids.data()[i] = static_cast<row_id_t>(1 + i * 7 % 100);
    Tensor<float, 3> o1(Shape<3>{{3, 8, 16}}), o2(o1.shape()), o3(o1.shape());
    ThreadPool one(1), two(2);
    const backend::Cpu<isa::Dispatch> cpu{};
    a.forward(cpu, one, ids.cview(), o1.view(), 42, true);
    b.forward(cpu, two, ids.cview(), o2.view(), 42, true);
    REQUIRE(std::equal(o1.begin(), o1.end(), o2.begin()));
    a.forward(cpu, one, ids.cview(), o3.view(), 42, false);  // inference: no dropout
    index_t zeros = 0;
    for (float v : o3) zeros += v == 0.0f;
    REQUIRE(zeros == 0);
    ids(1, 2) = 101;
    REQUIRE_THROWS_WITH(a.forward(cpu, one, ids.cview(), o1.view(), 0, false),
                        Catch::Contains("ids[1, 2] = 101 is outside [0, 100]"));
    Matrix<row_id_t> short_ids(Shape<2>{{3, 7}});
    REQUIRE_THROWS_AS(a.forward(cpu, one, short_ids.cview(), o1.view(), 0, false), ShapeError);
}

TEST_CASE("sequence embedding: from_oldest positions count from each row's oldest real item", "[blocks][embedding]") {
    const index_t n = 20, d = 3, len = 6, bsz = 5;
    blocks::SequenceEmbedding<double> emb({.num_items = n, .d_model = d, .max_len = len, .scale_by_sqrt_d = false,
                                         .positions = blocks::PositionRows::from_oldest},
                                        Rng(8));
    REQUIRE(emb.params().positions.extent(0) == len);  // no padding row
    // Full, left-padded, a single item, all padding, and a gap (a padded slot after the oldest real item).
    const row_id_t values[] = {1, 2, 3, 4, 5, 6,  0, 0, 7, 8, 9, 10,  0, 0, 0, 0, 0, 11,
                               0, 0, 0, 0, 0, 0,  0, 12, 0, 13, 14, 15};
    Matrix<row_id_t> ids(Shape<2>{{bsz, len}});
    std::copy(std::begin(values), std::end(values), ids.begin());
    Tensor<double, 3> out(Shape<3>{{bsz, len, d}});
    ThreadPool pool(1);
    for (int which = 0; which < 2; ++which) {
        const backend::Reference ref{};
        const backend::Cpu<isa::Dispatch> cpu{&pool};
        if (which == 0) emb.forward(ref, pool, ids.cview(), out.view(), 0, false);
        else emb.forward(cpu, pool, ids.cview(), out.view(), 0, false);
        for (index_t b = 0; b < bsz; ++b) {
            index_t first = -1;  // literal: the slot of the row's first nonzero id
            for (index_t t = 0; t < len && first < 0; ++t)
                if (ids(b, t) != 0) first = t;
            for (index_t t = 0; t < len; ++t)
                for (index_t c = 0; c < d; ++c) {
                    const double want = ids(b, t) == 0 ? 0.0
                                                       : emb.params().items(ids(b, t), c) + emb.params().positions(t - first, c);
                    INFO("backend " << which << " row " << b << " slot " << t);
                    REQUIRE(out(b, t, c) == want);
                }
        }
    }
    // Appending an event (the window shifts left by one) keeps every older item's input row.
    Matrix<row_id_t> before(Shape<2>{{1, len}}), after(before.shape());
    const row_id_t b0[] = {0, 0, 0, 4, 5, 6}, a0[] = {0, 0, 4, 5, 6, 7};
    std::copy(std::begin(b0), std::end(b0), before.begin());
    std::copy(std::begin(a0), std::end(a0), after.begin());
    Tensor<double, 3> ob(Shape<3>{{1, len, d}}), oa(ob.shape());
    emb.forward(backend::Reference{}, pool, before.cview(), ob.view(), 0, false);
    emb.forward(backend::Reference{}, pool, after.cview(), oa.view(), 0, false);
    for (index_t t = 3; t < len; ++t)
        for (index_t c = 0; c < d; ++c) REQUIRE(oa(0, t - 1, c) == ob(0, t, c));
}
