// How the tensor-parallel engine tests train the tiny GPTs: the split model sliced from the
// whole GPT that a seed draws, and one engine step on a data rank's rows of the fixed batch
// with the loss taken over the vocabulary split across the tensor group.
#pragma once

#include <cstdint>
#include <memory>

#include "comm/communicator.h"
#include "core/generator.h"
#include "core/ops/view.h"
#include "dist/engine.h"
#include "models/gpt.h"
#include "tensor_parallel/gpt2_tensor_parallel.h"
#include "tensor_parallel/sharded_state.h"
#include "tensor_parallel/vocab_parallel.h"
#include "tests/mpi/gpt_test_models.h"

namespace zt::testing {

// The GPT split over `tensor_group`, holding this rank's slices of the whole GPT drawn from
// `seed` (the same whole model on every rank, so a one-process run can start from it too).
inline std::shared_ptr<tensor_parallel::TensorParallelGPT> split_gpt_from_seed(
    const models::GPTConfig& config, comm::Communicator& tensor_group, uint64_t seed,
    bool sequence_parallel) {
  auto model = std::make_shared<tensor_parallel::TensorParallelGPT>(
      config, tensor_group, /*dropout_seed=*/1234, sequence_parallel);
  manual_seed(seed);
  auto full = std::make_shared<models::GPT>(config);
  tensor_parallel::load_full_state(*model, full->named_parameters(), tensor_group.rank(),
                                   tensor_group.size());
  return model;
}

// One engine step on rows [data_rank R, (data_rank + 1) R) of fixed_token_batch, R the batch's
// sequences over `data_ranks`; the loss is the vocabulary-parallel cross-entropy of the logits
// in f32 (the 16-bit engines' logits are widened first).
inline void step_on_data_rank_rows(dist::Engine& engine, int64_t vocab, int data_rank,
                                   int data_ranks, comm::Communicator& tensor_group) {
  const int64_t rows = kTinyBatchSequences / data_ranks;
  TokenBatch batch = fixed_token_batch(vocab);
  Tensor tokens = ops::contiguous(ops::narrow(batch.tokens, 0, data_rank * rows, rows));
  Tensor targets = ops::contiguous(ops::narrow(batch.targets, 0, data_rank * rows, rows));
  Tensor logits = engine.forward(tokens).to(DType::f32);
  Tensor loss = tensor_parallel::vocab_parallel_cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                              targets.reshape({-1}), tensor_group);
  engine.backward(loss);
  engine.step();
}

}  // namespace zt::testing
