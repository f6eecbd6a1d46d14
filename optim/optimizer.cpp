// Optimizer base: parameter groups, validation, zero_grad, learning-rate setting.
#include "optim/optimizer.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace zt::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
  if (groups_.empty()) throw std::invalid_argument("optimizer: no parameter groups");
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    if (!(group.lr >= 0.0)) {
      throw std::invalid_argument(
          fmt::format("optimizer: group {}: lr {} must be >= 0", g, group.lr));
    }
    if (!(group.weight_decay >= 0.0)) {
      throw std::invalid_argument(
          fmt::format("optimizer: group {}: weight_decay {} must be >= 0", g, group.weight_decay));
    }
    if (!(group.lr_scale >= 0.0) || !std::isfinite(group.lr_scale)) {
      throw std::invalid_argument(fmt::format(
          "optimizer: group {}: lr_scale {} must be finite and >= 0", g, group.lr_scale));
    }
    for (size_t p = 0; p < group.params.size(); ++p) {
      const Tensor& param = group.params[p];
      // Any device: step() runs the fused update on the parameters' own device.
      if (!param.defined() || param.dtype() != DType::f32 || !param.is_contiguous()) {
        throw std::invalid_argument(fmt::format(
            "optimizer: group {} parameter {}: expected a contiguous f32 tensor", g, p));
      }
    }
  }
  base_lr_ = groups_.front().lr;
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_) {
    for (Tensor& param : group.params) param.set_grad(Tensor());
  }
}

void Optimizer::set_lr(double base_lr) {
  base_lr_ = base_lr;
  for (ParamGroup& group : groups_) group.lr = base_lr * group.lr_scale;
}

std::vector<ParamGroup> single_group(const std::vector<Tensor>& params, double lr,
                                     double weight_decay) {
  return {ParamGroup{params, lr, weight_decay}};
}

}  // namespace zt::optim
