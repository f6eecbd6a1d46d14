// One model from an engine checkpoint's rank files, as DeepSpeed's zero_to_fp32.py makes it: the
// fp32 master values of every parameter under the model's names, buffers cast to f32, and the
// strings of the client state's "metadata" object (what the training app recorded about its
// model). Used by zero_to_fp32 (to write the file) and gpt_generate (to sample from it). A
// checkpoint of model-parallel engines is first joined whole (dist::read_whole_checkpoint).
#pragma once

#include <fmt/format.h>

#include <set>
#include <stdexcept>
#include <string>

#include "core/safetensors.h"
#include "dist/checkpoint_files.h"
#include "dist/model_parallel_checkpoint.h"

namespace zt::apps {

// Parameters from the fp32 masters, buffers from the model file, in the model file's order. A
// tied parameter is saved once in the model file, perhaps under another of its names than the
// one the rank files' layout uses: its master is found through the tied names either way.
inline NamedTensors fp32_model_tensors(const dist::ConsolidatedCheckpoint& checkpoint) {
  std::string model_file = dist::model_states_file(checkpoint.tag_dir);
  auto master_of = [&](const std::string& name) {
    auto master = checkpoint.fp32_params.find(name);
    for (const auto& [other, kept] : checkpoint.tied_names) {
      if (master == checkpoint.fp32_params.end() && kept == name)
        master = checkpoint.fp32_params.find(other);
    }
    return master;
  };
  NamedTensors tensors;
  std::set<std::string> placed;
  for (const auto& [name, saved] : checkpoint.model_tensors) {
    auto master = master_of(name);
    if (master == checkpoint.fp32_params.end()) {
      tensors.emplace_back(name, saved.to(DType::f32));  // a buffer
      continue;
    }
    if (master->second.sizes() != saved.sizes()) {
      throw std::runtime_error(fmt::format(
          "{}: tensor {} is {}, but the rank files' layout gives it shape {}", model_file, name,
          shape_str(saved.sizes()), shape_str(master->second.sizes())));
    }
    tensors.emplace_back(name, master->second);
    placed.insert(master->first);
  }
  for (const std::string& name : checkpoint.parameter_names) {
    if (!placed.contains(name)) {
      throw std::runtime_error(
          fmt::format("{}: parameter {} of the rank files' layout is not in this model file",
                      model_file, name));
    }
  }
  return tensors;
}

// {"format": "pt"}, the tied names (so that safetensors.torch.load_model fills every name of a
// tied parameter) and the client state's "metadata" strings.
inline SafetensorsMetadata consolidated_metadata(const dist::ConsolidatedCheckpoint& checkpoint) {
  SafetensorsMetadata metadata{{"format", "pt"}};
  metadata.insert(checkpoint.tied_names.begin(), checkpoint.tied_names.end());
  const nlohmann::json& state = checkpoint.client_state;
  if (!state.is_object() || !state.contains("metadata")) return metadata;
  std::string where = dist::model_states_file(checkpoint.tag_dir) + ": client_state.metadata";
  if (!state["metadata"].is_object())
    throw std::runtime_error(where + ": expected an object of strings");
  for (const auto& [key, value] : state["metadata"].items()) {
    if (!value.is_string()) {
      throw std::runtime_error(
          fmt::format("{}.{}: expected a string, got {}", where, key, value.dump()));
    }
    if (key != "format") metadata[key] = value.get<std::string>();
  }
  return metadata;
}

}  // namespace zt::apps
