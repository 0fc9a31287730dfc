// IvfIndex (int8 and 4-bit PQ codes) and ExactIndex::search_filtered against
// brute force in double: exact results when every list is probed and every
// candidate re-ranked; recall on clustered data; filters at 1 %, 10 % and
// 50 %; add / remove; save / load and corrupted files; the same results on 1
// and 3 threads and from a batch as from single queries; named errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include "backend/backends.hpp"
#include "recblocks/core/rng.hpp"
#include "recblocks/io/safetensors.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/ivf_index.hpp"
#include "support/temp_dir.hpp"

using namespace recblocks;
using retrieval::IvfCodes;
using retrieval::IvfIndex;

namespace {

struct Table {
    index_t n, d;
    std::vector<float> x;  // [n, d]
    [[nodiscard]] MatrixView<const float> view() const { return matrix_view<const float>(x.data(), n, d); }
    [[nodiscard]] const float* row(index_t r) const { return x.data() + r * d; }
};

/// Clustered data with varied norms (a small version of the benchmark's).
Table clustered(index_t n, index_t d, index_t clusters, std::uint64_t seed) {
    const Rng rng(seed);
    std::vector<float> centres(static_cast<std::size_t>(clusters * d));
    for (index_t i = 0; i < clusters * d; ++i) centres[std::size_t(i)] = float(rng.normal(std::uint64_t(i)));
    Table t{n, d, std::vector<float>(std::size_t(n * d))};
    const Rng pick = rng.substream(1), noise = rng.substream(2), norm = rng.substream(3);
    for (index_t r = 0; r < n; ++r) {
        const index_t c = pick.below(std::uint64_t(r), std::uint32_t(clusters));
        const float s = float(std::exp(0.3 * norm.normal(std::uint64_t(r))));
        for (index_t j = 0; j < d; ++j)
            t.x[std::size_t(r * d + j)] =
                s * (centres[std::size_t(c * d + j)] + 0.5f * float(noise.normal(std::uint64_t(r * d + j))));
    }
    return t;
}

/// Small integers (exact float sums in any order): ties break by id everywhere.
Table integers(index_t n, index_t d, std::uint64_t seed) {
    const Rng rng(seed);
    Table t{n, d, std::vector<float>(std::size_t(n * d))};
    for (index_t i = 0; i < n * d; ++i) t.x[std::size_t(i)] = float(int(rng.below(std::uint64_t(i), 9)) - 4);
    return t;
}

/// The exact top k among ids with keep(id) (score desc, then id asc), scores in double.
template <class Keep>
std::vector<row_id_t> brute(const Table& t, const float* q, index_t k, Keep keep) {
    std::vector<std::pair<double, row_id_t>> all;
    for (index_t r = 0; r < t.n; ++r) {
        if (!keep(row_id_t(r))) continue;
        double s = 0;
        for (index_t j = 0; j < t.d; ++j) s += double(t.row(r)[j]) * q[j];
        all.push_back({-s, row_id_t(r)});
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    std::vector<row_id_t> out;
    for (index_t i = 0; i < k; ++i) out.push_back(all[std::size_t(i)].second);
    return out;
}
std::vector<row_id_t> brute(const Table& t, const float* q, index_t k) {
    return brute(t, q, k, [](row_id_t) { return true; });
}

double overlap(const std::vector<row_id_t>& got, const std::vector<row_id_t>& want) {
    const std::set<row_id_t> w(want.begin(), want.end());
    index_t hits = 0;
    for (row_id_t id : got) hits += w.count(id);
    return double(hits) / double(want.size());
}

template <class Be>
std::vector<row_id_t> search(const Be& be, const IvfIndex& index, const float* q, index_t k,
                             std::span<const row_id_t> exclude = {}) {
    std::vector<row_id_t> ids(static_cast<std::size_t>(k));
    std::vector<float> scores(static_cast<std::size_t>(k));
    index.search(be, vector_view(q, index.dim()), k, vector_view(ids.data(), k), vector_view(scores.data(), k),
                 exclude);
    for (index_t i = 1; i < k; ++i) REQUIRE(scores[std::size_t(i - 1)] >= scores[std::size_t(i)]);
    return ids;
}

}  // namespace

TEST_CASE("IvfIndex: every list probed and every item re-ranked gives the exact top k", "[retrieval][ivf]") {
    for (IvfCodes codes : {IvfCodes::int8, IvfCodes::pq4}) {
        for (index_t d : {7, 16, 33}) {
            const Table t = integers(700, d, std::uint64_t(d));
            const Table q = integers(5, d, 99);
            backend::Reference ref;
            IvfIndex index(backend::Cpu<isa::Dispatch>{&rbtest::pool1()}, t.view(), {.nlist = 9, .codes = codes, .pq_m = codes == IvfCodes::pq4 ? 2 : 0});
            REQUIRE(index.size() == 700);
            index.set_search_params({.nprobe = 9, .rerank = 700});
            rbtest::for_each_cpu_backend([&](const auto& be, const std::string& name) {
                INFO(name << " d=" << d << " codes=" << int(codes));
                for (index_t b = 0; b < q.n; ++b)
                    for (index_t k : {1, 10, 65}) REQUIRE(search(be, index, q.row(b), k) == brute(t, q.row(b), k));
            });
            for (index_t b = 0; b < q.n; ++b) REQUIRE(search(ref, index, q.row(b), 10) == brute(t, q.row(b), 10));
            // rerank far beyond N (a saved file may say anything): the same, with nothing sized by it.
            index.set_search_params({.nprobe = 9, .rerank = index_t{1} << 50});
            for (index_t b = 0; b < q.n; ++b) REQUIRE(search(ref, index, q.row(b), 10) == brute(t, q.row(b), 10));
        }
    }
}

TEST_CASE("IvfIndex: recall on clustered data, batch = single, any thread count", "[retrieval][ivf]") {
    const Table t = clustered(20000, 32, 64, 7);
    const Table q = clustered(64, 32, 64, 8);
    backend::Cpu<isa::Dispatch> be{&rbtest::pool3()};
    for (IvfCodes codes : {IvfCodes::int8, IvfCodes::pq4}) {
        IvfIndex index(be, t.view(), {.codes = codes});
        REQUIRE(index.nlist() == retrieval::ivf_default_nlist(20000));
        index.set_search_params({.nprobe = 24, .rerank = 200});
        const index_t k = 10;
        double recall = 0;
        std::vector<row_id_t> single;
        for (index_t b = 0; b < q.n; ++b) {
            const auto got = search(be, index, q.row(b), k);
            recall += overlap(got, brute(t, q.row(b), k)) / double(q.n);
            single.insert(single.end(), got.begin(), got.end());
        }
        INFO("codes " << int(codes) << " recall@10 " << recall);
        CHECK(recall >= 0.95);
        rbtest::for_each_cpu_backend([&](const auto& cpu, const std::string& name) {
            INFO(name);
            std::vector<row_id_t> ids(static_cast<std::size_t>(q.n * k));
            std::vector<float> scores(ids.size());
            index.search_batch(cpu, q.view(), k, matrix_view(ids.data(), q.n, k), matrix_view(scores.data(), q.n, k));
            REQUIRE(ids == single);
        });
    }
}

TEST_CASE("Filtered search: exact path exact, IVF recall >= 0.95 at 1, 10 and 50 %", "[retrieval][ivf][filter]") {
    const Table t = clustered(20000, 32, 64, 11);
    const Table q = clustered(32, 32, 64, 12);
    backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    retrieval::ExactIndex<float> exact(t.view());
    IvfIndex ivf(be, t.view(), {.codes = IvfCodes::pq4});
    ivf.set_search_params({.nprobe = 24, .rerank = 200});
    const index_t k = 10;
    for (double frac : {0.01, 0.1, 0.5}) {
        double recall = 0;
        for (index_t b = 0; b < q.n; ++b) {
            retrieval::ItemBitset allowed(t.n);
            const Rng rng(std::uint64_t(1000 * frac) + std::uint64_t(b));
            for (index_t i = 0; i < t.n; ++i)
                if (rng.uniform(std::uint64_t(i)) < frac) allowed.set(row_id_t(i));
            const auto keep = [&](row_id_t id) { return allowed.view().allows(id); };
            const auto want = brute(t, q.row(b), k, keep);
            std::vector<row_id_t> ids(static_cast<std::size_t>(k));
            std::vector<float> scores(static_cast<std::size_t>(k));
            exact.search_filtered(be, vector_view(q.row(b), t.d), k, vector_view(ids.data(), k),
                                  vector_view(scores.data(), k), allowed.view());
            REQUIRE(ids == want);
            backend::Reference ref;
            exact.search_filtered(ref, vector_view(q.row(b), t.d), k, vector_view(ids.data(), k),
                                  vector_view(scores.data(), k), allowed.view());
            REQUIRE(ids == want);
            ivf.search_filtered(be, vector_view(q.row(b), t.d), k, vector_view(ids.data(), k),
                                vector_view(scores.data(), k), allowed.view());
            for (row_id_t id : ids) REQUIRE(keep(id));
            recall += overlap(ids, want) / double(q.n);
        }
        INFO("allowed fraction " << frac << " recall@10 " << recall);
        CHECK(recall >= 0.95);
    }
}

TEST_CASE("ExactIndex filtered: gathered and scanned panels mixed, ties by id (f32, bf16)", "[retrieval][filter]") {
    // Small-integer rows: every score is exact in f32 and bf16 and many tie, so the ids must
    // come out in brute force's order (score desc, id asc) across gathered (1-3 allowed rows
    // of a panel) and scanned panels, whichever comes first.
    const Table t = integers(6000, 16, 21);
    const Table q = integers(8, 16, 22);
    backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    backend::Reference ref;
    const retrieval::ExactIndex<float> f32(t.view());
    const retrieval::ExactIndex<bf16> b16(t.view());
    const index_t k = 25;
    for (int pattern = 0; pattern < 3; ++pattern) {
        retrieval::ItemBitset allowed(t.n);
        const Rng rng(std::uint64_t(300 + pattern));
        for (index_t i = 0; i < t.n; ++i) {
            const index_t panel = i / 64;
            // pattern 0: 1 % everywhere; 1: alternating runs of sparse and dense panels; 2: 30 %
            const double frac = pattern == 0 ? 0.01 : pattern == 2 ? 0.3 : (panel / 3) % 2 ? 0.6 : 0.03;
            if (rng.uniform(std::uint64_t(i)) < frac) allowed.set(row_id_t(i));
        }
        const auto keep = [&](row_id_t id) { return allowed.view().allows(id); };
        for (index_t b = 0; b < q.n; ++b) {
            const auto want = brute(t, q.row(b), k, keep);
            std::vector<row_id_t> ids(static_cast<std::size_t>(k));
            std::vector<float> scores(static_cast<std::size_t>(k));
            auto check = [&](const auto& be_, const auto& index) {
                index.search_filtered(be_, vector_view(q.row(b), t.d), k, vector_view(ids.data(), k),
                                      vector_view(scores.data(), k), allowed.view());
                INFO("pattern " << pattern << " query " << b);
                REQUIRE(ids == want);
                for (index_t i = 0; i < k; ++i) {
                    double s = 0;
                    for (index_t j = 0; j < t.d; ++j) s += double(t.row(ids[std::size_t(i)])[j]) * q.row(b)[j];
                    REQUIRE(double(scores[std::size_t(i)]) == s);
                }
            };
            check(be, f32);
            check(ref, f32);
            check(be, b16);
        }
    }
}

TEST_CASE("IvfIndex: add and remove without retraining; exclusions", "[retrieval][ivf]") {
    const Table t = integers(1500, 12, 5);
    const Table q = integers(4, 12, 6);
    backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    for (IvfCodes codes : {IvfCodes::int8, IvfCodes::pq4}) {
        IvfIndex index(be, matrix_view<const float>(t.x.data(), 1000, 12), {.nlist = 8, .codes = codes});
        REQUIRE(index.add(be, matrix_view<const float>(t.x.data() + 1000 * 12, 500, 12)) == 1000);
        REQUIRE(index.size() == 1500);
        std::set<row_id_t> removed;
        for (row_id_t id = 3; id < 1500; id += 7) {
            index.remove(id);
            removed.insert(id);
        }
        REQUIRE_THROWS_AS(index.remove(3), IndexError);
        REQUIRE_THROWS_AS(index.remove(1500), IndexError);
        REQUIRE(index.size() == 1500 - index_t(removed.size()));
        index.set_search_params({.nprobe = 8, .rerank = 1500});
        const std::vector<row_id_t> exclude{0, 1, 2, 10, 11};
        for (index_t b = 0; b < q.n; ++b) {
            const auto keep = [&](row_id_t id) {
                return !removed.count(id) && !std::binary_search(exclude.begin(), exclude.end(), id);
            };
            REQUIRE(search(be, index, q.row(b), 20, exclude) == brute(t, q.row(b), 20, keep));
        }
        // After removing, re-adding a row gets a new id and is found.
        const row_id_t again = index.add(be, matrix_view<const float>(t.row(3), 1, 12));
        REQUIRE(again == 1500);
        REQUIRE(index.contains(again));
        REQUIRE_FALSE(index.contains(3));
    }
}

TEST_CASE("IvfIndex: save / load round trip and corrupted files", "[retrieval][ivf][io]") {
    const Table t = clustered(3000, 16, 16, 21);
    const Table q = clustered(8, 16, 16, 22);
    backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    rbtest::TempDir dir;
    for (IvfCodes codes : {IvfCodes::int8, IvfCodes::pq4}) {
        IvfIndex index(be, t.view(), {.codes = codes});
        index.remove(5);
        index.set_search_params({.nprobe = 3, .rerank = 20});
        const auto path = dir.path / "index.safetensors";
        retrieval::save_ivf_index(index, path);
        const IvfIndex back = retrieval::load_ivf_index(path);
        REQUIRE(back.size() == index.size());
        REQUIRE(back.search_params().nprobe == 3);
        REQUIRE_FALSE(back.contains(5));
        for (index_t b = 0; b < q.n; ++b) REQUIRE(search(be, back, q.row(b), 10) == search(be, index, q.row(b), 10));

        // Truncated: the reader names the file.
        const auto size = std::filesystem::file_size(path);
        const auto cut = dir.path / "cut.safetensors";
        std::filesystem::copy_file(path, cut, std::filesystem::copy_options::overwrite_existing);
        std::filesystem::resize_file(cut, size - 100);
        REQUIRE_THROWS_AS(retrieval::load_ivf_index(cut), FormatError);
        REQUIRE_THROWS_WITH(retrieval::load_ivf_index(cut), Catch::Contains("cut.safetensors"));
    }
    // A safetensors file of another kind.
    const auto foreign = dir.path / "foreign.safetensors";
    io::SafetensorsWriter w;
    std::vector<float> x(4, 1.0f);
    w.add("x", vector_view<const float>(x.data(), 4));
    w.write(foreign);
    REQUIRE_THROWS_AS(retrieval::load_ivf_index(foreign), FormatError);
    REQUIRE_THROWS_WITH(retrieval::load_ivf_index(foreign), Catch::Contains("not a recblocks IVF index"));
    // Not a safetensors file at all.
    const auto junk = dir.path / "junk.safetensors";
    std::ofstream(junk) << "hello";
    REQUIRE_THROWS_AS(retrieval::load_ivf_index(junk), FormatError);
}

TEST_CASE("IvfIndex: bad input gets named errors", "[retrieval][ivf]") {
    const Table t = clustered(500, 8, 4, 31);
    backend::Reference ref;
    backend::Cpu<isa::Dispatch> cpu{&rbtest::pool1()};
    IvfIndex index(cpu, t.view(), {.nlist = 4});
    std::vector<row_id_t> ids(10);
    std::vector<float> scores(10), q(8, 0.5f), q7(7, 0.5f);
    auto run = [&](const std::vector<float>& query, index_t k, std::span<const row_id_t> ex = {}) {
        index.search(ref, vector_view<const float>(query.data(), index_t(query.size())), k,
                     vector_view(ids.data(), k), vector_view(scores.data(), k), ex);
    };
    REQUIRE_THROWS_WITH(run(q, 0), Catch::Contains("k = 0"));
    REQUIRE_THROWS_WITH(run(q7, 10), Catch::Contains("query has 7 entries"));
    const std::vector<row_id_t> bad{4, 2}, out_of_range{600};
    REQUIRE_THROWS_WITH(run(q, 10, bad), Catch::Contains("sorted"));
    REQUIRE_THROWS_WITH(run(q, 10, out_of_range), Catch::Contains("out of range"));
    REQUIRE_THROWS_AS(IvfIndex(cpu, t.view(), {.nlist = 501}), ValueError);
    REQUIRE_THROWS_AS(IvfIndex(cpu, t.view(), {.codes = IvfCodes::pq4, .pq_m = 3}), ValueError);
    REQUIRE_THROWS_AS(index.add(cpu, matrix_view<const float>(q7.data(), 1, 7)), ShapeError);
    retrieval::ItemBitset small(100);
    REQUIRE_THROWS_AS(index.search_filtered(ref, vector_view<const float>(q.data(), 8), 10, vector_view(ids.data(), 10),
                                            vector_view(scores.data(), 10), small.view()),
                      ShapeError);
    static_assert(retrieval::Index<IvfIndex, backend::Cpu<isa::Dispatch>>);
    static_assert(retrieval::Index<IvfIndex, backend::Reference>);
}

TEST_CASE("IvfIndex: concurrent searches from many threads; filtered batch = filtered single", "[retrieval][ivf]") {
    const Table t = clustered(5000, 16, 16, 41);
    const Table q = clustered(40, 16, 16, 42);
    backend::Cpu<isa::Dispatch> be{&rbtest::pool1()};
    const IvfIndex index(be, t.view(), {.codes = IvfCodes::pq4});
    const index_t k = 10;
    std::vector<std::vector<row_id_t>> want;
    for (index_t b = 0; b < q.n; ++b) want.push_back(search(be, index, q.row(b), k));
    // Four threads search the same const index at once, each with its own (serial) backend.
    std::vector<int> ok(4, 0);
    std::vector<std::thread> threads;
    for (int th = 0; th < 4; ++th)
        threads.emplace_back([&, th] {
            backend::Cpu<isa::Dispatch> mine = be.serial();
            int good = 1;
            for (int rep = 0; rep < 5; ++rep)
                for (index_t b = th; b < q.n; b += 2) {
                    std::vector<row_id_t> ids(static_cast<std::size_t>(k));
                    std::vector<float> scores(static_cast<std::size_t>(k));
                    index.search(mine, vector_view(q.row(b), q.d), k, vector_view(ids.data(), k),
                                 vector_view(scores.data(), k));
                    good &= int(ids == want[std::size_t(b)]);
                }
            ok[std::size_t(th)] = good;
        });
    for (auto& th : threads) th.join();
    REQUIRE(ok == std::vector<int>(4, 1));

    // One filter per query in a batch gives what the single filtered searches give.
    std::vector<retrieval::ItemBitset> sets;
    std::vector<retrieval::AllowedItems> views;
    for (index_t b = 0; b < q.n; ++b) {
        sets.emplace_back(t.n);
        for (index_t i = 0; i < t.n; ++i)
            if ((i * 7 + b) % 10 < 3) sets.back().set(row_id_t(i));
    }
    for (const auto& s : sets) views.push_back(s.view());
    std::vector<row_id_t> ids(static_cast<std::size_t>(q.n * k)), one(static_cast<std::size_t>(k));
    std::vector<float> scores(ids.size()), one_s(one.size());
    rbtest::for_each_cpu_backend([&](const auto& cpu, const std::string& name) {
        INFO(name);
        index.search_batch_filtered(cpu, q.view(), k, matrix_view(ids.data(), q.n, k),
                                    matrix_view(scores.data(), q.n, k), views);
        for (index_t b = 0; b < q.n; ++b) {
            index.search_filtered(cpu, vector_view(q.row(b), q.d), k, vector_view(one.data(), k),
                                  vector_view(one_s.data(), k), views[std::size_t(b)]);
            REQUIRE(std::equal(one.begin(), one.end(), ids.begin() + b * k));
            for (row_id_t id : one) REQUIRE(views[std::size_t(b)].allows(id));
        }
    });
}
