// RMSNorm over the trailing normalized_shape dims (PyTorch's torch.nn.RMSNorm): the input over
// its root mean square, times an optional elementwise `weight`. Without eps, the epsilon of
// the input's dtype is used at each call, as PyTorch does.
#pragma once

#include <optional>

#include "nn/module.h"

namespace zt::nn {

class RMSNorm final : public Module {
 public:
  explicit RMSNorm(Shape normalized_shape, std::optional<double> eps = std::nullopt,
                   bool elementwise_affine = true);
  std::string type_name() const override { return "RMSNorm"; }
  std::string extra_repr() const override;
  Tensor weight;  // ones; undefined without affine

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  Shape normalized_shape_;
  std::optional<double> eps_;
};

}  // namespace zt::nn
