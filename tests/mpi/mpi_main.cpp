// The Catch2 main of the MPI tests: MPI_Init around the session. Every rank
// runs every test case, so collectives inside them line up; ctest starts it
// with mpirun on 2 and 3 ranks (CMakeLists.txt, label "mpi").
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "recblocks/distributed/mpi_communicator.hpp"

int main(int argc, char* argv[]) {
    recblocks::distributed::MpiSession session(&argc, &argv);
    const int failed = Catch::Session().run(argc, argv);
    return failed == 0 ? 0 : 1;
}
