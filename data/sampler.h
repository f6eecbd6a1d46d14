// Which samples each step reads: a seeded permutation per epoch, and the distributed sampler
// that gives each of N ranks a disjoint, equal share of an epoch the way PyTorch's
// DistributedSampler does (the permutation padded by wrap-around to a multiple of N, or
// truncated with drop_last, then rank r takes positions r, r + N, r + 2N, ...).
// Invariant: every permutation is a pure function of (seed, epoch, dataset size).
#pragma once

#include <cstdint>
#include <vector>

namespace zt::data {

// A permutation of 0..size-1 drawn by Fisher-Yates from Philox keyed on (seed, epoch).
std::vector<int64_t> seeded_permutation(int64_t size, uint64_t seed, int64_t epoch);

struct DistributedSamplerOptions {
  int64_t num_replicas = 1;
  int64_t rank = 0;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
};

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options);
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }
  // Samples this rank reads per epoch (equal on every rank).
  int64_t num_samples() const { return num_samples_; }
  // This rank's sample indices for the current epoch.
  std::vector<int64_t> indices() const;

 private:
  int64_t dataset_size_;
  DistributedSamplerOptions options_;
  int64_t num_samples_;
  int64_t epoch_ = 0;
};

}  // namespace zt::data
