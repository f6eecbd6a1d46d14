// A job that fails on purpose, for scripts/run-tests: the job must end (non-zero, promptly)
// with the failing rank's error printed, never hang. Modes:
//   throw        rank 1 throws mid-step while the other ranks wait in an all_reduce
//   signal       rank 1 dies from SIGKILL mid-step while the others wait in an all_reduce
//   every-rank   every rank throws the same error (a config error): one line, rank 0's
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string_view>

#include "comm/mpi_runtime.h"
#include "core/factory.h"

int main(int argc, char** argv) {
  std::string_view mode = argc > 1 ? argv[1] : "throw";
  return zt::comm::run_distributed_main(argc, argv, [mode](zt::comm::MpiRuntime& runtime) {
    zt::comm::MpiCommunicator& world = runtime.world();
    if (mode == "every-rank")
      throw std::invalid_argument("abort_probe: ds_config.json: train_batch_size: expected > 0");
    zt::Tensor gradients = zt::ones({17});
    for (int step = 0; step < 3; ++step) {
      if (step == 2 && world.rank() == 1) {
        if (mode == "signal") std::raise(SIGKILL);
        throw std::runtime_error("abort_probe: rank 1 failed in step 2");
      }
      world.all_reduce(gradients);
    }
    std::fprintf(stderr, "abort_probe: rank %d finished, which it should not\n", world.rank());
    return 0;
  });
}
