// The ds_config activation_checkpointing block applied to the process-wide checkpointing options
// (autograd/checkpointing_options.h), as deepspeed.initialize hands it to
// deepspeed.checkpointing.configure. The config reader has already enforced DeepSpeed's rules.
#pragma once

#include "autograd/checkpointing_options.h"
#include "dist/config.h"

namespace zt::dist {

CheckpointingOptions checkpointing_options_of(const ActivationCheckpointingConfig& config);
// configure_checkpointing(checkpointing_options_of(config)).
void apply_activation_checkpointing(const ActivationCheckpointingConfig& config);

}  // namespace zt::dist
