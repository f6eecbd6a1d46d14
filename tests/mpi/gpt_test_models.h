// The tiny GPTs and the global batch that the tensor-parallel, sequence-parallel and ZeRO GPT
// tests train: a GPT-2 and a Llama with grouped-query attention, small enough for several steps
// on 8 ranks, and one fixed batch of tokens. Shared so that the tests that stand for the same
// model build it the same way.
#pragma once

#include <cstdint>
#include <vector>

#include "core/factory.h"
#include "core/ops/view.h"
#include "models/gpt.h"

namespace zt::testing {

// The fixed batch's sequences (divisible by 1, 2, 4 and 8 ranks) and their length, which is
// also the tiny models' block size.
inline constexpr int64_t kTinyBatchSequences = 8;
inline constexpr int64_t kTinyLength = 8;

// GPT-2: 4 heads and a vocabulary of 32 split over 1, 2 or 4 tensor ranks.
inline models::GPTConfig tiny_gpt2_config() {
  models::GPTConfig config;
  config.vocab_size = 32;
  config.block_size = kTinyLength;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = 16;
  return config;
}

// Llama with grouped-query attention (2 query heads per key head on every tp), RMSNorm and an
// untied head.
inline models::GPTConfig tiny_llama_config() {
  models::GPTConfig config;
  config.architecture = models::Architecture::llama;
  config.vocab_size = 32;
  config.block_size = kTinyLength;
  config.n_layer = 2;
  config.n_head = 8;
  config.n_kv_head = 4;
  config.n_embd = 32;
  config.intermediate_size = 48;
  config.bias = false;
  config.tie_word_embeddings = false;
  return config;
}

// GPT-2 with 3 layers of width 32 on sequences of 16: room for the tensor group's token
// chunks and the traffic formulas' b s h products to differ per layer.
inline models::GPTConfig small_gpt2_config() {
  models::GPTConfig config;
  config.vocab_size = 64;
  config.block_size = 16;
  config.n_layer = 3;
  config.n_head = 4;
  config.n_embd = 32;
  return config;
}

struct TokenBatch {
  Tensor tokens, targets;  // [kTinyBatchSequences, kTinyLength]; targets: the next tokens
};

// The same batch on every call and every rank (a test that trains on it every step must see
// the loss fall): a quadratic stream of token ids, cut into sequences of length + 1.
inline TokenBatch fixed_token_batch(int64_t vocab) {
  const int64_t sequences = kTinyBatchSequences, length = kTinyLength;
  std::vector<int64_t> stream(size_t(sequences * (length + 1)));
  for (size_t i = 0; i < stream.size(); ++i)
    stream[i] = int64_t((i * i * 7 + i * 3) % size_t(vocab));
  Tensor all = from_int64(stream, {sequences, length + 1});
  return {ops::contiguous(ops::narrow(all, 1, 0, length)),
          ops::contiguous(ops::narrow(all, 1, 1, length))};
}

}  // namespace zt::testing
