// GPTConfig's derived sizes and its validation.
#include "models/gpt_config.h"

#include <fmt/format.h>

#include <stdexcept>

namespace zt::models {

std::string architecture_name(Architecture architecture) {
  return architecture == Architecture::gpt2 ? "gpt2" : "llama";
}

Architecture parse_architecture(const std::string& name) {
  if (name == "gpt2") return Architecture::gpt2;
  if (name == "llama") return Architecture::llama;
  throw std::invalid_argument(
      fmt::format("GPTConfig: architecture: expected \"gpt2\" or \"llama\", got \"{}\"", name));
}

int64_t GPTConfig::resolved_intermediate_size() const {
  if (intermediate_size > 0) return intermediate_size;
  if (architecture == Architecture::gpt2) return 4 * n_embd;
  constexpr int64_t multiple_of = 256;
  const int64_t hidden = 2 * (4 * n_embd) / 3;
  return (hidden + multiple_of - 1) / multiple_of * multiple_of;
}

void GPTConfig::validate() const {
  auto fail = [](const std::string& what) { throw std::invalid_argument("GPTConfig: " + what); };
  if (vocab_size <= 0) fail(fmt::format("vocab_size: expected > 0, got {}", vocab_size));
  if (block_size <= 0) fail(fmt::format("block_size: expected > 0, got {}", block_size));
  if (n_layer <= 0) fail(fmt::format("n_layer: expected > 0, got {}", n_layer));
  if (n_head <= 0) fail(fmt::format("n_head: expected > 0, got {}", n_head));
  if (n_embd <= 0 || n_embd % n_head != 0) {
    fail(
        fmt::format("n_embd: expected a positive multiple of n_head ({}), got {}", n_head, n_embd));
  }
  if (n_kv_head < 0 || resolved_n_kv_head() > n_head || n_head % resolved_n_kv_head() != 0) {
    fail(fmt::format("n_kv_head: expected 0 or a divisor of n_head ({}), got {}", n_head,
                     n_kv_head));
  }
  if (intermediate_size < 0) {
    fail(fmt::format("intermediate_size: expected >= 0, got {}", intermediate_size));
  }
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    fail(fmt::format("dropout: expected a value in [0, 1), got {}", dropout));
  }
  if (!(norm_eps > 0.0)) fail(fmt::format("norm_eps: expected > 0, got {}", norm_eps));
  if (architecture == Architecture::llama) {
    if (head_dim() % 2 != 0) {
      fail(fmt::format("n_embd / n_head: rotary embedding needs an even head size, got {}",
                       head_dim()));
    }
    if (!(rope_theta > 0.0)) fail(fmt::format("rope_theta: expected > 0, got {}", rope_theta));
  }
  if (architecture == Architecture::gpt2 && n_kv_head != 0 && n_kv_head != n_head) {
    fail(
        fmt::format("n_kv_head: GPT-2 attention has one key and value head per query head "
                    "(0 or {}), got {}",
                    n_head, n_kv_head));
  }
  if (!layer_heads.empty()) {
    if (int64_t(layer_heads.size()) != n_layer) {
      fail(fmt::format("layer_heads: expected one entry per layer ({}), got {}", n_layer,
                       layer_heads.size()));
    }
    const int64_t group = n_head / resolved_n_kv_head();  // query heads a key/value head
    for (int64_t heads : layer_heads) {
      if (heads < 1 || heads > n_head || heads % group != 0) {
        fail(fmt::format("layer_heads: expected 1..{} heads a layer{}, got {}", n_head,
                         group > 1 ? fmt::format(" in whole groups of {}", group) : "", heads));
      }
    }
  }
  if (eager_attention && sparse_attention) {
    fail("eager_attention: dense attention only, but sparse_attention is set");
  }
  if (sparse_attention) {
    sparse_attention->validate();
    if (block_size % sparse_attention->block != 0) {
      fail(fmt::format("block_size: expected a multiple of sparse_attention.block ({}), got {}",
                       sparse_attention->block, block_size));
    }
  }
}

}  // namespace zt::models
