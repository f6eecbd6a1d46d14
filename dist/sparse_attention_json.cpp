// Writes the keys of sparsity_keys_of(mode) with their values; reads through
// config_reading::read_sparse_attention, with every warning (a key the mode does not read, an
// unknown key) an error, since a file this program wrote has none.
#include "dist/sparse_attention_json.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "dist/config_section.h"
#include "dist/config_sparse_attention.h"

namespace zt::dist {

namespace {

nlohmann::json key_value(const SparsityConfig& config, const std::string& key) {
  if (key == "block") return config.block;
  if (key == "different_layout_per_head") return config.different_layout_per_head;
  if (key == "num_local_blocks") return config.num_local_blocks;
  if (key == "num_global_blocks") return config.num_global_blocks;
  if (key == "attention") return config.unidirectional ? "unidirectional" : "bidirectional";
  if (key == "horizontal_global_attention") return config.horizontal_global_attention;
  if (key == "num_different_global_patterns") return config.num_different_global_patterns;
  if (key == "num_random_blocks") return config.num_random_blocks;
  if (key == "local_window_blocks") return config.local_window_blocks;
  if (key == "global_block_indices") return config.global_block_indices;
  if (key == "global_block_end_indices") return config.global_block_end_indices;
  if (key == "num_sliding_window_blocks") return config.num_sliding_window_blocks;
  throw std::logic_error("sparse_attention_json: no value for key " + key);
}

}  // namespace

std::string sparse_attention_json(const SparsityConfig& config) {
  nlohmann::ordered_json block;
  block["mode"] = sparsity_mode_name(config.mode);
  for (const std::string& key : sparsity_keys_of(config.mode)) {
    if (key == "global_block_end_indices" && config.global_block_end_indices.empty()) continue;
    block[key] = key_value(config, key);
  }
  return block.dump();
}

SparsityConfig parse_sparse_attention_json(const std::string& text, const std::string& where) {
  using config_reading::ParseContext;
  nlohmann::json root = {{"sparse_attention", nlohmann::json::parse(text, nullptr, false)}};
  if (!root["sparse_attention"].is_object()) {
    throw ConfigError(
        fmt::format("{}: sparse_attention: expected a JSON object, got '{}'", where, text));
  }
  std::vector<std::string> warnings;
  ParseContext context(where, &warnings);
  config_reading::Section top(context, &root, "");
  std::optional<SparsityConfig> config;
  context.read_on([&] { config_reading::read_sparse_attention(top, config, context); });
  std::vector<std::string> problems = context.errors();
  problems.insert(problems.end(), warnings.begin(), warnings.end());
  if (!problems.empty()) throw ConfigError(problems, {});
  if (!config) throw ConfigError(fmt::format("{}: sparse_attention: not read", where));
  return *config;
}

}  // namespace zt::dist
