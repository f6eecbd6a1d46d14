// A KV cache in blocks (paged): every layer's keys and values live in one pool of fixed-size
// blocks of positions, [blocks, kv_heads, block_positions, head_dim], and each sequence holds a
// table of the blocks its positions occupy, taken from a free list as it grows. A finished
// sequence hands its blocks back at once, so a new request can use them on the next step.
// Invariants: a block belongs to at most one sequence; position p of a sequence is slot
// p % block_positions of its block p / block_positions, in every layer.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace zt::inference {

struct PagedKVCacheShape {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  int64_t block_positions = 16;  // positions a block holds
  int64_t blocks = 0;            // blocks in the pool
};

class PagedKVCache {
 public:
  PagedKVCache(const PagedKVCacheShape& shape, DType dtype, Device device);

  const PagedKVCacheShape& shape() const { return shape_; }
  int64_t free_blocks() const { return int64_t(free_.size()); }
  // Blocks a sequence of `positions` positions occupies.
  int64_t blocks_for(int64_t positions) const {
    return (positions + shape_.block_positions - 1) / shape_.block_positions;
  }

  // A new, empty sequence; its id.
  int64_t add_sequence();
  // Makes room for `count` more positions of `sequence`, taking blocks from the pool; returns
  // the position the new ones start at. Throws std::runtime_error when the pool is short.
  int64_t grow(int64_t sequence, int64_t count);
  int64_t length(int64_t sequence) const { return table(sequence).length; }
  // Stores k, v [kv_heads, T, head_dim] of positions start..start+T-1 (inside the grown length).
  void write(int64_t sequence, int64_t layer, int64_t start, const Tensor& k, const Tensor& v);
  // Keys and values of positions 0..count-1 as [1, kv_heads, count, head_dim] (undefined when
  // count is 0): a copy gathered from the sequence's blocks.
  std::pair<Tensor, Tensor> read(int64_t sequence, int64_t layer, int64_t count) const;
  // The sequence's blocks back to the pool; the id is no longer valid.
  void release(int64_t sequence);
  // For kernels that read the blocks in place (inference/paged_attention.h): a layer's pools,
  // [blocks, kv_heads, block_positions, head_dim] each, and a sequence's blocks in order.
  const Tensor& key_pool(int64_t layer) const { return keys_.at(size_t(layer)); }
  const Tensor& value_pool(int64_t layer) const { return values_.at(size_t(layer)); }
  const std::vector<int64_t>& blocks_of(int64_t sequence) const { return table(sequence).blocks; }

 private:
  struct BlockTable {
    std::vector<int64_t> blocks;
    int64_t length = 0;
  };
  const BlockTable& table(int64_t sequence) const;
  Tensor gather(const Tensor& pool, const BlockTable& table, int64_t count) const;
  void scatter(const Tensor& pool, const BlockTable& table, int64_t start, const Tensor& x);

  PagedKVCacheShape shape_;
  std::vector<Tensor> keys_, values_;  // one pool per layer
  std::vector<int64_t> free_;          // block ids, taken from the back
  std::map<int64_t, BlockTable> tables_;
  int64_t next_id_ = 0;
};

}  // namespace zt::inference
