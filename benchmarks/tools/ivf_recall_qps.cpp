// Recall-QPS sweep of retrieval::IvfIndex (and the exact indexes) on the data
// of benchmarks/peers/make_mips_data.py, the C++ side of
// benchmarks/peers/run_ivf_bars.sh (FAISS: benchmarks/peers/faiss_ivf_peers.py).
//
//   recblocks_ivf_recall_qps --data DIR --d 64 [--n 1000000] [--threads 1] [--codes pq4|int8]
//                            [--cache FILE] [--exact] [--filters] [--quick]
//
// k = 10; recall@10 against the data's exact ground truth. Batch 1 (one query
// per call over the first 200 queries) and batch 256 (all 1,000 queries, 256
// per call); the median of 3 passes. The index is built on `--build_threads`
// threads (default 1) and cached in --cache (save_ivf_index) when given.
// Prints one JSON object per line, as the FAISS script does.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "recblocks/backend/cpu/primitives.hpp"
#include "recblocks/retrieval/exact_index.hpp"
#include "recblocks/retrieval/ivf_index.hpp"

namespace rb = recblocks;
namespace rt = rb::retrieval;
using Be = rb::backend::Cpu<rb::isa::Dispatch>;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::string data, cache, codes = "pq4";
    rb::index_t n = 1000000, d = 64;
    int threads = 1, build_threads = 1, repeats = 3;
    bool exact = false, filters = false, quick = false, ivf = true;
};

template <class T>
std::vector<T> read_raw(const std::string& path, std::size_t count) {
    std::vector<T> v(count);
    std::ifstream f(path, std::ios::binary);
    if (!f.read(reinterpret_cast<char*>(v.data()), std::streamsize(count * sizeof(T))))
        throw std::runtime_error("cannot read " + std::to_string(count) + " values from " + path);
    return v;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double recall(const std::vector<rb::row_id_t>& got, const std::vector<std::int32_t>& gt, rb::index_t nq,
              rb::index_t gt_cols, rb::index_t k) {
    std::size_t hits = 0;
    for (rb::index_t b = 0; b < nq; ++b) {
        const std::set<std::int32_t> want(gt.begin() + b * gt_cols, gt.begin() + b * gt_cols + k);
        for (rb::index_t i = 0; i < k; ++i) hits += want.count(got[std::size_t(b * k + i)]);
    }
    return double(hits) / double(nq * k);
}

/// The shared pseudo-random filter of faiss_ivf_peers.py: item i allowed for query b iff
/// splitmix64(((b + 1) * golden) ^ i) / 2^64 < frac.
bool allowed_hash(std::uint64_t b, std::uint64_t i, double frac) {
    std::uint64_t z = ((b + 1) * 0x9E3779B97F4A7C15ull) ^ i;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * (1.0 / 9007199254740992.0) < frac;
}

/// Times `search_all(queries, count)` in batches; returns the median seconds per query.
template <class Fn>
double time_batches(const Args& a, rb::index_t nq, rb::index_t batch, rb::index_t batch1_queries, Fn&& run) {
    std::vector<double> per_query;
    for (int rep = 0; rep < a.repeats; ++rep) {
        const auto t0 = Clock::now();
        rb::index_t done = 0;
        if (batch == 1) {
            for (rb::index_t b = 0; b < batch1_queries; ++b) run(b, 1);
            done = batch1_queries;
        } else {
            for (rb::index_t b = 0; b < nq; b += batch) run(b, std::min(batch, nq - b));
            done = nq;
        }
        per_query.push_back(seconds_since(t0) / double(done));
    }
    return median(per_query);
}

void print_row(const std::string& bench, const std::string& params, rb::index_t batch, int threads, double sec,
               double rec, double build = -1.0) {
    std::printf("{\"bench\": \"%s\", %s\"batch\": %ld, \"threads\": %d, \"seconds_per_query\": %.9g, "
                "\"queries_per_second\": %.6g, \"recall@10\": %.6f",
                bench.c_str(), params.c_str(), long(batch), threads, sec, 1.0 / sec, rec);
    if (build >= 0) std::printf(", \"build_seconds\": %.4g", build);
    std::printf("}\n");
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string s = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error("missing value after " + s);
            return argv[++i];
        };
        if (s == "--data") a.data = next();
        else if (s == "--d") a.d = std::stol(next());
        else if (s == "--n") a.n = std::stol(next());
        else if (s == "--threads") a.threads = std::stoi(next());
        else if (s == "--build_threads") a.build_threads = std::stoi(next());
        else if (s == "--codes") a.codes = next();
        else if (s == "--cache") a.cache = next();
        else if (s == "--repeats") a.repeats = std::stoi(next());
        else if (s == "--exact") a.exact = true;
        else if (s == "--filters") a.filters = true;
        else if (s == "--no_ivf") a.ivf = false;
        else if (s == "--quick") a.quick = true;
        else throw std::runtime_error("unknown argument " + s);
    }
    if (a.quick) a.repeats = 1;
    const rb::index_t n = a.n, d = a.d, nq = 1000, k = 10, gt_cols = 100, batch1 = 200;
    const std::string dir = a.data + "/";
    const auto base = read_raw<float>(dir + "base_" + std::to_string(n) + "x" + std::to_string(d) + ".f32",
                                      std::size_t(n * d));
    const auto queries = read_raw<float>(dir + "queries_1000x" + std::to_string(d) + ".f32", std::size_t(nq * d));
    const auto gt = read_raw<std::int32_t>(
        dir + "gt_1000x100_" + std::to_string(n) + "x" + std::to_string(d) + ".i32", std::size_t(nq * gt_cols));
    rb::ThreadPool pool(std::size_t(a.threads)), build_pool(std::size_t(a.build_threads));
    const Be be{&pool}, build_be{&build_pool};
    const auto items = rb::matrix_view<const float>(base.data(), n, d);
    const auto qv = rb::matrix_view<const float>(queries.data(), nq, d);
    std::printf("{\"bench\": \"data\", \"n\": %ld, \"d\": %ld, \"queries\": %ld, \"threads\": %d, \"isa\": \"%s\"}\n",
                long(n), long(d), long(nq), a.threads, std::string(rb::isa_name(rb::active_isa())).c_str());
    std::vector<rb::row_id_t> ids(std::size_t(nq * k));
    std::vector<float> scores(std::size_t(nq * k));

    if (a.exact) {
        auto exact_rows = [&](const auto& index, const char* name) {
            for (rb::index_t batch : {rb::index_t(1), rb::index_t(256)}) {
                auto run = [&](rb::index_t b0, rb::index_t nb) {
                    index.search_batch(be, qv.slice_rows(b0, b0 + nb), k,
                                       rb::matrix_view(ids.data() + b0 * k, nb, k),
                                       rb::matrix_view(scores.data() + b0 * k, nb, k));
                };
                const rb::index_t eq = 256;  // as the FAISS script: 256 queries for the exact scans
                run(0, eq);  // warm-up, results for recall
                const double rec = recall(ids, gt, eq, gt_cols, k);
                print_row(name, "", batch, a.threads, time_batches(a, eq, batch, batch1, run), rec);
            }
        };
        exact_rows(rt::ExactIndex<float>(items), "exact_f32");
        exact_rows(rt::ExactIndex<rb::bf16>(items), "exact_bf16");
        exact_rows(rt::ExactIndex<std::int8_t>(items), "exact_int8");
    }

    if (!a.ivf) return 0;
    const rt::IvfConfig cfg{.codes = a.codes == "int8" ? rt::IvfCodes::int8 : rt::IvfCodes::pq4};
    double build_sec = -1.0;
    rt::IvfIndex index;
    if (!a.cache.empty() && std::filesystem::exists(a.cache)) {
        index = rt::load_ivf_index(a.cache);
        if (std::filesystem::exists(a.cache + ".build_seconds")) std::ifstream(a.cache + ".build_seconds") >> build_sec;
    } else {
        const auto t0 = Clock::now();
        index = rt::IvfIndex(build_be, items, cfg);
        build_sec = seconds_since(t0);
        if (!a.cache.empty()) {
            rt::save_ivf_index(index, a.cache);
            std::ofstream(a.cache + ".build_seconds") << build_sec;
        }
    }
    const std::string name = std::string("ivf_") + (a.codes == "int8" ? "int8" : "pq4");
    auto params_of = [&](rb::index_t np, rb::index_t rr) {
        return "\"nlist\": " + std::to_string(index.nlist()) + ", \"nprobe\": " + std::to_string(np) +
               ", \"rerank\": " + std::to_string(rr) + ", ";
    };
    const std::vector<rb::index_t> nprobes =
        a.quick ? std::vector<rb::index_t>{2, 4, 16} : std::vector<rb::index_t>{1, 2, 3, 4, 6, 8, 12, 16, 32, 64};
    // int8 scores are close to exact: few candidates suffice; pq4 needs more for 0.99.
    const std::vector<rb::index_t> reranks = a.quick                ? std::vector<rb::index_t>{40}
                                             : a.codes == "int8" ? std::vector<rb::index_t>{10, 20, 40}
                                                                 : std::vector<rb::index_t>{20, 40, 80, 160, 320};
    for (rb::index_t np : nprobes)
        for (rb::index_t rr : reranks) {
            index.set_search_params({.nprobe = np, .rerank = rr});
            for (rb::index_t batch : {rb::index_t(1), rb::index_t(256)}) {
                auto run = [&](rb::index_t b0, rb::index_t nb) {
                    index.search_batch(be, qv.slice_rows(b0, b0 + nb), k,
                                       rb::matrix_view(ids.data() + b0 * k, nb, k),
                                       rb::matrix_view(scores.data() + b0 * k, nb, k));
                };
                run(0, nq);
                const double rec = recall(ids, gt, nq, gt_cols, k);
                print_row(name, params_of(np, rr), batch, a.threads, time_batches(a, nq, batch, batch1, run), rec,
                          build_sec);
            }
        }

    if (a.filters) {
        // Per query a pseudo-random allowed set (the same as FAISS's script); exact and IVF, batch 1.
        rt::ExactIndex<float> exact(items);
        const rb::index_t fq = 100;  // filtered queries
        for (double frac : {0.01, 0.1, 0.5}) {
            std::vector<rt::ItemBitset> sets;
            for (rb::index_t b = 0; b < fq; ++b) {
                rt::ItemBitset s(n);
                for (rb::index_t i = 0; i < n; ++i)
                    if (allowed_hash(std::uint64_t(b), std::uint64_t(i), frac)) s.set(rb::row_id_t(i));
                sets.push_back(std::move(s));
            }
            std::vector<std::int32_t> fgt(std::size_t(fq * k));
            auto run_exact = [&](rb::index_t b, rb::index_t) {
                exact.search_filtered(be, rb::vector_view(qv.row(b), d), k, rb::vector_view(ids.data() + b * k, k),
                                      rb::vector_view(scores.data() + b * k, k), sets[std::size_t(b)].view());
            };
            for (rb::index_t b = 0; b < fq; ++b) run_exact(b, 1);
            std::copy_n(ids.begin(), fq * k, fgt.begin());
            const std::string fp = "\"allowed\": " + std::to_string(frac) + ", ";
            print_row("exact_f32_filtered", fp, 1, a.threads, time_batches(a, fq, 1, fq, run_exact), 1.0);
            for (rb::index_t np : {rb::index_t(2), rb::index_t(4), rb::index_t(8), rb::index_t(16), rb::index_t(32)}) {
                index.set_search_params({.nprobe = np, .rerank = 40});
                auto run_ivf = [&](rb::index_t b, rb::index_t) {
                    index.search_filtered(be, rb::vector_view(qv.row(b), d), k, rb::vector_view(ids.data() + b * k, k),
                                          rb::vector_view(scores.data() + b * k, k), sets[std::size_t(b)].view());
                };
                for (rb::index_t b = 0; b < fq; ++b) run_ivf(b, 1);
                const double rec = recall(ids, fgt, fq, k, k);
                print_row(name + "_filtered", fp + params_of(np, 40), 1, a.threads, time_batches(a, fq, 1, fq, run_ivf),
                          rec);
            }
        }
    }
    return 0;
}
