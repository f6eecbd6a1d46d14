// What the tensor-parallel serving tests share: the GPT they split over the world's ranks and
// how they compare the split model's logits with the whole model's.
#pragma once

#include <doctest/doctest.h>

#include "autograd/functions.h"
#include "models/gpt.h"

namespace zt::testing {

// GPT-2 or Llama small enough to serve on 1 to 4 ranks; the vocabulary (32) and the heads (4)
// split over 2 and 4 ranks.
inline models::GPTConfig split_serving_config(models::Architecture architecture, int ranks) {
  models::GPTConfig config;
  config.architecture = architecture;
  config.vocab_size = 32;
  config.block_size = 40;
  config.n_layer = 2;
  config.n_head = 4;
  // Grouped-query attention where the ranks allow it (tp must divide the key/value heads).
  config.n_kv_head = architecture == models::Architecture::llama ? (ranks == 4 ? 4 : 2) : 0;
  config.n_embd = 32;
  config.bias = architecture == models::Architecture::gpt2;
  config.tie_word_embeddings = architecture == models::Architecture::gpt2;
  return config;
}

// The largest |a - b| over the largest |b|: the logits' relative difference.
inline double relative_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  const Tensor reference = b.to(DType::f64);
  return amax(abs(a.to(DType::f64) - reference)).item() / amax(abs(reference)).item();
}

}  // namespace zt::testing
