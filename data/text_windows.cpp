// Seeded token windows dealt to ranks by the DistributedSampler.
#include "data/text_windows.h"

#include <fmt/format.h>

#include <stdexcept>

#include "core/factory.h"
#include "core/philox.h"
#include "data/sampler.h"

namespace zt::data {

namespace {

// The epoch shifts draw from a counter range of their own, far above the permutations'
// (seeded_permutation uses epoch << 40 plus an index below the window count).
constexpr uint64_t kShiftCounterBase = uint64_t(1) << 62;

}  // namespace

TokenWindowSampler::TokenWindowSampler(std::span<const uint16_t> tokens, TokenWindowOptions options)
    : tokens_(tokens), options_(options) {
  if (options.batch_size < 1 || options.block_size < 1) {
    throw std::invalid_argument(
        fmt::format("TokenWindowSampler: batch_size {} and block_size {} must both be at least 1",
                    options.batch_size, options.block_size));
  }
  if (options.num_replicas < 1 || options.rank < 0 || options.rank >= options.num_replicas) {
    throw std::invalid_argument(
        fmt::format("TokenWindowSampler: rank {} must be in [0, num_replicas = {})", options.rank,
                    options.num_replicas));
  }
  // A window starting at shift + k * T needs T + 1 tokens; with the largest shift T - 1 the
  // last of W windows ends at W * T + T, so W = floor(n / T) - 1 fit every shift.
  int64_t block = options.block_size;
  windows_per_epoch_ = int64_t(tokens.size()) / block - 1;
  int64_t windows_needed = options.batch_size * options.num_replicas;
  if (windows_per_epoch_ < windows_needed) {
    throw std::invalid_argument(fmt::format(
        "TokenWindowSampler: {} tokens give {} windows of {} + 1 tokens; one step of batch {} on "
        "{} ranks needs {}",
        tokens.size(), std::max<int64_t>(windows_per_epoch_, 0), block, options.batch_size,
        options.num_replicas, windows_needed));
  }
  batches_per_epoch_ = windows_per_epoch_ / options.num_replicas / options.batch_size;
}

int64_t TokenWindowSampler::epoch_shift(int64_t epoch) const {
  philox::Block block = philox::block_for(options_.seed, kShiftCounterBase, uint64_t(epoch));
  return int64_t(block.word[0] % uint32_t(options_.block_size));
}

std::vector<int64_t> TokenWindowSampler::window_starts(int64_t step) {
  if (step < 0) throw std::out_of_range(fmt::format("TokenWindowSampler: step {} < 0", step));
  int64_t epoch = step / batches_per_epoch_;
  int64_t batch_in_epoch = step % batches_per_epoch_;
  if (epoch != cached_epoch_) {
    DistributedSampler sampler(windows_per_epoch_, {.num_replicas = options_.num_replicas,
                                                    .rank = options_.rank,
                                                    .shuffle = true,
                                                    .seed = options_.seed,
                                                    .drop_last = true});
    sampler.set_epoch(epoch);
    cached_window_indices_ = sampler.indices();
    cached_epoch_ = epoch;
  }
  int64_t shift = epoch_shift(epoch);
  std::vector<int64_t> starts(size_t(options_.batch_size));
  for (int64_t row = 0; row < options_.batch_size; ++row) {
    int64_t window = cached_window_indices_[size_t(batch_in_epoch * options_.batch_size + row)];
    starts[size_t(row)] = shift + window * options_.block_size;
  }
  return starts;
}

TokenBatch TokenWindowSampler::batch(int64_t step) {
  std::vector<int64_t> starts = window_starts(step);
  int64_t block = options_.block_size;
  std::vector<int64_t> inputs(size_t(options_.batch_size * block));
  std::vector<int64_t> targets(inputs.size());
  for (size_t row = 0; row < starts.size(); ++row) {
    const uint16_t* window = tokens_.data() + starts[row];
    for (int64_t t = 0; t < block; ++t) {
      inputs[row * size_t(block) + size_t(t)] = window[t];
      targets[row * size_t(block) + size_t(t)] = window[t + 1];
    }
  }
  Shape shape{options_.batch_size, block};
  return {from_int64(inputs, shape), from_int64(targets, shape)};
}

}  // namespace zt::data
