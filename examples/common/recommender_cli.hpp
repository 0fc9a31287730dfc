#pragma once
// What the next-item command-line programs (sasrec, bert4rec) share: reading
// the dataset flags, the thread pool from --threads, the `recommend` mode's
// top-K output (from model flags, or from a checkpoint that describes
// itself), the final JSON line, and number formatting.
#include <recblocks/recblocks.hpp>
#include <recblocks/serving/described_model.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <limits>
#include <span>
#include <string>
#include <thread>

#include "args.hpp"
#include "memory_budget.hpp"

namespace examples {

namespace rb = recblocks;

/// --dataset FILE with --format user-item|sequences|movielens-csv (default: by
/// extension; sequences = S3-Rec's "user item item ..." lines).
inline rb::data::SequenceDataset read_dataset(const Args& a) {
    const std::string path = a.str("dataset", "");
    if (path.empty()) throw rb::ValueError("--dataset FILE is required");
    std::string format = a.str("format", "");
    if (format.empty()) format = path.size() >= 4 && path.substr(path.size() - 4) == ".csv" ? "movielens-csv" : "user-item";
    if (format == "user-item") return rb::data::read_user_item_file(path);
    if (format == "sequences") return rb::data::read_sequence_file(path);
    if (format == "movielens-csv") return rb::data::read_movielens_csv(path);
    throw rb::ValueError("--format must be user-item, sequences or movielens-csv, got '" + format + "'");
}

/// Upper bounds of the count flags: sizes beyond these are typos, and the
/// memory budget (memory_budget.hpp) judges everything below them.
inline constexpr long long kMaxCount = 2147483647;  // int32: ids, lengths and widths are int32 somewhere
inline constexpr long long kMaxThreads = 1024;

/// --threads T in [0, 1024] (0 or absent: every hardware thread).
inline int thread_count(const Args& a) {
    const int threads = static_cast<int>(a.integer_in("threads", 0, 0, kMaxThreads));
    return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

inline std::string fmt(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

/// The `recommend` mode: the top --k items (default 10) the user of --user has
/// not interacted with, one line each, then a JSON line. `model` has
/// score_all(be, pool, ids [1, L], scores [1, N + 1]).
template <class Model, class Be>
int print_recommendations(const Args& a, const rb::data::SequenceDataset& dataset, Model& model, const Be& be,
                          rb::ThreadPool& pool, rb::index_t max_len) {
    const rb::index_t n_items = dataset.num_items();
    const long long user = a.integer("user", -1);
    const rb::index_t k = a.integer_in("k", 10, 1, kMaxCount);
    if (k < 1 || k > n_items) throw rb::ValueError("--k must be in [1, " + std::to_string(n_items) + "]");
    rb::index_t u = -1;
    for (std::size_t i = 0; i < dataset.user_ids.size(); ++i)
        if (dataset.user_ids[i] == user) u = static_cast<rb::index_t>(i);
    if (u < 0) throw rb::IndexError("--user " + std::to_string(user) + " is not in " + a.str("dataset", ""));
    const auto& hist = dataset.sequences[static_cast<std::size_t>(u)];
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{1, max_len}});
    const std::span<const rb::row_id_t> one[1] = {hist};
    rb::data::left_padded_batch(one, ids.view());
    rb::Matrix<float> scores(rb::Shape<2>{{1, n_items + 1}});
    model.score_all(be, pool, ids.cview(), scores.view());
    for (rb::row_id_t it : hist) scores(0, it) = -std::numeric_limits<float>::infinity();
    rb::Matrix<rb::row_id_t> top(rb::Shape<2>{{1, k}});
    rb::Matrix<float> top_s(top.shape());
    rb::ops::top_k_rows(be, scores.cview(), k, top.view(), top_s.view());
    std::string json = "{\"user\": " + std::to_string(user) + ", \"items\": [";
    for (rb::index_t i = 0; i < k; ++i) {
        const auto item = dataset.item_ids[static_cast<std::size_t>(top(0, i))];
        std::printf("%2lld  item %lld  score %.4f\n", static_cast<long long>(i + 1), static_cast<long long>(item),
                    double(top_s(0, i)));
        json += (i ? ", " : "") + std::to_string(item);
    }
    std::printf("%s]}\n", json.c_str());
    return 0;
}

/// What a checkpoint saved by these programs carries besides the weights: the
/// model's description (metadata) and the data set's item ids ("item_ids").
inline std::map<std::string, std::string> describing_metadata(const rb::models::ModelDescription& d,
                                                              std::uint64_t seed) {
    auto m = rb::models::model_metadata(d);
    m["seed"] = std::to_string(seed);
    return m;
}

/// A model flag given with a checkpoint that describes itself must agree with it.
inline void check_flag_agrees(const Args& a, const std::string& flag, long long file_value, const std::string& file) {
    if (a.has(flag) && a.integer(flag, 0) != file_value)
        throw rb::ValueError("--" + flag + " " + a.str(flag, "") + " contradicts " + file + ", whose model has --" + flag +
                             " " + std::to_string(file_value) + " (leave the flag out: the checkpoint describes its model)");
}
inline void check_flag_agrees(const Args& a, const std::string& flag, const std::string& file_value,
                              const std::string& file) {
    if (a.has(flag) && a.str(flag, "") != file_value)
        throw rb::ValueError("--" + flag + " " + a.str(flag, "") + " contradicts " + file + ", whose model has --" + flag +
                             " " + file_value + " (leave the flag out: the checkpoint describes its model)");
}

/// "1,2,3" -> {1, 2, 3}; ValueError naming --flag otherwise.
inline std::vector<std::int64_t> parse_id_list(const Args& a, const std::string& flag) {
    const std::string s = a.str(flag, "");
    std::vector<std::int64_t> out;
    std::size_t i = 0;
    while (i <= s.size()) {
        const std::size_t j = std::min(s.find(',', i), s.size());
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(s.data() + i, s.data() + j, v);
        if (j == i || ec != std::errc() || end != s.data() + j)
            throw rb::ValueError("--" + flag + ": '" + s.substr(i, j - i) + "' is not an item id");
        out.push_back(v);
        i = j + 1;
    }
    return out;
}

/// The `recommend` mode for a checkpoint that describes itself: the model and
/// its item ids come from the file. The history is --history ID,ID,... (item
/// ids of the data) or the one --user has in --dataset (items the model does
/// not know are skipped, with a warning). Prints the top --k items not in the
/// history, one line each, then {"user": ..., "items": [...], "scores": [...]}.
inline int recommend_described(const Args& a, rb::serving::DescribedModel& m) {
    const std::string file = a.str("load", "");
    const rb::index_t n_items = m.description.num_items(), max_len = m.description.max_len();
    const rb::index_t k = a.integer_in("k", 10, 1, kMaxCount);
    if (k > n_items) throw rb::ValueError("--k must be in [1, " + std::to_string(n_items) + "]");
    std::vector<std::int64_t> source;
    std::string user = "null";
    if (a.has("history")) {
        if (a.has("user") || a.has("dataset")) throw rb::ValueError("--history excludes --user and --dataset");
        source = parse_id_list(a, "history");
    } else {
        if (!a.has("user") || !a.has("dataset"))
            throw rb::ValueError("recommend needs --history ID,ID,... or --user ID with --dataset FILE");
        const auto dataset = read_dataset(a);
        const long long id = a.integer("user", -1);
        rb::index_t u = -1;
        for (std::size_t i = 0; i < dataset.user_ids.size(); ++i)
            if (dataset.user_ids[i] == id) u = static_cast<rb::index_t>(i);
        if (u < 0) throw rb::IndexError("--user " + std::to_string(id) + " is not in " + a.str("dataset", ""));
        for (const rb::row_id_t it : dataset.sequences[static_cast<std::size_t>(u)])
            source.push_back(dataset.item_ids[static_cast<std::size_t>(it)]);
        user = std::to_string(id);
    }
    std::vector<rb::row_id_t> hist;
    std::size_t unknown = 0;
    for (std::size_t i = 0; i < source.size(); ++i) {
        const auto d = m.items.dense(source[i]);
        if (d) hist.push_back(*d);
        else if (a.has("history")) throw rb::ValueError("--history: item " + std::to_string(source[i]) + " is not in " + file);
        else ++unknown;
    }
    if (unknown) std::fprintf(stderr, "warning: %zu items of the user are not in %s; left out\n", unknown, file.c_str());
    if (hist.empty()) throw rb::ValueError("the history has no item the model knows");
    rb::Matrix<rb::row_id_t> ids(rb::Shape<2>{{1, max_len}});
    const std::span<const rb::row_id_t> one[1] = {hist};
    rb::data::left_padded_batch(one, ids.view());
    rb::Matrix<float> scores(rb::Shape<2>{{1, n_items + 1}});
    m.scorer->score_all(ids.cview(), scores.view());
    for (const rb::row_id_t it : hist) scores(0, it) = -std::numeric_limits<float>::infinity();
    rb::Matrix<rb::row_id_t> top(rb::Shape<2>{{1, k}});
    rb::Matrix<float> top_s(top.shape());
    m.scorer->top_k(scores.cview(), k, top.view(), top_s.view());
    std::string items = "", values = "";
    for (rb::index_t i = 0; i < k && top_s(0, i) > -std::numeric_limits<float>::infinity(); ++i) {
        const auto item = m.items.original(top(0, i));
        std::printf("%2lld  item %lld  score %.4f\n", static_cast<long long>(i + 1), static_cast<long long>(item),
                    double(top_s(0, i)));
        items += (i ? ", " : "") + std::to_string(item);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.9g", i ? ", " : "", double(top_s(0, i)));
        values += buf;
    }
    std::printf("{\"user\": %s, \"items\": [%s], \"scores\": [%s]}\n", user.c_str(), items.c_str(), values.c_str());
    return 0;
}

/// The last line of a training run: one JSON object with the test metrics.
inline void print_final_json(const char* model, const std::string& protocol, const rb::eval::MetricsAccumulator& m,
                             std::int64_t epochs, double train_sequences_per_second, int threads) {
    std::printf("{\"model\": \"%s\", \"protocol\": \"%s\", \"users\": %lld, \"HR@10\": %.6f, \"NDCG@10\": %.6f, "
                "\"MRR@10\": %.6f, \"epochs\": %lld, \"train_sequences_per_second\": %.1f, \"threads\": %d}\n",
                model, protocol.c_str(), static_cast<long long>(m.count()), m.hit_rate(10), m.ndcg(10), m.mrr(10),
                static_cast<long long>(epochs), train_sequences_per_second, threads);
}

}  // namespace examples
