// sasrec: train, evaluate and serve SASRec (Kang & McAuley, 2018) from the
// command line, with the flags of the reference implementations.
//
//   sasrec --dataset FILE [--format user-item|sequences|movielens-csv] [--maxlen 200] [--hidden_units 50]
//          [--num_blocks 2] [--num_heads 1] [--dropout_rate 0.2] [--lr 0.001] [--batch_size 128]
//          [--num_epochs 200] [--l2_emb 0] [--seed 42] [--threads 0] [--eval sampled|full]
//          [--eval_every 20] [--norm query|pre|post] [--mask_padding_keys 0|1]
//          [--init xavier_normal|scaled_normal] [--save FILE] [--load FILE] [--max_seconds S]
//          [--load_pytorch FILE [--ffn conv1d|linear | --layout LAYOUT.json [--ffn_inner N]]]
//          [--matryoshka 8,16,32,64 [--matryoshka_weights 1,1,1,1]] [--save_embeddings FILE]
//          [--keep_best FILE] [--patience N] [--min_delta X] [--valid_metric NDCG@10] [--train_dir NAME]
//          [--state_dict_path FILE] [--inference_only true|false] [--norm_first] [--device cpu]
//   sasrec recommend --load FILE (--dataset FILE [--format ...] --user ID | --history ID,ID,...) [--k 10]
//   sasrec recommend --load_pytorch FILE [--ffn conv1d|linear] --dataset FILE --user ID [--k 10] [model flags]
//
// Progress goes to stderr; every epoch prints one line to stdout; the last
// line of stdout is one JSON object with the final test metrics and the
// training throughput. With --save, a checkpoint (safetensors: weights, Adam
// state, step) is written atomically after every epoch; --load resumes it
// bit-exactly (same seed, thread count and flags). A NaN/Inf stops training
// with an error and leaves the last checkpoint as it was.
//
// A checkpoint describes itself: its metadata holds the model's whole
// configuration (and norm placement), and the tensor "item_ids" the data
// set's item ids, so `recommend --load FILE` needs no model flag (one given
// anyway must agree with the file) and answers in the data's item ids; the
// history is --history (item ids of the data) or --user's in --dataset.
// Checkpoints saved before descriptions existed still load with their flags.
//
// --init: xavier_normal (the default) starts every tensor with >= 2
// dimensions from xavier-normal, as pmixer/SASRec.pytorch's trainer does;
// scaled_normal is recblocks 0.1.0's N(0, 1/D) tables (docs/models.md).
//
// --help lists every flag with its default. pmixer/SASRec.pytorch's flags are
// taken as its main.py spells them: --train_dir NAME writes its run folder
// <dataset>_<NAME> (args.txt, log.txt, a checkpoint of every new best and of
// the last epoch), --state_dict_path, --inference_only, --norm_first (= --norm
// pre), --device cpu. --keep_best FILE, --patience N, --min_delta X and
// --valid_metric M keep the best validation epoch and stop early (RecBole's
// habit); with any of them, or --train_dir, the final test uses the best
// epoch's weights and says so (docs/models.md).
//
// Every count is checked before anything is allocated (negative or zero
// counts, sizes that cannot fit in memory: an error naming the flag), and the
// evaluation protocol before the first epoch (the sampled protocol needs 101
// items or more).
//
// --load_pytorch FILE reads a PyTorch SASRec state_dict saved with
// safetensors.torch.save_file (benchmarks/peers/sasrec_torch_train.py --save;
// pmixer/SASRec.pytorch names) through io::load_pytorch_state. --ffn picks the
// name map: conv1d (nn.Conv1d conv1/conv2, the default) or linear (nn.Linear
// linear1/linear2). The model flags (--maxlen, --hidden_units, --num_blocks,
// --num_heads, --norm, --positions, --mask_padding_keys) must describe the
// PyTorch model: a size mismatch is a ShapeError naming the tensor, but
// --norm, --num_heads and --mask_padding_keys cannot be checked. With
// --num_epochs 0 the program only evaluates the PyTorch model; with more
// epochs it fine-tunes it (fresh Adam state); `recommend` serves it. See
// docs/interop.md. --layout LAYOUT.json (one of layouts/, or your own) names
// the implementation that wrote the file instead: its architecture options
// (norm placement, timeline mask, positions, ...) and its tensor names, so
// --norm, --positions, --mask_padding_keys and --ffn are not given with it;
// --ffn_inner N is the feed-forward width (RecBole's inner_size; 0 = D).
//
// --matryoshka W1,W2,...,D trains with the MRL-E loss (the BCE summed over the
// nested widths of the tied item table, docs/matryoshka.md) and adds to the
// final JSON line "widths": {"m": {"sampled": {...}, "full": {...}}} with
// HR/NDCG/MRR@10 at every width under both protocols. A single width equal to
// --hidden_units is the plain model, so the same key reports a baseline.
// --eval_widths W1,...,D evaluates at those prefix widths instead (e.g. a
// plain model, --matryoshka D, truncated to smaller widths).
// --save_embeddings FILE writes the trained item table "items" [N + 1, D] and
// the user vectors "users" [U, D] (the final hidden state of each evaluated
// user's test input), "user_ids" [U] and "test_items" [U] as safetensors, for
// the retrieval benchmarks.
//
// ctest-args: --dataset data/ml-latest-small/ratings.csv --format movielens-csv --maxlen 20 --hidden_units 16 --num_epochs 1 --eval full
#include <recblocks/train/checkpoint.hpp>
#include <recblocks/eval/matryoshka_evaluation.hpp>
#include <recblocks/models/checkpoint_layout.hpp>
#include <recblocks/io/pytorch_import.hpp>
#include <recblocks/recblocks.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <unistd.h>

#include "common/args.hpp"
#include "common/recommender_cli.hpp"

namespace rb = recblocks;
using rb::index_t;
using rb::row_id_t;

namespace {

std::vector<examples::FlagGroup> flag_groups() {
    return {
        examples::dataset_flags(),
        {"model",
         {{"maxlen", "200", "L: the longest history"},
          {"hidden_units", "50", "D"},
          {"num_blocks", "2", "transformer blocks"},
          {"num_heads", "1", "attention heads (divide --hidden_units)"},
          {"dropout_rate", "0.2", "dropout on the embedding, attention weights and feed-forward"},
          {"norm", "query", "block layout: query (the authors'), pre, post", "query|pre|post"},
          {"norm_first", "false", "pmixer's switch: the pre-norm block (--norm pre)", "", true},
          {"positions", "from_one", "position rows", "from_one|per_slot|from_oldest"},
          {"mask_padding_keys", "0", "exclude padded keys from attention", "0|1"},
          {"init", "xavier_normal", "initialisation (docs/models.md)", "xavier_normal|scaled_normal"},
          {"l2_emb", "0", "adds l2_emb/2 * ||E||^2 to the loss", "X"}}},
        {"training",
         {{"lr", "0.001", "Adam's learning rate"},
          {"batch_size", "128", "sequences per step"},
          {"num_epochs", "200", "epochs"},
          {"seed", "42", "batches, negatives, dropout, initialisation"},
          {"threads", "0", "worker threads (0: every hardware thread)"},
          {"max_seconds", "0", "stop after the epoch that passes S seconds (0: no limit)", "S"},
          {"device", "cpu", "pmixer's flag; this program trains on the CPU", "cpu"},
          {"save", "", "write a resumable checkpoint after every epoch", "FILE"},
          {"load", "", "resume a --save checkpoint", "FILE"},
          {"load_pytorch", "", "start from a PyTorch state_dict saved with safetensors (docs/interop.md)", "FILE"},
          {"ffn", "conv1d", "the --load_pytorch file's feed-forward names", "conv1d|linear"},
          {"layout", "", "the --load_pytorch file's layout (layouts/*.json); sets --norm, --positions, ...", "FILE"},
          {"ffn_inner", "0", "feed-forward width with --layout (0: D)"},
          {"state_dict_path", "", "pmixer's flag: a --save checkpoint (resumed) or a PyTorch state_dict (as "
                                  "--load_pytorch; training continues after the epoch its name says)", "FILE"},
          {"inference_only", "false", "pmixer's flag: only evaluate (no epoch runs)", "true|false"},
          {"matryoshka", "", "train with the MRL-E loss at these nested widths", "W1,...,D"},
          {"matryoshka_weights", "(all 1)", "the loss weight of each width", "C1,..."},
          {"eval_widths", "(the --matryoshka widths)", "widths evaluated at the end", "W1,...,D"}}},
        examples::evaluation_flags(),
        examples::best_checkpoint_flags(),
        examples::recommend_flags(),
        {"output", {{"save_embeddings", "", "write the item table and the test users' vectors", "FILE"}}},
    };
}

const char* kUsage =
    "usage: sasrec --dataset FILE [options]            train, evaluate (last line: JSON)\n"
    "       sasrec recommend --load FILE (--user ID --dataset FILE | --history ID,ID,...) [--k 10]\n"
    "       sasrec recommend --load_pytorch FILE [--ffn conv1d|linear] --dataset FILE --user ID [--k 10]\n";

/// --layout FILE: the checkpoint layout of a --load_pytorch file; it sets the flags it replaces.
std::optional<rb::models::CheckpointLayout> layout_of(const examples::Args& a) {
    if (!a.has("layout")) {
        if (a.has("ffn_inner")) throw rb::ValueError("--ffn_inner goes with --layout");
        return std::nullopt;
    }
    if (!a.has("load_pytorch") && !a.has("state_dict_path"))
        throw rb::ValueError("--layout describes a PyTorch checkpoint: give --load_pytorch FILE");
    for (const char* f : {"norm", "norm_first", "positions", "mask_padding_keys", "ffn"})
        if (a.has(f)) throw rb::ValueError(std::string("--") + f + " is set by --layout; give one of them");
    return rb::models::CheckpointLayout::load(a.str("layout", ""));
}

rb::models::SASRecConfig model_config(const examples::Args& a, index_t num_items) {
    rb::models::SASRecConfig c;
    c.num_items = num_items;
    c.max_len = a.integer_in("maxlen", 200, 1, examples::kMaxCount);
    c.d_model = a.integer_in("hidden_units", 50, 1, examples::kMaxCount);
    c.num_blocks = a.integer_in("num_blocks", 2, 1, examples::kMaxCount);
    c.heads = a.integer_in("num_heads", 1, 1, c.d_model);
    if (c.d_model % c.heads != 0)
        throw rb::ValueError("--num_heads " + std::to_string(c.heads) + " must divide --hidden_units " +
                             std::to_string(c.d_model));
    c.dropout = a.real_in("dropout_rate", 0.2, 0.0, 1.0, true);
    c.l2_emb = a.real_in("l2_emb", 0.0, 0.0, std::numeric_limits<double>::max());
    c.mask_padding_keys = a.integer_in("mask_padding_keys", 0, 0, 1) != 0;
    const std::string init = a.str("init", "xavier_normal");
    if (init != "xavier_normal" && init != "scaled_normal")
        throw rb::ValueError("--init must be xavier_normal or scaled_normal, got '" + init + "'");
    c.init = init == "xavier_normal" ? rb::models::SASRecInit::xavier_normal : rb::models::SASRecInit::scaled_normal;
    const std::string pos = a.str("positions", "from_one");
    if (pos != "from_one" && pos != "per_slot" && pos != "from_oldest")
        throw rb::ValueError("--positions must be from_one, per_slot or from_oldest");
    c.positions = pos == "from_one"  ? rb::blocks::PositionRows::from_one
                  : pos == "per_slot" ? rb::blocks::PositionRows::per_slot
                                      : rb::blocks::PositionRows::from_oldest;
    if (const auto layout = layout_of(a)) {
        layout->apply(c);
        c.ffn_inner = a.integer_in("ffn_inner", 0, 0, examples::kMaxCount);
    }
    if (a.has("matryoshka")) {
        c.matryoshka_widths = rb::MatryoshkaWidths::parse(a.str("matryoshka", ""), c.d_model).widths();
        if (a.has("matryoshka_weights")) {
            const std::string w = a.str("matryoshka_weights", "");
            std::size_t i = 0;
            while (i <= w.size()) {
                std::size_t j = w.find(',', i);
                if (j == std::string::npos) j = w.size();
                std::size_t used = 0;
                double v = 0;
                try {
                    v = std::stod(w.substr(i, j - i), &used);
                } catch (const std::exception&) {
                    used = 0;
                }
                if (used == 0 || used != j - i) throw rb::ValueError("--matryoshka_weights: '" + w.substr(i, j - i) + "' is not a number");
                c.matryoshka_weights.push_back(v);
                i = j + 1;
            }
        }
    } else if (a.has("matryoshka_weights") || a.has("eval_widths")) {
        throw rb::ValueError("--matryoshka_weights and --eval_widths need --matryoshka");
    }
    return c;
}

/// The final JSON line of a --matryoshka run: the usual keys (full width,
/// the --eval protocol) plus every width under both protocols.
template <class Model, class Be>
void print_matryoshka_json(Model& model, const Be& be, rb::ThreadPool& pool, const rb::data::LeaveOneOut& split,
                           index_t n_items, const rb::models::SASRecConfig& cfg, rb::eval::NextItemEvalOptions eopt,
                           const std::string& proto, std::int64_t epochs, double seq_per_s, int threads,
                           const std::vector<index_t>& widths) {
    auto at_widths = [&](rb::eval::Protocol p) {
        eopt.protocol = p;
        return rb::eval::evaluate_next_item_at_widths(model, be, pool, split, n_items, cfg.max_len, widths, eopt);
    };
    const auto sampled = at_widths(rb::eval::Protocol::sampled), full = at_widths(rb::eval::Protocol::full);
    auto metrics = [](const char* name, const rb::eval::MetricsAccumulator& m) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "\"%s\": {\"HR@10\": %.6f, \"NDCG@10\": %.6f, \"MRR@10\": %.6f}", name,
                      m.hit_rate(10), m.ndcg(10), m.mrr(10));
        return std::string(buf);
    };
    std::string per_width;
    for (std::size_t i = 0; i < sampled.size(); ++i)
        per_width += (i ? ", \"" : "\"") + std::to_string(widths[i]) + "\": {" +
                     metrics("sampled", sampled[i]) + ", " + metrics("full", full[i]) + "}";
    const auto& m = proto == "sampled" ? sampled.back() : full.back();
    std::printf("{\"model\": \"sasrec\", \"protocol\": \"%s\", \"users\": %lld, \"HR@10\": %.6f, \"NDCG@10\": %.6f, "
                "\"MRR@10\": %.6f, \"epochs\": %lld, \"train_sequences_per_second\": %.1f, \"threads\": %d, "
                "\"d_model\": %lld, \"widths\": {%s}}\n",
                proto.c_str(), static_cast<long long>(m.count()), m.hit_rate(10), m.ndcg(10), m.mrr(10),
                static_cast<long long>(epochs), seq_per_s, threads, static_cast<long long>(cfg.d_model),
                per_width.c_str());
}

/// --save_embeddings FILE: items, the evaluated users' test-time vectors, their ids and test items.
template <class Model, class Be>
void save_embeddings(const std::string& path, Model& model, const Be& be, rb::ThreadPool& pool,
                     const rb::data::LeaveOneOut& split, index_t max_len, index_t d) {
    const std::vector<index_t> users = split.evaluated_users();
    const auto nu = static_cast<index_t>(users.size());
    rb::Matrix<float> uvec(rb::Shape<2>{{nu, d}});
    rb::Vector<std::int64_t> uid(rb::Shape<1>{{nu}}), target(rb::Shape<1>{{nu}});
    const index_t batch = 256;
    rb::Matrix<row_id_t> ids;
    for (index_t b0 = 0; b0 < nu; b0 += batch) {
        const index_t nb = std::min(batch, nu - b0);
        std::vector<std::vector<row_id_t>> in(static_cast<std::size_t>(nb));
        for (index_t i = 0; i < nb; ++i) {
            const auto u = static_cast<std::size_t>(users[static_cast<std::size_t>(b0 + i)]);
            in[static_cast<std::size_t>(i)] = split.train[u];
            in[static_cast<std::size_t>(i)].push_back(split.valid[u]);
            uid(b0 + i) = static_cast<std::int64_t>(u);
            target(b0 + i) = split.test[u];
        }
        std::vector<std::span<const row_id_t>> spans(in.begin(), in.end());
        if (ids.extent(0) != nb) ids.resize(rb::Shape<2>{{nb, max_len}});
        rb::data::left_padded_batch(spans, ids.view());
        model.encode_last(be, pool, ids.cview(), uvec.view().slice_rows(b0, b0 + nb));
    }
    rb::io::SafetensorsWriter w;
    w.add("items", model.item_table());
    w.add("users", uvec.cview());
    w.add("user_ids", uid.cview());
    w.add("test_items", target.cview());
    w.write(path);
    std::fprintf(stderr, "wrote %s: items [%lld, %lld], users [%lld, %lld]\n", path.c_str(),
                 static_cast<long long>(model.item_table().rows()), static_cast<long long>(d),
                 static_cast<long long>(nu), static_cast<long long>(d));
}

/// --load_pytorch FILE: a PyTorch state_dict (safetensors) through pmixer's
/// name map, edited for an nn.Linear feed-forward with --ffn linear.
template <class Model>
void load_pytorch(const examples::Args& a, Model& model, const std::string& path) {
    if (const auto layout = layout_of(a)) {  // every tensor used, or an error naming it
        rb::models::load_state(path, model.params(), *layout);
        std::fprintf(stderr, "loaded PyTorch state_dict %s (layout %s)\n", path.c_str(), layout->name().c_str());
        return;
    }
    const std::string ffn = a.str("ffn", "conv1d");
    if (ffn != "conv1d" && ffn != "linear") throw rb::ValueError("--ffn must be conv1d or linear, got '" + ffn + "'");
    rb::io::NameMap map = rb::io::sasrec_pmixer_names();
    if (ffn == "linear") map.insert(map.begin(), {"blocks.{i}.ffn.", "forward_layers.{i}."});
    const auto unused = rb::io::load_pytorch_state(path, model.params(), map);
    std::fprintf(stderr, "loaded PyTorch state_dict %s (ffn %s)", path.c_str(), ffn.c_str());
    for (std::size_t i = 0; i < unused.size(); ++i)
        std::fprintf(stderr, "%s%s", i ? ", " : "; tensors not used: ", unused[i].c_str());
    std::fprintf(stderr, "\n");
}

/// `recommend --load FILE` of a checkpoint that describes itself: no model flags needed.
int recommend_from_file(const examples::Args& a, const rb::models::ModelDescription& d) {
    const std::string file = a.str("load", "");
    if (d.kind != rb::models::ModelKind::sasrec)
        throw rb::ValueError(file + " holds a " + rb::io::detail::metadata_text(d.kind) + " model, not SASRec");
    if (a.has("load_pytorch")) throw rb::ValueError("--load and --load_pytorch exclude each other");
    const auto& c = d.sasrec;
    examples::check_flag_agrees(a, "maxlen", c.max_len, file);
    examples::check_flag_agrees(a, "hidden_units", c.d_model, file);
    examples::check_flag_agrees(a, "num_blocks", c.num_blocks, file);
    examples::check_flag_agrees(a, "num_heads", c.heads, file);
    examples::check_flag_agrees(a, "mask_padding_keys", c.mask_padding_keys ? 1 : 0, file);
    examples::check_flag_agrees(a, "norm", rb::io::detail::metadata_text(d.norm), file);
    examples::check_flag_agrees(a, "positions", rb::io::detail::metadata_text(c.positions), file);
    rb::ThreadPool pool(examples::thread_count(a));
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    auto m = rb::serving::load_described_model(file, be, pool);
    return examples::recommend_described(a, m);
}

template <class Norm>
int run(const examples::Args& a, const std::string& mode) {
    // Every flag is checked before the data is read and before anything is allocated from it.
    const index_t batch_size = a.integer_in("batch_size", 128, 1, examples::kMaxCount);
    const double lr = a.positive("lr", 1e-3);
    const index_t epochs = a.integer_in("num_epochs", 200, 0, examples::kMaxCount);
    const index_t eval_every = a.integer_in("eval_every", 20, 0, examples::kMaxCount);
    const double max_seconds = a.real_in("max_seconds", 0.0, 0.0, std::numeric_limits<double>::max());
    (void)a.integer_in("k", 10, 1, examples::kMaxCount);  // recommend's, checked in every mode
    const int threads = examples::thread_count(a);
    const std::string proto = a.str("eval", "sampled");
    if (proto != "sampled" && proto != "full") throw rb::ValueError("--eval must be sampled or full, got '" + proto + "'");
    const std::uint64_t seed = static_cast<std::uint64_t>(a.integer("seed", 42));
    examples::check_device(a);
    const bool inference_only = a.boolean("inference_only", false);
    if (a.has("state_dict_path") && (a.has("load") || a.has("load_pytorch")))
        throw rb::ValueError("--state_dict_path excludes --load and --load_pytorch (it is one of them, by its file)");
    const bool state_is_checkpoint =
        a.has("state_dict_path") && examples::is_recblocks_checkpoint(a.str("state_dict_path", ""));
    const std::string resume_file = a.has("load") ? a.str("load", "") : state_is_checkpoint ? a.str("state_dict_path", "") : "";
    model_config(a, 1);  // the model flags, before reading the data
    (void)examples::BestCheckpoint(a, "", "");  // its flags too (it creates nothing yet)

    const auto dataset = examples::read_dataset(a);
    const auto split = rb::data::leave_one_out(dataset);
    const index_t n_items = dataset.num_items();
    const auto cfg = model_config(a, n_items);
    examples::check_memory_budget({.items = n_items, .maxlen = cfg.max_len, .dim = cfg.d_model, .heads = cfg.heads,
                                   .blocks = cfg.num_blocks, .batch = batch_size});
    rb::eval::NextItemEvalOptions eopt;
    eopt.protocol = proto == "sampled" ? rb::eval::Protocol::sampled : rb::eval::Protocol::full;
    eopt.seed = seed;
    if (mode != "recommend") rb::eval::check_evaluation(split, n_items, eopt);  // not after the last epoch
    rb::ThreadPool pool(threads);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    rb::models::SASRec<float, Norm> model(cfg, rb::Rng(seed));

    if (mode == "recommend") {
        if (a.has("load") == a.has("load_pytorch"))
            throw rb::ValueError("recommend needs one of --load FILE and --load_pytorch FILE");
        if (a.has("load_pytorch")) load_pytorch(a, model, a.str("load_pytorch", ""));
        else rb::train::load_checkpoint<float>(a.str("load", ""), model.params(), nullptr);
        examples::print_recommendations(a, dataset, model, be, pool, cfg.max_len);
        return 0;
    }

    rb::train::NextItemTrainingOptions topt;
    topt.batch_size = batch_size;
    topt.lr = lr;
    topt.seed = seed;
    rb::train::NextItemTrainer<float, decltype(model)> trainer(model, split.train, n_items, cfg.max_len, topt);
    examples::BestCheckpoint best(a, "SASRec",
                                  ".lr=" + examples::fmt(lr) + ".layer=" + std::to_string(cfg.num_blocks) + ".head=" +
                                      std::to_string(cfg.heads) + ".hidden=" + std::to_string(cfg.d_model) +
                                      ".maxlen=" + std::to_string(cfg.max_len));
    if (a.has("load_pytorch")) {
        if (a.has("load")) throw rb::ValueError("--load and --load_pytorch exclude each other");
        load_pytorch(a, model, a.str("load_pytorch", ""));
    }
    if (a.has("state_dict_path") && !state_is_checkpoint) {  // pmixer: its weights, fresh Adam, after its epoch
        load_pytorch(a, model, a.str("state_dict_path", ""));
        trainer.set_step(examples::epoch_in_name(a.str("state_dict_path", "")) * trainer.steps_per_epoch());
    }
    if (!resume_file.empty()) {
        const auto ck = rb::train::load_checkpoint<float>(resume_file, model.params(), &trainer.optimizer());
        trainer.set_step(ck.step);
        if (const auto it = ck.metadata.find("seed"); it != ck.metadata.end() && it->second != std::to_string(seed))
            std::fprintf(stderr, "warning: the checkpoint was trained with --seed %s; resuming with --seed %llu "
                                 "draws other batches and dropout masks (not bit-exact)\n",
                         it->second.c_str(), static_cast<unsigned long long>(seed));
        best.resume(ck.metadata, resume_file);
        std::fprintf(stderr, "loaded %s (step %lld)\n", resume_file.c_str(), static_cast<long long>(ck.step));
    }
    best.start(a);
    std::printf("sasrec: %lld users, %lld items, %zu interactions; D=%lld L=%lld blocks=%lld heads=%lld threads=%d\n",
                static_cast<long long>(dataset.num_users()), static_cast<long long>(n_items),
                dataset.num_interactions(), static_cast<long long>(cfg.d_model), static_cast<long long>(cfg.max_len),
                static_cast<long long>(cfg.num_blocks), static_cast<long long>(cfg.heads), pool.size());
    const rb::io::ItemIdMap item_map(dataset.item_ids);  // saved with every checkpoint
    const examples::BestCheckpoint::Save save = [&](const std::string& path,
                                                    const std::map<std::string, std::string>& extra) {
        auto meta = examples::describing_metadata(rb::models::ModelDescription::of(cfg, rb::models::norm_kind<Norm>()), seed);
        meta.insert(extra.begin(), extra.end());
        rb::train::save_checkpoint<float>(path, model.params(), &trainer.optimizer(), trainer.step(), meta,
                                          [&](rb::io::SafetensorsWriter& w) { item_map.add_to(w); });
    };
    const bool tty = isatty(2);
    double train_seconds = 0;
    index_t train_sequences = 0;
    bool stopped_early = false;
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t e = trainer.epoch(); !inference_only && e < epochs; ++e) {
        const auto stats = trainer.train_epoch(be, pool, [&](index_t done, index_t total, double loss) {
            if (tty)
                std::fprintf(stderr, "\repoch %lld  batch %lld/%lld  loss %.4f   ", static_cast<long long>(e + 1),
                             static_cast<long long>(done), static_cast<long long>(total), loss);
        });
        train_seconds += stats.seconds;
        train_sequences += stats.sequences;
        const double eta = stats.seconds * double(epochs - e - 1);
        if (tty) std::fprintf(stderr, "\r");
        std::string line = "epoch " + std::to_string(stats.epoch) + "  loss " + examples::fmt(stats.mean_loss) + "  " +
                           examples::fmt(stats.sequences_per_second()) + " seq/s  ETA " + examples::fmt(eta) + " s";
        if (eval_every > 0 && (stats.epoch % eval_every == 0 || e + 1 == epochs)) {
            auto v = eopt;
            v.validation = true;
            const auto m = rb::eval::evaluate_next_item(model, be, pool, split, n_items, cfg.max_len, v);
            line += "  valid NDCG@10 " + examples::fmt(m.ndcg(10)) + " HR@10 " + examples::fmt(m.hit_rate(10));
            if (best.active()) {
                if (best.metric().name != "NDCG@10" && best.metric().name != "HR@10")
                    line += " " + best.metric().name + " " + examples::fmt(best.metric().of(m));
                std::optional<rb::eval::MetricsAccumulator> test;
                if (best.wants_test_metrics())
                    test = rb::eval::evaluate_next_item(model, be, pool, split, n_items, cfg.max_len, eopt);
                if (best.after_validation(stats.epoch, m, test ? &*test : nullptr, model.params(), save))
                    line += "  (best)";
            }
        }
        if (a.has("save")) save(a.str("save", ""), best.metadata());  // after the validation: it holds the tracker
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        if (best.should_stop()) {
            std::printf("%s\n", best.stop_line(stats.epoch).c_str());
            stopped_early = true;
            break;
        }
        if (max_seconds > 0 &&
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > max_seconds)
            break;
    }
    if (const std::string which = best.finish(trainer.epoch(), model.params(), save); !which.empty())
        std::printf("%s\n", which.c_str());
    if (a.has("save_embeddings")) save_embeddings(a.str("save_embeddings", ""), model, be, pool, split, cfg.max_len, cfg.d_model);
    if (!cfg.matryoshka_widths.empty()) {
        const auto widths = a.has("eval_widths")
                                ? rb::MatryoshkaWidths::parse(a.str("eval_widths", ""), cfg.d_model).widths()
                                : cfg.matryoshka_widths;
        print_matryoshka_json(model, be, pool, split, n_items, cfg, eopt, proto, trainer.epoch(),
                              train_seconds > 0 ? double(train_sequences) / train_seconds : 0.0, pool.size(), widths);
        return 0;
    }
    const auto m = rb::eval::evaluate_next_item(model, be, pool, split, n_items, cfg.max_len, eopt);
    examples::print_final_json("sasrec", proto, m, trainer.epoch(),
                               train_seconds > 0 ? double(train_sequences) / train_seconds : 0.0, pool.size(),
                               best.active() ? std::optional<std::int64_t>(best.tracker().best_epoch()) : std::nullopt,
                               stopped_early);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const examples::Args a(argc, argv, flag_groups());
        if (a.has("help")) {
            a.print_help(stdout, kUsage);
            return 0;
        }
        const std::string mode = a.positional().empty() ? "train" : a.positional()[0];
        if (mode != "train" && mode != "recommend") throw rb::ValueError("unknown mode '" + mode + "' (train or recommend)");
        if (mode == "recommend" && a.has("load"))
            if (const auto d = rb::serving::read_description(a.str("load", ""))) return recommend_from_file(a, *d);
        if (a.has("history")) throw rb::ValueError("--history needs recommend --load FILE of a checkpoint that describes itself");
        const auto layout = layout_of(a);
        const rb::policies::NormKind kind = layout ? layout->norm() : rb::policies::NormKind::query;
        const std::string norm = layout ? (kind == rb::policies::NormKind::query ? "query"
                                           : kind == rb::policies::NormKind::pre ? "pre"
                                                                                  : "post")
                                        : a.boolean("norm_first", false) ? "pre" : a.str("norm", "query");
        if (a.boolean("norm_first", false) && a.has("norm") && a.str("norm", "query") != "pre")
            throw rb::ValueError("--norm_first is --norm pre; it contradicts --norm " + a.str("norm", "query"));
        if (norm == "query") return run<rb::policies::QueryNorm>(a, mode);
        if (norm == "pre") return run<rb::policies::PreNorm>(a, mode);
        if (norm == "post") return run<rb::policies::PostNorm>(a, mode);
        throw rb::ValueError("--norm must be query, pre or post, got '" + norm + "'");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sasrec: error: %s\n", e.what());
        return 1;
    }
}
