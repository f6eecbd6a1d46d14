// The activation_checkpointing block maps key for key onto the checkpointing options, and
// applying it replaces what was configured before.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "autograd/checkpointing_options.h"
#include "dist/activation_checkpointing.h"
#include "dist/config.h"

using namespace zt;
using namespace zt::dist;

namespace {

ActivationCheckpointingConfig block_of(const std::string& block) {
  const std::string text =
      R"({"train_micro_batch_size_per_gpu": 1, "activation_checkpointing": )" + block + "}";
  std::vector<std::string> warnings;  // partition_activations warns; not under test here
  return parse_config(text, "ds_config.json", 1, &warnings).activation_checkpointing;
}

}  // namespace

TEST_CASE("activation_checkpointing keys reach the checkpointing options one for one") {
  const CheckpointingOptions all = checkpointing_options_of(block_of(R"({
      "partition_activations": true, "cpu_checkpointing": true,
      "contiguous_memory_optimization": true, "number_checkpoints": 6,
      "synchronize_checkpoint_boundary": true, "profile": true})"));
  CHECK(all.partition_activations);
  CHECK(all.cpu_checkpointing);
  CHECK(all.contiguous_memory_optimization);
  CHECK(all.synchronize_checkpoint_boundary);
  CHECK(all.profile);
  CHECK(all.number_checkpoints == 6);

  // One key at a time, so a swapped pair of fields cannot pass.
  CHECK(checkpointing_options_of(block_of(R"({"profile": true})")).profile);
  CHECK_FALSE(checkpointing_options_of(block_of(R"({"profile": true})")).cpu_checkpointing);
  CHECK(checkpointing_options_of(block_of(R"({"synchronize_checkpoint_boundary": true})"))
            .synchronize_checkpoint_boundary);
  CHECK_FALSE(
      checkpointing_options_of(block_of(R"({"synchronize_checkpoint_boundary": true})")).profile);
  CHECK(checkpointing_options_of(block_of(R"({"partition_activations": true})"))
            .partition_activations);
  CHECK_FALSE(
      checkpointing_options_of(block_of(R"({"partition_activations": true})")).cpu_checkpointing);

  apply_activation_checkpointing(block_of(R"({"partition_activations": true,
      "cpu_checkpointing": true, "number_checkpoints": 2})"));
  CHECK(checkpointing_options().cpu_checkpointing);
  CHECK(checkpointing_options().number_checkpoints == 2);
  apply_activation_checkpointing(block_of("{}"));
  CHECK_FALSE(checkpointing_options().cpu_checkpointing);
  CHECK(checkpointing_options().number_checkpoints == 0);
}
