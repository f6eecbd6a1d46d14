// Conv2d layer: kaiming_uniform(a = sqrt(5)) weight and U(-1/sqrt(fan_in), ...) bias.
#include "nn/conv2d.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/functions.h"
#include "core/factory.h"
#include "nn/init.h"

namespace zt::nn {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
               Conv2dOptions options)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      kernel_size_(kernel_size),
      options_(options) {
  if (in_channels <= 0 || out_channels <= 0 || kernel_size <= 0 || options.groups <= 0 ||
      in_channels % options.groups != 0 || out_channels % options.groups != 0) {
    throw std::invalid_argument(fmt::format(
        "Conv2d: expected positive sizes with channels divisible by groups, got in={} out={} "
        "kernel={} groups={}",
        in_channels, out_channels, kernel_size, options.groups));
  }
  params_ = Conv2dParams{options.stride,   options.stride,   options.padding, options.padding,
                         options.dilation, options.dilation, options.groups};
  MemoryTagGuard as_param(MemoryTag::param);
  weight = empty({out_channels, in_channels / options.groups, kernel_size, kernel_size});
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  weight = register_parameter("weight", weight);
  if (options.bias) {
    double bound = 1.0 / std::sqrt(double(init::fan_in(weight)));
    bias = empty({out_channels});
    init::uniform_(bias, -bound, bound);
    bias = register_parameter("bias", bias);
  }
}

std::string Conv2d::extra_repr() const {
  return fmt::format(
      "{}, {}, kernel_size={}, stride={}, padding={}, dilation={}, groups={}, bias={}",
      in_channels_, out_channels_, kernel_size_, options_.stride, options_.padding,
      options_.dilation, options_.groups, bias.defined());
}

Tensor Conv2d::forward(const Tensor& input) {
  return conv2d(input, weight, bias, params_);
}

}  // namespace zt::nn
