// Training windows over a token stream: each step gives a rank B windows of T + 1 consecutive
// tokens, as inputs x = window[0, T) and targets y = window[1, T + 1). An epoch cuts the stream
// into windows of stride T starting at a seeded shift in [0, T) (so epochs see different cuts)
// and deals them to the ranks with the DistributedSampler (shuffled, drop_last): within an
// epoch no two windows of any ranks share an input token.
// Invariant: the windows of (step, rank) are a pure function of (seed, step, rank, options), so
// a resumed run reads exactly what the uninterrupted one would have read.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"

namespace zt::data {

struct TokenWindowOptions {
  int64_t batch_size = 1;  // windows per rank per step
  int64_t block_size = 1;  // T, the tokens the model sees per window
  uint64_t seed = 0;
  int64_t num_replicas = 1;
  int64_t rank = 0;
};

struct TokenBatch {
  Tensor inputs;   // [B, T] i64
  Tensor targets;  // [B, T] i64, inputs shifted left by one token
};

class TokenWindowSampler {
 public:
  // Keeps a view of `tokens`: they must outlive the sampler. Throws std::invalid_argument naming
  // the sizes when the stream is too short for one batch on every rank.
  TokenWindowSampler(std::span<const uint16_t> tokens, TokenWindowOptions options);

  // Windows an epoch cuts from the stream (all ranks together).
  int64_t windows_per_epoch() const { return windows_per_epoch_; }
  // Steps in an epoch: this rank's share of the windows in whole batches.
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Where the cuts of `epoch` start: a seeded shift in [0, T).
  int64_t epoch_shift(int64_t epoch) const;
  // The first token of each window of this rank's batch at `step` (counted from 0 over epochs).
  std::vector<int64_t> window_starts(int64_t step);
  TokenBatch batch(int64_t step);

 private:
  std::span<const uint16_t> tokens_;
  TokenWindowOptions options_;
  int64_t windows_per_epoch_ = 0;
  int64_t batches_per_epoch_ = 0;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> cached_window_indices_;  // this rank's windows of cached_epoch_
};

}  // namespace zt::data
