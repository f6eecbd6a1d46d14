// GPT-2's Conv1D: its initialisation and the product through a transposed view.
#include "models/conv1d.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/allocator.h"
#include "core/factory.h"
#include "nn/init.h"

namespace zt::models {

Conv1D::Conv1D(int64_t in_features, int64_t out_features, bool with_bias, double init_std)
    : in_features_(in_features), out_features_(out_features) {
  if (in_features <= 0 || out_features <= 0) {
    throw std::invalid_argument(fmt::format("Conv1D: features must be positive, got in={} out={}",
                                            in_features, out_features));
  }
  MemoryTagGuard as_param(MemoryTag::param);
  weight = empty({in_features, out_features});
  nn::init::normal_(weight, 0.0, init_std);
  weight = register_parameter("weight", weight);
  if (with_bias) bias = register_parameter("bias", zeros({out_features}));
}

std::string Conv1D::extra_repr() const {
  return fmt::format("nx={}, nf={}, bias={}", in_features_, out_features_, bias.defined());
}

Tensor Conv1D::forward(const Tensor& input) {
  if (input.dim() < 1 || input.size(-1) != in_features_) {
    throw std::invalid_argument(fmt::format("Conv1D: input of shape {} needs a last dim of {}",
                                            shape_str(input.sizes()), in_features_));
  }
  return linear(input, weight.t(), bias);
}

}  // namespace zt::models
