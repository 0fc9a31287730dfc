// indexing_schemes: every item-indexing scheme of recblocks on one catalogue, compared in one
// markdown table: collision rate before resolution, after LC-Rec's Sinkhorn re-coding and after
// TIGER's extra code, and the tokenizer's time. The default catalogue is the bundled Amazon
// "Sports and Outdoors" (S3-Rec files: interactions and item attributes).
//
//   indexing_schemes [--data FILE] [--attributes FILE] [--item_table FILE.safetensors]
//                    [--item_table_tensor NAME] [--k K] [--levels M] [--window W] [--dim D]
//                    [--schemes sequential,collaborative,semantic-rq,random] [--seed S] [--threads T]
//                    [--repeats R] [--dump_vectors FILE] [--quick 1]
//
// Histories are the training part of the leave-one-out split (the last two items of every user
// held out), so no scheme sees a test item's position. Schemes:
//   sequential     P5: ids in order of first appearance, in base K over M digits
//   collaborative  P5: recursive spectral clustering of the co-occurrence graph (window W)
//   semantic-rq    RQ-KMeans (GRID / OneRec) on item vectors: attribute TF-IDF projected to D
//                  (--attributes), or a trained model's item table (--item_table, rows 1..N,
//                  e.g. a SASRec checkpoint's "item_emb.weight")
//   random         independent uniform codes
// Tokenizer time = building the codes from the histories or the item vectors (for semantic-rq,
// the vectors' time is printed separately), the median of --repeats runs (default 1); every run must
// give the same codes. Collision rate = share of items whose tuple another
// item also has. Recall@10 per scheme needs a generator trained per scheme and is not computed here.
// --dump_vectors writes semantic-rq's item vectors (N x D float32, row-major) for the FAISS peer
// (benchmarks/peers/faiss_rq_indexing.py).
//
// ctest-args: --quick 1
#include <recblocks/backend/cpu/primitives.hpp>
#include <recblocks/core/thread_pool.hpp>
#include <recblocks/data/item_attributes.hpp>
#include <recblocks/data/item_vectors.hpp>
#include <recblocks/data/leave_one_out.hpp>
#include <recblocks/indexing/collaborative_indexing.hpp>
#include <recblocks/indexing/item_codes.hpp>
#include <recblocks/indexing/random_indexing.hpp>
#include <recblocks/indexing/semantic_rq_indexing.hpp>
#include <recblocks/indexing/sequential_indexing.hpp>
#include <recblocks/io/safetensors.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/args.hpp"

namespace rb = recblocks;
using rb::index_t;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Builds the codes `repeats` times; returns them and the median time. The codes must be the
/// same every time (every scheme is deterministic at its seed).
template <class Build>
std::pair<rb::indexing::ItemCodes, double> timed(int repeats, Build&& build) {
    std::vector<double> times;
    rb::indexing::ItemCodes codes;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        rb::indexing::ItemCodes next = build();
        times.push_back(seconds_since(t0));
        const auto a = next.ids.codes();
        if (r > 0 && !std::equal(a.data(), a.data() + a.rows() * a.cols(), codes.ids.codes().data()))
            throw rb::ValueError(next.scheme + ": codes differ between two runs at the same seed");
        codes = std::move(next);
    }
    std::sort(times.begin(), times.end());
    return {std::move(codes), times[times.size() / 2]};
}

struct Row {
    std::string scheme, source;
    double seconds = 0;
    rb::tokenizers::CollisionStats before;
    bool sinkhorn = false;
    rb::tokenizers::CollisionStats after_sinkhorn;
    double sinkhorn_seconds = 0;
    std::int32_t extra_code_size = 0;
};

Row evaluate(const rb::indexing::ItemCodes& c, const std::string& source, double seconds) {
    Row r;
    r.scheme = c.scheme;
    r.source = source;
    r.seconds = seconds;
    r.before = c.ids.collisions();
    const auto tiger = rb::indexing::resolve_collisions(c, rb::indexing::Resolution::extra_code);
    if (tiger.after.colliding_items != 0) throw rb::ValueError("the extra code left collisions");
    r.extra_code_size = tiger.ids.codebook_sizes().back();
    if (c.distances || r.before.groups == 0) {
        r.sinkhorn = true;
        const auto t0 = std::chrono::steady_clock::now();
        r.after_sinkhorn = rb::indexing::resolve_collisions(c, rb::indexing::Resolution::sinkhorn).after;
        r.sinkhorn_seconds = seconds_since(t0);
    }
    std::printf("  %-14s %.2f s, collision rate %.4f (%lld groups, largest %lld)%s\n", c.scheme.c_str(), seconds,
                r.before.rate(), static_cast<long long>(r.before.groups), static_cast<long long>(r.before.largest_group),
                r.sinkhorn ? "" : "; no distances, so no Sinkhorn");
    std::fflush(stdout);
    return r;
}

}  // namespace

std::vector<examples::FlagGroup> flag_groups() {
    return {
        {"data",
         {{"data", "data/amazon-sports/Sports_and_Outdoors.txt", "S3-Rec interactions (user item item ...)", "FILE"},
          {"attributes", "(the bundled Sports attributes when --data is not given)", "S3-Rec item2attributes.json",
           "FILE"},
          {"item_table", "", "index a model's item table instead of attribute vectors", "FILE.safetensors"},
          {"item_table_tensor", "item_emb.weight", "the table's tensor in --item_table", "NAME"}}},
        {"indexing",
         {{"k", "(256; 32 with --quick)", "codes per level", "K"},
          {"levels", "3", "code levels M"},
          {"window", "5", "co-occurrence window of the collaborative scheme"},
          {"dim", "64", "width of the attribute vectors"},
          {"schemes", "sequential,collaborative,semantic-rq,random", "which schemes to run", "LIST"},
          {"seed", "1", "every random choice"}}},
        {"run",
         {{"threads", "(every hardware thread)", "worker threads", "N"},
          {"repeats", "1", "timed repetitions per scheme (the median is printed)"},
          {"dump_vectors", "", "write the item vectors indexed", "FILE"},
          {"quick", "0", "small codebooks and few iterations (what CTest runs)", "0|1"}}},
    };
}

const char* kUsage = "usage: indexing_schemes [options]    (docs/generative_retrieval.md, \"Item indexing schemes\")\n";

int main(int argc, char** argv) try {
    const examples::Args a(argc, argv, flag_groups());
    if (a.has("help")) {
        a.print_help(stdout, kUsage);
        return 0;
    }
    const bool quick = a.integer_in("quick", 0, 0, 1) == 1;
    const std::string data = a.str("data", "data/amazon-sports/Sports_and_Outdoors.txt");
    const std::string attributes =
        a.str("attributes", a.has("data") ? "" : "data/amazon-sports/Sports_and_Outdoors_item2attributes.json");
    const index_t k = a.integer_in("k", quick ? 32 : 256, 2, 1 << 20);
    const index_t levels = a.integer_in("levels", 3, 1, 16);
    const index_t window = a.integer_in("window", 5, 1, 1 << 20);
    const index_t dim = a.integer_in("dim", 64, 1, 4096);
    const auto seed = static_cast<std::uint64_t>(a.integer_in("seed", 1, 0, 2147483647));
    const std::string scheme_list = a.str("schemes", "sequential,collaborative,semantic-rq,random");
    std::set<std::string> schemes;
    for (std::size_t b = 0; b <= scheme_list.size();) {
        const std::size_t e = std::min(scheme_list.find(',', b), scheme_list.size());
        const std::string s = scheme_list.substr(b, e - b);
        if (s != "sequential" && s != "collaborative" && s != "semantic-rq" && s != "random")
            throw std::invalid_argument("--schemes: unknown scheme '" + s +
                                        "' (sequential, collaborative, semantic-rq, random)");
        schemes.insert(s);
        b = e + 1;
    }
    const int repeats = static_cast<int>(a.integer_in("repeats", 1, 1, 100));
    const int threads = static_cast<int>(a.integer_in("threads", std::max(1u, std::thread::hardware_concurrency()), 1, 1024));
    rb::ThreadPool pool(threads);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};

    const auto dataset = rb::data::read_sequence_file(data);
    const auto split = rb::data::leave_one_out(dataset);
    const index_t n = dataset.num_items();
    std::printf("%s: %lld users, %lld items, %zu interactions; K = %lld, M = %lld; %d threads\n", data.c_str(),
                static_cast<long long>(dataset.num_users()), static_cast<long long>(n), dataset.num_interactions(),
                static_cast<long long>(k), static_cast<long long>(levels), threads);
    std::vector<Row> rows;
    const rb::indexing::CodeShape shape{k, levels};

    if (schemes.count("sequential")) {
        const auto [c, t] = timed(repeats, [&] { return rb::indexing::sequential_indexing(split.train, n, shape); });
        rows.push_back(evaluate(c, "training histories", t));
    }
    if (schemes.count("collaborative")) {
        const auto edges = rb::indexing::cooccurrence_graph(split.train, n, window).num_edges() / 2;
        rb::indexing::CollaborativeOptions opt;
        opt.shape = shape;
        opt.seed = seed;
        if (quick) {
            opt.power_iterations = 10;
            opt.kmeans_iterations = 5;
        }
        const auto [c, t] = timed(repeats, [&] {  // the graph's time included
            return rb::indexing::collaborative_indexing(be, rb::indexing::cooccurrence_graph(split.train, n, window), opt);
        });
        rows.push_back(evaluate(c, "co-occurrence, window " + std::to_string(window) + " (" + std::to_string(edges) +
                                       " edges)",
                                t));
    }
    if (schemes.count("semantic-rq")) {
        auto t0 = std::chrono::steady_clock::now();
        rb::Matrix<float> x;
        std::string source;
        if (a.has("item_table")) {
            const auto r = rb::io::SafetensorsReader::open(a.str("item_table", ""));
            const auto table = r.load<float, 2>(a.str("item_table_tensor", "item_emb.weight"));
            if (table.extent(0) != n + 1)
                throw rb::ShapeError("--item_table: the table has " + std::to_string(table.extent(0)) +
                                     " rows; the data has " + std::to_string(n) + " items (+ the padding row 0)");
            x = rb::data::item_table_vectors(table.cview(), {true, true});
            source = "item table, " + std::to_string(x.extent(1)) + "-d";
        } else {
            if (attributes.empty())
                throw std::invalid_argument("semantic-rq needs --attributes FILE or --item_table FILE");
            for (std::size_t i = 0; i < dataset.item_ids.size(); ++i)
                if (dataset.item_ids[i] != static_cast<std::int64_t>(i))
                    throw rb::ValueError(data + ": item ids are not 1..N, so the attribute file's ids do not name "
                                                "the dense items");
            const auto attrs = rb::data::read_item_attributes(attributes, n);
            // Items with the same attribute set get the same vector, so the same tuple under any
            // semantic scheme: the share of such items is a floor on its collision rate.
            std::map<std::vector<std::int32_t>, index_t> distinct;
            for (index_t i = 1; i <= n; ++i) {
                auto b = attrs.bags[static_cast<std::size_t>(i)];
                std::sort(b.begin(), b.end());
                b.erase(std::unique(b.begin(), b.end()), b.end());
                ++distinct[b];
            }
            index_t shared = 0;
            for (const auto& [set, count] : distinct) shared += count > 1 ? count : 0;
            x = rb::data::attribute_tfidf_projection(attrs, {dim, seed});
            char floor[64];
            std::snprintf(floor, sizeof floor, "%.4f", double(shared) / double(n));
            source = "attribute TF-IDF -> " + std::to_string(dim) + "-d (" + std::to_string(distinct.size()) +
                     " distinct attribute sets; items sharing theirs: " + floor + ")";
            std::printf("item vectors: %d attribute ids, %zu distinct attribute sets among %lld items (%.4f of the "
                        "items share theirs with another item), %.2f s\n",
                        attrs.num_attributes - 1, distinct.size(), static_cast<long long>(n), double(shared) / double(n),
                        seconds_since(t0));
        }
        if (a.has("dump_vectors")) {
            const std::string path = a.str("dump_vectors", "");
            std::FILE* f = std::fopen(path.c_str(), "wb");
            const auto count = static_cast<std::size_t>(x.numel());
            if (!f || std::fwrite(x.data(), sizeof(float), count, f) != count || std::fclose(f) != 0)
                throw rb::IoError("--dump_vectors: cannot write '" + path + "'");
        }
        rb::indexing::SemanticRqOptions opt;
        opt.shape = shape;
        opt.seed = seed;
        if (quick) opt.kmeans_iterations = 5;
        const auto [c, t] = timed(repeats, [&] { return rb::indexing::semantic_rq_indexing(be, x.cview(), opt); });
        rows.push_back(evaluate(c, source, t));
    }
    if (schemes.count("random")) {
        const auto [c, t] = timed(repeats, [&] { return rb::indexing::random_indexing(n, shape, seed); });
        rows.push_back(evaluate(c, "-", t));
    }

    std::printf("\n| scheme | built from | collision rate | after Sinkhorn (LC-Rec) | after extra code (TIGER) "
                "| extra level size | tokenizer time (s) | Sinkhorn time (s) | Recall@10 |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (const auto& r : rows) {
        char sink[32], sink_s[32];
        if (r.sinkhorn) {
            std::snprintf(sink, sizeof sink, "%.4f", r.after_sinkhorn.rate());
            std::snprintf(sink_s, sizeof sink_s, "%.2f", r.sinkhorn_seconds);
        } else {
            std::snprintf(sink, sizeof sink, "n/a");
            std::snprintf(sink_s, sizeof sink_s, "n/a");
        }
        std::printf("| %s | %s | %.4f | %s | 0 | %d | %.2f | %s | not measured |\n", r.scheme.c_str(), r.source.c_str(),
                    r.before.rate(), sink, r.extra_code_size, r.seconds, sink_s);
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "indexing_schemes: %s\n", e.what());
    return 1;
}
