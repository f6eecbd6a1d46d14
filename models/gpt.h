// GPT: a decoder-only transformer language model in GPT-2's layout or Llama's, under Hugging
// Face's parameter names, so that its state dict, HF's safetensors files and PyTorch agree:
//   gpt2:  wte, wpe, h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_f,
//          lm_head (tied to wte)
//   llama: model.embed_tokens, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj,
//          post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head
// Calling the module (model(idx), engine.forward(idx)) maps i64 tokens [B, T] to logits
// [B, T, vocab]; forward(idx, &cache) continues from a KV cache for generation. Every child
// runs through its operator(), so ZeRO stage 3 gathers each layer's weights as it runs.
#pragma once

#include <memory>

#include "models/gpt_config.h"
#include "models/kv_cache.h"
#include "models/lm_head.h"
#include "nn/containers.h"
#include "nn/embedding.h"
#include "nn/layer_norm.h"
#include "nn/module.h"

namespace zt::models {

class LlamaModel;

class GPT final : public nn::Module {
 public:
  explicit GPT(const GPTConfig& config);
  std::string type_name() const override { return "GPT"; }
  std::string extra_repr() const override;
  const GPTConfig& config() const { return config_; }

  // idx i64 [B, T] -> logits [B, T, vocab]. With a cache, positions continue from
  // cache->length() and the cache grows by T (generation: the prompt once, then one token a
  // step); nullptr is the same as model(idx). Throws std::invalid_argument when the positions
  // would pass block_size, and std::out_of_range for a token outside the vocabulary.
  Tensor forward(const Tensor& idx, KVCache* cache);

  // The token embedding (wte, or Llama's model.embed_tokens) and the head; the rest are
  // reached through named_modules().
  const std::shared_ptr<nn::Embedding>& token_embedding() const { return token_embedding_; }
  const std::shared_ptr<LMHead>& lm_head() const { return lm_head_; }

  // Activation checkpointing of every decoder layer in training (Hugging Face's
  // gradient_checkpointing_enable): a layer keeps only its input and re-runs in backward, so
  // a step holds the checkpoints and one layer's activations. Gradients are bitwise the same.
  // Off by default; generation with a cache never checkpoints.
  void set_gradient_checkpointing(bool enabled);
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

 protected:
  using nn::Module::forward;
  // (idx) -> (logits), or (idx, keys_0, values_0, ..., keys_{L-1}, values_{L-1}) with None for
  // an empty cache -> (logits, keys_0, values_0, ...), the keys and values of all positions.
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  nn::TensorList gpt2_hidden(const nn::TensorList& inputs, int64_t past);
  GPTConfig config_;
  bool gradient_checkpointing_ = false;
  // GPT-2's children (null for Llama).
  std::shared_ptr<nn::Embedding> wpe_;
  std::shared_ptr<nn::ModuleList> h_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
  // Llama's stack (null for GPT-2).
  std::shared_ptr<LlamaModel> llama_;
  std::shared_ptr<nn::Embedding> token_embedding_;
  std::shared_ptr<LMHead> lm_head_;
};

// Hugging Face's safetensors files: GPT-2's (names with or without "transformer.", the
// attention-mask buffers "attn.bias" and "attn.masked_bias" skipped) or Llama's. The tied head
// may be absent; every other tensor must be there with the model's shape (dtypes convert).
// Errors name the file and the tensor.
void load_hf_safetensors(GPT& model, const std::string& path);
// The model's weights under HF's names, metadata {"format": "pt"} as transformers expects, a
// tied head stored once (as wte.weight or model.embed_tokens.weight, the way HF writes it).
void save_hf_safetensors(const GPT& model, const std::string& path);

}  // namespace zt::models
