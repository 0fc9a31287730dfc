#pragma once
// What a trainer asks of the processes it runs on, as a concept, so that a
// trainer is written once: SingleProcess (the default, no MPI) and
// MpiCommunicator (distributed/mpi_communicator.hpp, only with MPI) both model
// it. All collectives are called by every rank in the same order.
//
//   rank(), size()                       this process's place among size() ranks
//   allreduce_sum(data)                  data = Σ over ranks, in rank order (ordered_sum.hpp)
//   allreduce_sum_blocks(mine, out)      mine holds k blocks of out.size() (same k on every rank):
//                                        out = Σ over every rank's blocks, in (rank, block) order
//   allgather(mine, all)                 all = every rank's `mine` (equal sizes), rank after rank
//   alltoallv(send, send_counts, recv, recv_counts)
//                                        send_counts[r] values go to rank r, recv_counts[r] come from it
//   broadcast(data, root)                every rank gets root's data
//   barrier()
//
// Sums are in a fixed order whatever the library's reduction tree: the result
// of N ranks equals one process summing the same contributions in the same
// order, bit for bit. A collective that a rank never joins ends the job with an
// error on the others (MpiCommunicator's deadline), never a hang.
#include <concepts>
#include <span>

#include "recblocks/core/types.hpp"

RECBLOCKS_NAMESPACE_BEGIN
namespace distributed {

template <class C>
concept Communicator = requires(C& c, std::span<float> f, std::span<const float> cf, std::span<double> d,
                                std::span<const index_t> counts) {
    { c.rank() } -> std::convertible_to<int>;
    { c.size() } -> std::convertible_to<int>;
    c.allreduce_sum(f);
    c.allreduce_sum(d);
    c.allreduce_sum_blocks(cf, f);
    c.allgather(cf, f);
    c.alltoallv(cf, counts, f, counts);
    c.broadcast(f, 0);
    c.barrier();
};

}  // namespace distributed
RECBLOCKS_NAMESPACE_END
