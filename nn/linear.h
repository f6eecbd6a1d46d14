// Linear: y = x W^T + b, weight [out, in], PyTorch's initialisation.
#pragma once

#include "nn/module.h"

namespace zt::nn {

class Linear final : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  Tensor weight;
  Tensor bias;  // undefined without bias

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  int64_t in_features_, out_features_;
};

}  // namespace zt::nn
