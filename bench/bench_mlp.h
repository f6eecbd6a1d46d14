// The MLP the multi-rank benchmarks train: 784 -> width (depth hidden layers) -> 10, ReLU
// between, so its size is set by two numbers.
#pragma once

#include <memory>

#include "nn/nn.h"

namespace zt::bench {

inline std::shared_ptr<nn::Sequential> build_mlp(int64_t width, int64_t depth) {
  auto model = std::make_shared<nn::Sequential>();
  model->push_back(std::make_shared<nn::Linear>(784, width));
  model->push_back(std::make_shared<nn::ReLU>());
  for (int64_t layer = 1; layer < depth; ++layer) {
    model->push_back(std::make_shared<nn::Linear>(width, width));
    model->push_back(std::make_shared<nn::ReLU>());
  }
  model->push_back(std::make_shared<nn::Linear>(width, 10));
  return model;
}

}  // namespace zt::bench
