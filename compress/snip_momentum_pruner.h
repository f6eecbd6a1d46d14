// The snip_momentum pruner state of a Compressor: the momentum scores of every module it
// prunes, the gradients of the step under way, and the current block masks. Each pruned
// module's forward goes through apply(): it sees weight * mask, and a hook on that product
// collects dL/dw (the mask times the product's gradient) for the step. When a later step's
// first forward arrives, the collected gradients are summed over the data-parallel ranks (when
// a reduction is given, so every rank scores the same gradient, as the pruner reads p.grad
// after DeepSpeed's reduction) and folded into the scores, and on the schedule's pruning steps
// the masks are recomputed from the scores of all modules together. Weights are masked in the
// forward rather than zeroed in place (ZeRO owns the parameters), so a block that returns
// comes back with its old values, where the pruner's would start from 0.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compress/snip_momentum.h"
#include "core/tensor.h"
#include "dist/config_compression.h"

namespace zt::compress {

class SnipMomentumPruner {
 public:
  // Sums a host buffer over the data-parallel ranks, in place.
  using GradientReduction = std::function<void(std::vector<float>&)>;

  explicit SnipMomentumPruner(const dist::SparsePruningConfig& config);
  // Registers a module by name with its weight's shape; returns its index for apply().
  size_t add_module(const std::string& name, const Shape& weight_shape, bool input_first);
  // Checks that every module's weight splits into whole blocks (dist::ConfigError otherwise).
  void check_blocks() const;
  void set_gradient_reduction(GradientReduction reduction) { reduction_ = std::move(reduction); }

  // The weight the forward of module `index` sees at `step`, from its parameter `weight`.
  Tensor apply(size_t index, const Tensor& weight, int64_t step);
  // The module's mask (empty before the first pruning) and scores.
  const std::vector<float>& mask(size_t index) const { return modules_[index].mask; }
  const std::vector<float>& scores(size_t index) const { return modules_[index].scores; }
  double dense_ratio() const { return mask_ratio_; }

 private:
  struct Module {
    std::string name;
    WeightMatrix matrix;
    std::vector<float> scores, gradient, weight, mask;
    int64_t gradient_step = -1;  // the step `gradient` was collected at (-1: none)
    Tensor mask_tensor;          // mask (ones before the first pruning), like the weight
  };
  void begin_step(int64_t step);
  bool is_pruning_step(int64_t step) const;

  dist::SparsePruningConfig config_;
  BlockPattern pattern_;
  std::vector<Module> modules_;
  GradientReduction reduction_;
  int64_t current_step_ = -1;
  double mask_ratio_ = 1.0;
};

}  // namespace zt::compress
