// compression_training: each technique's shared_parameters (DeepSpeed's defaults) and its
// different_groups, read with the rules DeepSpeed asserts (bits, dense ratios, a group list when
// the technique is on) plus the ones it leaves to a crash later (target_bits above start_bits).
// Every config DeepSpeed accepts loads; what needs the model (patterns that match nothing, heads,
// methods the compressor does not have) is checked where it is applied (compress/compressor.h).
#include "dist/config_compression.h"

#include <fmt/format.h>

#include <regex>

#include "dist/config_compression_reader.h"

namespace zt::dist::config_reading {
namespace {

constexpr NumberRange kDenseRatio{.min = 0.0, .min_open = true, .max = 1.0};
constexpr IntRange kBits{.min = 1, .max = 32};

// A list of strings (patterns, module names); `what` says what each one is.
std::vector<std::string> read_strings(Section& section, std::string_view key,
                                      std::string_view what) {
  const json* value = section.take(key);
  if (value == nullptr) return {};
  if (!value->is_array())
    section.fail(key, fmt::format("expected a list of {}, got {}", what, shown(*value)));
  std::vector<std::string> strings;
  for (const json& item : *value) {
    if (!item.is_string() || item.get<std::string>().empty())
      section.fail(key, fmt::format("expected a list of {}, got {}", what, shown(*value)));
    strings.push_back(item.get<std::string>());
  }
  return strings;
}

void check_patterns(Section& section, std::string_view key,
                    const std::vector<std::string>& patterns) {
  for (const std::string& pattern : patterns) {
    if (pattern == "*") continue;
    try {
      std::regex compiled(pattern);
    } catch (const std::regex_error&) {
      section.fail(key, fmt::format("\"{}\" is not a valid regular expression", pattern));
    }
  }
}

enum class Technique { weight_bits, activation_bits, dense_ratio };

// quantization_type: the weight quantizer's, which bit widths below 3 restrict.
void read_group_params(Section& params, Technique technique, std::string_view quantization_type,
                       CompressionGroup& group) {
  if (technique == Technique::weight_bits) {
    if (!params.read_int("start_bits", group.start_bits, kBits))
      params.fail("start_bits", "required (the bit width quantization starts from)");
    if (!params.read_int("target_bits", group.target_bits, kBits))
      params.fail("target_bits", "required (the bit width quantization ends at)");
    params.read_int("quantization_period", group.quantization_period, kNonNegativeCount);
    if (group.target_bits > group.start_bits) {
      params.fail("target_bits", fmt::format("{} is above start_bits {} (bits only go down)",
                                             group.target_bits, group.start_bits));
    }
    // DeepSpeed: below 3 bits only the ternary/binary quantizers, which are symmetric.
    if (group.target_bits < 3 && quantization_type == "asymmetric") {
      params.fail("target_bits",
                  fmt::format("{} bits (ternary/binary) needs quantization_type \"symmetric\"",
                              group.target_bits));
    }
  } else if (technique == Technique::activation_bits) {
    if (!params.read_int("bits", group.bits, kBits))
      params.fail("bits", "required (the activations' bit width)");
  } else {
    if (!params.read_number("dense_ratio", group.dense_ratio, kDenseRatio))
      params.fail("dense_ratio", "required (the fraction kept, in (0, 1])");
  }
}

void read_related_modules(Section& group_section, CompressionGroup& group) {
  const json* value = group_section.take("related_modules");
  if (value == nullptr) return;
  auto bad = [&] {
    group_section.fail("related_modules",
                       fmt::format("expected null or one list of module patterns per entry of "
                                   "\"modules\" ({}), got {}",
                                   group.modules.size(), shown(*value)));
  };
  if (!value->is_array() || value->size() != group.modules.size()) bad();
  for (const json& list : *value) {
    if (!list.is_array()) bad();
    std::vector<std::string> patterns;
    for (const json& pattern : list) {
      if (!pattern.is_string() || pattern.get<std::string>().empty()) bad();
      patterns.push_back(pattern.get<std::string>());
    }
    check_patterns(group_section, "related_modules", patterns);
    group.related_modules.push_back(std::move(patterns));
  }
}

void read_groups(Section& block, Technique technique, CompressionTechnique& config,
                 std::string_view quantization_type = "symmetric") {
  const json* groups = block.take("different_groups");
  if (groups != nullptr && !groups->is_object()) {
    block.fail("different_groups",
               fmt::format("expected an object {{name: {{params, modules, related_modules}}}}, "
                           "got {}",
                           shown(*groups)));
  }
  if (groups == nullptr || groups->empty()) {
    if (config.enabled)
      block.fail("different_groups", "needs at least one group when \"enabled\" is true");
    return;
  }
  Section all = block.section("different_groups");
  for (const auto& [name, ignored] : groups->items()) {
    Section group_section = all.section(name, {.unknown_key_error = "unknown key"});
    CompressionGroup group;
    group.name = name;
    group.path = group_section.path();
    Section params = group_section.section("params", {.unknown_key_error = "unknown key"});
    read_group_params(params, technique, quantization_type, group);
    params.finish();
    if (group_section.take("modules") != nullptr) {
      group.modules = read_strings(group_section, "modules", "module name patterns");
      if (group.modules.empty()) group_section.fail("modules", "expected at least one pattern");
    }
    check_patterns(group_section, "modules", group.modules);
    read_related_modules(group_section, group);
    group_section.finish();
    config.groups.push_back(std::move(group));
  }
}

Section shared_of(Section& block) {
  return block.section("shared_parameters", {.unknown_key_error = "unknown key"});
}

void read_weight_quantization(Section& top, WeightQuantizationConfig& config) {
  Section block = top.section("weight_quantization");
  Section shared = shared_of(block);
  shared.read_bool("enabled", config.enabled);
  shared.read_bool("quantizer_kernel", config.quantizer_kernel);
  shared.read_int("schedule_offset", config.schedule_offset, kNonNegativeCount);
  shared.read_int("quantize_groups", config.quantize_groups, kCount);
  shared.read_bool("quantize_verbose", config.quantize_verbose);
  shared.read_choice("quantization_type", config.quantization_type, {"symmetric", "asymmetric"});
  shared.read_bool("quantize_weight_in_forward", config.quantize_weight_in_forward);
  shared.read_choice("rounding", config.rounding, {"nearest", "stochastic"});
  Section mixed = shared.section("fp16_mixed_quantize", {.unknown_key_error = "unknown key"});
  mixed.read_bool("enabled", config.fp16_mixed_quantize);
  mixed.read_number("quantize_change_ratio", config.quantize_change_ratio, kUnitClosed);
  mixed.finish();
  if (config.fp16_mixed_quantize)
    mixed.fail("enabled", "fp16 mixed quantization is not implemented yet (only false)");
  shared.finish();
  read_groups(block, Technique::weight_bits, config, config.quantization_type);
  block.finish();
}

void read_activation_quantization(Section& top, ActivationQuantizationConfig& config) {
  Section block = top.section("activation_quantization");
  Section shared = shared_of(block);
  shared.read_bool("enabled", config.enabled);
  shared.read_choice("quantization_type", config.quantization_type, {"symmetric", "asymmetric"});
  shared.read_choice("range_calibration", config.range_calibration, {"dynamic", "static"});
  shared.read_int("schedule_offset", config.schedule_offset, kNonNegativeCount);
  shared.finish();
  read_groups(block, Technique::activation_bits, config);
  block.finish();
}

void read_sparse_pruning(Section& top, SparsePruningConfig& config) {
  Section block = top.section("sparse_pruning");
  Section shared = shared_of(block);
  shared.read_bool("enabled", config.enabled);
  shared.read_choice("method", config.method, {"l1", "topk", "snip_momentum"});
  shared.read_int("schedule_offset", config.schedule_offset, kNonNegativeCount);
  if (!shared.read_int("schedule_offset_end", config.schedule_offset_end, kNonNegativeCount))
    config.schedule_offset_end = config.schedule_offset;
  shared.read_int("schedule_offset_stride", config.schedule_offset_stride, kCount);
  if (const json* pattern = shared.take("block_pattern")) {
    static const std::regex kBlockPattern("[1-9][0-9]{0,5}x[1-9][0-9]{0,5}");
    static const std::regex kNInM("[0-9]+:[0-9]+");
    const std::string text = pattern->is_string() ? pattern->get<std::string>() : "";
    if (std::regex_match(text, kNInM))
      shared.fail("block_pattern",
                  fmt::format("\"{}\": N:M patterns are not implemented yet (only \"NxM\")", text));
    if (!std::regex_match(text, kBlockPattern))
      shared.fail("block_pattern",
                  fmt::format("expected \"NxM\" (e.g. \"4x1\"), got {}", shown(*pattern)));
    config.block_pattern = text;
  }
  shared.read_number("dense_ratio", config.dense_ratio, kDenseRatio);
  // DeepSpeed asserts it: snip_momentum prunes to the shared dense_ratio, which must prune.
  if (config.method == "snip_momentum" && config.dense_ratio >= 1.0)
    shared.fail("dense_ratio", "snip_momentum needs a dense_ratio below 1 (the fraction kept)");
  config.excluded_modules = read_strings(shared, "excluded_modules", "module names");
  shared.finish();
  if (config.schedule_offset_end < config.schedule_offset) {
    shared.fail("schedule_offset_end",
                fmt::format("{} is before schedule_offset {}", config.schedule_offset_end,
                            config.schedule_offset));
  }
  read_groups(block, Technique::dense_ratio, config);
  block.finish();
}

void read_structured_pruning(Section& top, std::string_view key, StructuredPruningConfig& config) {
  const bool heads = key == "head_pruning";
  if (heads) config.method = "topk";
  Section block = top.section(key);
  Section shared = shared_of(block);
  shared.read_bool("enabled", config.enabled);
  if (heads) {
    shared.read_choice("method", config.method, {"topk"});
  } else {
    shared.read_choice("method", config.method, {"l1", "topk"});
  }
  shared.read_int("schedule_offset", config.schedule_offset, kNonNegativeCount);
  config.schedule_offset_end = config.schedule_offset;
  if (heads) {
    shared.read_int("num_heads", config.num_heads, kCount);
    if (config.enabled && config.num_heads == 0)
      shared.fail("num_heads", "required with head pruning (the attention heads per layer)");
  } else {
    shared.read_int("schedule_offset_end", config.schedule_offset_end, kNonNegativeCount);
    shared.read_int("schedule_offset_stride", config.schedule_offset_stride, kCount);
    if (config.schedule_offset_end < config.schedule_offset) {
      shared.fail("schedule_offset_end",
                  fmt::format("{} is before schedule_offset {}", config.schedule_offset_end,
                              config.schedule_offset));
    }
  }
  shared.finish();
  read_groups(block, Technique::dense_ratio, config);
  block.finish();
}

void read_layer_reduction(Section& top, LayerReductionConfig& config) {
  Section block = top.section("layer_reduction", {.unknown_key_error = "unknown key"});
  block.read_bool("enabled", config.enabled);
  block.read_int("keep_number_layer", config.keep_number_layer, kCount);
  if (const json* prefix = block.take("module_name_prefix")) {
    if (!prefix->is_string())
      block.fail("module_name_prefix", fmt::format("expected a string, got {}", shown(*prefix)));
    config.module_name_prefix = prefix->get<std::string>();
  }
  if (const json* layers = block.take("teacher_layer")) {
    if (!layers->is_array())
      block.fail("teacher_layer",
                 fmt::format("expected a list of layer indices, got {}", shown(*layers)));
    for (const json& layer : *layers) {
      std::optional<int64_t> index = as_int64(layer);
      if (!index || *index < 0)
        block.fail("teacher_layer",
                   fmt::format("expected a list of layer indices >= 0, got {}", shown(*layers)));
      config.teacher_layer.push_back(*index);
    }
  }
  config.other_module_name = read_strings(block, "other_module_name", "module names");
  block.finish();
  if (!config.enabled) return;
  if (config.keep_number_layer == 0)
    block.fail("keep_number_layer", "required when layer_reduction is enabled");
  if (int64_t(config.teacher_layer.size()) != config.keep_number_layer) {
    block.fail("teacher_layer",
               fmt::format("lists {} layers; keep_number_layer is {} (one teacher layer per kept "
                           "layer)",
                           config.teacher_layer.size(), config.keep_number_layer));
  }
  if (config.module_name_prefix.empty())
    block.fail("module_name_prefix", "required when layer_reduction is enabled");
}

}  // namespace

void read_compression_training(Section& top, CompressionConfig& config) {
  if (top.take("compression_training") == nullptr) return;
  Section block = top.section("compression_training", {.unknown_key_error = "unknown key"});
  config.present = true;
  read_weight_quantization(block, config.weight_quantization);
  read_activation_quantization(block, config.activation_quantization);
  read_sparse_pruning(block, config.sparse_pruning);
  read_structured_pruning(block, "row_pruning", config.row_pruning);
  read_structured_pruning(block, "head_pruning", config.head_pruning);
  read_structured_pruning(block, "channel_pruning", config.channel_pruning);
  read_layer_reduction(block, config.layer_reduction);
  block.finish();
}

}  // namespace zt::dist::config_reading
