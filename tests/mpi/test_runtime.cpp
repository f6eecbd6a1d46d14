// Multi-rank tests of MpiRuntime: the world it hands out and this rank's place on its node.
// Every rank of these test runs shares one machine, so the node's ranks are the world's.
#include <doctest/doctest.h>

#include "tests/mpi/mpi_test_world.h"

namespace zt::comm {
namespace {

TEST_CASE("runtime_world_and_node_ranks_agree_on_one_machine") {
  MpiRuntime& runtime = testing::test_runtime();
  CHECK(runtime.rank() == runtime.world().rank());
  CHECK(runtime.size() == runtime.world().size());
  CHECK(runtime.local_size() == runtime.size());
  CHECK(runtime.local_rank() == runtime.rank());
  CHECK(runtime.thread_level() >= MPI_THREAD_FUNNELED);
  CHECK(runtime.world().name() == "mpi");
  int world_size = 0;
  MPI_Comm_size(runtime.world().mpi_comm(), &world_size);
  CHECK(world_size == runtime.size());
}

}  // namespace
}  // namespace zt::comm
