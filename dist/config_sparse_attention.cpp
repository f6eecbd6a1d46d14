// sparse_attention: "mode" picks which keys are read (sparsity_keys_of); the rest of the
// block's keys are registered and warned about, so a key meant for another mode is not taken
// for a misspelling. The layout's own rules run once here (SparsityConfig::validate), so a bad
// combination stops the job at start-up, before any model is built.
#include "dist/config_sparse_attention.h"

#include <stdexcept>

namespace zt::dist::config_reading {

namespace {

// The union of every mode's keys, in DeepSpeed's order.
constexpr std::string_view kAllKeys[] = {"block",
                                         "different_layout_per_head",
                                         "num_local_blocks",
                                         "num_global_blocks",
                                         "attention",
                                         "horizontal_global_attention",
                                         "num_different_global_patterns",
                                         "num_random_blocks",
                                         "local_window_blocks",
                                         "global_block_indices",
                                         "global_block_end_indices",
                                         "num_sliding_window_blocks"};

bool mode_reads(SparsityMode mode, std::string_view key) {
  for (const std::string& known : sparsity_keys_of(mode))
    if (known == key) return true;
  return false;
}

void read_index_list(Section& section, std::string_view key, std::vector<int64_t>& field,
                     int64_t minimum) {
  const json* value = section.take(key);
  if (value == nullptr) return;
  std::vector<int64_t> entries;
  bool valid = value->is_array() && !value->empty();
  for (const json& entry : valid ? *value : json::array()) {
    std::optional<int64_t> integer = as_int64(entry);
    if (!integer || *integer < minimum) valid = false;
    if (integer) entries.push_back(*integer);
  }
  if (!valid) {
    section.fail(key, fmt::format("expected a non-empty list of integers >= {}, got {}", minimum,
                                  shown(*value)));
  }
  field = std::move(entries);
}

void read_mode_key(Section& section, std::string_view key, SparsityConfig& config) {
  if (key == "block") section.read_int(key, config.block, kCount);
  if (key == "different_layout_per_head") section.read_bool(key, config.different_layout_per_head);
  if (key == "num_local_blocks") section.read_int(key, config.num_local_blocks, kCount);
  if (key == "num_global_blocks") section.read_int(key, config.num_global_blocks, kCount);
  if (key == "attention") {
    std::string attention = "bidirectional";
    section.read_choice(key, attention, {"bidirectional", "unidirectional"});
    config.unidirectional = attention == "unidirectional";
  }
  if (key == "horizontal_global_attention")
    section.read_bool(key, config.horizontal_global_attention);
  if (key == "num_different_global_patterns")
    section.read_int(key, config.num_different_global_patterns, kCount);
  if (key == "num_random_blocks")
    section.read_int(key, config.num_random_blocks, kNonNegativeCount);
  if (key == "local_window_blocks") read_index_list(section, key, config.local_window_blocks, 1);
  if (key == "global_block_indices") read_index_list(section, key, config.global_block_indices, 0);
  if (key == "global_block_end_indices")
    read_index_list(section, key, config.global_block_end_indices, 1);
  if (key == "num_sliding_window_blocks")
    section.read_int(key, config.num_sliding_window_blocks, kCount);
}

}  // namespace

void read_sparse_attention(Section& top, std::optional<SparsityConfig>& sparse,
                           const ParseContext& context) {
  Section section = top.section("sparse_attention");
  if (!section.present()) return;
  SparsityConfig config;
  std::string mode_name = "fixed";
  section.read_choice("mode", mode_name, {"dense", "fixed", "variable", "bigbird", "bslongformer"});
  config.mode = parse_sparsity_mode(mode_name);
  for (std::string_view key : kAllKeys) {
    if (mode_reads(config.mode, key)) {
      read_mode_key(section, key, config);
    } else if (section.take(key) != nullptr) {
      context.warn(
          section.path_of(key),
          fmt::format("not read by mode \"{}\" (DeepSpeed ignores it too); ignored", mode_name));
    }
  }
  section.finish();
  try {
    config.validate();
  } catch (const std::invalid_argument& error) {
    context.fail("", error.what());
  }
  sparse = std::move(config);
}

}  // namespace zt::dist::config_reading
