// The small convolutional model the compression tests compress, and the measures they compare
// its outputs and masks with. Shared so that the technique tests and redundancy_clean's test
// build the same layers (conv, fc1, fc2: the module names their configs point at).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "nn/nn.h"

namespace zt::testing {

// conv (1 -> channels, 3x3) on 4x4 images, fc1 (channels*4 -> hidden), fc2 (hidden -> 3).
class ConvNet final : public nn::Module {
 public:
  explicit ConvNet(int64_t channels = 4, int64_t hidden = 8) {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(1, channels, 3));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(channels * 4, hidden));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, 3));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::Linear> fc1, fc2;

 protected:
  Tensor forward(const Tensor& images) override {  // [N, 1, 4, 4] -> [N, channels, 2, 2] -> ...
    return (*fc2)(relu((*fc1)(relu((*conv)(images)).flatten(1))));
  }
};

// The largest elementwise difference of two tensors of the same size.
inline double max_difference(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(x[i] - y[i]));
  return worst;
}

// A tensor's values as floats (masks and quantized weights are compared to float loops).
inline std::vector<float> floats(const Tensor& tensor) {
  std::vector<double> values = tensor.detach().to_vector();
  return std::vector<float>(values.begin(), values.end());
}

}  // namespace zt::testing
