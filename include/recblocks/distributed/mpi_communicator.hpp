#pragma once
// The communicator over MPI (only where MPI is: include this header only in a
// program built against it, e.g. linked with MPI::MPI_CXX; the rest of
// recblocks never includes <mpi.h>).
//
// Sums are in the fixed order of ordered_sum.hpp, not the library's reduction
// tree: allreduce_sum_blocks is a reduce-scatter written as one alltoallv
// (rank c receives chunk c of every rank's blocks and adds them in (rank,
// block) order) followed by an allgatherv of the summed chunks. It moves the
// bytes of a ring allreduce (2·(N-1)/N of the data per rank) in two steps.
//
// Every collective is nonblocking and polled against a deadline: a rank that
// died, hangs or never calls the collective ends the job on every waiting
// rank with a message naming the collective and the rank (MPI_Abort), never a
// hang. MpiSession is MPI_Init / MPI_Finalize as an object.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // the C API only: Open MPI's deprecated C++ bindings are unused (and warn)
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "recblocks/core/check.hpp"
#include "recblocks/distributed/communicator.hpp"
#include "recblocks/distributed/ordered_sum.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace distributed {

/// MPI_Init_thread (only the thread that made it calls MPI: MPI_THREAD_FUNNELED) and MPI_Finalize.
class MpiSession {
public:
    MpiSession(int* argc, char*** argv) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized) return;
        int provided = 0;
        MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        owner_ = true;
    }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    ~MpiSession() {
        if (!owner_) return;
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }

private:
    bool owner_ = false;
};

template <class T>
MPI_Datatype mpi_datatype() {
    if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
    else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    else if constexpr (std::is_same_v<T, std::int32_t>) return MPI_INT32_T;
    else if constexpr (std::is_same_v<T, std::uint32_t>) return MPI_UINT32_T;
    else if constexpr (std::is_same_v<T, std::int64_t> || (std::is_same_v<T, long long> && sizeof(T) == 8)) return MPI_INT64_T;
    else if constexpr (std::is_same_v<T, std::uint64_t> || (std::is_same_v<T, unsigned long long> && sizeof(T) == 8)) return MPI_UINT64_T;
    else if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, char>) return MPI_BYTE;
    else static_assert(sizeof(T) == 0, "distributed::mpi_datatype: no MPI type for this element type");
}

class MpiCommunicator {
public:
    /// `timeout_seconds`: how long a collective may wait for the other ranks before the job is ended.
    explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, double timeout_seconds = 600.0)
        : comm_(comm), timeout_(timeout_seconds) {
        RECBLOCKS_CHECK_VALUE(timeout_seconds > 0, "distributed::MpiCommunicator: timeout_seconds must be > 0, got ",
                              timeout_seconds);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
    }

    [[nodiscard]] int rank() const { return rank_; }
    [[nodiscard]] int size() const { return size_; }
    [[nodiscard]] double timeout_seconds() const { return timeout_; }
    [[nodiscard]] MPI_Comm comm() const { return comm_; }

    template <class T>
    void allreduce_sum(std::span<T> data) {
        allreduce_sum_blocks(std::span<const T>(data.data(), data.size()), data);
    }

    /// out = Σ over ranks r, blocks j of mine_r[j] in (r, j) order; mine may alias out when it is one block.
    template <class T>
    void allreduce_sum_blocks(std::span<const T> mine, std::span<T> out) {
        const std::size_t n = out.size();
        RECBLOCKS_CHECK_SHAPE(n > 0 && mine.size() % n == 0 && !mine.empty(),
                              "distributed::MpiCommunicator::allreduce_sum_blocks: ", mine.size(),
                              " values are not a whole number (>= 1) of blocks of ", n);
        const std::size_t k = mine.size() / n;
        const auto begin = [&](int c) { return n * static_cast<std::size_t>(c) / static_cast<std::size_t>(size_); };
        const std::size_t my0 = begin(rank_), my_len = begin(rank_ + 1) - my0;
        // Pack: for owner c, chunk c of each of my blocks, in block order.
        const std::span<T> send = scratch<T>(0, mine.size());
        const std::span<T> recv = scratch<T>(1, k * my_len * static_cast<std::size_t>(size_));
        counts_.assign(4 * static_cast<std::size_t>(size_), 0);
        int* sc = counts_.data();
        int* sd = sc + size_;
        int* rc = sd + size_;
        int* rd = rc + size_;
        std::size_t at = 0;
        for (int c = 0; c < size_; ++c) {
            const std::size_t c0 = begin(c), len = begin(c + 1) - c0;
            sd[c] = to_int(at, "allreduce");
            for (std::size_t j = 0; j < k; ++j, at += len) std::copy_n(mine.data() + j * n + c0, len, send.data() + at);
            sc[c] = to_int(k * len, "allreduce");
            rc[c] = to_int(k * my_len, "allreduce");
            rd[c] = to_int(k * my_len * static_cast<std::size_t>(c), "allreduce");
        }
        MPI_Request req;
        MPI_Ialltoallv(send.data(), sc, sd, mpi_datatype<T>(), recv.data(), rc, rd, mpi_datatype<T>(), comm_, &req);
        wait(req, "allreduce");
        // My chunk: contributions arrive as (rank, block): the ordered sum.
        if (my_len > 0)
            ordered_sum_of_blocks<T>(std::span<const T>(recv.data(), recv.size()), std::span<T>(out.data() + my0, my_len));
        for (int c = 0; c < size_; ++c) {
            rc[c] = to_int(begin(c + 1) - begin(c), "allreduce");
            rd[c] = to_int(begin(c), "allreduce");
        }
        MPI_Iallgatherv(MPI_IN_PLACE, 0, mpi_datatype<T>(), out.data(), rc, rd, mpi_datatype<T>(), comm_, &req);
        wait(req, "allreduce");
    }

    template <class T>
    void allgather(std::span<const T> mine, std::span<T> all) {
        RECBLOCKS_CHECK_SHAPE(all.size() == mine.size() * static_cast<std::size_t>(size_),
                              "distributed::MpiCommunicator::allgather: `all` has ", all.size(), " elements but ", size_,
                              " ranks send ", mine.size(), " each");
        MPI_Request req;
        MPI_Iallgather(mine.data(), to_int(mine.size(), "allgather"), mpi_datatype<T>(), all.data(),
                       to_int(mine.size(), "allgather"), mpi_datatype<T>(), comm_, &req);
        wait(req, "allgather");
    }

    template <class T>
    void alltoallv(std::span<const T> send, std::span<const index_t> send_counts, std::span<T> recv,
                   std::span<const index_t> recv_counts) {
        constexpr std::string_view op = "distributed::MpiCommunicator::alltoallv";
        const auto n = static_cast<std::size_t>(size_);
        RECBLOCKS_CHECK_SHAPE(send_counts.size() == n && recv_counts.size() == n, op, ": need one count per rank (",
                              size_, "), got ", send_counts.size(), " and ", recv_counts.size());
        counts_.assign(4 * n, 0);
        int* sc = counts_.data();
        int* sd = sc + size_;
        int* rc = sd + size_;
        int* rd = rc + size_;
        std::size_t s_at = 0, r_at = 0;
        for (std::size_t r = 0; r < n; ++r) {
            RECBLOCKS_CHECK_VALUE(send_counts[r] >= 0 && recv_counts[r] >= 0, op, ": negative count for rank ", r);
            sd[r] = to_int(s_at, "alltoallv");
            rd[r] = to_int(r_at, "alltoallv");
            sc[r] = to_int(static_cast<std::size_t>(send_counts[r]), "alltoallv");
            rc[r] = to_int(static_cast<std::size_t>(recv_counts[r]), "alltoallv");
            s_at += static_cast<std::size_t>(send_counts[r]);
            r_at += static_cast<std::size_t>(recv_counts[r]);
        }
        RECBLOCKS_CHECK_SHAPE(s_at <= send.size() && r_at <= recv.size(), op, ": the counts send ", s_at, " of ",
                              send.size(), " values and receive ", r_at, " into ", recv.size());
        MPI_Request req;
        MPI_Ialltoallv(send.data(), sc, sd, mpi_datatype<T>(), recv.data(), rc, rd, mpi_datatype<T>(), comm_, &req);
        wait(req, "alltoallv");
    }

    template <class T>
    void broadcast(std::span<T> data, int root) {
        RECBLOCKS_CHECK_VALUE(root >= 0 && root < size_, "distributed::MpiCommunicator::broadcast: root ", root,
                              " is outside [0, ", size_, ")");
        MPI_Request req;
        MPI_Ibcast(data.data(), to_int(data.size(), "broadcast"), mpi_datatype<T>(), root, comm_, &req);
        wait(req, "broadcast");
    }

    void barrier() {
        MPI_Request req;
        MPI_Ibarrier(comm_, &req);
        wait(req, "barrier");
    }

private:
    /// Polls until the request completes; past the deadline, ends the job (every rank that waits says so).
    void wait(MPI_Request& req, const char* what) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto deadline = t0 + std::chrono::duration<double>(timeout_);
        int done = 0;
        for (unsigned spins = 0;; ++spins) {
            MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (done) return;
            // Spin briefly (a collective between busy ranks completes in microseconds), then yield
            // the core: ranks may outnumber cores (mpirun --oversubscribe).
            if (spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(spins > 20000 ? 500 : 20));
            if ((spins & 63) == 0 && std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr,
                             "recblocks: rank %d: %s did not complete within %g s: another rank died, hangs or never "
                             "called it; ending the job\n",
                             rank_, what, timeout_);
                std::fflush(stderr);
                MPI_Abort(comm_, 3);
            }
        }
    }

    static int to_int(std::size_t v, const char* what) {
        RECBLOCKS_CHECK_VALUE(v <= static_cast<std::size_t>(INT_MAX), "distributed::MpiCommunicator: ", what, " of ", v,
                              " values exceeds MPI's int counts");
        return static_cast<int>(v);
    }

    /// Reused send (0) and receive (1) buffers: no allocation after the first call of a size.
    template <class T>
    std::span<T> scratch(int which, std::size_t n) {
        static_assert(alignof(T) <= alignof(std::uint64_t));
        auto& words = which == 0 ? send_words_ : recv_words_;
        const std::size_t need = (n * sizeof(T) + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t);
        if (words.size() < need) words.resize(need);
        return {reinterpret_cast<T*>(words.data()), n};
    }

    MPI_Comm comm_;
    double timeout_;
    int rank_ = 0, size_ = 1;
    std::vector<int> counts_;
    std::vector<std::uint64_t> send_words_, recv_words_;
};

static_assert(Communicator<MpiCommunicator>);

}  // namespace distributed
RECBLOCKS_NAMESPACE_END
