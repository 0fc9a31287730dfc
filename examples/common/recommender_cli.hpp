#pragma once
// What the next-item command-line programs (sasrec, bert4rec) share: reading
// the dataset flags, the thread pool from --threads, the `recommend` mode's
// top-K output (from model flags, or from a checkpoint that describes
// itself), the final JSON line, number formatting, and what the reference
// trainers do around the epoch loop (BestCheckpoint: --keep_best, --patience,
// --valid_metric, pmixer's --train_dir folder).
#include <recblocks/recblocks.hpp>
#include <recblocks/serving/described_model.hpp>
#include <recblocks/train/checkpoint.hpp>
#include <recblocks/train/early_stopping.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>

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
    if (!a.has(flag)) return;
    const std::string v = a.given(flag);
    long long given = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), given);
    if (ec != std::errc() || end != v.data() + v.size())
        throw rb::ValueError(a.spelled(flag) + " expects an integer, got '" + v + "'");
    if (given != file_value)
        throw rb::ValueError(a.spelled(flag) + " " + v + " contradicts " + file + ", whose model has --" + flag + " " +
                             std::to_string(file_value) + " (leave the flag out: the checkpoint describes its model)");
}
inline void check_flag_agrees(const Args& a, const std::string& flag, const std::string& file_value,
                              const std::string& file) {
    if (a.has(flag) && a.given(flag) != file_value)
        throw rb::ValueError(a.spelled(flag) + " " + a.given(flag) + " contradicts " + file + ", whose model has --" +
                             flag + " " + file_value + " (leave the flag out: the checkpoint describes its model)");
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
/// With best_epoch (--keep_best, --patience or --train_dir): the metrics are
/// the best validation epoch's, and the line says which epoch and whether
/// training stopped early.
inline void print_final_json(const char* model, const std::string& protocol, const rb::eval::MetricsAccumulator& m,
                             std::int64_t epochs, double train_sequences_per_second, int threads,
                             std::optional<std::int64_t> best_epoch = std::nullopt, bool stopped_early = false) {
    std::string best;
    if (best_epoch)
        best = ", \"best_epoch\": " + std::to_string(*best_epoch) + ", \"stopped_early\": " + (stopped_early ? "true" : "false");
    std::printf("{\"model\": \"%s\", \"protocol\": \"%s\", \"users\": %lld, \"HR@10\": %.6f, \"NDCG@10\": %.6f, "
                "\"MRR@10\": %.6f, \"epochs\": %lld, \"train_sequences_per_second\": %.1f, \"threads\": %d%s}\n",
                model, protocol.c_str(), static_cast<long long>(m.count()), m.hit_rate(10), m.ndcg(10), m.mrr(10),
                static_cast<long long>(epochs), train_sequences_per_second, threads, best.c_str());
}


/// The flags read_dataset() reads, for --help (`dataset_help` says what the file is to this program).
inline FlagGroup dataset_flags(std::string dataset_help = "the interactions") {
    return {"data",
            {{"dataset", "", std::move(dataset_help), "FILE"},
             {"format", "(by extension: .csv = movielens-csv, else user-item)", "how to read --dataset",
              "user-item|sequences|movielens-csv"}}};
}

/// The evaluation flags of the training programs, for --help.
inline FlagGroup evaluation_flags() {
    return {"evaluation",
            {{"eval", "sampled", "protocol: 100 sampled negatives or the full catalogue", "sampled|full"},
             {"eval_every", "20", "validate every N epochs and after the last (0: only the final test)"}}};
}

/// The flags of the `recommend` command of sasrec and bert4rec, for --help.
inline FlagGroup recommend_flags() {
    return {"recommend",
            {{"user", "", "the user of --dataset to recommend for", "ID"},
             {"history", "", "item ids, with a --load checkpoint that describes itself", "ID,ID,..."},
             {"k", "10", "items to recommend"}}};
}

/// The flags of BestCheckpoint and of the reference trainers' run options, for --help.
inline FlagGroup best_checkpoint_flags() {
    return {"best checkpoint and early stopping (need validation: --eval_every >= 1)",
            {{"keep_best", "", "write the weights of the best validation epoch to FILE (atomically, when they improve); "
                               "the final test then uses them", "FILE"},
             {"patience", "0", "stop after N validations in a row without an improvement (0: never); the final test "
                               "uses the best weights"},
             {"min_delta", "0", "an improvement must beat the best by more than X", "X"},
             {"valid_metric", "NDCG@10", "the validation metric that picks the best epoch: NDCG@K, HR@K or MRR@K, "
                                         "K in 1, 5, 10, 20", "METRIC"},
             {"train_dir", "", "pmixer's run folder: writes <dataset>_<NAME>/args.txt, log.txt (validation and test "
                               "metrics at every validation) and a checkpoint of every new best and of the last epoch; "
                               "the final test uses the best", "NAME"}}};
}

/// --valid_metric NDCG@K | HR@K | MRR@K (RecBole's spelling; any case).
struct ValidMetric {
    enum class Kind { ndcg, hit_rate, mrr } kind = Kind::ndcg;
    rb::index_t k = 10;
    std::string name = "NDCG@10";
    [[nodiscard]] double of(const rb::eval::MetricsAccumulator& m) const {
        return kind == Kind::ndcg ? m.ndcg(k) : kind == Kind::hit_rate ? m.hit_rate(k) : m.mrr(k);
    }
    static ValidMetric parse(const Args& a) {
        std::string s = a.str("valid_metric", "NDCG@10");
        for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const auto at = s.find('@');
        ValidMetric m;
        const std::string kind = s.substr(0, at);
        long long k = 0;
        const bool k_ok = at != std::string::npos &&
                          std::from_chars(s.data() + at + 1, s.data() + s.size(), k).ptr == s.data() + s.size();
        if ((kind != "NDCG" && kind != "HR" && kind != "MRR") || !k_ok || (k != 1 && k != 5 && k != 10 && k != 20))
            throw rb::ValueError(a.spelled("valid_metric") + " must be NDCG@K, HR@K or MRR@K with K in 1, 5, 10, 20, got '" +
                                 a.str("valid_metric", "NDCG@10") + "'");
        m.kind = kind == "NDCG" ? Kind::ndcg : kind == "HR" ? Kind::hit_rate : Kind::mrr;
        m.k = static_cast<rb::index_t>(k);
        m.name = kind + "@" + std::to_string(k);
        return m;
    }
};

/// Writes `text` to `path` atomically (temporary file, fsync, rename): a reader never sees half a file.
inline void write_text_atomically(const std::filesystem::path& path, const std::string& text) {
    static unsigned counter = 0;
    const std::string tmp = path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) throw rb::IoError(path.string() + ": cannot create '" + tmp + "'");
    std::size_t done = 0;
    while (done < text.size()) {
        const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
        if (w < 0) {
            ::close(fd);
            ::unlink(tmp.c_str());
            throw rb::IoError(path.string() + ": cannot write '" + tmp + "'");
        }
        done += static_cast<std::size_t>(w);
    }
    const bool synced = ::fsync(fd) == 0;
    if (::close(fd) != 0 || !synced) {
        ::unlink(tmp.c_str());
        throw rb::IoError(path.string() + ": cannot write '" + tmp + "'");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
        ::unlink(tmp.c_str());
        throw rb::IoError(path.string() + ": cannot rename '" + tmp + "' over it: " + ec.message());
    }
}

/// What the reference trainers do around the epoch loop, for a float model on
/// the host: tracks the best validation epoch by --valid_metric
/// (train::EarlyStopping with --patience and --min_delta), keeps its weights
/// (in memory, in --keep_best FILE, and as pmixer's
/// "<Model>.epoch=E.lr=...safetensors" in the --train_dir folder, with
/// args.txt and log.txt there), says when to stop, and puts the best weights
/// back before the final test. Inactive (the last weights are tested, as
/// before) unless one of --keep_best, --patience or --train_dir is given.
class BestCheckpoint {
public:
    using Save = std::function<void(const std::string& path, const std::map<std::string, std::string>& extra)>;

    /// model: "SASRec" or "BERT4Rec" (pmixer's file name prefix); name_tail: ".lr=...maxlen=L".
    BestCheckpoint(const Args& a, std::string model, std::string name_tail)
        : metric_(ValidMetric::parse(a)), model_(std::move(model)), name_tail_(std::move(name_tail)),
          keep_best_(a.str("keep_best", "")),
          stop_({.patience = a.integer_in("patience", 0, 0, kMaxCount),
                 .min_delta = a.real_in("min_delta", 0.0, 0.0, std::numeric_limits<double>::max())}) {
        active_ = a.has("keep_best") || stop_.options().patience > 0 || a.has("train_dir");
        if (a.has("keep_best") && keep_best_.empty()) throw rb::ValueError("--keep_best needs a file name");
        if (a.has("train_dir")) {
            const std::string name = a.str("train_dir", "");
            if (name.empty() || name.find('/') != std::string::npos)
                throw rb::ValueError(a.spelled("train_dir") + " must be a folder name without '/', got '" + name + "'");
            const std::string data = a.str("dataset", "");
            folder_ = std::filesystem::path(std::filesystem::path(data).stem().string() + "_" + name);
        }
        if (active_ && a.integer("eval_every", 20) == 0)
            throw rb::ValueError("--keep_best, --patience and --train_dir pick the best validation epoch: give "
                                 "--eval_every N >= 1, not 0");
    }

    [[nodiscard]] bool active() const { return active_; }
    [[nodiscard]] bool wants_test_metrics() const { return !folder_.empty(); }
    [[nodiscard]] const ValidMetric& metric() const { return metric_; }
    [[nodiscard]] const rb::train::EarlyStopping& tracker() const { return stop_; }

    /// Creates the --train_dir folder and writes args.txt (every flag's value, sorted, "name,value").
    void start(const Args& a) {
        if (folder_.empty()) return;
        std::error_code ec;
        std::filesystem::create_directories(folder_, ec);
        if (ec || !std::filesystem::is_directory(folder_))
            throw rb::IoError(folder_.string() + ": cannot create the --train_dir folder" + (ec ? ": " + ec.message() : ""));
        std::string text;
        for (const auto& [k, v] : a.all_values()) text += (text.empty() ? "" : "\n") + k + "," + v;
        write_text_atomically(folder_ / "args.txt", text);
        log_ = "epoch (val_ndcg, val_hr) (test_ndcg, test_hr)\n";
        write_text_atomically(folder_ / "log.txt", log_);
    }

    /// The tracker's state for a --save checkpoint's metadata (resumed by resume()).
    [[nodiscard]] std::map<std::string, std::string> metadata() const {
        if (!active_ || !stop_.best()) return {};
        char best[40];
        std::snprintf(best, sizeof best, "%.17g", *stop_.best());
        return {{"best.metric", metric_.name},
                {"best.value", best},
                {"best.epoch", std::to_string(stop_.best_epoch())},
                {"best.validations_since", std::to_string(stop_.evaluations_since_best())}};
    }
    /// Continues the tracker of a checkpoint saved with metadata() (same --valid_metric).
    void resume(const std::map<std::string, std::string>& meta, const std::string& file) {
        const auto m = meta.find("best.metric");
        if (!active_ || m == meta.end()) return;
        if (m->second != metric_.name)
            throw rb::ValueError(file + " tracked the best epoch by " + m->second + "; resume with --valid_metric " +
                                 m->second + ", not " + metric_.name);
        stop_.restore(std::stod(meta.at("best.value")), std::stoll(meta.at("best.epoch")),
                      std::stoll(meta.at("best.validations_since")));
        resumed_ = true;
    }

    /// After the validation of `epoch` (and, with --train_dir, the test): returns whether it is the new best;
    /// then the weights are copied and written where asked.
    bool after_validation(std::int64_t epoch, const rb::eval::MetricsAccumulator& valid,
                          const rb::eval::MetricsAccumulator* test, const rb::ParamList<float>& params, const Save& save) {
        if (!active_) return false;
        const bool improved = stop_.update(metric_.of(valid), epoch) == rb::train::EarlyStopping::Verdict::improved;
        if (!folder_.empty()) {
            char line[200];
            std::snprintf(line, sizeof line, "%lld (%.6g, %.6g) (%.6g, %.6g)\n", static_cast<long long>(epoch),
                          valid.ndcg(10), valid.hit_rate(10), test ? test->ndcg(10) : 0.0, test ? test->hit_rate(10) : 0.0);
            log_ += line;
            write_text_atomically(folder_ / "log.txt", log_);
        }
        if (!improved) return false;
        snapshot_.resize(params.size());
        for (std::size_t i = 0; i < params.size(); ++i)
            snapshot_[i].assign(params[i].value, params[i].value + params[i].numel());
        const auto meta = metadata();
        if (!keep_best_.empty()) save(keep_best_, meta);
        if (!folder_.empty()) save((folder_ / file_name(epoch)).string(), meta);
        return true;
    }

    [[nodiscard]] bool should_stop() const { return active_ && stop_.should_stop(); }
    /// The line printed when should_stop() ends training after `epoch`.
    [[nodiscard]] std::string stop_line(std::int64_t epoch) const {
        const auto n = stop_.evaluations_since_best();
        return "stopped early after epoch " + std::to_string(epoch) + ": " + std::to_string(n) + " validation" +
               (n == 1 ? "" : "s") + " in a row without a better " + metric_.name + " (--patience " +
               std::to_string(stop_.options().patience) + ")";
    }

    /// After the loop: pmixer's checkpoint of the last epoch, then the best weights back into the
    /// model for the final test. Returns a line saying which weights the test uses ("" if inactive).
    std::string finish(std::int64_t last_epoch, const rb::ParamList<float>& params, const Save& save) {
        if (!active_) return "";
        if (!folder_.empty() && last_epoch > 0) save((folder_ / file_name(last_epoch)).string(), metadata());
        if (!stop_.best()) return "no validation ran: the test uses the last weights";
        if (snapshot_.size() == params.size()) {
            for (std::size_t i = 0; i < params.size(); ++i) std::copy(snapshot_[i].begin(), snapshot_[i].end(), params[i].value);
        } else if (resumed_ && !keep_best_.empty() && std::filesystem::exists(keep_best_)) {
            rb::train::load_checkpoint<float>(keep_best_, params, nullptr);
        } else {
            return "the best epoch (" + std::to_string(stop_.best_epoch()) +
                   ") was before the resumed checkpoint and no --keep_best file holds it: the test uses the last weights";
        }
        return "the test uses the best checkpoint: epoch " + std::to_string(stop_.best_epoch()) + ", valid " +
               metric_.name + " " + fmt(*stop_.best());
    }

private:
    [[nodiscard]] std::string file_name(std::int64_t epoch) const {
        return model_ + ".epoch=" + std::to_string(epoch) + name_tail_ + ".safetensors";
    }

    ValidMetric metric_;
    std::string model_, name_tail_, keep_best_;
    rb::train::EarlyStopping stop_;
    bool active_ = false, resumed_ = false;
    std::filesystem::path folder_;
    std::string log_;
    std::vector<std::vector<float>> snapshot_;
};

/// pmixer's --device: the programs train on the CPU; anything else is refused by name.
inline void check_device(const Args& a) {
    const std::string d = a.str("device", "cpu");
    if (d != "cpu")
        throw rb::ValueError(a.spelled("device") + " " + d +
                             ": this program trains on the CPU only (--device cpu); the CUDA backend is a library API "
                             "(docs/cuda_backend.md)");
}

/// "--state_dict_path FILE": a recblocks checkpoint (resumed as --load) or not (read as a PyTorch state_dict).
inline bool is_recblocks_checkpoint(const std::string& path) {
    if (path.size() >= 4 && path.substr(path.size() - 4) == ".pth")
        throw rb::ValueError("--state_dict_path " + path + ": a PyTorch pickle cannot be read here; save the "
                             "state_dict with safetensors.torch.save_file and give that file (docs/interop.md)");
    const auto r = rb::io::SafetensorsReader::open(path);
    const auto f = r.metadata().find("format");
    return f != r.metadata().end() && f->second == rb::train::kCheckpointFormat;
}

/// The epoch in pmixer's checkpoint names ("...epoch=E...."), 0 if none: its trainer continues at E + 1.
inline std::int64_t epoch_in_name(const std::string& path) {
    const std::string name = std::filesystem::path(path).filename().string();
    const auto at = name.find("epoch=");
    if (at == std::string::npos) return 0;
    std::int64_t e = 0;
    const char* b = name.data() + at + 6;
    const auto [end, ec] = std::from_chars(b, name.data() + name.size(), e);
    return ec == std::errc() && end != b && e > 0 ? e : 0;
}

}  // namespace examples
