// What gpt_train records about its model, and how gpt_generate rebuilds the model from it: the
// GPTConfig as metadata strings ("model": "gpt", "tokenizer": "bytes", then each field; a model
// trained with block-sparse attention adds "sparse_attention", the ds_config.json block as JSON
// text, and a file without it attends densely, as files written before it did), stored
// in the checkpoints' client state (zero_to_fp32 copies it into its output) and in gpt_train's
// --save file. A file or checkpoint of another network, or of another GPT than a resumed run's,
// is a one-line error naming the file and the key that differs.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"
#include "dist/sparse_attention_json.h"
#include "models/gpt.h"

namespace zt::apps {

inline constexpr const char* kGptModelName = "gpt";
inline constexpr const char* kByteTokenizerName = "bytes";

inline SafetensorsMetadata gpt_metadata(const models::GPTConfig& config) {
  SafetensorsMetadata metadata{
      {"model", kGptModelName},
      {"tokenizer", kByteTokenizerName},
      {"architecture", models::architecture_name(config.architecture)},
      {"vocab_size", std::to_string(config.vocab_size)},
      {"block_size", std::to_string(config.block_size)},
      {"n_layer", std::to_string(config.n_layer)},
      {"n_head", std::to_string(config.n_head)},
      {"n_embd", std::to_string(config.n_embd)},
      {"n_kv_head", std::to_string(config.resolved_n_kv_head())},
      {"intermediate_size", std::to_string(config.resolved_intermediate_size())},
      {"bias", config.bias ? "true" : "false"},
      {"norm_eps", fmt::format("{}", config.norm_eps)},
      {"rope_theta", fmt::format("{}", config.rope_theta)},
      {"tie_word_embeddings", config.tie_word_embeddings ? "true" : "false"}};
  // Only a head-pruned model has it: the heads each layer kept, "2,3,..." (absent: n_head).
  if (!config.layer_heads.empty())
    metadata["layer_heads"] = fmt::format("{}", fmt::join(config.layer_heads, ","));
  // Only a model trained sparse has it: the layout is part of the function the weights learned.
  if (config.sparse_attention)
    metadata["sparse_attention"] = dist::sparse_attention_json(*config.sparse_attention);
  return metadata;
}

// The config that `metadata` describes; `where` (a file) starts every error.
inline models::GPTConfig gpt_config_from_metadata(const SafetensorsMetadata& metadata,
                                                  const std::string& where) {
  auto value = [&](const std::string& key) -> const std::string& {
    auto found = metadata.find(key);
    if (found == metadata.end()) {
      throw std::runtime_error(
          fmt::format("{}: metadata \"{}\" missing (not a model of gpt_train)", where, key));
    }
    return found->second;
  };
  const std::string& model = value("model");
  if (model != kGptModelName) {
    throw std::runtime_error(fmt::format(
        "{}: metadata \"model\" is \"{}\": a model of another network, not a GPT", where, model));
  }
  if (value("tokenizer") != kByteTokenizerName) {
    throw std::runtime_error(fmt::format("{}: metadata \"tokenizer\" is \"{}\", expected \"{}\"",
                                         where, value("tokenizer"), kByteTokenizerName));
  }
  auto number = [&](const std::string& key) {
    const std::string& text = value(key);
    double parsed = 0.0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (error != std::errc() || end != text.data() + text.size()) {
      throw std::runtime_error(
          fmt::format("{}: metadata \"{}\": expected a number, got \"{}\"", where, key, text));
    }
    return parsed;
  };
  auto flag = [&](const std::string& key) {
    const std::string& text = value(key);
    if (text != "true" && text != "false") {
      throw std::runtime_error(
          fmt::format("{}: metadata \"{}\": expected true or false, got \"{}\"", where, key, text));
    }
    return text == "true";
  };
  models::GPTConfig config;
  try {
    config.architecture = models::parse_architecture(value("architecture"));
  } catch (const std::invalid_argument& error) {
    throw std::runtime_error(fmt::format("{}: metadata \"architecture\": {}", where, error.what()));
  }
  config.vocab_size = int64_t(number("vocab_size"));
  config.block_size = int64_t(number("block_size"));
  config.n_layer = int64_t(number("n_layer"));
  config.n_head = int64_t(number("n_head"));
  config.n_embd = int64_t(number("n_embd"));
  config.n_kv_head = int64_t(number("n_kv_head"));
  config.intermediate_size = int64_t(number("intermediate_size"));
  config.bias = flag("bias");
  config.norm_eps = number("norm_eps");
  config.rope_theta = number("rope_theta");
  config.tie_word_embeddings = flag("tie_word_embeddings");
  if (metadata.contains("layer_heads")) {
    std::string heads = value("layer_heads");
    for (size_t begin = 0; begin <= heads.size();) {
      size_t end = std::min(heads.find(',', begin), heads.size());
      int64_t count = 0;
      auto [stop, error] = std::from_chars(heads.data() + begin, heads.data() + end, count);
      if (error != std::errc() || stop != heads.data() + end) {
        throw std::runtime_error(
            fmt::format("{}: metadata \"layer_heads\": expected counts like \"2,3\", got \"{}\"",
                        where, heads));
      }
      config.layer_heads.push_back(count);
      begin = end + 1;
    }
  }
  if (metadata.contains("sparse_attention")) {
    // A dist::ConfigError (a std::runtime_error) naming the file and the key.
    config.sparse_attention =
        dist::parse_sparse_attention_json(value("sparse_attention"), where + ": metadata");
  }
  try {
    config.validate();
  } catch (const std::invalid_argument& error) {
    throw std::runtime_error(fmt::format("{}: metadata: {}", where, error.what()));
  }
  return config;
}

// Throws naming the first key where `saved` (a checkpoint's metadata, read from `where`)
// describes another model than `config`.
inline void check_same_gpt(const SafetensorsMetadata& saved, const models::GPTConfig& config,
                           const std::string& where) {
  SafetensorsMetadata expected = gpt_metadata(config);
  // The flags' fields first, so that a run with another --n_embd names n_embd rather than the
  // MLP width that follows from it.
  std::vector<std::string> keys = {"model",   "tokenizer", "architecture", "vocab_size",
                                   "n_layer", "n_head",    "n_embd",       "block_size"};
  for (const auto& [key, value] : expected) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  // A sparse checkpoint resumed densely is another model too.
  if (saved.contains("sparse_attention") && !expected.contains("sparse_attention"))
    keys.push_back("sparse_attention");
  auto shown = [](const SafetensorsMetadata& metadata, const std::string& key) {
    auto found = metadata.find(key);
    return found == metadata.end() ? std::string("nothing") : "\"" + found->second + "\"";
  };
  for (const std::string& key : keys) {
    if (shown(saved, key) != shown(expected, key)) {
      throw std::runtime_error(fmt::format(
          "{}: metadata \"{}\": the checkpoint has {}, this run {} (a checkpoint of another "
          "model)",
          where, key, shown(saved, key), shown(expected, key)));
    }
  }
}

// A GPT built from `metadata` with `tensors` loaded into it (strict: every weight must be there
// with its shape; a tied head may be absent). Errors start with `where`.
inline std::shared_ptr<models::GPT> load_gpt(const SafetensorsMetadata& metadata,
                                             const NamedTensors& tensors,
                                             const std::string& where) {
  auto model = std::make_shared<models::GPT>(gpt_config_from_metadata(metadata, where));
  try {
    model->load_state_dict(tensors, true);
  } catch (const std::exception& error) {
    throw std::runtime_error(fmt::format("{}: {}", where, error.what()));
  }
  return model;
}

}  // namespace zt::apps
