// ds_config.json's pipeline block, with DeepSpeed's keys and defaults, and what its
// PipelineModule and pipeline engine take as arguments (partition method, activation
// checkpoint interval, schedule): the pipeline engine (pipeline/pipeline_engine.h) reads them.
#pragma once

#include <cstdint>
#include <string>

namespace zt::dist {

struct PipelineConfig {
  bool present = false;
  // Pipeline stages; 0 is DeepSpeed's "auto": the program's --pipeline-parallel-size, else 1.
  int64_t stages = 0;
  // DeepSpeed's "partition" key: "parameters" (balance trainable parameters; DeepSpeed's
  // "best" is taken as this), "uniform" (balance layers) or "type:REGEX" (balance the layers
  // whose type name matches REGEX, case-insensitively).
  std::string partition_method = "parameters";
  bool seed_layers = false;  // recorded: layers are built from the program's seed
  // Every this many layers of a stage run as one activation checkpoint; 0: none.
  int64_t activation_checkpoint_interval = 0;
  // With tensor parallelism, each tensor rank sends a 1/tp slice of every boundary activation
  // (gradient) and the receivers all-gather them over the tensor group (DeepSpeed's defaults).
  bool pipe_partitioned = true;
  bool grad_partitioned = true;
  // Not DeepSpeed keys (its engine has one schedule): "1f1b" (PipeDream-Flush) or
  // "interleaved" (interleaved 1F1B with virtual_stages model chunks on each stage).
  std::string schedule = "1f1b";
  int64_t virtual_stages = 1;
};

}  // namespace zt::dist
