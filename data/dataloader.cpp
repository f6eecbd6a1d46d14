// Batching over an in-memory dataset.
#include "data/dataloader.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/factory.h"
#include "core/ops/index.h"
#include "core/parallel.h"

namespace zt::data {

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  if (inputs_.dim() < 1 || targets_.dim() < 1 || inputs_.size(0) != targets_.size(0)) {
    throw std::invalid_argument(
        fmt::format("TensorDataset: inputs {} and targets {} must have the same number of rows",
                    shape_str(inputs_.sizes()), shape_str(targets_.sizes())));
  }
}

Batch TensorDataset::gather(const std::vector<int64_t>& indices) const {
  Tensor index = from_int64(indices, {int64_t(indices.size())});
  return {ops::index_select(inputs_, 0, index), ops::index_select(targets_, 0, index)};
}

DataLoader::DataLoader(const TensorDataset& dataset, DataLoaderOptions options)
    : dataset_(dataset), options_(options) {
  if (options.batch_size < 1) {
    throw std::invalid_argument(
        fmt::format("DataLoader: batch_size must be >= 1, got {}", options.batch_size));
  }
  if (options.distributed) {
    DistributedSamplerOptions sampler_options = *options.distributed;
    sampler_options.shuffle = options.shuffle;
    sampler_options.seed = options.seed;
    sampler_.emplace(dataset.size(), sampler_options);
  }
  set_epoch(0);
}

void DataLoader::set_epoch(int64_t epoch) {
  if (sampler_) {
    sampler_->set_epoch(epoch);
    order_ = sampler_->indices();
  } else if (options_.shuffle) {
    order_ = seeded_permutation(dataset_.size(), options_.seed, epoch);
  } else {
    order_.resize(size_t(dataset_.size()));
    std::iota(order_.begin(), order_.end(), int64_t(0));
  }
}

int64_t DataLoader::num_batches() const {
  int64_t samples = num_samples();
  return options_.drop_last ? samples / options_.batch_size
                            : (samples + options_.batch_size - 1) / options_.batch_size;
}

Batch DataLoader::batch(int64_t index) const {
  if (index < 0 || index >= num_batches()) {
    throw std::out_of_range(
        fmt::format("DataLoader: batch {} of an epoch of {} batches", index, num_batches()));
  }
  size_t begin = size_t(index * options_.batch_size);
  size_t end = std::min(order_.size(), begin + size_t(options_.batch_size));
  return dataset_.gather(
      std::vector<int64_t>(order_.begin() + long(begin), order_.begin() + long(end)));
}

Tensor normalize_images(const Tensor& images, double mean, double stddev) {
  if (images.dtype() != DType::u8 || images.dim() != 3 || !images.is_contiguous()) {
    throw std::invalid_argument(
        fmt::format("normalize_images: expected contiguous u8 [N, H, W], got {} {}",
                    dtype_name(images.dtype()), shape_str(images.sizes())));
  }
  Tensor out = empty({images.size(0), 1, images.size(1), images.size(2)});
  const uint8_t* source = images.data_ptr<uint8_t>();
  float* target = out.data_ptr<float>();
  const float scale = float(1.0 / (255.0 * stddev));
  const float shift = float(mean / stddev);
  parallel_for(0, images.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) target[i] = float(source[i]) * scale - shift;
  });
  return out;
}

}  // namespace zt::data
