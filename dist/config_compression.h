// ds_config.json's compression_training block with DeepSpeed's keys and defaults: which
// compression techniques run, from which step, on which modules. Read by
// dist/config_compression.cpp; applied to a model by compress/compressor.h, which also checks
// what needs the model (a pattern that matches no module, head pruning without heads).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace zt::dist {

// One entry of a technique's different_groups: the modules it applies to (regex patterns
// searched in dotted module names, "*" for every compressible module) and its own parameters.
struct CompressionGroup {
  std::string name;
  std::string path;  // "compression_training.<technique>.different_groups.<name>", for messages
  std::vector<std::string> modules{"*"};
  // DeepSpeed's related_modules: one list of patterns per entry of `modules` (or none): the
  // modules whose inputs shrink when the matched module's rows or channels are pruned.
  std::vector<std::vector<std::string>> related_modules;
  int start_bits = 0;               // weight_quantization
  int target_bits = 0;              // weight_quantization
  int64_t quantization_period = 1;  // weight_quantization: steps to the first 1-bit drop
  int bits = 0;                     // activation_quantization
  double dense_ratio = 0.0;         // pruning: the fraction of weights/rows/channels kept
};

// What every technique block has: whether it runs, from which step, and its groups.
struct CompressionTechnique {
  bool enabled = false;
  int64_t schedule_offset = 1000;
  std::vector<CompressionGroup> groups;
};

struct WeightQuantizationConfig : CompressionTechnique {
  WeightQuantizationConfig() { schedule_offset = 0; }
  bool quantizer_kernel = false;  // recorded: quantization runs in the compressor's own kernel
  int64_t quantize_groups = 1;    // scale groups per weight (rows split into this many)
  bool quantize_verbose = false;
  std::string quantization_type = "symmetric";  // or "asymmetric"
  bool quantize_weight_in_forward = false;      // recorded: weights are quantized in forward
  std::string rounding = "nearest";             // or "stochastic"
  bool fp16_mixed_quantize = false;
  double quantize_change_ratio = 0.001;
};

struct ActivationQuantizationConfig : CompressionTechnique {
  std::string quantization_type = "symmetric";
  std::string range_calibration = "dynamic";  // or "static" (moving average, momentum 0.95)
};

struct SparsePruningConfig : CompressionTechnique {
  std::string method = "l1";           // "l1" or "topk"
  int64_t schedule_offset_end = 1000;  // unset: schedule_offset
  int64_t schedule_offset_stride = 1;
  std::string block_pattern = "4x1";
  double dense_ratio = 0.1;  // the shared value (DeepSpeed's snip_momentum reads it)
  std::vector<std::string> excluded_modules;
};

struct StructuredPruningConfig : CompressionTechnique {
  std::string method = "l1";  // row and channel pruning: "l1" or "topk"; head pruning: "topk"
  int64_t num_heads = 0;      // head pruning only: required there
  // Row and channel pruning only, our extension (DeepSpeed cuts at schedule_offset at once):
  // the kept fraction follows sparse pruning's gradual schedule up to schedule_offset_end.
  int64_t schedule_offset_end = 1000;  // unset: schedule_offset (pruned at once)
  int64_t schedule_offset_stride = 1;
};

struct LayerReductionConfig {
  bool enabled = false;
  int64_t keep_number_layer = 0;
  std::string module_name_prefix;
  std::vector<int64_t> teacher_layer;
  std::vector<std::string> other_module_name;
};

struct CompressionConfig {
  CompressionConfig() { head_pruning.method = "topk"; }  // DeepSpeed's only head method
  bool present = false;                                  // the block was in the file
  WeightQuantizationConfig weight_quantization;
  ActivationQuantizationConfig activation_quantization;
  SparsePruningConfig sparse_pruning;
  StructuredPruningConfig row_pruning;
  StructuredPruningConfig head_pruning;
  StructuredPruningConfig channel_pruning;
  LayerReductionConfig layer_reduction;

  bool any_enabled() const {
    return weight_quantization.enabled || activation_quantization.enabled ||
           sparse_pruning.enabled || row_pruning.enabled || head_pruning.enabled ||
           channel_pruning.enabled || layer_reduction.enabled;
  }
};

}  // namespace zt::dist
