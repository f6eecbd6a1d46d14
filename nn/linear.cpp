// Linear layer: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, as PyTorch initialises it.
#include "nn/linear.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/functions.h"
#include "core/factory.h"
#include "nn/init.h"

namespace zt::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias)
    : in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0) {
    throw std::invalid_argument(fmt::format("Linear: features must be positive, got in={} out={}",
                                            in_features, out_features));
  }
  MemoryTagGuard as_param(MemoryTag::param);
  weight = empty({out_features, in_features});
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  weight = register_parameter("weight", weight);
  if (with_bias) {
    double bound = 1.0 / std::sqrt(double(in_features));
    bias = empty({out_features});
    init::uniform_(bias, -bound, bound);
    bias = register_parameter("bias", bias);
  }
}

std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", in_features_, out_features_,
                     bias.defined());
}

Tensor Linear::forward(const Tensor& input) {
  if (input.dim() < 1 || input.size(-1) != in_features_) {
    throw std::invalid_argument(fmt::format("Linear: input of shape {} needs a last dim of {}",
                                            shape_str(input.sizes()), in_features_));
  }
  return linear(input, weight, bias);
}

}  // namespace zt::nn
