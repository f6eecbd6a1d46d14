// Causal self-attention over heads, shared by the GPT-2 and Llama attention layers: appends the
// new keys and values to those of earlier positions (a KV cache), lets each query head attend
// to its key/value head (grouped-query attention: query head h reads key head h / groups, as
// Hugging Face's repeat_kv lays them out) and applies the causal rule for the new positions.
// Everything goes through scaled_dot_product_attention; no [T, S] matrix is built here except
// the boolean mask of a multi-token step that continues a cache.
#pragma once

#include "core/tensor.h"

namespace zt::models {

struct CausalAttentionResult {
  Tensor output;        // [B, n_head, T, head_dim]
  Tensor keys, values;  // all positions so far, [B, n_kv_head, past + T, head_dim]
};

// q [B, n_head, T, D]; k, v [B, n_kv_head, T, D] for the same T new positions; past_keys and
// past_values [B, n_kv_head, P, D] or undefined (P = 0). Position t of the new tokens is
// P + t and sees keys 0..P + t. dropout_p applies to the attention weights.
CausalAttentionResult causal_self_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const Tensor& past_keys, const Tensor& past_values,
                                            double dropout_p);

}  // namespace zt::models
