// bert4rec: train, evaluate and serve BERT4Rec (Sun et al., 2019) from the
// command line, with the flags of examples/sasrec.cpp and the paper's
// defaults (D 64, 2 blocks, 2 heads, dropout 0.2, lr 1e-4, batch 256,
// mask_prob 0.2, maxlen 200; AdamW with weight decay 0.01, 100 warm-up steps
// then linear decay to 0 at the last step, gradient clipping at norm 5).
//
//   bert4rec --dataset FILE [--format user-item|sequences|movielens-csv] [--maxlen 200] [--hidden_units 64]
//            [--num_blocks 2] [--num_heads 2] [--dropout_rate 0.2] [--attention_dropout P]
//            [--lr 0.0001] [--batch_size 256] [--num_epochs 200] [--mask_prob 0.2] [--mask_last_prob 0]
//            [--warmup_steps 100] [--weight_decay 0.01] [--clip_norm 5] [--seed 42] [--threads 0]
//            [--eval sampled|full] [--eval_every 20] [--save FILE] [--load FILE] [--max_seconds S]
//            [--init_std 0.02] [--l2_emb 0] [--keep_best FILE] [--patience N] [--min_delta X]
//            [--valid_metric NDCG@10] [--train_dir NAME] [--inference_only true|false] [--device cpu]
//   bert4rec recommend --load FILE (--dataset FILE [--format ...] --user ID | --history ID,ID,...) [--k 10]
//
// --help lists every flag with its default; the BERT4Rec authors' names are
// accepted as other spellings (--max_seq_length, --learning_rate,
// --num_warmup_steps, --masked_lm_prob, --hidden_size, --num_hidden_layers,
// --num_attention_heads, --hidden_dropout_prob, --attention_probs_dropout_prob,
// --initializer_range). --l2_emb X adds X/2 ||E||^2 to the loss (as sasrec's).
// --keep_best, --patience, --min_delta, --valid_metric and --train_dir work as
// in sasrec: the best validation epoch is kept and tested (docs/models.md).
//
// --init_std S: weights and tables start from a normal of std S truncated at
// 2 S, biases at 0 (the authors' initializer_range 0.02; 0 keeps PyTorch-style
// layer defaults). Every count is checked before anything is allocated, and
// the evaluation protocol before the first epoch.
//
// An epoch masks every training user's sequence once (fresh masks each
// epoch; the paper's code masks each sequence 10 times ahead of training and
// trains 400k steps). --mask_last_prob Q makes a row mask only its last item
// with probability Q (the authors' code adds such a row for every 10 random
// ones: Q = 1/11 ≈ 0.0909; default 0, the paper's text). The learning rate decays linearly to 0 at the end of
// --num_epochs; --max_seconds stops early (the schedule is not shortened).
// Evaluation is leave-one-out with [mask] appended to the history, over every
// user, with 100 uniformly sampled negatives (--eval sampled; the paper
// samples by popularity) or the full catalogue (--eval full).
//
// Progress goes to stderr; every epoch prints one line to stdout; the last
// line of stdout is one JSON object with the final test metrics and the
// training throughput. With --save, a checkpoint (safetensors: weights, AdamW
// state, step) is written atomically after every epoch; --load resumes it
// bit-exactly (same seed, thread count and flags). A NaN/Inf stops training
// with an error and leaves the last checkpoint as it was. The checkpoint
// describes its model and keeps the data's item ids, so `recommend --load
// FILE` needs no model flag (one given anyway must agree with the file);
// older checkpoints still load with their flags.
//
// ctest-args: --dataset data/ml-latest-small/ratings.csv --format movielens-csv --maxlen 20 --hidden_units 16 --num_epochs 1 --warmup_steps 1 --eval full
// ctest-args-sanitize: --dataset data/ml-latest-small/ratings.csv --format movielens-csv --maxlen 8 --hidden_units 8 --num_blocks 1 --batch_size 128 --num_epochs 1 --warmup_steps 0 --eval sampled --threads 2
#include <recblocks/train/checkpoint.hpp>
#include <recblocks/recblocks.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <unistd.h>

#include "common/args.hpp"
#include "common/recommender_cli.hpp"

namespace rb = recblocks;
using rb::index_t;
using rb::row_id_t;

namespace {

std::vector<examples::FlagGroup> flag_groups() {
    // Aliases: the names of the BERT4Rec authors' run.py flags and bert_config.json fields.
    return {
        examples::dataset_flags(),
        {"model",
         {{"maxlen", "200", "L: the longest history", "N", false, {"max_seq_length"}},
          {"hidden_units", "64", "D", "N", false, {"hidden_size"}},
          {"num_blocks", "2", "transformer blocks", "N", false, {"num_hidden_layers"}},
          {"num_heads", "2", "attention heads (divide --hidden_units)", "N", false, {"num_attention_heads"}},
          {"dropout_rate", "0.2", "dropout on the embedding, attention output and feed-forward", "X", false,
           {"hidden_dropout_prob"}},
          {"attention_dropout", "(--dropout_rate)", "dropout on the attention weights", "X", false,
           {"attention_probs_dropout_prob"}},
          {"init_std", "0.02", "weights start from a normal of this std truncated at 2 std (0: layer defaults)", "X",
           false, {"initializer_range"}}}},
        {"training",
         {{"lr", "0.0001", "peak learning rate (AdamW)", "X", false, {"learning_rate"}},
          {"batch_size", "256", "sequences per step"},
          {"num_epochs", "200", "epochs (every training sequence masked once per epoch)"},
          {"mask_prob", "0.2", "the share of items masked", "X", false, {"masked_lm_prob"}},
          {"mask_last_prob", "0", "rows that mask only their last item (the authors' code: 0.0909)", "X"},
          {"warmup_steps", "100", "linear warm-up steps, then linear decay to 0", "N", false, {"num_warmup_steps"}},
          {"weight_decay", "0.01", "AdamW's decoupled weight decay", "X"},
          {"l2_emb", "0", "adds l2_emb/2 * ||E||^2 to the loss (as SASRec's)", "X"},
          {"clip_norm", "5", "global gradient norm clipping (0: none)", "X"},
          {"seed", "42", "batches, masks, dropout, initialisation"},
          {"threads", "0", "worker threads (0: every hardware thread)"},
          {"max_seconds", "0", "stop after the epoch that passes S seconds (0: no limit)", "S"},
          {"device", "cpu", "this program trains on the CPU", "cpu"},
          {"save", "", "write a resumable checkpoint after every epoch", "FILE"},
          {"load", "", "resume a --save checkpoint", "FILE"},
          {"inference_only", "false", "only evaluate (no epoch runs)", "true|false"}}},
        examples::evaluation_flags(),
        examples::best_checkpoint_flags(),
        examples::recommend_flags(),
    };
}

const char* kUsage =
    "usage: bert4rec --dataset FILE [options]          train, evaluate (last line: JSON)\n"
    "       bert4rec recommend --load FILE (--dataset FILE --user ID | --history ID,ID,...) [--k 10]\n";

rb::models::BERT4RecConfig model_config(const examples::Args& a, index_t num_items) {
    rb::models::BERT4RecConfig c;
    c.num_items = num_items;
    c.max_len = a.integer_in("maxlen", 200, 1, examples::kMaxCount);
    c.d_model = a.integer_in("hidden_units", 64, 1, examples::kMaxCount);
    c.num_blocks = a.integer_in("num_blocks", 2, 1, examples::kMaxCount);
    c.heads = a.integer_in("num_heads", 2, 1, c.d_model);
    if (c.d_model % c.heads != 0)
        throw rb::ValueError("--num_heads " + std::to_string(c.heads) + " must divide --hidden_units " +
                             std::to_string(c.d_model));
    c.dropout = a.real_in("dropout_rate", 0.2, 0.0, 1.0, true);
    // -1 (the default): the same as --dropout_rate.
    c.attention_dropout = a.has("attention_dropout") ? a.real_in("attention_dropout", 0.0, 0.0, 1.0, true) : -1.0;
    c.init_std = a.real_in("init_std", 0.02, 0.0, 1e3);
    c.l2_emb = a.real_in("l2_emb", 0.0, 0.0, std::numeric_limits<double>::max());
    return c;
}

/// What the model and a training step will allocate, checked before they do.
void check_sizes(const rb::models::BERT4RecConfig& cfg, index_t batch, double mask_prob) {
    examples::check_memory_budget({.items = cfg.num_items, .maxlen = cfg.max_len, .dim = cfg.d_model,
                                   .heads = cfg.heads, .blocks = cfg.num_blocks, .batch = batch,
                                   .catalogue_rows = double(batch) * double(cfg.max_len) * mask_prob + double(batch)});
}

int recommend(const examples::Args& a) {
    if (!a.has("load")) throw rb::ValueError("recommend needs --load FILE");
    const std::string file = a.str("load", "");
    if (const auto d = rb::serving::read_description(file)) {  // the checkpoint describes its model
        if (d->kind != rb::models::ModelKind::bert4rec)
            throw rb::ValueError(file + " holds a " + rb::io::detail::metadata_text(d->kind) + " model, not BERT4Rec");
        examples::check_flag_agrees(a, "maxlen", d->bert4rec.max_len, file);
        examples::check_flag_agrees(a, "hidden_units", d->bert4rec.d_model, file);
        examples::check_flag_agrees(a, "num_blocks", d->bert4rec.num_blocks, file);
        examples::check_flag_agrees(a, "num_heads", d->bert4rec.heads, file);
        rb::ThreadPool pool(examples::thread_count(a));
        const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
        auto m = rb::serving::load_described_model(file, be, pool);
        return examples::recommend_described(a, m);
    }
    if (a.has("history")) throw rb::ValueError("--history needs a checkpoint that describes itself; " + file + " does not");
    const int threads = examples::thread_count(a);
    model_config(a, 1);  // the model flags, before reading the data
    const auto dataset = examples::read_dataset(a);
    const index_t n_items = dataset.num_items();
    const auto cfg = model_config(a, n_items);
    check_sizes(cfg, 1, 0.0);
    rb::ThreadPool pool(threads);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    rb::models::BERT4Rec<float> model(cfg, rb::Rng(0));
    rb::train::load_checkpoint<float>(a.str("load", ""), model.params(), nullptr);
    examples::print_recommendations(a, dataset, model, be, pool, cfg.max_len);
    return 0;
}

int train(const examples::Args& a) {
    // Every flag is checked before the data is read and before anything is allocated from it.
    rb::train::ClozeTrainingOptions topt;
    topt.batch_size = a.integer_in("batch_size", 256, 1, examples::kMaxCount);
    topt.lr = a.positive("lr", 1e-4);
    topt.mask_prob = a.real_in("mask_prob", 0.2, 0.0, 1.0);
    if (topt.mask_prob == 0.0) throw rb::ValueError("--mask_prob must be in (0, 1], got '" + a.str("mask_prob", "") + "'");
    topt.mask_last_prob = a.real_in("mask_last_prob", 0.0, 0.0, 1.0);
    topt.warmup_steps = a.integer_in("warmup_steps", 100, 0, std::numeric_limits<std::int64_t>::max());
    topt.weight_decay = a.real_in("weight_decay", 0.01, 0.0, std::numeric_limits<double>::max());
    topt.clip_norm = a.real_in("clip_norm", 5.0, 0.0, std::numeric_limits<double>::max());
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
    model_config(a, 1);
    (void)examples::BestCheckpoint(a, "", "");  // its flags too (it creates nothing yet)

    const auto dataset = examples::read_dataset(a);
    const auto split = rb::data::leave_one_out(dataset);
    const index_t n_items = dataset.num_items();
    const auto cfg = model_config(a, n_items);
    check_sizes(cfg, topt.batch_size, topt.mask_prob);
    rb::eval::NextItemEvalOptions eopt;
    eopt.protocol = proto == "sampled" ? rb::eval::Protocol::sampled : rb::eval::Protocol::full;
    eopt.seed = seed;
    rb::eval::check_evaluation(split, n_items, eopt);  // not after the last epoch
    rb::ThreadPool pool(threads);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    rb::models::BERT4Rec<float> model(cfg, rb::Rng(seed));

    topt.seed = seed;
    {
        // The decay needs the run's length: steps per epoch from the data.
        const rb::data::ClozeBatches probe(split.train, n_items, cfg.max_len, topt.mask_prob, seed);
        topt.total_steps = epochs * probe.batches_per_epoch(topt.batch_size);
        if (topt.total_steps > 0 && topt.total_steps <= topt.warmup_steps)
            throw rb::ValueError("the run has " + std::to_string(topt.total_steps) + " steps (" + std::to_string(epochs) +
                                 " epochs) but --warmup_steps is " + std::to_string(topt.warmup_steps) +
                                 "; lower --warmup_steps or raise --num_epochs");
    }
    rb::train::ClozeTrainer<float, decltype(model)> trainer(model, split.train, n_items, topt);
    examples::BestCheckpoint best(a, "BERT4Rec",
                                  ".lr=" + examples::fmt(topt.lr) + ".layer=" + std::to_string(cfg.num_blocks) +
                                      ".head=" + std::to_string(cfg.heads) + ".hidden=" + std::to_string(cfg.d_model) +
                                      ".maxlen=" + std::to_string(cfg.max_len));
    const rb::io::ItemIdMap item_map(dataset.item_ids);  // saved with every checkpoint
    if (a.has("load")) {
        const auto ck = trainer.load_checkpoint(a.str("load", ""));
        if (const auto it = ck.metadata.find("seed"); it != ck.metadata.end() && it->second != std::to_string(seed))
            std::fprintf(stderr, "warning: the checkpoint was trained with --seed %s; resuming with --seed %llu "
                                 "draws other batches, masks and dropout (not bit-exact)\n",
                         it->second.c_str(), static_cast<unsigned long long>(seed));
        best.resume(ck.metadata, a.str("load", ""));
        std::fprintf(stderr, "loaded %s (step %lld)\n", a.str("load", "").c_str(), static_cast<long long>(ck.step));
    }
    best.start(a);
    std::printf("bert4rec: %lld users, %lld items, %zu interactions; D=%lld L=%lld blocks=%lld heads=%lld "
                "mask_prob=%g steps=%lld threads=%d\n",
                static_cast<long long>(dataset.num_users()), static_cast<long long>(n_items),
                dataset.num_interactions(), static_cast<long long>(cfg.d_model), static_cast<long long>(cfg.max_len),
                static_cast<long long>(cfg.num_blocks), static_cast<long long>(cfg.heads), topt.mask_prob,
                static_cast<long long>(topt.total_steps), pool.size());
    std::fflush(stdout);
    const examples::BestCheckpoint::Save save = [&](const std::string& path,
                                                    const std::map<std::string, std::string>& extra) {
        auto meta = examples::describing_metadata(rb::models::ModelDescription::of(cfg), seed);
        meta["mask_prob"] = examples::fmt(topt.mask_prob);
        meta.insert(extra.begin(), extra.end());
        trainer.save_checkpoint(path, meta, [&](rb::io::SafetensorsWriter& w) { item_map.add_to(w); });
    };
    const bool tty = isatty(2);
    double train_seconds = 0;
    index_t train_sequences = 0;
    bool stopped_early = false;
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t e = trainer.epoch(); !inference_only && e < epochs; ++e) {
        const auto stats = trainer.train_epoch(be, pool, [&](index_t done, index_t total, double loss) {
            if (tty)
                std::fprintf(stderr, "\repoch %lld  batch %lld/%lld  loss %.4f  lr %.3g   ", static_cast<long long>(e + 1),
                             static_cast<long long>(done), static_cast<long long>(total), loss, trainer.last_lr());
        });
        train_seconds += stats.seconds;
        train_sequences += stats.sequences;
        const double eta = stats.seconds * double(epochs - e - 1);
        if (tty) std::fprintf(stderr, "\r");
        std::string line = "epoch " + std::to_string(stats.epoch) + "  loss " + examples::fmt(stats.mean_loss) + "  lr " +
                           examples::fmt(trainer.last_lr()) + "  " + examples::fmt(stats.sequences_per_second()) + " seq/s  ETA " +
                           examples::fmt(eta) + " s";
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
    const auto m = rb::eval::evaluate_next_item(model, be, pool, split, n_items, cfg.max_len, eopt);
    examples::print_final_json("bert4rec", proto, m, trainer.epoch(),
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
        if (mode == "train") {
            if (a.has("history")) throw rb::ValueError("--history is for recommend");
            return train(a);
        }
        if (mode == "recommend") return recommend(a);
        throw rb::ValueError("unknown mode '" + mode + "' (train or recommend)");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bert4rec: error: %s\n", e.what());
        return 1;
    }
}
