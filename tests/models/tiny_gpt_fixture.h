// The tiny GPT-2 and Llama of tests/fixtures/make_gpt_fixture.py: their configs (from the
// reference file's metadata), the models with the fixture's weights loaded, and the reference
// tensors PyTorch computed (tokens, targets, logits, loss, grad.NAME).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"
#include "models/gpt.h"

namespace zt::testing {

inline std::string tiny_gpt_fixture(const std::string& architecture, const std::string& kind) {
  return (std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" /
          ("tiny_" + architecture + "_" + kind + ".safetensors"))
      .string();
}

inline SafetensorsContents tiny_gpt_reference(models::Architecture architecture) {
  return load_safetensors(tiny_gpt_fixture(models::architecture_name(architecture), "reference"));
}

inline models::GPTConfig tiny_gpt_config(models::Architecture architecture) {
  const nlohmann::json fields =
      nlohmann::json::parse(tiny_gpt_reference(architecture).metadata.at("config"));
  models::GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = fields.at("vocab_size");
  config.block_size = fields.at("block_size");
  config.n_layer = fields.at("n_layer");
  config.n_head = fields.at("n_head");
  config.n_embd = fields.at("n_embd");
  config.norm_eps = fields.at("norm_eps");
  if (architecture == models::Architecture::llama) {
    config.n_kv_head = fields.at("n_kv_head");
    config.intermediate_size = fields.at("intermediate_size");
    config.rope_theta = fields.at("rope_theta");
    config.bias = false;
    config.tie_word_embeddings = false;
  }
  return config;
}

// A model of the fixture's config with its weights, loaded through load_hf_safetensors.
inline std::shared_ptr<models::GPT> tiny_gpt(models::Architecture architecture) {
  auto model = std::make_shared<models::GPT>(tiny_gpt_config(architecture));
  models::load_hf_safetensors(*model,
                              tiny_gpt_fixture(models::architecture_name(architecture), "weights"));
  return model;
}

}  // namespace zt::testing
