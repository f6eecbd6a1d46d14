// zt::initialize: what deepspeed.initialize is to a PyTorch script. It reads the DeepSpeed
// command-line arguments, loads ds_config.json for this world size, lays the ranks out as a
// grid and wraps the model in an Engine with its optimizer and schedule.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "dist/config.h"
#include "dist/engine.h"
#include "dist/mpi_runtime.h"
#include "dist/process_grid.h"
#include "nn/module.h"

namespace zt {

// deepspeed.add_config_arguments: --deepspeed (informational), --deepspeed_config PATH and
// --local_rank N (set by launchers; the local rank comes from MPI anyway).
struct DeepSpeedArgs {
  bool deepspeed = false;
  std::string deepspeed_config;  // empty: none given
  int local_rank = -1;
};

// Reads those flags from argv and removes them (argc adjusted), leaving the program's own
// flags in place. A flag without its value throws std::invalid_argument naming it.
DeepSpeedArgs take_deepspeed_args(int& argc, char** argv);

struct Initialized {
  // Declared before the engine: the engine's communicator lives in the grid.
  std::unique_ptr<dist::ProcessGrid> grid;
  std::unique_ptr<dist::Engine> engine;
  optim::Optimizer* optimizer = nullptr;
  optim::LRSchedule* lr_scheduler = nullptr;  // null without a scheduler block
};

// Loads args.deepspeed_config (required) for the runtime's world size. Collective.
Initialized initialize(dist::MpiRuntime& runtime, const DeepSpeedArgs& args,
                       std::shared_ptr<nn::Module> model);
// With a config already built (its world_size must be the runtime's). Collective.
Initialized initialize(dist::MpiRuntime& runtime, dist::Config config,
                       std::shared_ptr<nn::Module> model);

}  // namespace zt
