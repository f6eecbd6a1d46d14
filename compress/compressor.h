// Compression training on a model: compression_training's techniques applied to the Linear and
// Conv2d modules its groups select, each switching on at its schedule_offset. The compressor
// hooks each selected module: before its forward the module's weight (and bias) members are
// replaced by their compressed form, computed from the parameter so that gradients reach it,
// and after the forward the parameter is put back. So the optimizer, the state dict and ZeRO
// see the plain parameters, and the forward sees
//   weight * sparse_mask * row_mask, quantized with the straight-through estimator
// (quantize(w) forward, identity gradient), inputs quantized likewise (per token, or on a static
// range). Attach it after zt::initialize (its hooks must run after stage 3's gather hook); the
// current step is read from a callback (engine.global_steps()). The topk methods (sparse "topk",
// head pruning, row and channel "topk") learn mask scores: compress::add_mask_scores
// (mask_scores.h) adds them to the model before zt::initialize. redundancy_clean (compress/
// redundancy_clean.h) turns the final masks and bit widths into a smaller model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/config_compression.h"
#include "nn/module.h"

namespace zt::compress {

class SnipMomentumPruner;

// What compression does to one module at a step: its masks (empty: none) and bit width (0: full
// precision), and the modules whose inputs are its outputs (related_modules).
struct ModuleCompression {
  std::string name;
  std::string type;                // "Linear", "Conv1D" or "Conv2d"
  std::vector<float> sparse_mask;  // one entry per weight element
  std::vector<float> row_mask;     // one entry per output row / channel
  std::vector<float> head_mask;    // one entry per attention head of the input features
  int weight_bits = 0;
  int64_t quantize_groups = 1;
  bool symmetric = true;
  int activation_bits = 0;
  std::vector<std::string> related_modules;  // resolved names
  std::vector<std::string> related_types;    // their types, in the same order
};

class Compressor {
 public:
  // Selects the modules of every enabled technique and hooks them. Throws dist::ConfigError
  // naming the key for what the model cannot take (a pattern that matches no Linear, Conv1D or
  // Conv2d, head pruning without attention heads, a method that is not implemented, topk
  // scores that add_mask_scores did not add). layer_reduction is not a hook: it initialises
  // the student (compress/layer_reduction.h).
  Compressor(nn::Module& model, const dist::CompressionConfig& config,
             std::function<int64_t()> current_step);
  ~Compressor();
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // The state of every compressed module at `step` (masks as the forward applies them), from
  // the modules' parameters (which must be whole: not between stage 3's gathers)...
  std::vector<ModuleCompression> state_at(int64_t step);
  // ... or from a state dict of the model (engine.consolidated_state_dict() at any stage).
  std::vector<ModuleCompression> state_at(int64_t step, const NamedTensors& state);
  // The bit width of a group at `step`: start_bits from schedule_offset, one bit less every
  // period, the period doubling each time (DeepSpeed's MoQ schedule), down to target_bits.
  static int bits_at(const dist::CompressionGroup& group, int64_t offset, int64_t step);
  // sparse_pruning's snip_momentum scores the gradient of the whole batch: on several ranks,
  // give a function that averages a host buffer over the data-parallel ranks (collective:
  // called on every rank at the first training forward of each step).
  void set_snip_gradient_reduction(std::function<void(std::vector<float>&)> average);

  struct Target;

 private:
  std::optional<nn::TensorList> before_forward(Target& target, const nn::TensorList& inputs);
  std::optional<nn::TensorList> quantize_inputs(Target& target, const nn::TensorList& inputs,
                                                int64_t step);
  void after_forward(Target& target);
  void update_masks(Target& target, int64_t step, const Tensor& weight);
  bool head_pruning_on(const Target& target, int64_t step) const;

  dist::CompressionConfig config_;
  std::function<int64_t()> current_step_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::unique_ptr<SnipMomentumPruner> snip_;  // sparse_pruning with method snip_momentum
};

}  // namespace zt::compress
