// MpiCommunicator on however many ranks mpirun started: the sums equal one
// process adding the same contributions left to right (bit for bit), the other
// collectives move what they should, the handshake names a mismatch on every
// rank, and a rank that never arrives ends the job instead of hanging.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>
#include <vector>

#include "recblocks/core/rng.hpp"
#include "recblocks/distributed/handshake.hpp"
#include "recblocks/distributed/mpi_communicator.hpp"

using namespace recblocks;

namespace {

/// Contribution j of rank r: values of mixed magnitudes, so that the order of the sum shows.
std::vector<float> contribution(int r, index_t j, std::size_t n) {
    const Rng rng(7, static_cast<std::uint64_t>(r) * 100 + static_cast<std::uint64_t>(j));
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = rng.normal(i) * (i % 3 == 0 ? 1e6f : 1e-3f);
    return x;
}

}  // namespace

TEST_CASE("MPI allreduce: the sum in (rank, block) order, bit for bit", "[mpi]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 60.0);
    const int ranks = comm.size();
    for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{1000}}) {
        for (const index_t k : {index_t{1}, index_t{3}}) {
            std::vector<float> mine;
            for (index_t j = 0; j < k; ++j) {
                const auto c = contribution(comm.rank(), j, n);
                mine.insert(mine.end(), c.begin(), c.end());
            }
            std::vector<float> got(n, -7.f);
            comm.allreduce_sum_blocks(std::span<const float>(mine), std::span<float>(got));
            // The literal left fold over every rank's blocks, computed here.
            std::vector<float> want = contribution(0, 0, n);
            for (int r = 0; r < ranks; ++r)
                for (index_t j = (r == 0 ? 1 : 0); j < k; ++j) {
                    const auto c = contribution(r, j, n);
                    for (std::size_t i = 0; i < n; ++i) want[i] += c[i];
                }
            INFO("n = " << n << ", k = " << k << ", ranks = " << ranks);
            CHECK(got == want);
        }
    }
    std::vector<double> x = {double(comm.rank() + 1), 0.5};
    comm.allreduce_sum(std::span<double>(x));
    CHECK(x[0] == double(ranks * (ranks + 1) / 2));
    CHECK(x[1] == 0.5 * ranks);
}

TEST_CASE("MPI allgather, alltoallv, broadcast, barrier", "[mpi]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 60.0);
    const int ranks = comm.size(), me = comm.rank();
    const std::vector<std::int64_t> mine = {me, 10 * me};
    std::vector<std::int64_t> all(2 * static_cast<std::size_t>(ranks));
    comm.allgather(std::span<const std::int64_t>(mine), std::span<std::int64_t>(all));
    for (int r = 0; r < ranks; ++r) {
        CHECK(all[2 * std::size_t(r)] == r);
        CHECK(all[2 * std::size_t(r) + 1] == 10 * r);
    }
    // Rank r sends (r + d + 1) values r * 100 + d to rank d.
    std::vector<index_t> sc(static_cast<std::size_t>(ranks)), rc(static_cast<std::size_t>(ranks));
    std::vector<float> send, recv;
    for (int d = 0; d < ranks; ++d) {
        sc[std::size_t(d)] = me + d + 1;
        rc[std::size_t(d)] = d + me + 1;
        for (int i = 0; i < me + d + 1; ++i) send.push_back(float(me * 100 + d));
    }
    std::size_t total = 0;
    for (const auto c : rc) total += std::size_t(c);
    recv.assign(total, -1.f);
    comm.alltoallv(std::span<const float>(send), std::span<const index_t>(sc), std::span<float>(recv),
                   std::span<const index_t>(rc));
    std::size_t at = 0;
    for (int s = 0; s < ranks; ++s)
        for (int i = 0; i < s + me + 1; ++i) CHECK(recv[at++] == float(s * 100 + me));
    std::vector<double> b = {double(me), -1.0};
    comm.broadcast(std::span<double>(b), ranks - 1);
    CHECK(b[0] == double(ranks - 1));
    CHECK_THROWS_WITH(comm.broadcast(std::span<double>(b), ranks), Catch::Contains("outside [0, "));
    comm.barrier();
}

TEST_CASE("MPI handshake: a mismatch is a ValueError naming the field on every rank", "[mpi]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 60.0);
    const std::vector<distributed::HandshakeField> same = {{"global batch", 256}, {"seed", 42}};
    CHECK_NOTHROW(distributed::handshake(comm, std::span<const distributed::HandshakeField>(same)));
    const std::vector<distributed::HandshakeField> differs = {
        {"global batch", 256}, {"seed", comm.rank() == comm.size() - 1 ? 43u : 42u}};
    CHECK_THROWS_WITH(distributed::handshake(comm, std::span<const distributed::HandshakeField>(differs)),
                      Catch::Contains("'seed' differs across ranks: rank 0 has 42, rank " +
                                      std::to_string(comm.size() - 1) + " has 43"));
    std::vector<distributed::HandshakeField> more = same;
    if (comm.rank() == 0) more.push_back({"extra", 1});
    CHECK_THROWS_WITH(distributed::handshake(comm, std::span<const distributed::HandshakeField>(more)),
                      Catch::Contains("the number of handshake fields"));
}

// Run alone by ctest (recblocks_mpi_missing_rank): the last rank never joins the allreduce;
// rank 0 must end the job after its 2 s deadline with a message, not hang.
TEST_CASE("MPI: a rank that never arrives ends the job", "[.missing_rank]") {
    distributed::MpiCommunicator comm(MPI_COMM_WORLD, 2.0);
    std::vector<float> x(10, 1.f);
    if (comm.rank() == comm.size() - 1) {
        std::this_thread::sleep_for(std::chrono::seconds(60));  // "hangs"; MPI_Abort ends it
        return;
    }
    comm.allreduce_sum(std::span<float>(x));
    FAIL("the allreduce returned without the last rank");
}
