// Optimizer base: parameter groups, validation, zero_grad, learning-rate setting.
#include "optim/optimizer.h"

#include <fmt/format.h>

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
    for (size_t p = 0; p < group.params.size(); ++p) {
      const Tensor& param = group.params[p];
      if (!param.defined() || param.dtype() != DType::f32 || !param.is_contiguous() ||
          !param.device().is_cpu()) {
        throw std::invalid_argument(fmt::format(
            "optimizer: group {} parameter {}: expected a contiguous f32 cpu tensor", g, p));
      }
    }
  }
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_) {
    for (Tensor& param : group.params) param.set_grad(Tensor());
  }
}

void Optimizer::set_lr(double lr) {
  for (ParamGroup& group : groups_) group.lr = lr;
}

std::vector<ParamGroup> single_group(const std::vector<Tensor>& params, double lr,
                                     double weight_decay) {
  return {ParamGroup{params, lr, weight_decay}};
}

}  // namespace zt::optim
