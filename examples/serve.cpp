// serve: answer next-item requests from a checkpoint that describes itself
// (saved by `sasrec --save` or `bert4rec --save`), as JSON lines.
//
//   serve --load FILE [--listen 127.0.0.1:PORT | --unix PATH] [--cache_users N | --cache_mb MB]
//         [--incremental 0|1] [--max_batch 32] [--max_wait_us 500] [--threads 0]
//
// Without --listen / --unix, requests come on stdin and answers go to stdout,
// in order. With --listen (loopback TCP; port 0 picks a free one) or --unix
// (a unix-domain socket), every connection sends request lines and reads one
// answer line per request; the program prints "listening on ADDRESS" on
// stdout and runs until SIGINT or SIGTERM. The request and answer format,
// the errors and the user cache are described in docs/serving.md and
// serving/request_lines.hpp. A malformed request gets an error line and the
// server goes on; the checkpoint is only read.
//
// A SASRec whose cached keys and values are exact (positions from_oldest,
// padded keys masked) keeps an incremental state per user: a new event costs
// one row through the model instead of a forward over the window. Other
// models recompute each user's window; --incremental 0 forces that (to
// compare). The first line on stderr says which, and why not, and the memory
// per cached user; the cache holds --cache_users users, or as many as fit in
// --cache_mb MiB (default: 100,000 users, fewer if they need more than 2 GiB).
//
// Concurrent requests are gathered into batches (up to --max_batch, or until
// the oldest has waited --max_wait_us) scored in one call. On exit the
// program prints to stderr the requests answered, the throughput and the
// p50/p99 latency (from a request line read to its answer written).
//
// ctest-args: --help
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <recblocks/recblocks.hpp>
#include <recblocks/serving/described_model.hpp>
#include <recblocks/serving/micro_batcher.hpp>
#include <recblocks/serving/next_item_service.hpp>

#include "common/args.hpp"
#include "common/recommender_cli.hpp"

namespace rb = recblocks;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<examples::FlagGroup> flag_groups() {
    return {{"model", {{"load", "", "a checkpoint saved by sasrec or bert4rec (required)", "FILE"}}},
            {"transport (neither: requests on stdin, answers on stdout)",
             {{"listen", "", "serve TCP on this loopback address", "127.0.0.1:PORT"},
              {"unix", "", "serve on a unix-domain socket", "PATH"}}},
            {"serving",
             {{"cache_users", "100000", "users whose state is kept (LRU); without the flag, fewer if they need more "
                                        "than 2048 MiB"},
              {"cache_mb", "(none: --cache_users)", "instead, as many users as fit in MB MiB", "MB"},
              {"incremental", "1", "an incremental state per user where the model allows it (0: recompute every "
                                   "window)", "0|1"},
              {"max_batch", "32", "the most requests answered in one batch"},
              {"max_wait_us", "500", "how long the oldest request may wait for company, in microseconds"},
              {"threads", "0", "worker threads (0: every hardware thread)"}}}};
}

const char* kUsage =
    "usage: serve --load FILE [--listen 127.0.0.1:PORT | --unix PATH]   (neither: stdin -> stdout)\n"
    "requests, one JSON object per line:\n"
    "  {\"user\": \"u1\", \"history\": [ids...]}   or   {\"user\": \"u1\", \"events\": [new ids...]}\n"
    "  optional \"k\": 10, \"exclude_seen\": true\n"
    "answers: {\"user\": \"u1\", \"items\": [...], \"scores\": [...]}  or  {\"user\": ..., \"error\": \"...\"}\n";

volatile std::sig_atomic_t g_stop = 0;
std::string g_socket_file;  // a bound unix-domain socket, removed on exit
extern "C" void on_signal(int) { g_stop = 1; }

/// Latencies of answered requests, for the summary on exit.
class Stats {
public:
    void record(Clock::time_point start, bool error) {
        const auto now = Clock::now();
        std::lock_guard lock(mutex_);
        if (latencies_.empty()) first_ = start;
        last_ = now;
        latencies_.push_back(std::chrono::duration<double, std::milli>(now - start).count());
        errors_ += error ? 1 : 0;
    }
    void print(const rb::serving::MicroBatcher<rb::serving::ServiceJob>& batcher,
               const rb::serving::NextItemService& service) {
        std::lock_guard lock(mutex_);
        const std::size_t n = latencies_.size();
        const double seconds = n ? std::chrono::duration<double>(last_ - first_).count() : 0.0;
        auto pct = [&](double p) {
            if (n == 0) return 0.0;
            auto v = latencies_;
            const auto i = static_cast<std::size_t>(p * double(n - 1) + 0.5);
            std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
            return v[i];
        };
        const std::size_t batches = batcher.batches();
        std::fprintf(stderr,
                     "serve: %zu requests (%zu errors) in %.3f s: %.1f requests/s; latency p50 %.3f ms, p99 %.3f ms; "
                     "%zu batches (mean %.2f requests); cache %zu users, %zu evicted\n",
                     n, errors_, seconds, seconds > 0 ? double(n) / seconds : 0.0, pct(0.50), pct(0.99), batches,
                     batches ? double(batcher.jobs()) / double(batches) : 0.0, service.cache().size(),
                     service.cache().evictions());
    }

private:
    std::mutex mutex_;
    std::vector<double> latencies_;
    std::size_t errors_ = 0;
    Clock::time_point first_, last_;
};

struct Server {
    rb::serving::NextItemService& service;
    rb::serving::MicroBatcher<rb::serving::ServiceJob>& batcher;
    Stats& stats;

    /// One request line to its answer line (through the batcher unless malformed).
    void handle(const std::string& line, rb::serving::ServiceJob& job) {
        if (service.prepare(line, job)) batcher.run(job);
    }
};

/// stdin -> stdout: lines are read and submitted as they come (so a piped file
/// is batched), answered in order by a writer thread.
void serve_stdin(Server& s) {
    struct Pending {
        rb::serving::ServiceJob job;
        Clock::time_point start;
        bool submitted = false;
    };
    std::mutex m;
    std::condition_variable cv, room;
    std::deque<std::unique_ptr<Pending>> pending;
    bool eof = false;
    constexpr std::size_t kMaxInFlight = 1024;  // bounds memory when stdin is faster than the model
    std::thread writer([&] {
        for (;;) {
            std::unique_ptr<Pending> p;
            {
                std::unique_lock lock(m);
                cv.wait(lock, [&] { return eof || !pending.empty(); });
                if (pending.empty()) return;
                p = std::move(pending.front());
                pending.pop_front();
            }
            room.notify_one();
            if (p->submitted) s.batcher.wait(p->job);
            std::fwrite(p->job.response.data(), 1, p->job.response.size(), stdout);
            std::fputc('\n', stdout);
            bool idle;
            {
                std::lock_guard lock(m);
                idle = pending.empty();
            }
            if (idle) std::fflush(stdout);  // answer interactive use at once
            s.stats.record(p->start, p->job.failed);
        }
    });
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        auto p = std::make_unique<Pending>();
        p->start = Clock::now();
        if (s.service.prepare(line, p->job)) {
            s.batcher.submit(p->job);
            p->submitted = true;
        }
        std::unique_lock lock(m);
        room.wait(lock, [&] { return pending.size() < kMaxInFlight; });
        pending.push_back(std::move(p));
        cv.notify_one();
    }
    {
        std::lock_guard lock(m);
        eof = true;
    }
    cv.notify_one();
    writer.join();
    std::fflush(stdout);
}

bool send_all(int fd, const std::string& text) {
    std::size_t off = 0;
    while (off < text.size()) {
        const ssize_t w = ::send(fd, text.data() + off, text.size() - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        off += static_cast<std::size_t>(w);
    }
    return true;
}

/// One connection: request lines in, answer lines out, until the peer closes.
void serve_connection(Server& s, int fd) {
    std::string buf, out;
    char chunk[65536];
    rb::serving::ServiceJob job;
    for (;;) {
        std::size_t nl;
        while ((nl = buf.find('\n')) == std::string::npos) {
            if (buf.size() > rb::serving::kMaxRequestBytes) {
                send_all(fd, rb::serving::error_line("", false, "request: a line longer than " +
                                                                    std::to_string(rb::serving::kMaxRequestBytes) +
                                                                    " bytes; closing the connection") + "\n");
                return;
            }
            const ssize_t r = ::recv(fd, chunk, sizeof chunk, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return;
            buf.append(chunk, static_cast<std::size_t>(r));
        }
        const auto start = Clock::now();
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        s.handle(line, job);
        out = job.response;
        out += '\n';
        const bool sent = send_all(fd, out);
        s.stats.record(start, job.failed);
        if (!sent) return;
    }
}

/// The listening socket of --listen HOST:PORT (loopback only) or --unix PATH,
/// and its address in `where`. Opened before the model loads (a bad address is
/// a flag error); connections wait in the backlog until the server is ready.
int open_listener(const examples::Args& a, std::string& where) {
    int fd = -1;
    if (a.has("unix")) {
        const std::string path = a.str("unix", "");
        sockaddr_un addr{};
        if (path.empty() || path.size() >= sizeof addr.sun_path)
            throw rb::ValueError("--unix: the path must have 1 to " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw rb::IoError("--unix " + path + ": cannot bind: " + std::strerror(errno));
        where = g_socket_file = path;
    } else {
        const std::string spec = a.str("listen", "");
        const auto colon = spec.rfind(':');
        if (colon == std::string::npos) throw rb::ValueError("--listen expects HOST:PORT, got '" + spec + "'");
        std::string host = spec.substr(0, colon);
        if (host == "localhost") host = "127.0.0.1";
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127)
            throw rb::ValueError("--listen: the host must be a loopback address (127.x.x.x or localhost), got '" + host +
                                 "': the server has no authentication");
        long port = -1;
        try {
            std::size_t used = 0;
            port = std::stol(spec.substr(colon + 1), &used);
            if (used != spec.size() - colon - 1) port = -1;
        } catch (const std::exception&) {
        }
        if (port < 0 || port > 65535) throw rb::ValueError("--listen: the port must be in [0, 65535], got '" + spec.substr(colon + 1) + "'");
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw rb::IoError("--listen " + spec + ": cannot bind: " + std::strerror(errno));
        socklen_t len = sizeof addr;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
        where = host + ":" + std::to_string(ntohs(addr.sin_port));
    }
    if (::listen(fd, 128) != 0) throw rb::IoError(std::string("listen: ") + std::strerror(errno));
    return fd;
}

void serve_socket(Server& s, int listener) {
    std::vector<std::thread> threads;
    std::vector<int> fds;
    std::mutex m;
    while (!g_stop) {
        pollfd p{listener, POLLIN, 0};
        const int r = ::poll(&p, 1, 100);
        if (r <= 0) continue;  // timeout or EINTR: look at g_stop again
        const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lock(m);
        fds.push_back(fd);
        threads.emplace_back([&s, fd] { serve_connection(s, fd); });
    }
    {
        std::lock_guard lock(m);
        for (const int fd : fds) ::shutdown(fd, SHUT_RDWR);  // ends each connection's recv
    }
    for (auto& t : threads) t.join();
    for (const int fd : fds) ::close(fd);
    ::close(listener);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const examples::Args a(argc, argv, flag_groups());
        if (a.has("help")) {
            a.print_help(stdout, kUsage);
            return 0;
        }
        if (!a.positional().empty()) throw rb::ValueError("unexpected argument '" + a.positional()[0] + "'");
        if (!a.has("load")) throw rb::ValueError("--load FILE (a checkpoint saved by sasrec or bert4rec) is required");
        if (a.has("listen") && a.has("unix")) throw rb::ValueError("--listen and --unix exclude each other");
        if (a.has("cache_users") && a.has("cache_mb")) throw rb::ValueError("--cache_users and --cache_mb exclude each other");
        const bool want_incremental = a.integer_in("incremental", 1, 0, 1) == 1;
        const auto cache_users_flag = static_cast<std::size_t>(a.integer_in("cache_users", 100000, 1, examples::kMaxCount));
        const auto cache_mb = static_cast<std::size_t>(a.integer_in("cache_mb", 1, 1, 1 << 24));
        const auto max_batch = static_cast<std::size_t>(a.integer_in("max_batch", 32, 1, 4096));
        const auto max_wait = std::chrono::microseconds(a.integer_in("max_wait_us", 500, 0, 10'000'000));
        const int threads = examples::thread_count(a);
        std::string where;
        const int listener = a.has("listen") || a.has("unix") ? open_listener(a, where) : -1;
        rb::ThreadPool pool(threads);
        const rb::backend::Cpu<rb::isa::Dispatch> be{&pool};
        const std::string file = a.str("load", "");
        auto model = rb::serving::load_described_model(file, be, pool);
        const auto& d = model.description;
        examples::check_memory_budget({.items = d.num_items(), .maxlen = d.max_len(), .dim = d.d_model(),
                                       .heads = d.kind == rb::models::ModelKind::sasrec ? d.sasrec.heads : d.bert4rec.heads,
                                       .blocks = d.kind == rb::models::ModelKind::sasrec ? d.sasrec.num_blocks
                                                                                          : d.bert4rec.num_blocks,
                                       .batch = 1, .eval_batch = static_cast<long long>(max_batch)});
        // The cache's capacity from the memory one user takes (an incremental state is ~180x a window).
        const std::size_t per_user = rb::serving::NextItemService::bytes_per_user(*model.scorer, want_incremental);
        std::size_t cache_users = 0;
        if (a.has("cache_mb")) {
            cache_users = (cache_mb << 20) / per_user;
            if (cache_users == 0)
                throw rb::ValueError("--cache_mb " + std::to_string(cache_mb) + " holds no user: one takes " +
                                     std::to_string(per_user) + " bytes");
        } else {
            cache_users = cache_users_flag;
            if (!a.has("cache_users")) cache_users = std::min(cache_users, std::max<std::size_t>(1, (std::size_t{2048} << 20) / per_user));
        }
        rb::serving::NextItemService service(*model.scorer, model.items,
                                             {.cache_capacity = cache_users, .max_batch = max_batch, .incremental = want_incremental});
        rb::serving::MicroBatcher<rb::serving::ServiceJob> batcher(
            {.max_batch = max_batch, .max_wait = max_wait},
            [&](std::span<rb::serving::ServiceJob* const> jobs) {
                try {
                    service.answer(jobs);
                } catch (const std::exception& e) {  // answer every job of a batch that failed as a whole
                    for (auto* j : jobs)
                        if (j->response.empty()) {
                            j->failed = true;
                            j->response = rb::serving::error_line(j->request.user, j->request.user_is_number,
                                                                  std::string("server: ") + e.what());
                        }
                }
            });
        const std::string state =
            service.incremental() ? std::string("incremental user states")
            : want_incremental    ? "recomputing each user's window (no incremental state: " + model.scorer->incremental_note() + ")"
                                  : std::string("recomputing each user's window (--incremental 0)");
        std::fprintf(stderr, "serve: %s: %s, %lld items, max_len %lld%s; %s; cache %zu users x %zu bytes = up to %.1f MiB, "
                             "batches of up to %zu, %lld us, %d threads\n",
                     file.c_str(), rb::io::detail::metadata_text(d.kind).c_str(), static_cast<long long>(d.num_items()),
                     static_cast<long long>(d.max_len()), model.items_from_file ? "" : " (no item-id map: ids are the model's)",
                     state.c_str(), cache_users, per_user, double(cache_users) * double(per_user) / double(1 << 20),
                     max_batch, static_cast<long long>(max_wait.count()), pool.size());
        Stats stats;
        Server server{service, batcher, stats};
        if (listener >= 0) {
            struct sigaction sa {};
            sa.sa_handler = on_signal;
            sigemptyset(&sa.sa_mask);
            ::sigaction(SIGINT, &sa, nullptr);
            ::sigaction(SIGTERM, &sa, nullptr);
            std::printf("listening on %s\n", where.c_str());
            std::fflush(stdout);
            serve_socket(server, listener);
        } else {
            serve_stdin(server);
        }
        batcher.stop();
        stats.print(batcher, service);
        if (!g_socket_file.empty()) ::unlink(g_socket_file.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "serve: error: %s\n", e.what());
        if (!g_socket_file.empty()) ::unlink(g_socket_file.c_str());
        return 1;
    }
}
