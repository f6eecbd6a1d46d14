// Per-layer model files: names inside a file are the layer's own parameter names.
#include "pipeline/layer_checkpoint.h"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "autograd/grad_mode.h"
#include "core/ops/view.h"
#include "core/safetensors.h"

namespace zt::pipeline {

namespace {

// The stage's layer indices, in order.
std::vector<int> held_layers(const PipelineModule& module) {
  std::vector<int> layers;
  for (int chunk = 0; chunk < module.options().chunks; ++chunk)
    for (int index : module.chunk_layers(chunk)) layers.push_back(index);
  return layers;
}

}  // namespace

std::string layer_state_file(const std::string& dir, int layer) {
  return fmt::format("{}/layer_{:02d}-model_states.safetensors", dir, layer);
}

std::string layer_state_file(const std::string& dir, int layer, int tensor_rank) {
  return fmt::format("{}/layer_{:02d}-model_{:02d}-model_states.safetensors", dir, layer,
                     tensor_rank);
}

void save_layer_states(const PipelineModule& module, const std::string& dir, int tensor_rank) {
  std::filesystem::create_directories(dir);
  for (int index : held_layers(module)) {
    NamedTensors tensors;
    for (const auto& [name, parameter] : module.layer(index)->named_parameters())
      tensors.emplace_back(name, parameter.detach());
    save_safetensors(
        tensor_rank < 0 ? layer_state_file(dir, index) : layer_state_file(dir, index, tensor_rank),
        tensors, {{"type_name", module.specs()[size_t(index)].type_name}});
  }
}

void load_layer_states(PipelineModule& module, const std::string& dir) {
  std::vector<std::pair<Tensor, Tensor>> copies;  // destination, source
  for (int index : held_layers(module)) {
    // An engine checkpoint's tag directory names its files by tensor rank (DeepSpeed's names).
    std::string path = layer_state_file(dir, index);
    if (!std::filesystem::exists(path) && std::filesystem::exists(layer_state_file(dir, index, 0)))
      path = layer_state_file(dir, index, 0);
    SafetensorsContents contents = load_safetensors(path);
    for (const auto& [name, parameter] : module.layer(index)->named_parameters()) {
      if (!contents.contains(name))
        throw std::runtime_error(fmt::format("{}: no tensor {} (layer {}, a {})", path, name, index,
                                             module.specs()[size_t(index)].type_name));
      const Tensor& saved = contents.at(name);
      if (saved.sizes() != parameter.sizes() || saved.dtype() != parameter.dtype())
        throw std::runtime_error(fmt::format(
            "{}: {} is {} {}, the layer's is {} {}", path, name, dtype_name(saved.dtype()),
            shape_str(saved.sizes()), dtype_name(parameter.dtype()), shape_str(parameter.sizes())));
      copies.emplace_back(parameter, saved);
    }
  }
  NoGradGuard no_grad;
  for (const auto& [destination, source] : copies) ops::copy_(destination, source);
}

dist::ModelParallelPlacement stage_placement(const PipelineModule& module,
                                             dist::ModelParallelPlacement base) {
  base.pipeline_stage = module.stage();
  base.pipeline_stages = module.options().stages;
  base.model_file_holds_parameters = false;
  base.layers = held_layers(module);
  base.layer_bounds = module.bounds();
  base.chunks = module.options().chunks;
  const LayerSpecs& specs = module.specs();
  for (int index : held_layers(module)) {
    const LayerSpec& spec = specs[size_t(index)];
    const std::string local = fmt::format("{}.", index);
    for (const auto& [name, parameter] : module.layer(index)->named_parameters()) {
      std::string whole = spec.state_prefix + name;
      if (!spec.tied_key.empty() && name == spec.tied_parameter) {
        for (const LayerSpec& owner : specs) {
          if (owner.tied_key == spec.tied_key) {
            whole = owner.state_prefix + owner.tied_parameter;
            break;
          }
        }
      }
      base.whole_names[local + name] = whole;
    }
    for (const auto& [name, buffer] : module.layer(index)->named_buffers())
      base.whole_names[local + name] = spec.state_prefix + name;
  }
  return base;
}

}  // namespace zt::pipeline
