// Maps the activation_checkpointing block key for key onto CheckpointingOptions.
#include "dist/activation_checkpointing.h"

namespace zt::dist {

CheckpointingOptions checkpointing_options_of(const ActivationCheckpointingConfig& config) {
  return CheckpointingOptions{
      .partition_activations = config.partition_activations,
      .cpu_checkpointing = config.cpu_checkpointing,
      .contiguous_memory_optimization = config.contiguous_memory_optimization,
      .synchronize_checkpoint_boundary = config.synchronize_checkpoint_boundary,
      .profile = config.profile,
      .number_checkpoints = config.number_checkpoints,
  };
}

void apply_activation_checkpointing(const ActivationCheckpointingConfig& config) {
  configure_checkpointing(checkpointing_options_of(config));
}

}  // namespace zt::dist
