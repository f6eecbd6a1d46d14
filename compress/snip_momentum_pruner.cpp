// Scores and masks live on the host in f32 (the pruner's own state, never the optimizer's);
// the mask enters the forward as a constant, so pruned weights get no gradient.
#include "compress/snip_momentum_pruner.h"

#include <cstring>

#include "autograd/functions.h"
#include "autograd/grad_mode.h"
#include "core/factory.h"

namespace zt::compress {
namespace {

std::vector<float> host_copy(const Tensor& tensor) {
  Tensor host = tensor.detach().to(DType::f32).to(Device::cpu()).contiguous();
  const float* data = host.data_ptr<float>();
  return std::vector<float>(data, data + host.numel());
}

Tensor as_tensor_like(const std::vector<float>& values, const Tensor& like) {
  Tensor host = empty(like.sizes());
  std::memcpy(host.data_ptr<float>(), values.data(), values.size() * sizeof(float));
  return host.to(like.dtype()).to(like.device());
}

}  // namespace

SnipMomentumPruner::SnipMomentumPruner(const dist::SparsePruningConfig& config)
    : config_(config), pattern_(parse_block_pattern(config.block_pattern)) {}

size_t SnipMomentumPruner::add_module(const std::string& name, const Shape& weight_shape,
                                      bool input_first) {
  Module module;
  module.name = name;
  module.matrix = {std::vector<int64_t>(weight_shape.begin(), weight_shape.end()), input_first};
  int64_t count = 1;
  for (int64_t size : weight_shape) count *= size;
  module.scores.assign(size_t(count), 0.0f);
  module.gradient.assign(size_t(count), 0.0f);
  modules_.push_back(std::move(module));
  return modules_.size() - 1;
}

void SnipMomentumPruner::check_blocks() const {
  std::vector<SnipModule> views;
  for (const Module& module : modules_)
    views.push_back({module.name, module.matrix, module.scores});
  snip_block_masks(views, pattern_, 1.0);  // throws naming block_pattern when blocks do not tile
}

bool SnipMomentumPruner::is_pruning_step(int64_t step) const {
  const int64_t offset = config_.schedule_offset, end = config_.schedule_offset_end;
  return step >= offset && step <= end &&
         (step - offset) % std::max<int64_t>(config_.schedule_offset_stride, 1) == 0;
}

// The first training forward of `step`: the earlier step's gradients join the scores, and on
// a pruning step (or where the kept fraction moved, as after a resume) the masks follow them.
void SnipMomentumPruner::begin_step(int64_t step) {
  current_step_ = step;
  for (Module& module : modules_) {
    if (module.gradient_step < 0 || module.gradient_step >= step) continue;
    if (reduction_) reduction_(module.gradient);
    accumulate_snip_scores(module.scores, module.weight, module.gradient);
    std::fill(module.gradient.begin(), module.gradient.end(), 0.0f);
    module.gradient_step = -1;
  }
  const double ratio = snip_dense_ratio(step, config_.schedule_offset, config_.schedule_offset_end,
                                        config_.schedule_offset_stride, config_.dense_ratio);
  if (ratio >= 1.0 || (!is_pruning_step(step) && ratio == mask_ratio_)) return;
  std::vector<SnipModule> views;
  for (const Module& module : modules_)
    views.push_back({module.name, module.matrix, module.scores});
  std::vector<std::vector<float>> masks = snip_block_masks(views, pattern_, ratio);
  for (size_t m = 0; m < modules_.size(); ++m) {
    modules_[m].mask = std::move(masks[m]);
    modules_[m].mask_tensor = Tensor();  // rebuilt in the weight's dtype at the next forward
  }
  mask_ratio_ = ratio;
}

Tensor SnipMomentumPruner::apply(size_t index, const Tensor& weight, int64_t step) {
  const bool training = autograd::is_grad_enabled() && weight.requires_grad();
  // Only training forwards move the schedule: every rank runs them together (the gradient
  // reduction is collective), while an evaluation may run on one rank.
  if (training && step != current_step_) begin_step(step);
  Module& module = modules_[index];
  if (!module.mask_tensor.defined() || module.mask_tensor.device() != weight.device() ||
      module.mask_tensor.dtype() != weight.dtype()) {
    module.mask_tensor = module.mask.empty()
                             ? ones(weight.sizes()).to(weight.dtype()).to(weight.device())
                             : as_tensor_like(module.mask, weight);
  }
  Tensor masked = mul(weight, module.mask_tensor);
  if (!training) return masked;
  if (module.gradient_step != step) {
    module.weight = host_copy(weight);  // the weight this step's gradients belong to
    module.gradient_step = step;
  }
  masked.register_hook([this, index](const Tensor& gradient) {
    Module& hooked = modules_[index];
    std::vector<float> values = host_copy(gradient);
    // dL/dw = mask * dL/d(w * mask): pruned weights have no gradient, as zeroed ones would.
    for (size_t i = 0; i < values.size(); ++i)
      hooked.gradient[i] += hooked.mask.empty() ? values[i] : hooked.mask[i] * values[i];
    return Tensor();
  });
  return masked;
}

}  // namespace zt::compress
