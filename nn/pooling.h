// MaxPool2d and AvgPool2d over NCHW input; stride defaults to the kernel size, as in PyTorch.
#pragma once

#include <fmt/format.h>

#include "autograd/functions.h"
#include "nn/module.h"

namespace zt::nn {

struct PoolOptions {
  int64_t stride = 0;  // 0: the kernel size
  int64_t padding = 0;
  int64_t dilation = 1;           // max pool only
  bool count_include_pad = true;  // avg pool only
};

inline Pool2dParams pool_params(int64_t kernel_size, const PoolOptions& options) {
  int64_t stride = options.stride > 0 ? options.stride : kernel_size;
  return Pool2dParams{kernel_size,      kernel_size,      stride,
                      stride,           options.padding,  options.padding,
                      options.dilation, options.dilation, options.count_include_pad};
}

class MaxPool2d final : public Module {
 public:
  explicit MaxPool2d(int64_t kernel_size, PoolOptions options = {})
      : params_(pool_params(kernel_size, options)) {}
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override {
    return fmt::format("kernel_size={}, stride={}, padding={}", params_.kernel_h, params_.stride_h,
                       params_.padding_h);
  }

 protected:
  Tensor forward(const Tensor& input) override { return max_pool2d(input, params_); }

 private:
  Pool2dParams params_;
};

class AvgPool2d final : public Module {
 public:
  explicit AvgPool2d(int64_t kernel_size, PoolOptions options = {})
      : params_(pool_params(kernel_size, options)) {}
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override {
    return fmt::format("kernel_size={}, stride={}, padding={}", params_.kernel_h, params_.stride_h,
                       params_.padding_h);
  }

 protected:
  Tensor forward(const Tensor& input) override { return avg_pool2d(input, params_); }

 private:
  Pool2dParams params_;
};

}  // namespace zt::nn
