// Pipeline checkpoints of the model, one file per layer as DeepSpeed lays them out for
// pipeline stages: DIR/layer_XX-model_states.safetensors (XX: the layer's index in the whole
// list, two digits or more), holding the layer's parameters under their names inside it. A
// partition of any shape can load them: each stage reads the files of its own layers, so a
// checkpoint saved with p stages resumes with another number of stages. The optimizer states
// are not in these files: an engine checkpoint (stage_placement below) adds them in
// DeepSpeed's per-stage files and names the layer files by tensor rank as DeepSpeed does
// (DIR/layer_XX-model_YY-model_states.safetensors, YY the tensor rank).
#pragma once

#include <string>

#include "dist/model_parallel_checkpoint.h"
#include "pipeline/pipeline_module.h"

namespace zt::pipeline {

std::string layer_state_file(const std::string& dir, int layer);
// DeepSpeed's name inside an engine checkpoint: layer_XX-model_YY-model_states.safetensors.
std::string layer_state_file(const std::string& dir, int layer, int tensor_rank);

// Writes this stage's layers (each file atomically: a temporary name, then renamed), under
// layer_state_file(dir, layer), or under the tensor rank's name when tensor_rank >= 0.
void save_layer_states(const PipelineModule& module, const std::string& dir, int tensor_rank = -1);
// Reads this stage's layers into its parameters (from an engine checkpoint's tag directory too:
// its layer_XX-model_00 files). Throws std::runtime_error naming the file and
// the tensor that is missing or has another shape; nothing is copied unless every file fits.
void load_layer_states(PipelineModule& module, const std::string& dir);

// `base` (the engine's tensor-parallel part) with this stage's place: its stage, and each of
// its parameters' and buffers' names in the whole model (the spec's state_prefix; a tied copy
// under the first owner's name, as the whole model holds it once). The stage's weights go to
// layer files, so its model-states file holds none.
dist::ModelParallelPlacement stage_placement(const PipelineModule& module,
                                             dist::ModelParallelPlacement base);

}  // namespace zt::pipeline
