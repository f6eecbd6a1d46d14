// The `quant` block of an inference config, under DeepSpeed's init_inference names:
//   "quant": {"enabled": true,
//             "weight": {"enabled": true, "num_bits": 8 | 4, "q_groups": 1,
//                        "q_type": "symmetric" | "asymmetric"},
//             "activation": {"enabled": false, "num_bits": 8, "q_type": "symmetric", "q_groups":
//             1}, "qkv": {"enabled": true}, "quantize_head": false}
// weight.q_groups cuts each weight's rows into that many groups with a scale each (it must
// divide every quantized layer's rows); activations are quantized per token at run time
// (W8A8), so their q_groups can only be 1. qkv.enabled: whether the attention's q, k, v
// projections are quantized too. quantize_head (ours): the LM head as well. Defaults are
// DeepSpeed's, except activation.enabled (false here: weight-only unless asked).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "quant/weight_quantization.h"

namespace zt::quant {

struct WeightQuantizationConfig {
  bool enabled = true;
  int num_bits = 8;
  int64_t q_groups = 1;
  QuantizationType q_type = QuantizationType::symmetric;
};

struct ActivationQuantizationConfig {
  bool enabled = false;
  int num_bits = 8;
  int64_t q_groups = 1;
  QuantizationType q_type = QuantizationType::symmetric;
};

struct QuantizationConfig {
  bool enabled = true;
  WeightQuantizationConfig weight;
  ActivationQuantizationConfig activation;
  bool qkv = true;
  bool quantize_head = false;
  // ZeroTrain's: the token and position embeddings to weight.num_bits codes with a scale per
  // row; a head tied to the token embedding then reads the same codes.
  bool quantize_embeddings = true;
};

// Reads a `quant` object; throws std::invalid_argument with one line per problem, each
// naming the key under `context` ("quant.weight.num_bits: expected 4 or 8, got 3").
QuantizationConfig quantization_config_from_json(const nlohmann::json& quant,
                                                 const std::string& context = "quant");
// The problems of the config on its own (bits, groups < 1, W8A8 with 4-bit weights), one line
// each; empty when it is fine.
std::vector<std::string> quantization_config_problems(const QuantizationConfig& config,
                                                      const std::string& context = "quant");
const char* quantization_type_name(QuantizationType type);

}  // namespace zt::quant
