// GPT-2's transformer block under Hugging Face's names: ln_1, attn.c_attn, attn.c_proj, ln_2,
// mlp.c_fc, mlp.c_proj; pre-LayerNorm residual branches, GELU with the tanh approximation.
// Each takes (x, cached keys or None, cached values or None) and returns (y, keys, values),
// the keys and values of every position so far, which a KV cache keeps for the next step.
#pragma once

#include <memory>

#include "models/causal_attention.h"
#include "models/conv1d.h"
#include "models/gpt_config.h"
#include "nn/layer_norm.h"
#include "nn/module.h"

namespace zt::models {

class GPT2Attention final : public nn::Module {
 public:
  // `heads` of config.head_dim() each (fewer than n_head after head pruning).
  GPT2Attention(const GPTConfig& config, int64_t heads);
  std::string type_name() const override { return "GPT2Attention"; }
  std::shared_ptr<Conv1D> c_attn;  // [C, 3C]: q, k, v side by side
  std::shared_ptr<Conv1D> c_proj;

  // The layer's block-sparse layout and kernel index; null when it attends densely.
  SparseAttentionPlan* sparse_plan() const { return sparse_.get(); }

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  int64_t n_head_, head_dim_;
  double dropout_;
  bool eager_attention_;                         // GPTConfig::eager_attention
  std::shared_ptr<SparseAttentionPlan> sparse_;  // null: dense attention
};

class GPT2MLP final : public nn::Module {
 public:
  explicit GPT2MLP(const GPTConfig& config);
  std::string type_name() const override { return "GPT2MLP"; }
  std::shared_ptr<Conv1D> c_fc, c_proj;

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  double dropout_;
};

class GPT2Block final : public nn::Module {
 public:
  // Layer `layer` of the model (its head count: config.heads_in_layer(layer)).
  GPT2Block(const GPTConfig& config, int64_t layer);
  std::string type_name() const override { return "GPT2Block"; }
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<GPT2Attention> attn;
  std::shared_ptr<GPT2MLP> mlp;

 protected:
  nn::TensorList forward_many(const nn::TensorList& inputs) override;
};

}  // namespace zt::models
