// zt::initialize and the DeepSpeed command-line flags.
#include "dist/initialize.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "comm/nccl_registry.h"
#include "comm/staging_communicator.h"
#include "core/factory.h"
#include "dist/activation_checkpointing.h"

namespace zt {

DistBackend parse_dist_backend(const std::string& text, const std::string& flag) {
  if (text == "auto") return DistBackend::automatic;
  if (text == "nccl") return DistBackend::nccl;
  if (text == "mpi") return DistBackend::mpi;
  throw std::invalid_argument(
      fmt::format("{}: expected one of auto, nccl, mpi, got '{}'", flag, text));
}

namespace {

// Whether `condition` holds on every rank of `world` (a host all-reduce, so that every rank
// takes the same branch).
bool on_every_rank(comm::Communicator& world, bool condition) {
  Tensor flag = full({1}, condition ? 1.0 : 0.0, {.dtype = DType::f64, .tag = MemoryTag::comm});
  world.all_reduce(flag, comm::ReduceOperation::min);
  return flag.item() != 0.0;
}

// The communicator for ZeRO traffic on `device` (see DistBackend): null for the grid's MPI one
// (the model on the host), NCCL, or the grid's MPI one behind a StagingCommunicator. Collective
// over the data-parallel group; every rank decides the same way.
std::unique_ptr<comm::Communicator> make_device_data_group(comm::ProcessGrid& grid, Device device,
                                                           DistBackend backend) {
  bool on_gpu = on_every_rank(grid.world(), !device.is_cpu());
  if (!on_gpu && backend != DistBackend::nccl) return nullptr;
  // MPI moves host memory: device tensors go through pinned host copies.
  auto staged_mpi = [&grid] {
    return std::make_unique<comm::StagingCommunicator>(grid.data_group());
  };
  if (backend == DistBackend::mpi) return staged_mpi();
  if (!on_gpu) {
    throw std::invalid_argument(
        "dist_backend nccl: NCCL moves GPU tensors, but the model is on the cpu on at least one "
        "rank (move it with module.to(Device::cuda(i)) before initialize)");
  }
  // NCCL is there when the program is linked with the CUDA archive (comm/nccl_registry.h).
  comm::NcclMaker make_nccl = comm::registered_nccl_maker();
  if (make_nccl == nullptr) {
    if (backend == DistBackend::automatic) return staged_mpi();
    throw std::invalid_argument(
        "dist_backend nccl: this program has no NCCL (built with CUDA=0, or not linked with "
        "the CUDA backend's archive libzerotrain_cuda.a)");
  }
  auto* mpi = dynamic_cast<comm::MpiCommunicator*>(&grid.data_group());
  if (mpi == nullptr) throw std::logic_error("initialize: the data-parallel group is not MPI");
  comm::DeviceCommunicator nccl;
  std::string failure;
  try {
    nccl = make_nccl(*mpi);  // throws on every rank alike
  } catch (const std::runtime_error& error) {
    failure = error.what();
  }
  // NCCL runs on the rank's own GPU (its local rank); a model elsewhere cannot use it.
  bool usable = on_every_rank(grid.world(), nccl.communicator && nccl.device_index == device.index);
  if (usable) return std::move(nccl.communicator);
  if (backend == DistBackend::automatic) return staged_mpi();
  if (!failure.empty()) throw std::runtime_error("dist_backend nccl: " + failure);
  throw std::runtime_error(fmt::format(
      "dist_backend nccl: every rank's model must be on its own GPU (cuda:local_rank); this "
      "rank's model is on {} and its NCCL device is cuda:{}",
      device.str(), nccl.device_index));
}

}  // namespace

DeepSpeedArgs take_deepspeed_args(int& argc, char** argv) {
  DeepSpeedArgs args;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](const std::string& flag) -> std::string {
      if (arg.size() > flag.size() && arg.compare(0, flag.size() + 1, flag + "=") == 0) {
        return arg.substr(flag.size() + 1);
      }
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return argv[++i];
    };
    if (arg == "--deepspeed") {
      args.deepspeed = true;
    } else if (arg == "--deepspeed_config" || arg.rfind("--deepspeed_config=", 0) == 0) {
      args.deepspeed_config = value_of("--deepspeed_config");
    } else if (arg == "--local_rank" || arg.rfind("--local_rank=", 0) == 0) {
      std::string text = value_of("--local_rank");
      char* end = nullptr;
      long value = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || value < 0) {
        throw std::invalid_argument("--local_rank: expected an integer >= 0, got '" + text + "'");
      }
      args.local_rank = int(value);
    } else if (arg == "--dist_backend" || arg.rfind("--dist_backend=", 0) == 0) {
      args.dist_backend = parse_dist_backend(value_of("--dist_backend"), "--dist_backend");
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;
  return args;
}

Initialized initialize(comm::MpiRuntime& runtime, const DeepSpeedArgs& args,
                       std::shared_ptr<nn::Module> model, const ParamGroupSpecs& param_groups) {
  if (args.deepspeed_config.empty()) {
    throw std::invalid_argument(
        "ZeroTrain requires --deepspeed_config to specify a configuration file");
  }
  return initialize(runtime, dist::load_config(args.deepspeed_config, runtime.size(), nullptr),
                    std::move(model), args.dist_backend, param_groups);
}

Initialized initialize(comm::MpiRuntime& runtime, dist::Config config,
                       std::shared_ptr<nn::Module> model, const ClientOptimizer& client,
                       DistBackend dist_backend, const ParamGroupSpecs& param_groups) {
  std::vector<std::string> notes;
  config = dist::with_client_optimizer(std::move(config), client, &notes);
  if (runtime.rank() == 0) {
    for (const std::string& line : notes) fmt::print("config: {}\n", line);
  }
  return initialize(runtime, std::move(config), std::move(model), dist_backend, param_groups);
}

namespace {

// The grid of the config's tensor-parallel size: world / tp data-parallel replicas.
std::unique_ptr<comm::ProcessGrid> grid_for(comm::MpiRuntime& runtime, const dist::Config& config) {
  return std::make_unique<comm::ProcessGrid>(
      runtime.world(), comm::factor_world(runtime.size(), config.tensor_parallel_size));
}

Initialized initialize_on_grid(comm::MpiRuntime& runtime, dist::Config config,
                               std::unique_ptr<comm::ProcessGrid> grid,
                               std::shared_ptr<nn::Module> model, DistBackend dist_backend,
                               const ParamGroupSpecs& param_groups) {
  if (!model) throw std::invalid_argument("initialize: no model");
  dist::ActivationCheckpointingConfig checkpointing = config.activation_checkpointing;
  if (checkpointing.contiguous_memory_optimization && checkpointing.number_checkpoints == 0) {
    // DeepSpeed asserts on this only when a program configures checkpointing without a count;
    // here no count means the buffer has no size, so the option is left off, and said so.
    checkpointing.contiguous_memory_optimization = false;
    if (runtime.rank() == 0) {
      fmt::print(stderr,
                 "warning: {}: activation_checkpointing.contiguous_memory_optimization has no "
                 "effect without number_checkpoints\n",
                 config.source_name);
    }
  }
  dist::apply_activation_checkpointing(checkpointing);
  if (runtime.rank() == 0) {
    for (const std::string& line : config.auto_resolved) fmt::print("config: {}\n", line);
  }
  Initialized result;
  result.grid = std::move(grid);
  result.device_data_group =
      make_device_data_group(*result.grid, dist::device_of_parameters(*model), dist_backend);
  comm::Communicator& data_group =
      result.device_data_group ? *result.device_data_group : result.grid->data_group();
  result.engine = std::make_unique<dist::Engine>(std::move(config), std::move(model), data_group,
                                                 param_groups, &result.grid->tensor_group());
  result.optimizer = &result.engine->optimizer();
  result.lr_scheduler = result.engine->lr_scheduler();
  return result;
}

}  // namespace

Initialized initialize(comm::MpiRuntime& runtime, dist::Config config,
                       std::shared_ptr<nn::Module> model, DistBackend dist_backend,
                       const ParamGroupSpecs& param_groups) {
  if (config.tensor_parallel_size > 1) {
    throw std::invalid_argument(fmt::format(
        "initialize: {}: tensor_parallel.autotp_size {} needs the model built on the grid's "
        "tensor group; pass a model builder (initialize(runtime, config, build_model))",
        config.source_name, config.tensor_parallel_size));
  }
  std::unique_ptr<comm::ProcessGrid> grid = grid_for(runtime, config);
  return initialize_on_grid(runtime, std::move(config), std::move(grid), std::move(model),
                            dist_backend, param_groups);
}

Initialized initialize(comm::MpiRuntime& runtime, dist::Config config,
                       const ModelBuilder& build_model, DistBackend dist_backend,
                       const ParamGroupSpecs& param_groups) {
  std::unique_ptr<comm::ProcessGrid> grid = grid_for(runtime, config);
  std::shared_ptr<nn::Module> model = build_model(*grid);
  return initialize_on_grid(runtime, std::move(config), std::move(grid), std::move(model),
                            dist_backend, param_groups);
}

}  // namespace zt
