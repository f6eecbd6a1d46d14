// zt::initialize: what deepspeed.initialize is to a PyTorch script. It reads the DeepSpeed
// command-line arguments, loads ds_config.json for this world size, lays the ranks out as a
// grid and wraps the model in an Engine with its optimizer and schedule.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "comm/mpi_runtime.h"
#include "comm/process_grid.h"
#include "dist/config.h"
#include "dist/config_builders.h"
#include "dist/engine.h"
#include "dist/param_groups.h"
#include "nn/module.h"

namespace zt {

// Which communicator carries ZeRO traffic when the model is on a GPU (deepspeed's
// init_distributed(dist_backend=...)): automatic picks NCCL when every rank has a GPU of its
// own and the model is on it, else MPI behind a StagingCommunicator, which stages device
// tensors through pinned host memory (several ranks sharing one GPU). A model on the host always
// uses MPI.
enum class DistBackend { automatic, nccl, mpi };
// "auto", "nccl" or "mpi"; anything else throws std::invalid_argument naming `flag`.
DistBackend parse_dist_backend(const std::string& text, const std::string& flag);

// deepspeed.add_config_arguments: --deepspeed (informational), --deepspeed_config PATH and
// --local_rank N (set by launchers; the local rank comes from MPI anyway), and ours:
// --dist_backend auto|nccl|mpi.
struct DeepSpeedArgs {
  bool deepspeed = false;
  std::string deepspeed_config;  // empty: none given
  int local_rank = -1;
  DistBackend dist_backend = DistBackend::automatic;
};

// Reads those flags from argv and removes them (argc adjusted), leaving the program's own
// flags in place. A flag without its value throws std::invalid_argument naming it.
DeepSpeedArgs take_deepspeed_args(int& argc, char** argv);

struct Initialized {
  // Declared before the engine: the engine's communicator lives in the grid.
  std::unique_ptr<comm::ProcessGrid> grid;
  // The communicator of ZeRO traffic when the model is on a GPU (NCCL, or the grid's MPI one
  // behind a StagingCommunicator); null when the model is on the host and ZeRO traffic goes
  // through the grid's MPI communicator. Declared before the engine, which uses it.
  std::unique_ptr<comm::Communicator> device_data_group;
  std::unique_ptr<dist::Engine> engine;
  optim::Optimizer* optimizer = nullptr;
  optim::LRSchedule* lr_scheduler = nullptr;  // null without a scheduler block
};

// Optimizer parameter groups (DeepSpeed's model_parameters): the model's parameters split into
// groups, each with its own overrides of the optimizer block (dist/param_groups.h);
// zt::weight_decay_groups(model) makes the usual "decay" / "no_decay" pair.
using dist::ParamGroupSpec;
using dist::ParamGroupSpecs;
using dist::weight_decay_groups;

// Loads args.deepspeed_config (required) for the runtime's world size. Collective. The engine
// trains on the device of the model's parameters (move the model first: model->to(device)).
// `param_groups`: none makes one group of every parameter with the optimizer block's values.
Initialized initialize(comm::MpiRuntime& runtime, const DeepSpeedArgs& args,
                       std::shared_ptr<nn::Module> model, const ParamGroupSpecs& param_groups = {});
// With a config already built (its world_size must be the runtime's). Collective.
Initialized initialize(comm::MpiRuntime& runtime, dist::Config config,
                       std::shared_ptr<nn::Module> model,
                       DistBackend dist_backend = DistBackend::automatic,
                       const ParamGroupSpecs& param_groups = {});

// Tensor parallelism: the grid comes first (world / tensor_parallel.autotp_size data-parallel
// replicas, the tensor axis fastest), then `build_model` builds the model on it (such as a
// tensor_parallel::TensorParallelGPT over grid.tensor_group()). Collective. The model-taking
// forms above refuse a config with autotp_size > 1, whose model could not know its group.
using ModelBuilder = std::function<std::shared_ptr<nn::Module>(comm::ProcessGrid& grid)>;
Initialized initialize(comm::MpiRuntime& runtime, dist::Config config,
                       const ModelBuilder& build_model,
                       DistBackend dist_backend = DistBackend::automatic,
                       const ParamGroupSpecs& param_groups = {});

// deepspeed.initialize(model, config, optimizer, lr_scheduler): the program's own optimizer and
// schedule, under DeepSpeed's rule (dist::with_client_optimizer: the program's wins over the
// config's block, which a note on rank 0 then says is ignored). Collective.
using dist::ClientOptimizer;
Initialized initialize(comm::MpiRuntime& runtime, dist::Config config,
                       std::shared_ptr<nn::Module> model, const ClientOptimizer& client,
                       DistBackend dist_backend = DistBackend::automatic,
                       const ParamGroupSpecs& param_groups = {});

}  // namespace zt
