// LayerSpec: a pipeline layer described before it exists, as DeepSpeed's LayerSpec and
// TiedLayerSpec: a type name (what "type:REGEX" partitioning matches) and a factory, so that
// each stage builds only its own layers and a tensor-parallel layer can take a spec's place.
// A pipeline layer maps one tensor to one tensor. Tied specs share a parameter: every layer
// with the same tied_key holds its own copy of tied_parameter, the copies start equal and get
// the sum of their gradients (the embedding and the LM head of a GPT).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace zt::pipeline {

struct LayerSpec {
  std::string type_name;  // "GPT2Block", "Embedding", ...
  std::function<std::shared_ptr<nn::Module>()> build;
  std::string tied_key;        // "" when not tied
  std::string tied_parameter;  // the shared parameter's name inside the layer ("weight")
  // Where this layer's parameters sit in a whole model's state dict ("h.3." for a GPT's fourth
  // block), so that a stage can take its weights from a model built on one process.
  std::string state_prefix;
  // True when the layer's output differs between the ranks of a tensor group (sequence
  // parallelism: each holds its own tokens). Such outputs cross a stage boundary whole: the
  // pipe_partitioned slicing assumes a copy replicated over the group.
  bool output_split_over_tensor_group = false;
};

using LayerSpecs = std::vector<LayerSpec>;

}  // namespace zt::pipeline
