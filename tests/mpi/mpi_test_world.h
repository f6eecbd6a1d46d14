// The MPI world of the multi-rank test binary (tests/mpi/mpi_test_main.cpp), for its tests.
// Every test case runs on every rank in the same order, so a test may call collectives freely,
// as long as every rank calls them (checks go after the collective, never around it).
#pragma once

#include "comm/mpi_runtime.h"

namespace zt::testing {
comm::MpiRuntime& test_runtime();
inline comm::MpiCommunicator& test_world() {
  return test_runtime().world();
}

}  // namespace zt::testing
