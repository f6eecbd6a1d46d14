// The paged KV cache: block allocation from a free list, and the copies between a sequence's
// contiguous positions and its scattered blocks.
#include "inference/paged_kv_cache.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/functions.h"
#include "core/factory.h"
#include "core/ops/view.h"

namespace zt::inference {

PagedKVCache::PagedKVCache(const PagedKVCacheShape& shape, DType dtype, Device device)
    : shape_(shape) {
  if (shape.layers < 1 || shape.kv_heads < 1 || shape.head_dim < 1 || shape.block_positions < 1 ||
      shape.blocks < 1) {
    throw std::invalid_argument(fmt::format(
        "PagedKVCache: layers, kv_heads, head_dim, block_positions and blocks must be >= 1, got "
        "{}, {}, {}, {}, {}",
        shape.layers, shape.kv_heads, shape.head_dim, shape.block_positions, shape.blocks));
  }
  const Shape pool{shape.blocks, shape.kv_heads, shape.block_positions, shape.head_dim};
  for (int64_t layer = 0; layer < shape.layers; ++layer) {
    keys_.push_back(zeros(pool, TensorOptions{.dtype = dtype, .device = device}));
    values_.push_back(zeros(pool, TensorOptions{.dtype = dtype, .device = device}));
  }
  // Taken from the back: block 0 first, so a lone sequence's blocks are in order.
  for (int64_t block = shape.blocks - 1; block >= 0; --block) free_.push_back(block);
}

int64_t PagedKVCache::add_sequence() {
  tables_.emplace(next_id_, BlockTable{});
  return next_id_++;
}

const PagedKVCache::BlockTable& PagedKVCache::table(int64_t sequence) const {
  auto found = tables_.find(sequence);
  if (found == tables_.end())
    throw std::invalid_argument(fmt::format("PagedKVCache: no sequence {}", sequence));
  return found->second;
}

int64_t PagedKVCache::grow(int64_t sequence, int64_t count) {
  BlockTable& grown = const_cast<BlockTable&>(table(sequence));
  const int64_t needed = blocks_for(grown.length + count) - int64_t(grown.blocks.size());
  if (needed > free_blocks()) {
    throw std::runtime_error(
        fmt::format("PagedKVCache: {} more positions need {} blocks of {}, the pool has {} free",
                    count, needed, shape_.block_positions, free_blocks()));
  }
  for (int64_t i = 0; i < needed; ++i) {
    grown.blocks.push_back(free_.back());
    free_.pop_back();
  }
  const int64_t start = grown.length;
  grown.length += count;
  return start;
}

void PagedKVCache::scatter(const Tensor& pool, const BlockTable& table, int64_t start,
                           const Tensor& x) {
  const int64_t count = x.size(1), per_block = shape_.block_positions;
  for (int64_t done = 0; done < count;) {
    const int64_t position = start + done, slot = position % per_block;
    const int64_t run = std::min(per_block - slot, count - done);
    const Tensor block = pool.select(0, table.blocks[size_t(position / per_block)]);
    ops::copy_(block.narrow(1, slot, run), x.narrow(1, done, run));
    done += run;
  }
}

void PagedKVCache::write(int64_t sequence, int64_t layer, int64_t start, const Tensor& k,
                         const Tensor& v) {
  const BlockTable& written = table(sequence);
  const Shape expected{shape_.kv_heads, k.dim() == 3 ? k.size(1) : -1, shape_.head_dim};
  if (k.dim() != 3 || k.sizes() != expected || v.sizes() != expected || start < 0 ||
      start + k.size(1) > written.length) {
    throw std::invalid_argument(fmt::format(
        "PagedKVCache::write: expected k and v [{}, T, {}] inside the {} positions grown, got {} "
        "and {} at {}",
        shape_.kv_heads, shape_.head_dim, written.length, shape_str(k.sizes()),
        shape_str(v.sizes()), start));
  }
  scatter(keys_.at(size_t(layer)), written, start, k);
  scatter(values_.at(size_t(layer)), written, start, v);
}

Tensor PagedKVCache::gather(const Tensor& pool, const BlockTable& table, int64_t count) const {
  const int64_t used = blocks_for(count);
  std::vector<int64_t> ids(table.blocks.begin(), table.blocks.begin() + used);
  const Tensor blocks = index_select(pool, 0, from_int64(ids, {used}).to(pool.device()));
  // [used, KV, per_block, D] -> [KV, used * per_block, D], the positions in order.
  return blocks.permute({1, 0, 2, 3})
      .reshape({shape_.kv_heads, used * shape_.block_positions, shape_.head_dim})
      .narrow(1, 0, count)
      .unsqueeze(0);
}

std::pair<Tensor, Tensor> PagedKVCache::read(int64_t sequence, int64_t layer, int64_t count) const {
  const BlockTable& read_from = table(sequence);
  if (count < 0 || count > read_from.length) {
    throw std::invalid_argument(fmt::format("PagedKVCache::read: {} positions of a sequence of {}",
                                            count, read_from.length));
  }
  if (count == 0) return {Tensor(), Tensor()};
  return {gather(keys_.at(size_t(layer)), read_from, count),
          gather(values_.at(size_t(layer)), read_from, count)};
}

void PagedKVCache::release(int64_t sequence) {
  const BlockTable& released = table(sequence);
  for (auto block = released.blocks.rbegin(); block != released.blocks.rend(); ++block)
    free_.push_back(*block);
  tables_.erase(sequence);
}

}  // namespace zt::inference
