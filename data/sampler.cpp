// Seeded permutations and the distributed sampler.
#include "data/sampler.h"

#include <fmt/format.h>

#include <numeric>
#include <stdexcept>

#include "core/philox.h"

namespace zt::data {

std::vector<int64_t> seeded_permutation(int64_t size, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), int64_t(0));
  // The epoch selects a counter range of its own, so epochs never share draws.
  uint64_t offset = uint64_t(epoch) << 40;
  for (int64_t i = size - 1; i > 0; --i) {
    philox::Block block = philox::block_for(seed, offset, uint64_t(i));
    uint64_t bits = (uint64_t(block.word[0]) << 32) | block.word[1];
    int64_t j = int64_t(bits % uint64_t(i + 1));  // bias below 2^-40 for any realistic size
    std::swap(order[size_t(i)], order[size_t(j)]);
  }
  return order;
}

DistributedSampler::DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options)
    : dataset_size_(dataset_size), options_(options) {
  if (options.num_replicas < 1 || options.rank < 0 || options.rank >= options.num_replicas) {
    throw std::invalid_argument(
        fmt::format("DistributedSampler: rank {} must be in [0, num_replicas = {})", options.rank,
                    options.num_replicas));
  }
  if (dataset_size < 1) {
    throw std::invalid_argument(
        fmt::format("DistributedSampler: the dataset is empty (size {})", dataset_size));
  }
  if (options.drop_last && dataset_size < options.num_replicas) {
    throw std::invalid_argument(
        fmt::format("DistributedSampler: drop_last leaves nothing: {} samples for {} ranks",
                    dataset_size, options.num_replicas));
  }
  int64_t replicas = options.num_replicas;
  num_samples_ =
      options.drop_last ? dataset_size / replicas : (dataset_size + replicas - 1) / replicas;
}

std::vector<int64_t> DistributedSampler::indices() const {
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = seeded_permutation(dataset_size_, options_.seed, epoch_);
  } else {
    order.resize(static_cast<size_t>(dataset_size_));
    std::iota(order.begin(), order.end(), int64_t(0));
  }
  size_t total = size_t(num_samples_ * options_.num_replicas);
  // Pad by wrapping around (possibly several times for tiny datasets), or drop the tail.
  for (size_t i = 0; order.size() < total; ++i) order.push_back(order[i]);
  order.resize(total);
  std::vector<int64_t> mine;
  mine.reserve(size_t(num_samples_));
  for (size_t i = size_t(options_.rank); i < total; i += size_t(options_.num_replicas)) {
    mine.push_back(order[i]);
  }
  return mine;
}

}  // namespace zt::data
