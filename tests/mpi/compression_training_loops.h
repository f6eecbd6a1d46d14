// The two training loops the compressor's multi-rank tests compare: the engine on this rank's
// rows of each step's global batch, and the one-process reference, Adam on the whole batch.
// Both take the loss as cross-entropy of the MLP's logits against the batch's targets.
#pragma once

#include <cstdint>

#include "autograd/functions.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "nn/nn.h"
#include "optim/adam.h"
#include "tests/mpi/engine_test_helpers.h"

namespace zt::testing {

// `steps` global steps of `engine`; rank r of n takes rows [r B/n, (r + 1) B/n) of each batch.
inline void train_engine_on_rank_rows(dist::Engine& engine, int steps, int rank, int ranks) {
  const int64_t micro = kGlobalBatch / ranks;
  for (int step = 0; step < steps; ++step) {
    GlobalBatch batch = global_batch(step);
    const int64_t first = rank * micro;
    Tensor logits = engine.forward(ops::narrow(batch.inputs, 0, first, micro));
    engine.backward(cross_entropy(logits, ops::narrow(batch.targets, 0, first, micro)));
    engine.step();
  }
}

// Adam (learning rate `lr`, no weight decay) on the whole global batch until `step` reaches
// `steps`; `step` counts the steps taken, for a compressor whose schedule reads it.
inline void train_adam_on_whole_batches(nn::Module& model, int64_t& step, int steps, double lr) {
  optim::Adam adam(optim::single_group(model.parameters(), lr, 0.0));
  for (; step < steps;) {
    GlobalBatch batch = global_batch(int(step));
    Tensor loss = cross_entropy(model(batch.inputs), batch.targets);
    adam.zero_grad();
    loss.backward();
    adam.step();
    ++step;
  }
}

}  // namespace zt::testing
