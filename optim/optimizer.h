// Optimizers over parameters that hold their own gradients: step() applies the update rules of
// update_rules.h as fused multi-tensor calls (ops::adam_update / ops::sgd_update: one per group
// and set of per-step constants), on the parameters' device. The ZeRO engine runs them over
// its flat f32 slices, one tensor per flat group.
// Invariant: parameters are contiguous f32 leaves; their state tensors are tagged optim_state.
// Learning rates: each group has its own; a schedule sets the optimizer's base rate and every
// group follows it in proportion (lr_scale), as PyTorch's schedulers scale each group's own.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace zt::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
  // This group's learning rate relative to the optimizer's base rate: set_lr(base), which
  // schedules call, gives the group base * lr_scale. Until then lr is used as given.
  double lr_scale = 1.0;
};

// One parameter's optimizer state, for checkpoints: named f32 tensors of the parameter's shape
// (Adam: exp_avg and exp_avg_sq; SGD with momentum: momentum_buffer) and the number of updates
// it has had. No tensors before the parameter's first update: that is state too (SGD's first
// update starts its momentum from the gradient).
struct ParamState {
  std::vector<std::pair<std::string, Tensor>> tensors;
  int64_t step = 0;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient; parameters without one are skipped.
  virtual void step() = 0;
  virtual std::string name() const = 0;
  // Drops the gradients (PyTorch's set_to_none=true): the next backward allocates fresh ones.
  void zero_grad();

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // The base learning rate: the first group's at construction, then the last set_lr's.
  double lr() const { return base_lr_; }
  // Sets the base rate: every group's lr becomes base_lr * its lr_scale.
  void set_lr(double base_lr);
  // First-moment coefficient: SGD's momentum, Adam's beta1 (for OneCycle's momentum cycling).
  virtual void set_momentum(double momentum) = 0;
  virtual double momentum() const = 0;

  // The state of parameter `index` of group `group` (views of the optimizer's own tensors), and
  // its replacement by copies of `state`'s tensors, which must have the parameter's shape.
  virtual ParamState param_state(size_t group, size_t index) const = 0;
  virtual void set_param_state(size_t group, size_t index, const ParamState& state) = 0;

 protected:
  std::vector<ParamGroup> groups_;
  double base_lr_ = 0.0;
};

// One group with every parameter, as torch.optim does for `model.parameters()`.
std::vector<ParamGroup> single_group(const std::vector<Tensor>& params, double lr,
                                     double weight_decay = 0.0);

}  // namespace zt::optim
