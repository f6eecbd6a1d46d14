// Reading and checking the `quant` block (quant/quantization_config.h).
#include "quant/quantization_config.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <type_traits>

namespace zt::quant {

namespace {

using Problems = std::vector<std::string>;

// Each key of `block` must be one of `known`; unknown ones are problems (a typo would
// otherwise leave a default in place without a word).
void check_keys(const nlohmann::json& block, const std::string& where,
                const std::set<std::string>& known, Problems& problems) {
  for (const auto& [key, value] : block.items()) {
    if (known.count(key)) continue;
    std::string names;
    for (const std::string& name : known) names += (names.empty() ? "" : ", ") + name;
    problems.push_back(fmt::format("{}.{}: unknown key (expected one of {})", where, key, names));
  }
}

template <typename Value>
void read(const nlohmann::json& block, const std::string& where, const char* key, Value& value,
          Problems& problems) {
  if (!block.contains(key)) return;
  try {
    value = block.at(key).get<Value>();
  } catch (const nlohmann::json::exception&) {
    problems.push_back(fmt::format("{}.{}: expected {}, got {}", where, key,
                                   std::is_same_v<Value, bool> ? "true or false" : "an integer",
                                   block.at(key).dump()));
  }
}

void read_type(const nlohmann::json& block, const std::string& where, QuantizationType& type,
               Problems& problems) {
  if (!block.contains("q_type")) return;
  const nlohmann::json& value = block.at("q_type");
  if (value == "symmetric") {
    type = QuantizationType::symmetric;
  } else if (value == "asymmetric") {
    type = QuantizationType::asymmetric;
  } else {
    problems.push_back(fmt::format("{}.q_type: expected \"symmetric\" or \"asymmetric\", got {}",
                                   where, value.dump()));
  }
}

bool is_object_or_problem(const nlohmann::json& block, const std::string& where,
                          Problems& problems) {
  if (block.is_object()) return true;
  problems.push_back(fmt::format("{}: expected an object, got {}", where, block.dump()));
  return false;
}

}  // namespace

const char* quantization_type_name(QuantizationType type) {
  return type == QuantizationType::symmetric ? "symmetric" : "asymmetric";
}

QuantizationConfig quantization_config_from_json(const nlohmann::json& quant,
                                                 const std::string& context) {
  QuantizationConfig config;
  Problems problems;
  if (is_object_or_problem(quant, context, problems)) {
    check_keys(quant, context,
               {"enabled", "weight", "activation", "qkv", "quantize_head", "quantize_embeddings"},
               problems);
    read(quant, context, "enabled", config.enabled, problems);
    read(quant, context, "quantize_head", config.quantize_head, problems);
    read(quant, context, "quantize_embeddings", config.quantize_embeddings, problems);
    std::string weight = context + ".weight";
    if (quant.contains("weight") && is_object_or_problem(quant["weight"], weight, problems)) {
      const nlohmann::json& block = quant["weight"];
      check_keys(block, weight, {"enabled", "num_bits", "q_groups", "q_type"}, problems);
      read(block, weight, "enabled", config.weight.enabled, problems);
      read(block, weight, "num_bits", config.weight.num_bits, problems);
      read(block, weight, "q_groups", config.weight.q_groups, problems);
      read_type(block, weight, config.weight.q_type, problems);
    }
    std::string activation = context + ".activation";
    if (quant.contains("activation") &&
        is_object_or_problem(quant["activation"], activation, problems)) {
      const nlohmann::json& block = quant["activation"];
      check_keys(block, activation, {"enabled", "num_bits", "q_groups", "q_type"}, problems);
      read(block, activation, "enabled", config.activation.enabled, problems);
      read(block, activation, "num_bits", config.activation.num_bits, problems);
      read(block, activation, "q_groups", config.activation.q_groups, problems);
      read_type(block, activation, config.activation.q_type, problems);
    }
    std::string qkv = context + ".qkv";
    if (quant.contains("qkv") && is_object_or_problem(quant["qkv"], qkv, problems)) {
      check_keys(quant["qkv"], qkv, {"enabled"}, problems);
      read(quant["qkv"], qkv, "enabled", config.qkv, problems);
    }
  }
  if (problems.empty()) problems = quantization_config_problems(config, context);
  if (!problems.empty()) {
    std::string text;
    for (const std::string& line : problems) text += (text.empty() ? "" : "\n") + line;
    throw std::invalid_argument(text);
  }
  return config;
}

std::vector<std::string> quantization_config_problems(const QuantizationConfig& config,
                                                      const std::string& context) {
  Problems problems;
  if (config.weight.num_bits != 4 && config.weight.num_bits != 8) {
    problems.push_back(fmt::format("{}.weight.num_bits: expected 4 or 8, got {}", context,
                                   config.weight.num_bits));
  }
  if (config.weight.q_groups < 1) {
    problems.push_back(fmt::format("{}.weight.q_groups: expected a positive count, got {}", context,
                                   config.weight.q_groups));
  }
  if (config.activation.enabled) {
    if (config.activation.num_bits != 8) {
      problems.push_back(fmt::format("{}.activation.num_bits: expected 8, got {}", context,
                                     config.activation.num_bits));
    }
    if (config.activation.q_groups != 1) {
      problems.push_back(fmt::format(
          "{}.activation.q_groups: activations are quantized per token; expected 1, got {}",
          context, config.activation.q_groups));
    }
    if (config.weight.num_bits == 4) {
      problems.push_back(fmt::format(
          "{}.activation.enabled: int8 activations (W8A8) need weight.num_bits 8, got 4", context));
    }
    if (!config.weight.enabled) {
      problems.push_back(fmt::format(
          "{}.activation.enabled: int8 activations need quantized weights (weight.enabled)",
          context));
    }
  }
  return problems;
}

}  // namespace zt::quant
