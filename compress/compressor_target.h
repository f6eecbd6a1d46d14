// One module the compressor hooks (Compressor::Target): the settings its techniques' groups gave
// it, its cached masks and its hooks; and how the enabled techniques select these targets from
// the config (compress/compressor_selection.cpp). Internal to the compressor's files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compress/compressor.h"
#include "core/tensor.h"
#include "dist/config_compression.h"
#include "nn/module.h"

namespace zt::compress {

struct Compressor::Target {
  std::string name;
  std::shared_ptr<nn::Module> module;
  Tensor* weight_slot = nullptr;  // the module's member its forward reads
  Tensor* bias_slot = nullptr;
  Tensor saved_weight, saved_bias;  // the parameters, while the slots hold compressed forms
  std::string type;
  int input_dim = 1;  // the weight's dim of input features (compress/head_pruning.h)
  std::vector<std::string> related_modules, related_types;
  // Settings from the groups that selected the module (0 / null: the technique is off here).
  const dist::CompressionGroup* quantization = nullptr;
  int activation_bits = 0;
  Tensor activation_range;  // range_calibration "static": the module's buffer [lowest, highest]
  double sparse_ratio = 0.0, row_ratio = 0.0;
  int64_t row_offset = 0, row_offset_end = 0, row_stride = 1;  // the gradual schedule
  Tensor sparse_scores;     // topk sparse pruning's learned scores (undefined: l1)
  Tensor row_scores;        // topk row / channel pruning's learned scores (undefined: l1)
  int64_t snip_index = -1;  // the module's index in the snip_momentum pruner (-1: none)
  Tensor head_scores;       // head pruning's learned scores, one a head
  double head_ratio = 0.0;
  // Masks, cached with the dense ratio they were made for.
  double sparse_mask_ratio = 1.0, row_mask_ratio = 1.0;
  std::vector<float> sparse_mask, row_mask;
  Tensor sparse_mask_tensor, row_mask_tensor, bias_mask_tensor;
  std::vector<int64_t> hooks;
};

using Targets = std::vector<std::unique_ptr<Compressor::Target>>;

// Throws dist::ConfigError naming the key for a method not implemented, head pruning on a model
// without attention, or layer_reduction's prefix naming no layers.
void check_compression_supported(nn::Module& model, const dist::CompressionConfig& config);

// Every enabled technique's modules with their settings and related modules, in model order
// (whichever technique selected a module first). `snip` (null: none) is given sparse pruning's
// modules. Throws dist::ConfigError naming the key for what the model cannot take.
Targets select_targets(nn::Module& model, const dist::CompressionConfig& config,
                       SnipMomentumPruner* snip);

}  // namespace zt::compress
