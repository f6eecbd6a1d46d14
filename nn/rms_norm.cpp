// RMSNorm: its initialisation (weight of ones, as PyTorch's), argument checks and forward over
// the fused rms_norm.
#include "nn/rms_norm.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"

namespace zt::nn {

RMSNorm::RMSNorm(Shape normalized_shape, std::optional<double> eps, bool elementwise_affine)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  if (normalized_shape_.empty() || shape_numel(normalized_shape_) <= 0) {
    throw std::invalid_argument(
        fmt::format("RMSNorm: normalized_shape must be non-empty with positive sizes, got {}",
                    shape_str(normalized_shape_)));
  }
  if (eps_.has_value() && !(*eps_ > 0.0)) {
    throw std::invalid_argument(fmt::format("RMSNorm: eps must be > 0 when given, got {}", *eps_));
  }
  if (elementwise_affine) {
    MemoryTagGuard as_param(MemoryTag::param);
    weight = register_parameter("weight", ones(normalized_shape_));
  }
}

std::string RMSNorm::extra_repr() const {
  return fmt::format("{}, eps={}, elementwise_affine={}", shape_str(normalized_shape_),
                     eps_.has_value() ? fmt::format("{}", *eps_) : "None", weight.defined());
}

Tensor RMSNorm::forward(const Tensor& input) {
  return rms_norm(input, normalized_shape_, weight, eps_);
}

}  // namespace zt::nn
