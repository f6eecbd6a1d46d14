// Attention of a sequence's new tokens over its cached keys and values read in place from the
// paged KV cache's blocks (f32, f16 or bf16 on the CPU; 16-bit rows are widened to f32 as they
// are read, and the sums kept in f32). The gathered path copies every cached position
// (the gather from the blocks, the concatenation with the new keys, the attention kernel's own
// transposed copy) each layer and step, which at batch 1 cost as much as the attention itself
// and grew with the context; here each cached key and value is read once, where it lies.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "inference/paged_kv_cache.h"

namespace zt::inference {

// q [1, H, T, D] f32 or the cache's dtype (any strides) holds the queries of positions
// start..start+T-1 of `sequence`, whose keys and values for positions 0..start+T-1 are already in
// `cache` (layer `layer`). Query head h reads key head h / (H / kv_heads). Query t sees positions
// 0..start+t (causal). Returns [1, T, H * D] in q's dtype: each token's heads side by side,
// the layout the output projection takes.
Tensor paged_attention(const Tensor& q, const PagedKVCache& cache, int64_t sequence, int64_t layer,
                       int64_t start);

}  // namespace zt::inference
