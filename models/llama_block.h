// Llama's decoder layer under Hugging Face's names: input_layernorm, self_attn.{q,k,v,o}_proj,
// post_attention_layernorm, mlp.{gate,up,down}_proj; RMSNorm, rotary position embedding on
// queries and keys, grouped-query attention (n_kv_head key/value heads), SwiGLU, no biases.
// Each takes (x, cos, sin, cached keys or None, cached values or None), cos and sin being the
// rotary tables of the new positions, and returns (y, keys, values) of every position so far.
#pragma once

#include <memory>

#include "models/causal_attention.h"
#include "models/gpt_config.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/rms_norm.h"

namespace zt::models {

class LlamaAttention final : public nn::Module {
 public:
  // `layer`: which layer's head count (GPTConfig::layer_heads) it has.
  explicit LlamaAttention(const GPTConfig& config, int64_t layer = 0);
  std::string type_name() const override { return "LlamaAttention"; }
  int64_t heads() const { return n_head_; }
  int64_t kv_heads() const { return n_kv_head_; }
  std::shared_ptr<nn::Linear> q_proj, k_proj, v_proj, o_proj;

  // The layer's block-sparse layout and kernel index; null when it attends densely.
  SparseAttentionPlan* sparse_plan() const { return sparse_.get(); }

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  int64_t n_head_, n_kv_head_, head_dim_;
  double dropout_;
  bool eager_attention_;                         // GPTConfig::eager_attention
  std::shared_ptr<SparseAttentionPlan> sparse_;  // null: dense attention
};

class LlamaMLP final : public nn::Module {
 public:
  explicit LlamaMLP(const GPTConfig& config);
  std::string type_name() const override { return "LlamaMLP"; }
  std::shared_ptr<nn::Linear> gate_proj, up_proj, down_proj;

 protected:
  Tensor forward(const Tensor& x) override;  // down(silu(gate(x)) * up(x))
};

class LlamaDecoderLayer final : public nn::Module {
 public:
  explicit LlamaDecoderLayer(const GPTConfig& config, int64_t layer = 0);
  std::string type_name() const override { return "LlamaDecoderLayer"; }
  std::shared_ptr<LlamaAttention> self_attn;
  std::shared_ptr<LlamaMLP> mlp;
  std::shared_ptr<nn::RMSNorm> input_layernorm, post_attention_layernorm;

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  double dropout_;
};

}  // namespace zt::models
