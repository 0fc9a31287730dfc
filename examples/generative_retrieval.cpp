// generative_retrieval: a TIGER/RecGPT-style generative retriever on MovieLens
// ml-latest-small, end to end, next to SASRec on the same leave-one-out split.
//
//   generative_retrieval [--data DIR] [--ids rq|fsq|both] [--epochs E] [--sasrec_epochs E] [--threads T]
//                        [--seed S] [--maxlen L] [--dim D] [--rq_k K] [--fsq_steps N] [--beam B] [--user ID]
//                        [--fsq_levels 8,5,5,5] [--lr LR] [--quick 1]
//
// 1. Item vectors from movies.csv (title words, year, genres): hashed TF-IDF
//    (2^15 buckets) -> seeded Gaussian projection to 64 -> unit rows
//    (data/item_text_features.hpp).
// 2. Semantic IDs: RQ (3 levels x --rq_k codes, default 64) and FSQ (--fsq_levels,
//    default 8-5-5-5, through a trained FSQ autoencoder); the collision rate of each before and
//    after handling (TIGER's extra code, used for training; LC-Rec's Sinkhorn
//    re-assignment reported for RQ).
// 3. The generative retriever (models/generative_retriever.hpp) per ID set,
//    trained for --epochs; Recall@10 (= HR@10: one held-out item) and NDCG@10
//    under the full-ranking protocol of eval/next_item_evaluation.hpp (every
//    user's test item, history excluded), from the model's exact item scores;
//    the same metrics from catalogue-constrained beam search (top 50 decoded,
//    history removed, first 10 kept), and the invalid-ID rate of unconstrained
//    beam search (top 10) vs the trie's 0.
// 4. SASRec (models/sasrec.hpp, train::NextItemTrainer) on the same split for
//    --sasrec_epochs, same protocol.
// 5. A few recommended titles for one user (--user, default the first).
//
// The last line of stdout is one JSON object with every metric. --quick (what
// CTest runs) shrinks everything to a smoke test of a few seconds.
//
// ctest-args: --quick 1
#include <recblocks/recblocks.hpp>
#include <recblocks/data/item_text_features.hpp>
#include <recblocks/models/generative_retriever.hpp>
#include <recblocks/train/generative_trainer.hpp>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <unordered_map>

#include "common/args.hpp"
#include "common/recommender_cli.hpp"

namespace rb = recblocks;
using rb::index_t;
using rb::row_id_t;

namespace {

std::vector<examples::FlagGroup> flag_groups() {
    return {{"data", {{"data", "(the bundled data/ml-latest-small)", "a MovieLens folder (ratings.csv, movies.csv)", "DIR"}}},
            {"semantic ids",
             {{"ids", "both", "which semantic ids to train on", "rq|fsq|both"},
              {"rq_k", "64", "codes per RQ level (3 levels)"},
              {"fsq_levels", "8,5,5,5", "FSQ levels", "L1,L2,..."},
              {"fsq_steps", "(1500; 20 with --quick)", "FSQ autoencoder training steps", "N"}}},
             {"model and training",
              {{"maxlen", "(50; 10 with --quick)", "history items", "N"},
               {"dim", "(64; 16 with --quick)", "D", "N"},
               {"epochs", "(20; 1 with --quick)", "generative retriever epochs", "N"},
               {"sasrec_epochs", "(60; 1 with --quick)", "SASRec epochs (the baseline)", "N"},
               {"lr", "0.005", "learning rate", "X"},
               {"seed", "42", "every random choice"},
               {"threads", "0", "worker threads (0: every hardware thread)"},
               {"quick", "0", "a smoke test of a few seconds (what CTest runs)", "0|1"}}},
             {"evaluation and output",
              {{"beam", "20", "beam width of the constrained beam search"},
               {"user", "(the first user)", "the user whose recommendations are printed", "ID"}}}};
}

const char* kUsage = "usage: generative_retrieval [options]    (the top of examples/generative_retrieval.cpp explains the steps)\n";

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void print_stats(const char* what, const rb::tokenizers::CollisionStats& s) {
    std::printf("  %-34s collision rate %.4f (%lld of %lld items share a tuple; %lld distinct tuples, largest group %lld)\n",
                what, s.rate(), static_cast<long long>(s.colliding_items), static_cast<long long>(s.items),
                static_cast<long long>(s.distinct_tuples), static_cast<long long>(s.largest_group));
}

struct GenResult {
    std::string ids;
    double recall = 0, ndcg = 0, beam_recall = 0, beam_ndcg = 0, invalid_rate = 0, constrained_invalid_rate = 0;
    double collision_before = 0, collision_after = 0, train_seconds = 0, decode_users_per_second = 0;
    index_t levels = 0;
};

struct Setup {
    rb::data::SequenceDataset dataset;
    rb::data::LeaveOneOut split;
    std::unordered_map<std::int64_t, std::string> titles;
    index_t max_len = 50, dim = 64, epochs = 20, beam = 20, user = 0;
    double lr = 1e-3;
    std::uint64_t seed = 42;
};

/// Evaluated users' inputs (train + validation item, last max_len) in batches.
template <class F>
void for_each_eval_batch(const Setup& s, index_t batch, F&& f) {
    const auto users = s.split.evaluated_users();
    rb::Matrix<row_id_t> ids;
    std::vector<std::vector<row_id_t>> in;
    for (std::size_t b0 = 0; b0 < users.size(); b0 += static_cast<std::size_t>(batch)) {
        const std::size_t nb = std::min(users.size() - b0, static_cast<std::size_t>(batch));
        in.assign(nb, {});
        for (std::size_t i = 0; i < nb; ++i) {
            const auto u = static_cast<std::size_t>(users[b0 + i]);
            in[i] = s.split.train[u];
            in[i].push_back(s.split.valid[u]);
        }
        std::vector<std::span<const row_id_t>> spans(in.begin(), in.end());
        if (ids.extent(0) != static_cast<index_t>(nb)) ids.resize(rb::Shape<2>{{static_cast<index_t>(nb), s.max_len}});
        rb::data::left_padded_batch(spans, ids.view());
        f(std::span<const index_t>(users.data() + b0, nb), in, ids.cview());
    }
}

template <class Be>
GenResult run_generative(const Setup& s, const std::string& name, const rb::tokenizers::SemanticIds& raw,
                         const rb::tokenizers::SemanticIds& ids, const Be& be, rb::ThreadPool& pool) {
    GenResult r;
    r.ids = name;
    r.levels = ids.levels();
    r.collision_before = raw.collisions().rate();
    r.collision_after = ids.collisions().rate();
    rb::models::GenerativeRetrieverConfig cfg;
    cfg.max_len = s.max_len;
    cfg.d_model = s.dim;
    cfg.num_blocks = 2;
    cfg.heads = 2;
    cfg.dropout = 0.1;
    rb::models::GenerativeRetriever<float> model(cfg, ids, rb::Rng(s.seed));
    rb::train::GenerativeTrainingOptions opt;
    opt.seed = s.seed;
    opt.lr = s.lr;
    rb::train::GenerativeTrainer<float> trainer(model, s.split.train, opt);
    const auto t0 = std::chrono::steady_clock::now();
    for (index_t e = 0; e < s.epochs; ++e) {
        const auto st = trainer.train_epoch(be, pool);
        std::printf("  [%s] epoch %lld  loss %.4f  %.1f s  %.0f seq/s\n", name.c_str(), static_cast<long long>(st.epoch),
                    st.mean_loss, st.seconds, st.sequences_per_second());
        std::fflush(stdout);
    }
    r.train_seconds = seconds_since(t0);
    // Full ranking from the exact item scores.
    rb::eval::NextItemEvalOptions eo;
    eo.protocol = rb::eval::Protocol::full;
    eo.ks = {10};
    const auto m = rb::eval::evaluate_next_item(model, be, pool, s.split, s.dataset.num_items(), s.max_len, eo);
    r.recall = m.hit_rate(10);
    r.ndcg = m.ndcg(10);
    // Beam search: constrained (top 50, history removed, 10 kept) and unconstrained (top 10).
    const rb::decoding::FlatCatalogue catalogue(ids);  // the catalogue as flat per-level arrays
    rb::decoding::BeamSearchWorkspace ws;
    rb::decoding::BeamSearchOptions bo;
    bo.beam_width = std::max<index_t>(s.beam, 50);
    bo.pool = &pool;
    rb::eval::MetricsAccumulator beam_acc({10});
    rb::decoding::InvalidIdStats unconstrained, constrained;
    const index_t kdec = std::min<index_t>(50, ids.num_items());
    double decode_seconds = 0;
    index_t decoded = 0;
    for_each_eval_batch(s, 128, [&](std::span<const index_t> users, const std::vector<std::vector<row_id_t>>& in,
                                    rb::MatrixView<const row_id_t> hist) {
        const index_t q = hist.rows();
        rb::Matrix<row_id_t> items(rb::Shape<2>{{q, kdec}});
        rb::Matrix<float> sc(rb::Shape<2>{{q, kdec}});
        const auto td = std::chrono::steady_clock::now();
        model.prepare_queries(be, pool, hist);
        rb::decoding::constrained_beam_search(model, catalogue, q, kdec, items.view(), sc.view(), ws, bo);
        decode_seconds += seconds_since(td);
        decoded += q;
        for (index_t b = 0; b < q; ++b) {
            const std::set<row_id_t> seen(in[static_cast<std::size_t>(b)].begin(), in[static_cast<std::size_t>(b)].end());
            const row_id_t target = s.split.test[static_cast<std::size_t>(users[static_cast<std::size_t>(b)])];
            index_t rank = 10, kept = 0;  // 10: not in the top 10
            for (index_t j = 0; j < kdec && kept < 10; ++j) {
                constrained.returned += 1;
                if (items(b, j) < 0 || !catalogue.contains(ids.codes(items(b, j)))) constrained.invalid += 1;
                const row_id_t item = items(b, j) + 1;  // catalogue item ids are dataset ids - 1
                if (seen.count(item)) continue;
                if (item == target) rank = kept;
                ++kept;
            }
            beam_acc.add(rank);
        }
        rb::Tensor<std::int32_t, 3> codes(rb::Shape<3>{{q, 10, ids.levels()}});
        rb::Matrix<float> sc10(rb::Shape<2>{{q, 10}});
        rb::decoding::BeamSearchOptions bu = bo;
        bu.beam_width = s.beam;
        rb::decoding::beam_search(model, ids.codebook_sizes(), q, 10, codes.view(), sc10.view(), ws, bu);
        const auto st = rb::decoding::count_invalid_ids(catalogue, codes.cview());
        unconstrained.returned += st.returned;
        unconstrained.invalid += st.invalid;
    });
    r.beam_recall = beam_acc.hit_rate(10);
    r.beam_ndcg = beam_acc.ndcg(10);
    r.invalid_rate = unconstrained.rate();
    r.constrained_invalid_rate = constrained.rate();
    r.decode_users_per_second = decode_seconds > 0 ? double(decoded) / decode_seconds : 0;
    std::printf("  [%s] full ranking: Recall@10 %.4f NDCG@10 %.4f | constrained beam (beam %lld, top 50 - history): "
                "Recall@10 %.4f NDCG@10 %.4f | invalid IDs: unconstrained %.4f, with the trie %.4f | decode %.0f users/s\n",
                name.c_str(), r.recall, r.ndcg, static_cast<long long>(bo.beam_width), r.beam_recall, r.beam_ndcg,
                r.invalid_rate, r.constrained_invalid_rate, r.decode_users_per_second);

    // A few recommended titles for one user.
    const auto u = static_cast<std::size_t>(std::min<index_t>(s.user, s.dataset.num_users() - 1));
    std::vector<row_id_t> h = s.split.train[u];
    if (s.split.valid[u]) h.push_back(s.split.valid[u]);
    rb::Matrix<row_id_t> one(rb::Shape<2>{{1, s.max_len}});
    const std::span<const row_id_t> sp[1] = {h};
    rb::data::left_padded_batch(sp, one.view());
    model.prepare_queries(be, pool, one.cview());
    rb::Matrix<row_id_t> items(rb::Shape<2>{{1, kdec}});
    rb::Matrix<float> sc(rb::Shape<2>{{1, kdec}});
    rb::decoding::constrained_beam_search(model, catalogue, 1, kdec, items.view(), sc.view(), ws, bo);
    auto title = [&](row_id_t item) {
        const auto it = s.titles.find(s.dataset.item_ids[static_cast<std::size_t>(item)]);
        return it == s.titles.end() ? std::string("?") : it->second;
    };
    std::printf("  [%s] user %lld: last watched: ", name.c_str(), static_cast<long long>(s.dataset.user_ids[u]));
    for (std::size_t i = h.size() > 3 ? h.size() - 3 : 0; i < h.size(); ++i) std::printf("\"%s\"  ", title(h[i]).c_str());
    std::printf("\n  [%s] recommended (constrained beam search):\n", name.c_str());
    const std::set<row_id_t> seen(h.begin(), h.end());
    for (index_t j = 0, shown = 0; j < kdec && shown < 5; ++j) {
        const row_id_t item = items(0, j) + 1;
        if (seen.count(item)) continue;
        const auto c = ids.codes(items(0, j));
        std::string tuple;
        for (const auto v : c) tuple += (tuple.empty() ? "" : "-") + std::to_string(v);
        std::printf("      %lld. %s  (codes %s, log p %.3f)\n", static_cast<long long>(++shown), title(item).c_str(),
                    tuple.c_str(), double(sc(0, j)));
    }
    return r;
}

}  // namespace

int main(int argc, char** argv) try {
    const examples::Args a(argc, argv, flag_groups());
    if (a.has("help")) {
        a.print_help(stdout, kUsage);
        return 0;
    }
    const bool quick = a.integer_in("quick", 0, 0, 1) != 0;
    Setup s;
    const std::string dir = a.str("data", std::string(RECBLOCKS_SOURCE_DIR) + "/data/ml-latest-small");
    s.max_len = a.integer("maxlen", quick ? 10 : 50);
    s.dim = a.integer("dim", quick ? 16 : 64);
    s.epochs = a.integer("epochs", quick ? 1 : 20);
    s.beam = a.integer("beam", 20);
    s.seed = static_cast<std::uint64_t>(a.integer("seed", 42));
    s.lr = a.real("lr", 5e-3);
    const index_t sasrec_epochs = a.integer("sasrec_epochs", quick ? 1 : 60);
    const index_t rq_k = a.integer("rq_k", 64);
    const index_t fsq_steps = a.integer("fsq_steps", quick ? 20 : 1500);
    const std::string which = a.str("ids", "both");
    std::vector<int> fsq_levels;
    {
        const std::string lv = a.str("fsq_levels", "8,5,5,5");
        for (std::size_t p = 0; p <= lv.size();) {
            const std::size_t q = std::min(lv.find(',', p), lv.size());
            fsq_levels.push_back(std::stoi(lv.substr(p, q - p)));
            p = q + 1;
        }
    }
    if (which != "rq" && which != "fsq" && which != "both") throw rb::ValueError("--ids must be rq, fsq or both");
    if (s.max_len < 1 || s.dim < 2 || s.epochs < 0 || sasrec_epochs < 0 || s.beam < 1 || rq_k < 2 || fsq_steps < 0)
        throw rb::ValueError("bad flags: need --maxlen >= 1, --dim >= 2, --epochs/--sasrec_epochs/--fsq_steps >= 0, "
                             "--beam >= 1, --rq_k >= 2");
    const int threads = examples::thread_count(a);
    rb::ThreadPool pool(threads);
    const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
    const auto t_all = std::chrono::steady_clock::now();

    s.dataset = rb::data::read_movielens_csv(dir + "/ratings.csv");
    s.split = rb::data::leave_one_out(s.dataset);
    const auto movies = rb::data::read_movies_csv(dir + "/movies.csv");
    for (const auto& m : movies) s.titles.emplace(m.movie_id, m.title);
    const index_t n = s.dataset.num_items();
    std::printf("MovieLens %s: %lld users, %lld items, %zu interactions; %d threads\n", dir.c_str(),
                static_cast<long long>(s.dataset.num_users()), static_cast<long long>(n),
                s.dataset.num_interactions(), threads);
    s.user = 0;
    if (a.has("user")) {
        const long long want = a.integer("user", 1);
        s.user = -1;
        for (std::size_t i = 0; i < s.dataset.user_ids.size(); ++i)
            if (s.dataset.user_ids[i] == want) s.user = static_cast<index_t>(i);
        if (s.user < 0) throw rb::IndexError("--user " + std::to_string(want) + " is not in the ratings");
    }

    // 1. Item vectors.
    auto t0 = std::chrono::steady_clock::now();
    rb::data::TextFeatureConfig fc;
    fc.seed = s.seed;
    const rb::Matrix<float> x = rb::data::movie_item_features(movies, s.dataset.item_ids, fc);
    std::printf("item vectors: [%lld, %lld] (hashed TF-IDF, %lld buckets, Gaussian projection) in %.2f s\n",
                static_cast<long long>(x.extent(0)), static_cast<long long>(x.extent(1)),
                static_cast<long long>(fc.hash_buckets), seconds_since(t0));

    std::vector<GenResult> results;
    // 2a. RQ IDs.
    if (which != "fsq") {
        t0 = std::chrono::steady_clock::now();
        rb::tokenizers::ResidualQuantizerConfig rc;
        rc.levels = 3;
        rc.codebook_size = rq_k;
        rc.beam_size = 5;
        rc.kmeans.iterations = 20;
        rc.kmeans.seed = s.seed;
        rb::tokenizers::ResidualQuantizer rq(rc);
        const auto& rep = rq.train(be, x.cview());
        rb::Matrix<std::int32_t> codes(rb::Shape<2>{{n, 3}});
        rq.encode(be, x.cview(), codes.view());
        std::printf("RQ semantic IDs: 3 x %lld codes, training MSE per level", static_cast<long long>(rq_k));
        for (const double v : rep.level_mse) std::printf(" %.4f", v);
        std::printf(", encode MSE %.4f, %.2f s\n", rq.reconstruction_mse(be, x.cview(), codes.cview()), seconds_since(t0));
        const std::vector<std::int32_t> sizes(3, static_cast<std::int32_t>(rq_k));
        const rb::tokenizers::SemanticIds raw(codes.cview(), sizes);
        print_stats("RQ before handling:", raw.collisions());
        const auto tiger = raw.with_disambiguation_code();
        print_stats("RQ after TIGER's extra code:", tiger.collisions());
        // LC-Rec: re-code colliding items at the last level by their residual's distances.
        rb::tokenizers::SemanticIds lcrec = raw;
        const auto rr = lcrec.rebalance_last_level([&](std::span<const row_id_t> items, rb::MatrixView<float> out) {
            const index_t d = x.extent(1);
            std::vector<float> res(static_cast<std::size_t>(d));
            for (std::size_t i = 0; i < items.size(); ++i) {
                const index_t it = items[i];
                for (index_t j = 0; j < d; ++j) res[static_cast<std::size_t>(j)] = x(it, j);
                for (index_t m = 0; m < 2; ++m) {
                    const auto cb = rq.codebook(m);
                    for (index_t j = 0; j < d; ++j) res[static_cast<std::size_t>(j)] -= cb(codes(it, m), j);
                }
                const auto last = rq.codebook(2);
                for (index_t c = 0; c < rq_k; ++c) {
                    double dist = 0;
                    for (index_t j = 0; j < d; ++j) {
                        const double e = double(res[static_cast<std::size_t>(j)]) - double(last(c, j));
                        dist += e * e;
                    }
                    out(static_cast<index_t>(i), c) = static_cast<float>(dist);
                }
            }
        });
        print_stats("RQ after LC-Rec Sinkhorn:", rr.after);
        std::printf("  training on the TIGER IDs (%lld levels: 3 x %lld + %d)\n", static_cast<long long>(tiger.levels()),
                    static_cast<long long>(rq_k), tiger.codebook_sizes().back());
        std::fflush(stdout);
        results.push_back(run_generative(s, "rq", raw, tiger, be, pool));
        results.back().collision_after = tiger.collisions().rate();
        std::printf("  (LC-Rec collision rate after: %.4f)\n", rr.after.rate());
    }
    // 2b. FSQ IDs.
    if (which != "rq") {
        t0 = std::chrono::steady_clock::now();
        rb::tokenizers::FsqAutoencoder<float> ae({x.extent(1), rb::tokenizers::FsqConfig{fsq_levels}}, rb::Rng(s.seed));
        const auto channels = static_cast<index_t>(fsq_levels.size());
        std::string lvname;
        for (const int l : fsq_levels) lvname += (lvname.empty() ? "" : "-") + std::to_string(l);
        rb::ParamList<float> params;
        ae.append_params("fsq.", params);
        rb::optim::Adam<float> adam({}, params);
        const index_t bsz = std::min<index_t>(256, n);
        rb::Matrix<float> batch(rb::Shape<2>{{bsz, x.extent(1)}});
        const rb::Rng rng(s.seed, 77);
        double loss = 0;
        for (index_t step = 0; step < fsq_steps; ++step) {
            for (index_t r = 0; r < bsz; ++r) {
                const auto row = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(step * bsz + r),
                                                                static_cast<std::uint32_t>(n)));
                std::copy(x.cview().row(row), x.cview().row(row) + x.extent(1), batch.view().row(r));
            }
            loss = ae.train_step(be, batch.cview(), adam, params, 3e-3);
        }
        rb::Matrix<std::int32_t> codes(rb::Shape<2>{{n, channels}});
        ae.encode(be, x.cview(), codes.view());
        std::printf("FSQ semantic IDs: levels %s (%lld tuples), autoencoder %lld steps, last batch MSE %.4f, %.2f s\n",
                    lvname.c_str(), static_cast<long long>(ae.quantizer().codebook_size()),
                    static_cast<long long>(fsq_steps), loss, seconds_since(t0));
        const rb::tokenizers::SemanticIds raw(codes.cview(), std::vector<std::int32_t>(fsq_levels.begin(), fsq_levels.end()));
        print_stats("FSQ before handling:", raw.collisions());
        const auto tiger = raw.with_disambiguation_code();
        print_stats("FSQ after TIGER's extra code:", tiger.collisions());
        std::printf("  training on the TIGER IDs (%lld levels: %s + %d)\n", static_cast<long long>(tiger.levels()),
                    lvname.c_str(), tiger.codebook_sizes().back());
        std::fflush(stdout);
        results.push_back(run_generative(s, "fsq", raw, tiger, be, pool));
    }

    // 3. SASRec on the same split.
    t0 = std::chrono::steady_clock::now();
    rb::models::SASRecConfig sc;
    sc.num_items = n;
    sc.max_len = s.max_len;
    sc.d_model = s.dim;
    sc.num_blocks = 2;
    sc.heads = 1;
    sc.dropout = 0.2;
    rb::models::SASRec<float> sasrec(sc, rb::Rng(s.seed));
    rb::train::NextItemTrainingOptions so;
    so.seed = s.seed;
    rb::train::NextItemTrainer<float, rb::models::SASRec<float>> st(sasrec, s.split.train, n, s.max_len, so);
    for (index_t e = 0; e < sasrec_epochs; ++e) {
        const auto es = st.train_epoch(be, pool);
        if ((e + 1) % 10 == 0 || e + 1 == sasrec_epochs)
            std::printf("  [sasrec] epoch %lld  loss %.4f  %.1f s\n", static_cast<long long>(es.epoch), es.mean_loss,
                        es.seconds);
    }
    rb::eval::NextItemEvalOptions eo;
    eo.protocol = rb::eval::Protocol::full;
    eo.ks = {10};
    const auto sm = rb::eval::evaluate_next_item(sasrec, be, pool, s.split, n, s.max_len, eo);
    std::printf("SASRec (%lld epochs, %.1f s): full ranking Recall@10 %.4f NDCG@10 %.4f\n",
                static_cast<long long>(sasrec_epochs), seconds_since(t0), sm.hit_rate(10), sm.ndcg(10));

    std::printf("\n%-8s %10s %9s %12s %11s %14s %10s %10s\n", "model", "Recall@10", "NDCG@10", "beam R@10",
                "beam N@10", "invalid(unc.)", "coll.raw", "coll.after");
    for (const auto& r : results)
        std::printf("gen-%-4s %10.4f %9.4f %12.4f %11.4f %14.4f %10.4f %10.4f\n", r.ids.c_str(), r.recall, r.ndcg,
                    r.beam_recall, r.beam_ndcg, r.invalid_rate, r.collision_before, r.collision_after);
    std::printf("sasrec   %10.4f %9.4f\n", sm.hit_rate(10), sm.ndcg(10));

    std::string json = "{\"example\": \"generative_retrieval\", \"protocol\": \"full\", \"users\": " +
                       std::to_string(sm.count()) + ", \"threads\": " + std::to_string(threads) +
                       ", \"epochs\": " + std::to_string(s.epochs) + ", \"sasrec_epochs\": " + std::to_string(sasrec_epochs);
    for (const auto& r : results) {
        const std::string p = "\"gen_" + r.ids + "_";
        json += ", " + p + "Recall@10\": " + examples::fmt(r.recall) + ", " + p + "NDCG@10\": " + examples::fmt(r.ndcg) +
                ", " + p + "beam_Recall@10\": " + examples::fmt(r.beam_recall) + ", " + p +
                "beam_NDCG@10\": " + examples::fmt(r.beam_ndcg) + ", " + p +
                "invalid_rate_unconstrained\": " + examples::fmt(r.invalid_rate) + ", " + p +
                "invalid_rate_constrained\": " + examples::fmt(r.constrained_invalid_rate) + ", " + p +
                "collision_rate_raw\": " + examples::fmt(r.collision_before) + ", " + p +
                "collision_rate_after\": " + examples::fmt(r.collision_after) + ", " + p +
                "train_seconds\": " + examples::fmt(r.train_seconds);
    }
    json += ", \"sasrec_Recall@10\": " + examples::fmt(sm.hit_rate(10)) + ", \"sasrec_NDCG@10\": " +
            examples::fmt(sm.ndcg(10)) + ", \"seconds\": " + examples::fmt(seconds_since(t_all)) + "}";
    std::printf("%s\n", json.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "generative_retrieval: %s\n", e.what());
    return 1;
}
