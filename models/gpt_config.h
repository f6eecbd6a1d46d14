// The shape of a GPT: which block layout (GPT-2's or Llama's), its sizes and its numerics.
// Zeros in n_kv_head and intermediate_size mean "the architecture's default"; the resolved_*
// functions give the numbers the model is built with, and validate() names the first field
// that cannot make a model.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/sparse_layout.h"

namespace zt::models {

enum class Architecture { gpt2, llama };

// "gpt2" or "llama"; parse_architecture throws std::invalid_argument naming both choices.
std::string architecture_name(Architecture architecture);
Architecture parse_architecture(const std::string& name);

struct GPTConfig {
  Architecture architecture = Architecture::gpt2;
  int64_t vocab_size = 256, block_size = 256, n_layer = 6, n_head = 6, n_embd = 384;
  int64_t n_kv_head = 0;          // Llama's grouped-query attention; 0 means n_head
  int64_t intermediate_size = 0;  // MLP width; 0 means 4*n_embd (gpt2) or Llama's rule
  double dropout = 0.0;           // embeddings, attention weights and residual branches
  bool bias = true;               // GPT-2's linear and LayerNorm biases (Llama has none)
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;  // Llama's rotary base
  bool tie_word_embeddings = true;
  // Block-sparse attention in every layer (ds_config.json's sparse_attention block): the
  // layout built for block_size positions (seed 0), of which a sequence of T positions uses
  // the top-left T x T corner, with the causal rule on top. As in DeepSpeed's sparse
  // self-attention, the attention weights get no dropout.
  std::optional<SparsityConfig> sparse_attention;
  // Dense attention by the composed ops (PyTorch's "eager" path, autograd's
  // scaled_dot_product_attention_math), which keep the [B, H, T, T] scores and weights for the
  // backward: the dense attention DeepSpeed's sparse attention is measured against. The same
  // function as the fused kernel (the default), at T^2 memory; for comparisons only.
  bool eager_attention = false;
  // The attention heads each layer keeps after head pruning removed some
  // (compress/redundancy_clean.h), each of head_dim(); empty: n_head in every layer. Llama
  // loses whole key/value groups, so its counts are multiples of n_head / n_kv_head.
  std::vector<int64_t> layer_heads;

  int64_t head_dim() const { return n_embd / n_head; }
  int64_t heads_in_layer(int64_t layer) const {
    return layer_heads.empty() ? n_head : layer_heads.at(size_t(layer));
  }
  int64_t resolved_n_kv_head() const { return n_kv_head > 0 ? n_kv_head : n_head; }
  int64_t kv_heads_in_layer(int64_t layer) const {
    return heads_in_layer(layer) / (n_head / resolved_n_kv_head());
  }
  // GPT-2: 4 * n_embd. Llama: 2/3 of 4 * n_embd rounded up to a multiple of 256, the rule of
  // Meta's reference code (multiple_of = 256) that gives 11008 for n_embd 4096.
  int64_t resolved_intermediate_size() const;
  // Throws std::invalid_argument naming the field and what it must be.
  void validate() const;
};

}  // namespace zt::models
