// Pipeline checkpoints of the model, one file per layer as DeepSpeed lays them out for
// pipeline stages: DIR/layer_XX-model_states.safetensors (XX: the layer's index in the whole
// list, two digits or more), holding the layer's parameters under their names inside it. A
// partition of any shape can load them: each stage reads the files of its own layers, so a
// checkpoint saved with p stages resumes with another number of stages. The optimizer states
// are not in these files.
#pragma once

#include <string>

#include "pipeline/pipeline_module.h"

namespace zt::pipeline {

std::string layer_state_file(const std::string& dir, int layer);

// Writes this stage's layers (each file atomically: a temporary name, then renamed).
void save_layer_states(const PipelineModule& module, const std::string& dir);
// Reads this stage's layers into its parameters. Throws std::runtime_error naming the file and
// the tensor that is missing or has another shape; nothing is copied unless every file fits.
void load_layer_states(PipelineModule& module, const std::string& dir);

}  // namespace zt::pipeline
