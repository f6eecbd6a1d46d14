// The compression_training block of a --compression-config file (a whole ds_config.json or a
// file with just the block), read by mnist_train and gpt_train with the config reader's rules
// and messages.
#pragma once

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "dist/config.h"

namespace zt::apps {

inline dist::CompressionConfig read_compression_file(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw dist::ConfigError(fmt::format("{}: cannot open", path));
  std::stringstream text;
  text << file.rdbuf();
  nlohmann::json root = nlohmann::json::parse(text.str(), nullptr, false, true);
  if (!root.is_object() || !root.contains("compression_training")) {
    throw dist::ConfigError(
        fmt::format("{}: expected a JSON object with a \"compression_training\" block", path));
  }
  // Only the block is read here; the batch keys are the engine config's business.
  nlohmann::json config = {{"train_micro_batch_size_per_gpu", 1},
                           {"compression_training", root["compression_training"]}};
  return dist::parse_config(config.dump(), path, 1, nullptr).compression_training;
}

}  // namespace zt::apps
