// serve_load: a load test of the `serve` program. It starts the server on a
// loopback port, drives it with N concurrent clients for a bounded time, stops
// it with SIGTERM, and checks every answer against the offline model: the same
// checkpoint loaded here, each request's window scored on its own, the kept
// items excluded, the rest ranked. Items must be the same (or tied within
// 1e-5) and scores within 1e-5. Prints throughput and p50/p99 latency as the
// clients saw them, and the server's own summary.
//
//   serve_load --server PATH/serve --load FILE [--clients 4] [--seconds 5] [--users 8]
//              [--max_batch 16] [--max_wait_us 300] [--threads 1] [--seed 1] [--offline_seconds 0]
//
// --offline_seconds S first times the model alone for S seconds at batch 1 and
// at --max_batch (score_all + top-10 on random full windows, --threads
// threads): the ceiling the server's throughput is measured against.
//
// Each client owns its users ("c<client>-<n>") and keeps their windows as the
// server should: a first "history", then "events", "history" or nothing;
// one request in ten is malformed (an unknown item, a bad k, broken JSON) and
// must get an error line naming its user while the connection goes on.
// Exit status 0 only if every answer matched and the server exited cleanly.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <recblocks/recblocks.hpp>
#include <recblocks/serving/described_model.hpp>

#include "../../examples/common/args.hpp"

namespace rb = recblocks;
using rb::index_t;
using rb::row_id_t;
using Clock = std::chrono::steady_clock;

namespace {

struct Record {
    std::vector<row_id_t> window;  ///< what the server should hold after the request
    index_t k = 10;
    bool exclude = true;
    bool expect_error = false;
    bool broken_json = false;  ///< the error line cannot name the user
    std::string user, response;
    double ms = 0;
};

/// The server process: its pid, its stdout (for "listening on") and stderr (its summary).
struct Server {
    pid_t pid = -1;
    int out = -1, err = -1;
};

Server start_server(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        ::close(out[0]);
        ::close(err[0]);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        std::perror("execv");
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    return {pid, out[0], err[0]};
}

std::string read_line(int fd) {
    std::string line;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
    return line;
}

std::string read_all(int fd) {
    std::string s;
    char buf[4096];
    ssize_t r;
    while ((r = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(r));
    return s;
}

int connect_to(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    return fd;
}

/// One client: its own users, one request at a time, until `deadline`.
void client(int id, int port, int users, const rb::io::ItemIdMap& items, index_t max_len, Clock::time_point deadline,
            std::uint64_t seed, std::vector<Record>& out, std::string& failure) {
    try {
        const int fd = connect_to(port);
        std::mt19937_64 rng(seed * 1000 + static_cast<std::uint64_t>(id));
        const index_t n = items.num_items();
        auto item = [&] { return static_cast<row_id_t>(1 + rng() % static_cast<std::uint64_t>(n)); };
        std::vector<std::vector<row_id_t>> windows(static_cast<std::size_t>(users));
        std::string buf;
        while (Clock::now() < deadline) {
            const int u = static_cast<int>(rng() % static_cast<std::uint64_t>(users));
            auto& w = windows[static_cast<std::size_t>(u)];
            Record r;
            r.user = "c" + std::to_string(id) + "-" + std::to_string(u);
            r.k = static_cast<index_t>(1 + rng() % 20);
            r.exclude = rng() % 4 != 0;
            std::string line = "{\"user\": \"" + r.user + "\"";
            const unsigned action = w.empty() ? 0 : static_cast<unsigned>(rng() % 10);
            auto list = [&](const std::vector<row_id_t>& dense) {
                std::string s = "[";
                for (std::size_t i = 0; i < dense.size(); ++i)
                    s += (i ? ", " : "") + std::to_string(items.original(dense[i]));
                return s + "]";
            };
            auto slide = [&](std::vector<row_id_t>& v) {
                if (static_cast<index_t>(v.size()) > max_len) v.erase(v.begin(), v.end() - max_len);
            };
            if (action == 0 || action == 1) {  // a whole history, possibly longer than the window
                std::vector<row_id_t> h(1 + rng() % static_cast<std::uint64_t>(max_len + 5));
                for (auto& x : h) x = item();
                line += ", \"history\": " + list(h);
                w = h;
                slide(w);
            } else if (action <= 6) {  // new events
                std::vector<row_id_t> e(1 + rng() % 3);
                for (auto& x : e) x = item();
                line += ", \"events\": " + list(e);
                w.insert(w.end(), e.begin(), e.end());
                slide(w);
            } else if (action <= 8) {  // the state as it is
            } else {                   // malformed: the state must not change
                r.expect_error = true;
                const unsigned kind = static_cast<unsigned>(rng() % 4);
                if (kind == 0) line += ", \"events\": [" + std::to_string(items.original(1)) + ", -123456789]";
                else if (kind == 1) line += ", \"k\": " + std::to_string(n + 1);
                else if (kind == 2) line += ", \"events\": 5";
                else {
                    line += ", \"events\": [1,";
                    r.broken_json = true;
                }
            }
            if (!r.expect_error) line += ", \"k\": " + std::to_string(r.k);
            line += r.exclude ? "}" : ", \"exclude_seen\": false}";
            r.window = w;
            line += '\n';
            const auto t0 = Clock::now();
            for (std::size_t off = 0; off < line.size();) {
                const ssize_t s = ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
                if (s <= 0) throw std::runtime_error("send failed");
                off += static_cast<std::size_t>(s);
            }
            std::size_t nl;
            char chunk[65536];
            while ((nl = buf.find('\n')) == std::string::npos) {
                const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
                if (got <= 0) throw std::runtime_error("the server closed the connection");
                buf.append(chunk, static_cast<std::size_t>(got));
            }
            r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            r.response = buf.substr(0, nl);
            buf.erase(0, nl + 1);
            out.push_back(std::move(r));
        }
        ::close(fd);
    } catch (const std::exception& e) {
        failure = "client " + std::to_string(id) + ": " + e.what();
    }
}

/// Checks a batch of records against the offline model; returns the number of mismatches.
std::size_t verify(rb::serving::DescribedModel& m, std::span<Record* const> recs, double& max_diff) {
    const index_t l = m.description.max_len(), n = m.description.num_items(), b = static_cast<index_t>(recs.size());
    rb::Matrix<row_id_t> ids(rb::Shape<2>{{b, l}});
    for (index_t i = 0; i < b; ++i) {
        const auto& w = recs[static_cast<std::size_t>(i)]->window;
        const index_t pad = l - static_cast<index_t>(w.size());
        for (index_t t = 0; t < l; ++t) ids(i, t) = t < pad ? 0 : w[static_cast<std::size_t>(t - pad)];
    }
    rb::Matrix<float> s(rb::Shape<2>{{b, n + 1}});
    m.scorer->score_all(ids.cview(), s.view());
    std::size_t bad = 0;
    std::vector<row_id_t> order;
    for (index_t i = 0; i < b; ++i) {
        Record& r = *recs[static_cast<std::size_t>(i)];
        auto complain = [&](const std::string& what) {
            if (bad++ < 5) std::fprintf(stderr, "serve_load: MISMATCH for %s: %s\n  answer: %s\n", r.user.c_str(),
                                        what.c_str(), r.response.c_str());
        };
        const auto v = rb::io::json::parse(r.response, "answer", "line");
        const bool names_user = v.is_object() && !v.keys.empty() && v.keys[0] == "user" &&
                                (r.broken_json ? v.items[0].kind == rb::io::json::Value::Kind::null
                                               : v.items[0].text == r.user);
        if (!names_user) {
            complain("the answer does not name the user");
            continue;
        }
        if (r.expect_error) {
            if (v.keys.size() != 2 || v.keys[1] != "error") complain("expected an error line");
            continue;
        }
        if (v.keys.size() != 3 || v.keys[1] != "items" || v.keys[2] != "scores") {
            complain("expected items and scores");
            continue;
        }
        order.clear();
        for (row_id_t it = 1; it <= n; ++it)
            if (!r.exclude || std::find(r.window.begin(), r.window.end(), it) == r.window.end()) order.push_back(it);
        const std::size_t k = std::min<std::size_t>(order.size(), static_cast<std::size_t>(r.k));
        std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                          [&](row_id_t a, row_id_t c) { return s(i, a) > s(i, c); });
        const auto& got_items = v.items[1].items;
        const auto& got_scores = v.items[2].items;
        if (got_items.size() != k || got_scores.size() != k) {
            complain("expected " + std::to_string(k) + " items");
            continue;
        }
        for (std::size_t j = 0; j < k; ++j) {
            const auto dense = m.items.dense(got_items[j].as_int64().value_or(-1));
            const float got = std::stof(got_scores[j].text);
            const float want = s(i, order[j]);
            if (!dense || (r.exclude && std::find(r.window.begin(), r.window.end(), *dense) != r.window.end())) {
                complain("item " + got_items[j].text + " should not be there");
                break;
            }
            // The same item, or a tie: the item's own offline score equals the expected one at this rank.
            const double d = std::max(std::abs(double(got) - double(want)), std::abs(double(s(i, *dense)) - double(want)));
            max_diff = std::max(max_diff, d);
            if (d > 1e-5) {
                complain("rank " + std::to_string(j + 1) + ": item " + got_items[j].text + " score " + got_scores[j].text +
                         ", offline item " + std::to_string(m.items.original(order[j])) + " score " +
                         std::to_string(want));
                break;
            }
        }
    }
    return bad;
}

/// Windows per second of score_all + top-10 on the model alone, at batch b
/// (alternate: every other call takes b - 1 rows, as a server's batches vary).
double offline_rate(rb::serving::DescribedModel& m, index_t b, double seconds, std::uint64_t seed, bool alternate = false) {
    const index_t l = m.description.max_len(), n = m.description.num_items();
    rb::Matrix<row_id_t> ids(rb::Shape<2>{{b, l}});
    std::mt19937_64 rng(seed);
    for (index_t i = 0; i < b * l; ++i) ids.data()[i] = static_cast<row_id_t>(1 + rng() % static_cast<std::uint64_t>(n));
    rb::Matrix<float> s(rb::Shape<2>{{b, n + 1}});
    rb::Matrix<row_id_t> top(rb::Shape<2>{{b, 10}});
    rb::Matrix<float> top_s(top.shape());
    m.scorer->score_all(ids.cview(), s.view());  // warm-up: the first call of a shape sizes the scratch
    std::size_t windows = 0;
    const auto t0 = Clock::now();
    double elapsed = 0;
    for (std::size_t call = 0; elapsed < seconds; ++call) {
        const index_t rows = alternate && b > 1 && call % 2 ? b - 1 : b;
        m.scorer->score_all(ids.cview().slice_rows(0, rows), s.view().slice_rows(0, rows));
        m.scorer->top_k(s.cview().slice_rows(0, rows), 10, top.view().slice_rows(0, rows), top_s.view().slice_rows(0, rows));
        windows += static_cast<std::size_t>(rows);
        elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    return double(windows) / elapsed;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    const auto i = static_cast<std::size_t>(p * double(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
    return v[i];
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const examples::Args a(argc, argv,
                               {{"serve_load",
                                 {{"server", "", "the serve program", "PATH"},
                                  {"load", "", "the checkpoint it serves", "FILE"},
                                  {"clients", "4", "concurrent loopback clients"},
                                  {"seconds", "5", "how long they send requests", "S"},
                                  {"users", "8", "users per client"},
                                  {"max_batch", "16", "the server's --max_batch"},
                                  {"max_wait_us", "300", "the server's --max_wait_us"},
                                  {"threads", "1", "the server's --threads"},
                                  {"seed", "1", "the requests"},
                                  {"offline_seconds", "0", "first time the model alone for this long", "S"}}}});
        if (a.has("help")) {
            a.print_help(stdout, "usage: serve_load --server PATH --load FILE [options]\n");
            return 0;
        }
        const std::string server = a.str("server", ""), file = a.str("load", "");
        if (server.empty() || file.empty()) throw std::invalid_argument("--server PATH and --load FILE are required");
        const int clients = static_cast<int>(a.integer_in("clients", 4, 1, 256));
        const double seconds = a.real_in("seconds", 5.0, 0.1, 600.0);
        const int users = static_cast<int>(a.integer_in("users", 8, 1, 10000));
        const auto seed = static_cast<std::uint64_t>(a.integer("seed", 1));

        const int threads = static_cast<int>(a.integer_in("threads", 1, 1, 1024));
        const index_t max_batch = a.integer_in("max_batch", 16, 1, 4096);
        rb::ThreadPool pool(threads);
        const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
        auto model = rb::serving::load_described_model(file, be, pool);
        if (const double os = a.real_in("offline_seconds", 0.0, 0.0, 600.0); os > 0)
            std::printf("serve_load: the model alone (score_all + top-10, %d threads): %.1f windows/s at batch 1, "
                        "%.1f at batch %lld, %.1f alternating batches of %lld and %lld\n",
                        threads, offline_rate(model, 1, os, seed), offline_rate(model, max_batch, os, seed),
                        static_cast<long long>(max_batch), offline_rate(model, max_batch, os, seed, true),
                        static_cast<long long>(max_batch), static_cast<long long>(max_batch - 1));

        Server srv = start_server({server, "--load", file, "--listen", "127.0.0.1:0", "--threads",
                                   std::to_string(threads), "--max_batch", std::to_string(max_batch), "--max_wait_us",
                                   std::to_string(a.integer_in("max_wait_us", 300, 0, 1000000)), "--cache_users",
                                   std::to_string(clients * users)});
        const std::string hello = read_line(srv.out);
        const auto colon = hello.rfind(':');
        if (hello.rfind("listening on ", 0) != 0 || colon == std::string::npos) {
            ::kill(srv.pid, SIGKILL);
            throw std::runtime_error("the server did not start: '" + hello + "'; it said: " + read_all(srv.err));
        }
        const int port = std::stoi(hello.substr(colon + 1));

        const auto start = Clock::now();
        const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
        std::vector<std::vector<Record>> records(static_cast<std::size_t>(clients));
        std::vector<std::string> failures(static_cast<std::size_t>(clients));
        std::vector<std::thread> client_threads;
        for (int c = 0; c < clients; ++c)
            client_threads.emplace_back(client, c, port, users, std::cref(model.items), model.description.max_len(), deadline,
                                 seed, std::ref(records[static_cast<std::size_t>(c)]),
                                 std::ref(failures[static_cast<std::size_t>(c)]));
        for (auto& t : client_threads) t.join();
        const double wall = std::chrono::duration<double>(Clock::now() - start).count();

        ::kill(srv.pid, SIGTERM);
        const std::string server_said = read_all(srv.err);
        int status = 0;
        ::waitpid(srv.pid, &status, 0);
        std::fprintf(stderr, "%s", server_said.c_str());

        std::vector<Record*> all;
        std::vector<double> ms;
        std::size_t errors = 0;
        for (auto& rs : records)
            for (auto& r : rs) {
                all.push_back(&r);
                ms.push_back(r.ms);
                errors += r.expect_error;
            }
        std::size_t bad = 0;
        double max_diff = 0;
        for (std::size_t i = 0; i < all.size(); i += 256)
            bad += verify(model, std::span<Record* const>(all).subspan(i, std::min<std::size_t>(256, all.size() - i)),
                          max_diff);
        std::printf("serve_load: %d clients, %.2f s: %zu requests (%zu malformed on purpose), %.1f requests/s; "
                    "latency p50 %.3f ms, p99 %.3f ms (client side); %zu answers differ from the offline model "
                    "(largest score difference %.2e)\n",
                    clients, wall, all.size(), errors, double(all.size()) / wall, percentile(ms, 0.5),
                    percentile(ms, 0.99), bad, max_diff);
        bool ok = bad == 0 && all.size() >= static_cast<std::size_t>(clients) && errors > 0;
        for (const auto& f : failures)
            if (!f.empty()) {
                std::fprintf(stderr, "serve_load: %s\n", f.c_str());
                ok = false;
            }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            std::fprintf(stderr, "serve_load: the server did not exit cleanly (status %d)\n", status);
            ok = false;
        }
        if (server_said.find("latency p50") == std::string::npos) {
            std::fprintf(stderr, "serve_load: the server printed no summary\n");
            ok = false;
        }
        std::printf("serve_load: %s\n", ok ? "PASS" : "FAIL");
        return ok ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "serve_load: error: %s\n", e.what());
        return 1;
    }
}
