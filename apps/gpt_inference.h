// zt::init_inference: the inference engine (inference/) over a GPT given or read from the
// config's checkpoint: an engine checkpoint folder of gpt_train (joined as zero_to_fp32 joins
// it) or a model file (gpt_train --save, zero_to_fp32's output). A checkpoint loaded into a
// given model must describe the same model (one line naming the first key that differs).
#pragma once

#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "apps/checkpoint_consolidation.h"
#include "apps/gpt_model_files.h"
#include "inference/inference_engine.h"

namespace zt {

namespace apps {

struct GptCheckpoint {
  SafetensorsMetadata metadata;
  NamedTensors tensors;
  std::string where;  // the file errors name
};

inline GptCheckpoint read_gpt_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    throw std::invalid_argument(
        fmt::format("checkpoint: {}: no such checkpoint folder or model file", path));
  }
  if (std::filesystem::is_directory(path)) {
    dist::ConsolidatedCheckpoint checkpoint =
        dist::read_whole_checkpoint(dist::resolve_tag_dir(path, ""));
    return {consolidated_metadata(checkpoint), fp32_model_tensors(checkpoint),
            dist::model_states_file(checkpoint.tag_dir)};
  }
  SafetensorsContents contents = load_safetensors(path);
  return {std::move(contents.metadata), std::move(contents.tensors), path};
}

// The engine's config from an app's flags: --dtype, --quant off|w8|w4|w8a8, --quant-groups,
// --tp (dtype int8 with --quant off quantizes the weights to int8).
inline inference::InferenceConfig serving_config(const std::string& dtype, const std::string& quant,
                                                 int64_t quant_groups, int64_t tp_size) {
  inference::InferenceConfig config;
  config.dtype = dtype;
  config.tp_size = tp_size;
  config.quant_given = quant != "off";
  config.quant.weight.num_bits = quant == "w4" ? 4 : 8;
  config.quant.weight.q_groups = quant_groups;
  config.quant.activation.enabled = quant == "w8a8";
  return config;
}

}  // namespace apps

// `model` served under `config`, with config.checkpoint (when set) loaded into it first.
inline std::shared_ptr<inference::InferenceEngine> init_inference(
    std::shared_ptr<models::GPT> model, const inference::InferenceConfig& config) {
  if (!model) throw std::invalid_argument("init_inference: no model");
  if (!config.checkpoint.empty()) {
    apps::GptCheckpoint checkpoint = apps::read_gpt_checkpoint(config.checkpoint);
    apps::check_same_gpt(checkpoint.metadata, model->config(), checkpoint.where);
    try {
      model->load_state_dict(checkpoint.tensors, true);
    } catch (const std::exception& error) {
      throw std::runtime_error(fmt::format("{}: {}", checkpoint.where, error.what()));
    }
  }
  return std::make_shared<inference::InferenceEngine>(std::move(model), config);
}

// The model that config.checkpoint holds, built from its own metadata, served.
inline std::shared_ptr<inference::InferenceEngine> init_inference(
    const inference::InferenceConfig& config) {
  if (config.checkpoint.empty()) {
    throw std::invalid_argument(
        "init_inference: no model given and no \"checkpoint\" in the config");
  }
  apps::GptCheckpoint checkpoint = apps::read_gpt_checkpoint(config.checkpoint);
  return std::make_shared<inference::InferenceEngine>(
      apps::load_gpt(checkpoint.metadata, checkpoint.tensors, checkpoint.where), config);
}

}  // namespace zt

namespace zt::apps {

// The model as the engine serves it under `config` (cast, quantized), for an app's own loop.
inline std::shared_ptr<models::GPT> served_model(std::shared_ptr<models::GPT> model,
                                                 const inference::InferenceConfig& config) {
  std::shared_ptr<inference::InferenceEngine> engine = init_inference(std::move(model), config);
  // Aliasing: the model stays alive with the engine that prepared it.
  return std::shared_ptr<models::GPT>(engine, &engine->model());
}

// "\n" and "\t" as typed on a command line (or a prompt file's line) become the characters.
inline std::string unescaped(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == 'n' || text[i + 1] == 't')) {
      out.push_back(text[++i] == 'n' ? '\n' : '\t');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

}  // namespace zt::apps
