// Causal self-attention over heads, shared by the GPT-2 and Llama attention layers: appends the
// new keys and values to those of earlier positions (a KV cache), lets each query head attend
// to its key/value head (grouped-query attention: query head h reads key head h / groups, as
// Hugging Face's repeat_kv lays them out) and applies the causal rule for the new positions.
// Everything goes through scaled_dot_product_attention; no [T, S] matrix is built here except
// the boolean mask of a multi-token step that continues a cache.
#pragma once

#include <map>

#include "core/generator.h"
#include "core/ops/block_sparse_attention.h"
#include "core/sparse_layout.h"
#include "core/tensor.h"

namespace zt::models {

struct CausalAttentionResult {
  Tensor output;        // [B, n_head, T, head_dim]
  Tensor keys, values;  // all positions so far, [B, n_kv_head, past + T, head_dim]
};

// The block-sparse layout one attention layer uses: built once for `max_positions` positions;
// a sequence of T positions uses its top-left T x T corner (so generation sees the layout
// training saw). Keeps the kernel's index per sequence length and device.
class SparseAttentionPlan {
 public:
  SparseAttentionPlan(const SparsityConfig& config, int64_t heads, int64_t max_positions);
  // Heads [first_head, first_head + count) of the whole model's layout of `heads` heads: a
  // tensor-parallel rank's share, the planes of the heads it computes (with a layout per
  // head, the first `count` planes would be another model's).
  SparseAttentionPlan(const SparsityConfig& config, int64_t heads, int64_t max_positions,
                      int64_t first_head, int64_t count);
  int64_t block() const { return layout_.block; }
  const SparseLayout& layout() const { return layout_; }
  // The causal index of the first T positions (T a multiple of the block).
  const ops::BlockSparseIndex& index_for(int64_t T, Device device);
  // u8 [heads, T, past + T]: 1 where new position past + t may attend key s under the layout
  // and the causal rule; for steps that continue a KV cache or lengths off the block grid.
  Tensor mask_for(int64_t past, int64_t T, Device device) const;

 private:
  SparseLayout layout_;
  std::map<std::pair<int64_t, std::string>, ops::BlockSparseIndex> indices_;
};

// q [B, n_head, T, D]; k, v [B, n_kv_head, T, D] for the same T new positions; past_keys and
// past_values [B, n_kv_head, P, D] or undefined (P = 0). Position t of the new tokens is
// P + t and sees keys 0..P + t. dropout_p applies to the attention weights. With `sparse`,
// only the layout's blocks are attended (and dropout_p is not applied): by the block-sparse
// kernel when there is no cache and T is a multiple of the block, else by the fused dense
// kernel with the layout as a mask. Dropout draws from `generator` (the default when null).
// `eager` (dense only): the composed ops instead of the fused kernel (GPTConfig::eager_attention).
CausalAttentionResult causal_self_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& past_keys, const Tensor& past_values,
                                            double dropout_p, SparseAttentionPlan* sparse = nullptr,
                                            Generator* generator = nullptr, bool eager = false);

}  // namespace zt::models
