// PipelineModule: the layers of one pipeline stage, built from the whole model's layer specs
// after partitioning them over the virtual stages (stages x model chunks), as DeepSpeed's
// PipelineModule. Layers are registered under their index in the whole list ("0", "7", ...),
// so a stage's state dict names the layers DeepSpeed's way; a chunk runs its layers in order,
// every activation_checkpoint_interval of them as one activation checkpoint in training.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/safetensors.h"
#include "nn/module.h"
#include "pipeline/layer_spec.h"

namespace zt::pipeline {

struct PipelineModuleOptions {
  int stages = 1;
  int chunks = 1;  // model chunks per stage (interleaved schedule)
  std::string partition_method = "parameters";
  int64_t activation_checkpoint_interval = 0;  // 0: no checkpointing
};

// The bounds of every virtual stage's layers (virtual stage k: [bounds[k], bounds[k+1])).
// "parameters" builds each spec once to count its parameters, as DeepSpeed does. Throws
// std::invalid_argument naming the problem (more virtual stages than layers, a bad method).
std::vector<int> partition_specs(const LayerSpecs& specs, const PipelineModuleOptions& options);

class PipelineModule final : public nn::Module {
 public:
  // Builds the layers of `stage` only.
  PipelineModule(const LayerSpecs& specs, const PipelineModuleOptions& options, int stage);
  std::string type_name() const override { return "PipelineModule"; }
  std::string extra_repr() const override;

  int stage() const { return stage_; }
  const PipelineModuleOptions& options() const { return options_; }
  const std::vector<int>& bounds() const { return bounds_; }
  // The indices (in the whole list) of the layers of this stage's chunk.
  std::vector<int> chunk_layers(int chunk) const;
  std::shared_ptr<nn::Module> layer(int index) const;
  const LayerSpecs& specs() const { return specs_; }

  // Runs the chunk's layers on `input`.
  Tensor forward_chunk(int chunk, const Tensor& input);
  // The local copies of each tied parameter, by tied key (keys this stage holds only).
  std::map<std::string, std::vector<Tensor>> tied_parameters() const;
  // Copies this stage's parameters from a whole model's state dict, each layer's under its
  // spec's state_prefix (a tied parameter absent there is taken from the first spec with
  // its key). Tensor-parallel layers take tensor rank `tensor_rank`'s shard of each whole
  // tensor (tensor_parallel/sharded_state.h). Throws std::invalid_argument naming a missing
  // tensor or a shape that differs.
  void load_from_whole_model(const NamedTensors& whole, int tensor_rank = 0, int tensor_ranks = 1);
  // This stage's parameters under the whole model's names (the inverse of the above; shards
  // as they are).
  NamedTensors whole_model_names() const;
  // `tensors` named as this module's parameters (its own, their gradients, an engine's
  // consolidated state) made whole across `tensor_group` and named as in the whole model, in
  // host memory. Collective over the tensor group; a group of one only renames.
  NamedTensors gather_whole_model(const NamedTensors& tensors, comm::Communicator& tensor_group);

 protected:
  Tensor forward(const Tensor& input) override;  // throws: chunks run through the engine

 private:
  LayerSpecs specs_;
  PipelineModuleOptions options_;
  int stage_;
  std::vector<int> bounds_;
  std::map<int, std::shared_ptr<nn::Module>> layers_;
};

}  // namespace zt::pipeline
