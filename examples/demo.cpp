// recblocks demo: next-movie recommendation on MovieLens ml-latest-small,
// trained and served with the library's primitives only.
//
// Model (a small "average of recent items" recommender, trained end to end):
//   h      = LayerNorm(mean of E_in[last W items])           [B, D]
//   scores = h · E_outᵀ                                       [B, N]
//   loss   = cross-entropy of the next item over all N items (full softmax)
// Forward and backward use ops::gather_rows, layer_norm_forward/backward, gemm,
// softmax_rows, scatter_add_rows; serving uses gemm + top_k_rows. The model
// becomes SASRec once the attention blocks land; the data path stays.
//
// Evaluation: leave-one-out (last item of each user is the test item), the
// held-out item ranked against *all* items except the user's history; HR@10
// and NDCG@10 over every user, next to a most-popular baseline.
//
// Usage: demo [--data DIR] [--epochs N] [--dim D] [--threads T] [--user ID]
// ctest-args: --epochs 1
// ctest-args-sanitize: --epochs 1 --dim 8
#include <recblocks/data/sequence_dataset.hpp>
#include <recblocks/recblocks.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

// The bundled data set, found from the source tree the demo was built in.
#ifdef RECBLOCKS_SOURCE_DIR
#define RECBLOCKS_DEMO_DATA_DIR RECBLOCKS_SOURCE_DIR "/data/ml-latest-small"
#else
#define RECBLOCKS_DEMO_DATA_DIR "data/ml-latest-small"
#endif

namespace rb = recblocks;
using rb::index_t;
using rb::row_id_t;

namespace {

struct Options {
    std::string data_dir = RECBLOCKS_DEMO_DATA_DIR;
    int epochs = 3;
    index_t dim = 64;
    index_t window = 20;
    index_t batch = 256;
    float lr = 3e-3f;
    int threads = 0;
    long user = 1;
};

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw rb::ValueError("demo: " + a + " needs a value");
            return argv[++i];
        };
        if (a == "--data") o.data_dir = value();
        else if (a == "--epochs") o.epochs = std::stoi(value());
        else if (a == "--dim") o.dim = std::stol(value());
        else if (a == "--threads") o.threads = std::stoi(value());
        else if (a == "--user") o.user = std::stol(value());
        else throw rb::ValueError("demo: unknown option '" + a + "' (see the comment at the top of demo.cpp)");
    }
    if (o.epochs < 0 || o.dim < 1) throw rb::ValueError("demo: --epochs must be >= 0 and --dim >= 1");
    return o;
}

/// Splits one CSV line, honouring double quotes (movie titles contain commas).
std::vector<std::string> split_csv(const std::string& line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (c == '"') {
            if (quoted && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
            else quoted = !quoted;
        } else if (c == ',' && !quoted) {
            out.emplace_back();
        } else if (c != '\r') {
            out.back() += c;
        }
    }
    return out;
}

/// movieId -> title from movies.csv ("movieId,title,genres"; titles may be quoted).
std::unordered_map<std::int64_t, std::string> read_titles(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw rb::IoError("demo: cannot open " + path);
    std::unordered_map<std::int64_t, std::string> titles;
    std::string line;
    std::getline(in, line);
    for (long no = 2; std::getline(in, line); ++no) {
        const auto f = split_csv(line);
        if (f.size() < 2) throw rb::FormatError(rb::detail::concat(path, ":", no, ": expected movieId,title,genres"));
        titles[std::stoll(f[0])] = f[1];
    }
    return titles;
}

/// The model's parameters and Adam state.
struct Model {
    rb::Matrix<float> e_in, e_out;
    rb::Vector<float> gamma, beta;
    Model(index_t n, index_t d, std::uint64_t seed)
        : e_in(rb::Shape<2>{{n, d}}), e_out(rb::Shape<2>{{n, d}}), gamma(rb::Shape<1>{{d}}), beta(rb::Shape<1>{{d}}) {
        const rb::Rng rng(seed);
        const double scale = 1.0 / std::sqrt(double(d));
        for (index_t i = 0; i < e_in.numel(); ++i) e_in.data()[i] = float(scale * rng.normal(i));
        const rb::Rng rng2 = rng.substream(1);
        for (index_t i = 0; i < e_out.numel(); ++i) e_out.data()[i] = float(scale * rng2.normal(i));
        std::fill(gamma.begin(), gamma.end(), 1.0f);
    }
};

/// Adam over one flat parameter array.
struct Adam {
    std::vector<float> m, v;
    long step = 0;
    void update(float* w, const float* g, index_t n, float lr) {
        if (m.empty()) m.assign(static_cast<std::size_t>(n), 0.0f), v.assign(static_cast<std::size_t>(n), 0.0f);
        const float b1 = 0.9f, b2 = 0.999f;
        ++step;
        const float c1 = 1.0f - std::pow(b1, float(step)), c2 = 1.0f - std::pow(b2, float(step));
        for (index_t i = 0; i < n; ++i) {
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            w[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + 1e-8f);
        }
    }
};

/// Encodes contexts (the last `window` items before each position) into h.
/// Keeps what the backward pass needs.
struct Encoder {
    index_t window, dim;
    rb::Matrix<float> gathered, mean, h;
    rb::Vector<float> mu, rstd;
    std::vector<row_id_t> ids;        // all context ids of the batch, flattened
    std::vector<index_t> offsets;     // ids[offsets[b] .. offsets[b+1]) belong to row b

    template <class Be>
    void forward(const Be& be, const Model& m, const std::vector<std::vector<row_id_t>>& contexts) {
        const index_t b = static_cast<index_t>(contexts.size());
        ids.clear();
        offsets.assign(1, 0);
        for (const auto& c : contexts) {
            ids.insert(ids.end(), c.begin(), c.end());
            offsets.push_back(static_cast<index_t>(ids.size()));
        }
        const index_t n = static_cast<index_t>(ids.size());
        if (gathered.extent(0) < n) gathered.resize(rb::Shape<2>{{n, dim}});
        if (mean.extent(0) != b) mean.resize(rb::Shape<2>{{b, dim}}), h.resize(rb::Shape<2>{{b, dim}}),
                mu.resize(rb::Shape<1>{{b}}), rstd.resize(rb::Shape<1>{{b}});
        auto g = gathered.view().slice_rows(0, n);
        rb::ops::gather_rows(be, m.e_in.view(), rb::vector_view<const row_id_t>(ids.data(), n), g);
        for (index_t r = 0; r < b; ++r) {
            const index_t lo = offsets[r], hi = offsets[r + 1];
            float* out = mean.view().row(r);
            std::fill(out, out + dim, 0.0f);
            for (index_t j = lo; j < hi; ++j)
                rb::ops::axpy(be, 1.0f / float(hi - lo), rb::vector_view<const float>(g.row(j), dim),
                              rb::vector_view(out, dim));
        }
        rb::ops::layer_norm_forward(be, mean.view(), m.gamma.view(), m.beta.view(), 1e-5f, h.view(), mu.view(),
                                    rstd.view());
    }
};

struct Metrics {
    double hr = 0, ndcg = 0;
    long users = 0;
};

/// Ranks each user's test item against all items not in their history.
template <class Score>
Metrics evaluate(const rb::data::SequenceDataset& d, index_t n_items, Score&& score_batch) {
    Metrics mt;
    std::vector<index_t> users;
    for (index_t u = 0; u < static_cast<index_t>(d.sequences.size()); ++u)
        if (d.sequences[u].size() >= 3) users.push_back(u);
    const index_t bs = 256;
    rb::Matrix<float> scores;
    rb::Matrix<row_id_t> top(rb::Shape<2>{{bs, 10}});
    rb::Matrix<float> top_v(rb::Shape<2>{{bs, 10}});
    for (std::size_t s = 0; s < users.size(); s += bs) {
        const index_t b = std::min<index_t>(bs, static_cast<index_t>(users.size() - s));
        std::vector<index_t> batch(users.begin() + static_cast<long>(s), users.begin() + static_cast<long>(s + b));
        if (scores.extent(0) != b) scores.resize(rb::Shape<2>{{b, n_items}});
        score_batch(batch, scores.view());
        for (index_t r = 0; r < b; ++r) {
            const auto& seq = d.sequences[batch[r]];
            scores(r, 0) = -INFINITY;  // the padding id is never an answer
            for (std::size_t j = 0; j + 1 < seq.size(); ++j) scores(r, seq[j]) = -INFINITY;  // history
        }
        auto tv = top.view().slice_rows(0, b);
        auto vv = top_v.view().slice_rows(0, b);
        rb::ops::top_k_rows(rb::backend::Cpu<rb::isa::Dispatch>{}, scores.view(), 10, tv, vv);
        for (index_t r = 0; r < b; ++r) {
            const row_id_t target = d.sequences[batch[r]].back();
            for (index_t k = 0; k < 10; ++k)
                if (tv(r, k) == target) {
                    mt.hr += 1;
                    mt.ndcg += 1.0 / std::log2(double(k) + 2.0);
                }
            ++mt.users;
        }
    }
    mt.hr /= double(mt.users);
    mt.ndcg /= double(mt.users);
    return mt;
}

std::vector<row_id_t> last_items(const std::vector<row_id_t>& seq, std::size_t end, index_t window) {
    const std::size_t begin = end > std::size_t(window) ? end - std::size_t(window) : 0;
    return {seq.begin() + static_cast<long>(begin), seq.begin() + static_cast<long>(end)};
}

int run(const Options& opt) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    rb::ThreadPool pool(opt.threads > 0 ? opt.threads : rb::ThreadPool::default_thread_count());
    const rb::backend::Cpu<rb::isa::Dispatch> cpu{&pool};

    const rb::data::SequenceDataset d = rb::data::read_movielens_csv(opt.data_dir + "/ratings.csv");
    const auto titles = read_titles(opt.data_dir + "/movies.csv");
    const index_t n = d.num_items() + 1, dim = opt.dim;  // table row 0: the padding id, never recommended
    std::printf("recblocks %d.%d.%d demo | CPU kernels: %s | threads: %d\n", RECBLOCKS_VERSION_MAJOR,
                RECBLOCKS_VERSION_MINOR, RECBLOCKS_VERSION_PATCH, rb::isa_name(rb::active_isa()).data(), pool.size());
    std::printf("MovieLens ml-latest-small: %td users, %td movies\n", d.num_users(), d.num_items());

    // Training examples: (user, position t) predicting seq[t] from the items
    // before it; the last two items of each user are held out (valid, test).
    std::vector<std::pair<index_t, std::size_t>> examples;
    for (index_t u = 0; u < static_cast<index_t>(d.sequences.size()); ++u) {
        const std::size_t train_end = d.sequences[u].size() >= 3 ? d.sequences[u].size() - 2 : d.sequences[u].size();
        for (std::size_t t = 1; t < train_end; ++t) examples.emplace_back(u, t);
    }

    Model model(n, dim, 42);
    Adam adam_in, adam_out, adam_g, adam_b;
    Encoder enc{opt.window, dim, {}, {}, {}, {}, {}, {}, {}};
    const index_t bs = opt.batch;
    rb::Matrix<float> logits(rb::Shape<2>{{bs, n}}), dh(rb::Shape<2>{{bs, dim}}), dmean(rb::Shape<2>{{bs, dim}});
    rb::Matrix<float> g_out(rb::Shape<2>{{n, dim}}), g_in(rb::Shape<2>{{n, dim}}), g_rows;
    rb::Vector<float> g_gamma(rb::Shape<1>{{dim}}), g_beta(rb::Shape<1>{{dim}});
    const rb::Rng shuffle_rng(7);

    for (int epoch = 0; epoch < opt.epochs; ++epoch) {
        // Deterministic shuffle (Fisher–Yates on the counter-based generator).
        for (std::size_t i = examples.size() - 1; i > 0; --i)
            std::swap(examples[i], examples[shuffle_rng.substream(std::uint64_t(epoch)).below(i, std::uint32_t(i + 1))]);
        double loss_sum = 0;
        const auto te = Clock::now();
        for (std::size_t s = 0; s < examples.size(); s += std::size_t(bs)) {
            const index_t b = std::min<index_t>(bs, static_cast<index_t>(examples.size() - s));
            std::vector<std::vector<row_id_t>> ctx;
            std::vector<row_id_t> target;
            for (index_t r = 0; r < b; ++r) {
                const auto [u, t] = examples[s + std::size_t(r)];
                ctx.push_back(last_items(d.sequences[u], t, opt.window));
                target.push_back(d.sequences[u][t]);
            }
            enc.forward(cpu, model, ctx);
            auto lg = logits.view().slice_rows(0, b);
            rb::ops::gemm(cpu, rb::Trans::no, rb::Trans::yes, 1.0f, enc.h.view(), model.e_out.view(), 0.0f, lg);
            rb::ops::softmax_rows(cpu, lg, lg);
            // d(loss)/d(logits) = (softmax - onehot) / B
            for (index_t r = 0; r < b; ++r) {
                loss_sum -= std::log(std::max(lg(r, target[r]), 1e-30f));
                lg(r, target[r]) -= 1.0f;
            }
            for (index_t i = 0; i < lg.numel(); ++i) lg.data()[i] /= float(b);
            auto dhv = dh.view().slice_rows(0, b), dmv = dmean.view().slice_rows(0, b);
            rb::ops::gemm(cpu, rb::Trans::yes, rb::Trans::no, 1.0f, lg, enc.h.view(), 0.0f, g_out.view());
            rb::ops::gemm(cpu, rb::Trans::no, rb::Trans::no, 1.0f, lg, model.e_out.view(), 0.0f, dhv);
            std::fill(g_gamma.begin(), g_gamma.end(), 0.0f);
            std::fill(g_beta.begin(), g_beta.end(), 0.0f);
            rb::ops::layer_norm_backward(cpu, enc.mean.view(), model.gamma.view(), enc.mu.view(), enc.rstd.view(), dhv,
                                         dmv, g_gamma.view(), g_beta.view());
            // Each context item receives dmean / |context| (the mean's gradient).
            const index_t n_ids = static_cast<index_t>(enc.ids.size());
            if (g_rows.extent(0) < n_ids) g_rows.resize(rb::Shape<2>{{n_ids, dim}});
            for (index_t r = 0; r < b; ++r) {
                const index_t lo = enc.offsets[r], hi = enc.offsets[r + 1];
                for (index_t j = lo; j < hi; ++j)
                    for (index_t c = 0; c < dim; ++c) g_rows(j, c) = dmv(r, c) / float(hi - lo);
            }
            std::fill(g_in.begin(), g_in.end(), 0.0f);
            rb::ops::scatter_add_rows(cpu, g_rows.view().slice_rows(0, n_ids),
                                      rb::vector_view<const row_id_t>(enc.ids.data(), n_ids), g_in.view());
            adam_out.update(model.e_out.data(), g_out.data(), g_out.numel(), opt.lr);
            adam_in.update(model.e_in.data(), g_in.data(), g_in.numel(), opt.lr);
            adam_g.update(model.gamma.data(), g_gamma.data(), dim, opt.lr);
            adam_b.update(model.beta.data(), g_beta.data(), dim, opt.lr);
        }
        const double secs = std::chrono::duration<double>(Clock::now() - te).count();
        const double loss = loss_sum / double(examples.size());
        if (!std::isfinite(loss)) throw rb::ValueError("demo: training diverged (loss is not finite)");
        std::printf("epoch %d/%d  loss %.4f  %.0f examples/s\n", epoch + 1, opt.epochs, loss,
                    double(examples.size()) / secs);
    }

    // Serving: encode the full history (train + valid), score all items.
    auto model_scores = [&](const std::vector<index_t>& users, rb::MatrixView<float> out) {
        std::vector<std::vector<row_id_t>> ctx;
        for (index_t u : users) ctx.push_back(last_items(d.sequences[u], d.sequences[u].size() - 1, opt.window));
        enc.forward(cpu, model, ctx);
        rb::ops::gemm(cpu, rb::Trans::no, rb::Trans::yes, 1.0f, enc.h.view(), model.e_out.view(), 0.0f, out);
    };
    std::vector<float> popularity(static_cast<std::size_t>(n), 0.0f);
    for (const auto& seq : d.sequences)
        for (std::size_t j = 0; j + 1 < seq.size(); ++j) popularity[std::size_t(seq[j])] += 1.0f;
    auto popular_scores = [&](const std::vector<index_t>& users, rb::MatrixView<float> out) {
        for (index_t r = 0; r < static_cast<index_t>(users.size()); ++r)
            std::copy(popularity.begin(), popularity.end(), out.row(r));
    };
    const Metrics pop = evaluate(d, n, popular_scores);
    const Metrics mod = evaluate(d, n, model_scores);
    std::printf("full ranking over %td movies, %ld users:  most-popular HR@10 %.4f NDCG@10 %.4f | model HR@10 %.4f "
                "NDCG@10 %.4f\n",
                d.num_items(), mod.users, pop.hr, pop.ndcg, mod.hr, mod.ndcg);

    // Top-10 for one user.
    const auto it = std::find(d.user_ids.begin(), d.user_ids.end(), opt.user);
    if (it == d.user_ids.end()) throw rb::IndexError(rb::detail::concat("demo: --user ", opt.user, " has no ratings"));
    const index_t u = it - d.user_ids.begin();
    rb::Matrix<float> s(rb::Shape<2>{{1, n}});
    rb::Matrix<row_id_t> top(rb::Shape<2>{{1, 10}});
    rb::Matrix<float> top_v(rb::Shape<2>{{1, 10}});
    model_scores({u}, s.view());
    for (row_id_t item : d.sequences[u]) s(0, item) = -INFINITY;  // recommend only unseen movies
    s(0, 0) = -INFINITY;
    rb::ops::top_k_rows(cpu, s.view(), 10, top.view(), top_v.view());
    std::printf("top-10 new movies for user %ld (last watched: %s):\n", opt.user,
                titles.at(d.item_ids[std::size_t(d.sequences[u].back())]).c_str());
    for (index_t k = 0; k < 10; ++k)
        std::printf("  %2td. %s\n", k + 1, titles.at(d.item_ids[std::size_t(top(0, k))]).c_str());
    std::printf("{\"HR@10\": %.4f, \"NDCG@10\": %.4f, \"popular_HR@10\": %.4f, \"seconds\": %.1f}\n", mod.hr, mod.ndcg,
                pop.hr, std::chrono::duration<double>(Clock::now() - t0).count());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse_options(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "demo: %s\n", e.what());
        return 1;
    }
}
