// LayerNorm over the trailing normalized_shape dims, with optional affine weight and bias.
#pragma once

#include "nn/module.h"

namespace zt::nn {

class LayerNorm final : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  std::string type_name() const override { return "LayerNorm"; }
  std::string extra_repr() const override;
  Tensor weight;  // ones; undefined without affine
  Tensor bias;    // zeros

 protected:
  Tensor forward(const Tensor& input) override;

 private:
  Shape normalized_shape_;
  double eps_;
};

}  // namespace zt::nn
