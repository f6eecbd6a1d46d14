// What the engine's multi-rank tests share: a small MLP built from a fixed seed, the global
// batch of each step (the same on every rank), and ways to compare the weights of two runs.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/factory.h"
#include "core/generator.h"
#include "core/safetensors.h"
#include "nn/nn.h"

namespace zt::testing {

constexpr int64_t kGlobalBatch = 24;  // divisible by N * GAS for N in {1, 2, 4, 8}, GAS in {1, 3}

inline std::shared_ptr<nn::Module> make_mlp() {
  manual_seed(1234);
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(64, 128), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(128, 128), std::make_shared<nn::Tanh>(),
      std::make_shared<nn::Linear>(128, 10)});
}

// The inputs and targets of global step `step`, the same on every rank.
struct GlobalBatch {
  Tensor inputs, targets;
};
inline GlobalBatch global_batch(int step) {
  Generator generator(uint64_t(1000 + step));
  Tensor inputs = randn({kGlobalBatch, 64}, {}, &generator);
  std::vector<int64_t> targets(kGlobalBatch);
  for (int64_t i = 0; i < kGlobalBatch; ++i) targets[size_t(i)] = (i * 7 + step) % 10;
  return {inputs, from_int64(targets, {kGlobalBatch})};
}

inline std::vector<double> concatenated(const NamedTensors& state) {
  std::vector<double> values;
  for (auto& [name, tensor] : state) {
    std::vector<double> part = tensor.to_vector();
    values.insert(values.end(), part.begin(), part.end());
  }
  return values;
}

// Relative error of a vector, ||a - b|| / ||b||: element-wise ratios are meaningless for
// weights that pass near zero, where one rounding difference of an update is all there is.
inline double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double difference = 0.0, reference = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference += (a[i] - b[i]) * (a[i] - b[i]);
    reference += b[i] * b[i];
  }
  return std::sqrt(difference / reference);
}

}  // namespace zt::testing
