// Conv2d over NCHW input, weight [out, in/groups, kh, kw], PyTorch's initialisation.
#pragma once

#include "core/backend.h"
#include "nn/module.h"

namespace zt::nn {

struct Conv2dOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

class Conv2d final : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size,
         Conv2dOptions options = {});
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  Tensor weight;
  Tensor bias;

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  int64_t in_channels_, out_channels_, kernel_size_;
  Conv2dOptions options_;
  Conv2dParams params_;
};

}  // namespace zt::nn
