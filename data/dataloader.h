// An in-memory dataset of (input, target) rows and a loader that cuts an epoch into batches:
// batch size, seeded shuffling per epoch, drop_last, and an optional distributed sampler so
// that each rank reads its own share.
// Invariant: the batches of an epoch are a pure function of (seed, epoch, options), so a
// resumed run can skip to a batch and see the same data.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "data/sampler.h"

namespace zt::data {

struct Batch {
  Tensor inputs;   // [B, ...]
  Tensor targets;  // [B]
};

// Rows of `inputs` and `targets` (their dim 0) are samples.
class TensorDataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const { return inputs_.size(0); }
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }
  Batch gather(const std::vector<int64_t>& indices) const;

 private:
  Tensor inputs_;
  Tensor targets_;
};

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  // Set to split each epoch across ranks (DistributedSampler semantics); shuffle and seed above
  // apply to the sampler.
  std::optional<DistributedSamplerOptions> distributed;
};

class DataLoader {
 public:
  DataLoader(const TensorDataset& dataset, DataLoaderOptions options);
  void set_epoch(int64_t epoch);
  int64_t num_batches() const;
  int64_t num_samples() const { return int64_t(order_.size()); }  // this rank, this epoch
  Batch batch(int64_t index) const;

 private:
  const TensorDataset& dataset_;
  DataLoaderOptions options_;
  std::optional<DistributedSampler> sampler_;
  std::vector<int64_t> order_;
};

// Images [N, H, W] u8 -> [N, 1, H, W] f32 of (x / 255 - mean) / std.
Tensor normalize_images(const Tensor& images, double mean, double stddev);

}  // namespace zt::data
