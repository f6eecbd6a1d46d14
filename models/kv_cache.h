// The keys and values of the tokens a GPT has already seen, per layer, so that generation feeds
// one new token a step instead of the whole sequence: layer i holds k and v of
// [B, kv_heads, T_so_far, head_dim] (keys after rotary embedding, for Llama). Every layer holds
// the same number of positions; an empty cache has undefined tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace zt::models {

struct KVCache {
  std::vector<Tensor> keys, values;  // one per layer once the first forward has filled them

  // Positions held: where the next token's position starts.
  int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(-2); }
  void clear() {
    keys.clear();
    values.clear();
  }
};

}  // namespace zt::models
