// The MLP the multi-rank benchmarks train: 784 -> width (depth hidden layers) -> 10, ReLU
// between, so its size is set by two numbers.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "autograd/functions.h"
#include "comm/communicator.h"
#include "core/factory.h"
#include "dist/engine.h"
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

// A batch of random images and the labels 0..9 in turn, for the MLP above.
struct MlpBatch {
  Tensor inputs, targets;
};
inline MlpBatch mlp_batch(int64_t batch) {
  std::vector<int64_t> labels(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) labels[size_t(i)] = i % 10;
  return {randn({batch, 784}), from_int64(labels, {batch})};
}

// Milliseconds of one training step (forward, backward, step), between barriers so that every
// rank's clock covers the slowest rank's step.
inline double timed_step_ms(comm::Communicator& world, dist::Engine& engine,
                            const MlpBatch& batch) {
  world.barrier();
  auto start = std::chrono::steady_clock::now();
  engine.backward(cross_entropy(engine.forward(batch.inputs), batch.targets));
  engine.step();
  world.barrier();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace zt::bench
