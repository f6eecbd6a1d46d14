// zt::initialize applies the ds_config activation_checkpointing block to the process-wide
// checkpointing options on every rank, and a config without the block puts the defaults back.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>

#include "autograd/checkpointing_options.h"
#include "core/generator.h"
#include "dist/initialize.h"
#include "nn/nn.h"
#include "tests/mpi/mpi_test_world.h"

using namespace zt::comm;

namespace zt::dist {
namespace {

Config config_with(const std::string& extra) {
  const int world = testing::test_runtime().size();
  std::string text = fmt::format(R"({{
    "train_micro_batch_size_per_gpu": 2,
    "gradient_accumulation_steps": 1,
    "steps_per_print": 0,
    "optimizer": {{"type": "Adam", "params": {{"lr": 0.01}}}}{}
  }})",
                                 extra);
  return parse_config(text, "test_config", world, nullptr);
}

Initialized initialize_small(const Config& config) {
  manual_seed(5);
  return initialize(testing::test_runtime(), config, std::make_shared<nn::Linear>(4, 2));
}

TEST_CASE("initialize applies activation_checkpointing to the checkpointing options") {
  {
    Initialized initialized = initialize_small(config_with(R"(,
      "activation_checkpointing": {"partition_activations": true, "cpu_checkpointing": true,
                                   "contiguous_memory_optimization": true,
                                   "number_checkpoints": 3, "profile": true,
                                   "synchronize_checkpoint_boundary": true})"));
    const CheckpointingOptions options = checkpointing_options();
    CHECK(options.partition_activations);
    CHECK(options.cpu_checkpointing);
    CHECK(options.contiguous_memory_optimization);
    CHECK(options.synchronize_checkpoint_boundary);
    CHECK(options.profile);
    CHECK(options.number_checkpoints == 3);
  }
  Initialized plain = initialize_small(config_with(""));
  const CheckpointingOptions options = checkpointing_options();
  CHECK_FALSE(options.cpu_checkpointing);
  CHECK_FALSE(options.contiguous_memory_optimization);
  CHECK_FALSE(options.profile);
  CHECK(options.number_checkpoints == 0);
}

}  // namespace
}  // namespace zt::dist
