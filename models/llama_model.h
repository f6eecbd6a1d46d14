// Llama's decoder stack under Hugging Face's names (embed_tokens, layers.N, norm): token ids
// and the cached keys and values of each layer in, the final normalised hidden states and the
// keys and values of every position so far out. Rotary tables are computed once per call for
// the new positions (which continue from the cache) and shared by every layer.
#pragma once

#include <memory>

#include "models/gpt_config.h"
#include "nn/containers.h"
#include "nn/embedding.h"
#include "nn/module.h"
#include "nn/rms_norm.h"

namespace zt::models {

class LlamaModel final : public nn::Module {
 public:
  explicit LlamaModel(const GPTConfig& config);
  std::string type_name() const override { return "LlamaModel"; }
  std::shared_ptr<nn::Embedding> embed_tokens;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::RMSNorm> norm;
  bool gradient_checkpointing = false;  // set through GPT::set_gradient_checkpointing

 protected:
  // (idx, keys_0, values_0, ..., keys_{L-1}, values_{L-1}) with None for an empty cache ->
  // (hidden, keys_0, values_0, ...).
  nn::TensorList forward_many(const nn::TensorList& inputs) override;

 private:
  GPTConfig config_;
};

}  // namespace zt::models
