// What the ds_config.json tests share (tests/dist/test_config*.cpp): parsing a config text
// with its warnings collected, the error a text produces, and the repository's configs folder.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "dist/config.h"

namespace zt::testing {

using dist::Config;
using dist::ConfigError;
using dist::parse_config;

// Parses with the warnings collected (not printed).
inline Config parse(const std::string& text, int world_size = 1,
                    std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> ignored;
  return parse_config(text, "ds_config.json", world_size, warnings ? warnings : &ignored);
}

// The ConfigError message `text` produces, or "(no error)".
inline std::string error_of(const std::string& text, int world_size = 1) {
  try {
    parse(text, world_size);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "(no error)";
}

// A config with a valid batch size plus `extra` top-level members ("" for none).
inline std::string with_batch(const std::string& extra) {
  return "{\"train_batch_size\": 8" + (extra.empty() ? "" : ", " + extra) + "}";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

inline std::filesystem::path repository_configs() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "configs";
}

}  // namespace zt::testing
