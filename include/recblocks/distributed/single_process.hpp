#pragma once
// The communicator of a job with one rank (the default of every trainer): the
// collectives are copies and the sums run over this process's blocks in the
// same order MpiCommunicator uses, so a granular single-process run is the
// reference a data-parallel run reproduces. Needs no MPI.
#include <algorithm>
#include <span>

#include "recblocks/core/check.hpp"
#include "recblocks/distributed/communicator.hpp"
#include "recblocks/distributed/ordered_sum.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace distributed {

class SingleProcess {
public:
    [[nodiscard]] int rank() const { return 0; }
    [[nodiscard]] int size() const { return 1; }

    /// One contribution: the data is its own sum.
    template <class T>
    void allreduce_sum(std::span<T>) {}

    template <class T>
    void allreduce_sum_blocks(std::span<const T> mine, std::span<T> out) {
        ordered_sum_of_blocks<T>(mine, out);
    }

    template <class T>
    void allgather(std::span<const T> mine, std::span<T> all) {
        RECBLOCKS_CHECK_SHAPE(all.size() == mine.size(), "distributed::SingleProcess::allgather: `all` has ", all.size(),
                              " elements but one rank sends ", mine.size());
        std::copy(mine.begin(), mine.end(), all.begin());
    }

    template <class T>
    void alltoallv(std::span<const T> send, std::span<const index_t> send_counts, std::span<T> recv,
                   std::span<const index_t> recv_counts) {
        constexpr std::string_view op = "distributed::SingleProcess::alltoallv";
        RECBLOCKS_CHECK_SHAPE(send_counts.size() == 1 && recv_counts.size() == 1, op,
                              ": need one count per rank (1), got ", send_counts.size(), " and ", recv_counts.size());
        RECBLOCKS_CHECK_SHAPE(send_counts[0] == recv_counts[0] && static_cast<std::size_t>(send_counts[0]) <= send.size() &&
                                  static_cast<std::size_t>(recv_counts[0]) <= recv.size(),
                              op, ": sends ", send_counts[0], " of ", send.size(), " values to itself but receives ",
                              recv_counts[0], " into ", recv.size());
        std::copy_n(send.begin(), send_counts[0], recv.begin());
    }

    template <class T>
    void broadcast(std::span<T>, int root) {
        RECBLOCKS_CHECK_VALUE(root == 0, "distributed::SingleProcess::broadcast: root ", root, " is not rank 0");
    }

    void barrier() {}
};

static_assert(Communicator<SingleProcess>);

}  // namespace distributed
RECBLOCKS_NAMESPACE_END
